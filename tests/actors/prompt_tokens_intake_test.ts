/**
 * A ValidatorActor re-counts the prompt tokens of every text receipt it records, before its coin
 * (review s78 vprompt F1): at p = 0, where the coin draws nothing, an inflated count is challenged
 * all the same, convicted and slashed in its ledger; an honest count is not challenged, and is
 * paid, prompt included, once the window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { recordPromptCount } from "./_prompt_count_validator.ts";

const WORKER_STAKE = 1_000_000;
/** The review's claim: far past any prompt of the job, well inside the worker's stake. */
const CLAIM = 100_000;

/** A validator that never draws (p = 0) records `job`'s receipt signing `count` prompt tokens. */
function recordedUnsampled(count: (truth: number) => number, nonce: string) {
  return recordPromptCount({
    name: "prompt-tokens-intake",
    nonce,
    count,
    challengeProbability: 0,
    stake: WORKER_STAKE,
    settled: async (reads, id) => (await reads.record(id))?.status !== "challenged" || undefined,
    settledWhat: "the receipt recorded and any challenge settled",
  });
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
