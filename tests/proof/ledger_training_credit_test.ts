/**
 * Training credit follows the work of a step (`proof/economics.ts`, `trainingReward`; review s71
 * F2): a step of the reference configuration (`tiny` at the default batch) pays
 * `trainingCreditPerStep`, a step of a 1-wide model on batches of one 2-byte sample a tiny
 * fraction of it, and half the batch half the credit; asserted on the balances the ledger pays
 * once the windows close.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS, TRAINING_REFERENCE_STEP_WORK } from "../../proof/economics.ts";
import { GPT_MODEL_SIZES } from "../../inference/model_builder.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { REFERENCE_STEP, START, type StepWork, trainingReceipt } from "./_training_receipt.ts";

const WINDOW = 100;
const STAKE = 100_000_000;
/** The review's trivial round: H = 400 steps of a 1-wide model, batches of one 2-byte sample. */
const TRIVIAL_STEPS = 400;
const TRIVIAL: StepWork = {
  deltaBytes: gptDeltaBytes({ numLayers: 1, hiddenSize: 1, numHeads: 1, contextLength: 2 }),
  batchSize: 1,
  sampleBytes: 2,
};

/** What each of `claims` (steps, work) is paid by a ledger at the default economics. */
async function paid(claims: [number, StepWork][]): Promise<number[]> {
  let balances: number[] = [];
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    const trainers = claims.map(() => Identity.generate());
    for (const [i, [steps, work]] of claims.entries()) {
      await ledger.deposit(trainers[i].publicKey, STAKE);
      const receipt = trainingReceipt(trainers[i], 1, steps, "d1", work);
      await ledger.recordTrainingReceipt(receipt, { round: 1, startModel: START, steps });
    }
    clock.t += WINDOW;
    await ledger.finalizeDue();
    balances = trainers.map((t) => ledger.account(t.publicKey).balance);
    await ledger.close();
  });
  return balances;
}

Deno.test("training credit: the reference step is the default training model at the default batch", () => {
  const { batchSize, sampleBytes } = DEFAULT_LOCAL_HYPER_PARAMS;
  assert.equal(REFERENCE_STEP.deltaBytes, gptDeltaBytes(GPT_MODEL_SIZES.tiny));
  assert.equal(
    TRAINING_REFERENCE_STEP_WORK,
    gptDeltaBytes(GPT_MODEL_SIZES.tiny) * batchSize * (sampleBytes - 1),
  );
});

Deno.test("training credit follows the work: a step of the default configuration pays trainingCreditPerStep, the review's 1-wide round of batch 1 × 2 B a tiny fraction, half the batch half", async () => {
  const perStep = DEFAULT_ECONOMICS.trainingCreditPerStep;
  const halfBatch = { ...REFERENCE_STEP, batchSize: REFERENCE_STEP.batchSize / 2 };
  const [reference, trivial, half] = await paid([
    [3, REFERENCE_STEP],
    [TRIVIAL_STEPS, TRIVIAL],
    [3, halfBatch],
  ]);
  assert.equal(reference, 3 * perStep, "100 a step of the default configuration, as before");
  // Before: 400 × 100 = 40,000, as much a step as the reference for ~3·10⁴× less work.
  assert.ok(trivial > 0, "the trivial round is still paid for its work");
  assert.ok(
    trivial < TRIVIAL_STEPS * perStep / 10_000,
    `the trivial round is paid ${trivial}; at the reference step it would be ${
      TRIVIAL_STEPS * perStep
    }`,
  );
  assert.equal(half, reference / 2, "half the batch, half the credit");
});
