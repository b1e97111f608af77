/**
 * A ValidatorActor that challenges a receipt re-counts its signed prompt tokens (batching review F2
 * of stop 77): a worker that inflates the count, which is paid, is convicted on its own fraud proof
 * and slashed in the validator's ledger, as for any refuted receipt; an honest count is paid, prompt
 * included, once the window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { recordPromptCount } from "./_prompt_count_validator.ts";

const WORKER_STAKE = 100_000;
/** What the cheat adds to its prompt's true count. */
const INFLATION = 495;

/** A validator that challenges every receipt judges `job` proved by `worker` signing `count`. */
function judged(count: (truth: number) => number, nonce: string) {
  return recordPromptCount({
    name: "prompt-tokens-validator",
    nonce,
    count,
    challengeProbability: 1,
    stake: WORKER_STAKE,
    // Its verdict given and settled here: a valid one leaves the receipt pending till the window.
    settled: async (reads, id) => {
      const { verdicts } = await reads.stats();
      const given = verdicts.valid + verdicts.fraud + verdicts.invalid + verdicts.inconclusive;
      return given === 1 && (await reads.record(id))?.status !== "challenged" || undefined;
    },
    settledWhat: "the challenge to settle",
  });
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
