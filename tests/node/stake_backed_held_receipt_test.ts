/**
 * The worker's admission by its stake (`node/_stake_backed_port.ts`) over review s79 vcrash:
 * a receipt the validator holds past a minute (its ledger read-only on a full disk) and records
 * later keeps its job's lock until then, so no second job runs on that stake and ends unpaid
 * (F1); one peer's jobs are held to their share of the free stake by the key the port is told
 * submitted them (`SubmitOptions.client`, the connection's key), whatever `requester` each job
 * names (F2).
 */
import assert from "node:assert/strict";
import type { InferenceHandle, InferencePort } from "../../inference/inference_port.ts";
import { Ledger } from "../../proof/ledger.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { MAX_JOB_TOKENS } from "../../protocols/job_token_bounds.ts";
import { type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { ownStakeIn, refusingUnbacked } from "../../node/_stake_backed_port.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { receiptFor } from "../network/_scripted_worker_fixture.ts";
import { jobFor } from "../network/_hostile_worker_fixture.ts";
import { served } from "../network/_scripted_workers.ts";

/** The prompt tokens the worker's tokenizer counts for every test job. */
const PROMPT_TOKENS = 200;
/** node/_config_schema.ts's `selfStake` default. */
const DEFAULT_SELF_STAKE = 1_000_000;
/** The old release after a job's end (5b13e6a's RECEIPT_RECORD_WAIT_MS) and a second more. */
const PAST_THE_OLD_WAIT_MS = 61_000;
/** `DEFAULT_MAX_JOBS_PER_PEER`: the most jobs one peer may have open at a worker. */
const PEER_JOB_PLACES = 32;

const requester = Identity.generate();
const worker = Identity.generate();

function earningJob(nonce: string, maxTokens = 8, who = toHex(requester.publicKey)): TextJob {
  const job = jobFor(nonce);
  return { ...job, params: { ...job.params, maxTokens }, requester: who };
}

function receiptOf(job: TextJob): Receipt {
  const tokens = job.params.maxTokens;
  const { sig: _s, worker: _w, ...unsigned } = receiptFor(job, worker, "x".repeat(tokens), tokens);
  return signReceipt({ ...unsigned, promptTokens: PROMPT_TOKENS }, worker) as Receipt;
}

async function record(ledger: Ledger, job: TextJob): Promise<string> {
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return await ledger.recordReceipt(receiptOf(job), { assignment }).then(
    () => "recorded",
    (error) => `refused ${error.code}`,
  );
}

/** `inner`, whose jobs end with the worker's signed receipt, as a prover's do. */
function signing(inner: InferencePort): InferencePort {
  return {
    submit: async (job, options) => {
      const handle = await inner.submit(job, options);
      return { ...handle, done: handle.done.then((s) => ({ ...s, receipt: receiptOf(job) })) };
    },
    models: () => inner.models(),
    stats: () => inner.stats(),
  };
}

/** A port whose jobs stay open until the test cancels them. */
const held = () => new StallingPort(served, [{ index: 0, tokenId: 97, text: "a" }], { permits: 0 });

async function withLedger(stake: number, fn: (ledger: Ledger) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const ledger = await Ledger.open(dir, Identity.generate(), { now: () => 1_000 });
  try {
    await ledger.deposit(worker.publicKey, stake);
    await fn(ledger);
  } finally {
    await ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a receipt the validator holds past a minute (read-only ledger) keeps its job's lock: the next job is refused before the work until the receipt is recorded, then admitted and paid", async () => {
  const first = earningJob("held-first");
  const second = earningJob("held-second");
  await withLedger(jobStakeLock(first, PROMPT_TOKENS), async (ledger) => {
    const clock = { t: 5_000 };
    const inner = held();
    const port = refusingUnbacked(signing(inner), {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
      now: () => clock.t,
    });
    const a = await port.submit(first);
    a.cancel();
    assert.ok((await a.done).receipt !== undefined);
    clock.t += PAST_THE_OLD_WAIT_MS;
    const refused = await port.submit(second).then(() => undefined, (error) => error);
    assert.equal(refused?.code, "insufficient_stake", "admitted on the held receipt's stake");
    assert.equal(inner.submits, 1, "the second job was computed");
    // The disk frees: the held receipt is recorded, and its lock is the ledger's.
    assert.equal(await record(ledger, first), "recorded");
    const b = await port.submit(second).then(() => undefined, (error) => error);
    assert.equal(b?.code, "insufficient_stake", "the recorded lock leaves nothing free");
    // A deposit frees room: the second job runs and its receipt is recorded, not refused.
    await ledger.deposit(worker.publicKey, jobStakeLock(second, PROMPT_TOKENS));
    const handle = await port.submit(second);
    handle.cancel();
    await handle.done;
    assert.equal(await record(ledger, second), "recorded");
  });
});

/** Submit one peer's `PEER_JOB_PLACES` largest jobs, each naming `requesterOf(n)`. */
async function fill(
  port: InferencePort,
  client: string,
  requesterOf: (n: number) => string,
  open: InferenceHandle[],
): Promise<number> {
  let admitted = 0;
  for (let n = 0; n < PEER_JOB_PLACES; n++) {
    const job = earningJob(`peer-${n}`, MAX_JOB_TOKENS, requesterOf(n));
    await port.submit(job, { client }).then((h) => (open.push(h), admitted++), () => {});
  }
  return admitted;
}

for (const naming of ["one requester", "a fresh requester per job"] as const) {
  Deno.test(`one peer's jobs naming ${naming} are held to half the free stake: another peer's job is admitted`, async () => {
    await withLedger(DEFAULT_SELF_STAKE, async (ledger) => {
      const port = refusingUnbacked(held(), {
        self: toHex(worker.publicKey),
        ledger: () => ownStakeIn(ledger, worker.publicKey),
        count: () => PROMPT_TOKENS,
      });
      const hostilePeer = toHex(Identity.generate().publicKey);
      const fixed = toHex(Identity.generate().publicKey);
      const open: InferenceHandle[] = [];
      try {
        const requesterOf = naming === "one requester"
          ? () => fixed
          : () => toHex(Identity.generate().publicKey);
        const hostile = await fill(port, hostilePeer, requesterOf, open);
        assert.ok(hostile > 1 && hostile < PEER_JOB_PLACES, `admitted ${hostile}`);
        const honestPeer = toHex(Identity.generate().publicKey);
        const honest = await port.submit(earningJob("honest", MAX_JOB_TOKENS, honestPeer), {
          client: honestPeer,
        }).then((h) => (open.push(h), "admitted"), (e) => `refused ${e.code}`);
        assert.equal(honest, "admitted");
      } finally {
        for (const handle of open) handle.cancel();
        await Promise.all(open.map((handle) => handle.done));
      }
    });
  });
}
