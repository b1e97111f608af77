/**
 * A ValidatorActor that challenges a receipt re-counts its signed prompt tokens (batching review F2
 * of stop 77): a worker that inflates the count, which is paid, is convicted on its own fraud proof
 * and slashed in the validator's ledger, as for any refuted receipt; an honest count is paid, prompt
 * included, once the window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
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

const WORKER_STAKE = 100_000;
/** What the cheat adds to its prompt's true count. */
const INFLATION = 495;

/** `job` run on the honest model by `worker`, its receipt signing `promptTokens`. */
function proveCounting(job: TextJob, worker: Identity, promptTokens: number) {
  const ids = f.honest.tokenizer.encode(job.prompt);
  return proveJob(job, f.honest.generate(ids, job.params), worker, { promptTokens });
}

/** A validator that challenges every receipt judges `job` proved by `worker` signing `count`. */
async function judged(count: (truth: number) => number, nonce: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "prompt-tokens-validator" });
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, nonce);
  const truth = f.honest.tokenizer.encode(job.prompt).length;
  const proved = await proveCounting(job, worker, count(truth));
  const id = receiptId(proved.receipt);
  try {
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    handled.result?.catch(() => {});
    const reads = ledgerReads(() => validator, clock);
    // Its verdict given and settled here: a valid one leaves the receipt pending till the window.
    await eventually(
      async () => {
        const { verdicts } = await reads.stats();
        const given = verdicts.valid + verdicts.fraud + verdicts.invalid + verdicts.inconclusive;
        return given === 1 && (await reads.record(id))?.status !== "challenged" || undefined;
      },
      "the challenge to settle",
      { timeoutMs: 20_000 },
    );
    await reads.closeWindow();
    return {
      truth,
      receipt: proved.receipt,
      record: await reads.record(id),
      account: await reads.account(worker.publicKey),
      verdicts: (await reads.stats()).verdicts,
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("F2: a validator that challenges a receipt with an inflated prompt-token count convicts it and its ledger slashes the worker the lock of what it claimed; an honest count is paid, prompt included", async () => {
  const cheat = await judged((truth) => truth + INFLATION, "inflated-count");
  assert.equal(cheat.receipt.promptTokens, cheat.truth + INFLATION);
  assert.equal(cheat.verdicts.fraud, 1);
  assert.equal(cheat.record?.status, "fraud");
  const lock = paidFor(cheat.receipt) * DEFAULT_ECONOMICS.slashMultiplier;
  assert.deepEqual(cheat.account, { balance: 0, stake: WORKER_STAKE - lock, locked: 0 });

  const honest = await judged((truth) => truth, "honest-count");
  assert.equal(honest.receipt.promptTokens, honest.truth);
  assert.equal(honest.verdicts.valid, 1);
  assert.equal(honest.record?.status, "final");
  assert.deepEqual(honest.account, {
    balance: paidFor(honest.receipt),
    stake: WORKER_STAKE,
    locked: 0,
  });
  assert.ok(paidFor(honest.receipt) > honest.receipt.tokenCount, "the prompt was not paid");
});
