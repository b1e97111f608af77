/**
 * A ValidatorActor re-counts the prompt tokens of every text receipt it records, before its coin
 * (review s78 vprompt F1): at p = 0, where the coin draws nothing, an inflated count is challenged
 * all the same, convicted and slashed in its ledger; an honest count is not challenged, and is
 * paid, prompt included, once the window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 1_000_000;
/** The review's claim: far past any prompt of the job, well inside the worker's stake. */
const CLAIM = 100_000;

/** A validator that never draws (p = 0) records `job`'s receipt signing `count` prompt tokens. */
async function recordedUnsampled(count: (truth: number) => number, nonce: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "prompt-tokens-intake" });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, nonce);
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, f.honest.generate(ids, job.params), worker, {
    promptTokens: count(ids.length),
  });
  const id = receiptId(proved.receipt);
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    await handled.result?.catch(() => {});
    const reads = ledgerReads(() => validator, clock);
    await eventually(
      async () => (await reads.record(id))?.status !== "challenged" || undefined,
      "the receipt recorded and any challenge settled",
      { timeoutMs: 20_000 },
    );
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

Deno.test("a validator whose coin draws nothing still re-counts a receipt's prompt tokens at intake: 100,000 signed for a short prompt is challenged, convicted and slashed the lock of what it claimed, never paid", async () => {
  const cheat = await recordedUnsampled(() => CLAIM, "unsampled-inflated");
  assert.ok(cheat.truth < CLAIM);
  assert.equal(cheat.challenged, true, "the inflated count was not challenged");
  assert.equal(cheat.verdicts.fraud, 1);
  assert.equal(cheat.record?.status, "fraud");
  const lock = paidFor(cheat.receipt) * DEFAULT_ECONOMICS.slashMultiplier;
  assert.deepEqual(cheat.account, { balance: 0, stake: WORKER_STAKE - lock, locked: 0 });
});

Deno.test("a validator whose coin draws nothing does not challenge an honest prompt-token count: it is paid, prompt included, once the window closes", async () => {
  const honest = await recordedUnsampled((truth) => truth, "unsampled-honest");
  assert.equal(honest.challenged, false);
  assert.equal(honest.verdicts.fraud + honest.verdicts.valid, 0);
  assert.equal(honest.record?.status, "final");
  assert.deepEqual(honest.account, {
    balance: paidFor(honest.receipt),
    stake: WORKER_STAKE,
    locked: 0,
  });
  assert.ok(paidFor(honest.receipt) > honest.receipt.tokenCount, "the prompt was not paid");
});
