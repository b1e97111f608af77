/**
 * A ValidatorActor recording one text receipt whose signed prompt-token count the test chooses,
 * for the tests of its re-count (`prompt_tokens_intake_test.ts`, where its coin never draws, and
 * `prompt_tokens_validator_test.ts`, where it draws every receipt): the job is proved on the honest
 * model, the worker staked, the receipt announced as assigned, and the ledger read back once the
 * challenge window has closed.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerReads,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** How long a challenge may take to settle: a teacher-forced pass on a shared CPU, with room. */
const SETTLE_TIMEOUT_MS = 20_000;

/** One recorded receipt: what the validator and its ledger made of it. */
export interface PromptCountOutcome {
  /** The prompt's true token count. */
  truth: number;
  receipt: Receipt;
  /** Whether the validator challenged the receipt. */
  challenged: boolean;
  record: Awaited<ReturnType<LedgerReads["record"]>>;
  account: Awaited<ReturnType<LedgerReads["account"]>>;
  verdicts: Awaited<ReturnType<LedgerReads["stats"]>>["verdicts"];
}

/** How the receipt is made and judged. */
export interface PromptCountOptions {
  /** The actor system's name. */
  name: string;
  /** The job's nonce. */
  nonce: string;
  /** The prompt-token count the worker signs, given the true one. */
  count: (truth: number) => number;
  /** The validator's challenge probability. */
  challengeProbability: number;
  /** The worker's stake. */
  stake: number;
  /** Whether the validator is done with the receipt `id` (truthy), polled before the window closes. */
  settled: (reads: LedgerReads, id: string) => Promise<true | undefined>;
  /** What `settled` waits for, for the timeout's message. */
  settledWhat: string;
}

/** A validator records a receipt signing `count(truth)` prompt tokens; its ledger after the window. */
export async function recordPromptCount(o: PromptCountOptions): Promise<PromptCountOutcome> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: o.name });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, o.nonce);
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, f.honest.generate(ids, job.params), worker, {
    promptTokens: o.count(ids.length),
  });
  const id = receiptId(proved.receipt);
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: o.challengeProbability,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: o.stake });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    await handled.result?.catch(() => {}); // a challenge run at intake has settled
    const reads = ledgerReads(() => validator, clock);
    await eventually(() => o.settled(reads, id), o.settledWhat, { timeoutMs: SETTLE_TIMEOUT_MS });
    await reads.closeWindow();
    return {
      truth: ids.length,
      receipt: proved.receipt,
      challenged: handled.challenged,
      record: await reads.record(id),
      account: await reads.account(worker.publicKey),
      verdicts: (await reads.stats()).verdicts,
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
