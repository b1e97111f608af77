/**
 * What the tests of the worker's admission by its stake (`node/_stake_backed_port.ts`,
 * `stake_backed_*_test.ts`) share: the requester and the worker, jobs that earn, the worker's
 * signed receipt for one, an inner port whose jobs end with it (as a prover's do) or stay open,
 * a submission's outcome, and a ledger where the worker has a stake.
 *
 * @module
 */
import type { InferenceHandle, InferencePort } from "../../inference/inference_port.ts";
import { Ledger } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { receiptFor } from "../network/_scripted_worker_fixture.ts";
import { jobFor } from "../network/_hostile_worker_fixture.ts";
import { served } from "../network/_scripted_workers.ts";

/** The prompt tokens the worker's tokenizer counts for every test job. */
export const PROMPT_TOKENS = 200;

/** The requester (the router) of every test job unless a test names another. */
export const requester: Identity = Identity.generate();
/** The worker whose admission is tested. */
export const worker: Identity = Identity.generate();

/** A job of `maxTokens` naming `who` (a key, or its hex) as its requester, so its receipt earns. */
export function earningJob(
  nonce: string,
  maxTokens = 8,
  who: Identity | string = requester,
): TextJob {
  const job = jobFor(nonce);
  return {
    ...job,
    params: { ...job.params, maxTokens },
    requester: typeof who === "string" ? who : toHex(who.publicKey),
  };
}

/** `who`'s (by default the worker's) receipt for `job` run to its `maxTokens`, signing `PROMPT_TOKENS`. */
export function receiptOf(job: TextJob, who: Identity = worker): Receipt {
  const tokens = job.params.maxTokens;
  const { sig: _s, worker: _w, ...unsigned } = receiptFor(job, who, "x".repeat(tokens), tokens);
  return signReceipt({ ...unsigned, promptTokens: PROMPT_TOKENS }, who) as Receipt;
}

/** `inner`, whose jobs end with `receipt(job)` (the worker's receipt), as a prover's do. */
export function signing(
  inner: InferencePort,
  receipt: (job: TextJob) => Receipt = (job) => receiptOf(job),
): InferencePort {
  return {
    submit: async (job, options) => {
      const handle = await inner.submit(job, options);
      const done = handle.done.then((summary) => ({ ...summary, receipt: receipt(job) }));
      return { ...handle, done };
    },
    models: () => inner.models(),
    stats: () => inner.stats(),
  };
}

/** A port whose jobs stay open until the test cancels them. */
export const held = (): StallingPort =>
  new StallingPort(served, [{ index: 0, tokenId: 97, text: "a" }], { permits: 0 });

/** "admitted" (the job cancelled at once), or "refused <code>". */
export const outcomeOf = (submitted: Promise<InferenceHandle>): Promise<string> =>
  submitted.then(
    (handle) => (handle.cancel(), "admitted"),
    (error) => `refused ${error.code}`,
  );

/**
 * `fn` on a fresh ledger (its clock at 1,000 until the test moves it) where the worker deposited
 * `stake` (nothing when 0); closed and removed after.
 */
export async function withStakedLedger(
  stake: number,
  fn: (ledger: Ledger, clock: { t: number }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
  try {
    if (stake > 0) await ledger.deposit(worker.publicKey, stake);
    await fn(ledger, clock);
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}
