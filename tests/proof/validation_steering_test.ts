/**
 * Validation counts a receipt's end choices into its verdict, and a receipt that passes over an
 * end is `invalid`, reason `steering`, once the worker's record with this validator and the
 * receipt's own choices convict it (`proof/steering.ts`).
 */
import assert from "node:assert/strict";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  proveSteering,
  STEERED,
  steeringJob,
  steeringModel,
  WIDE_SAMPLING,
} from "./_steering_fixtures.ts";

const worker = Identity.generate();
const validator = Identity.generate();

async function validate(steer: boolean, record?: { passed: number; taken: number }) {
  const job = steeringJob(crypto.randomUUID());
  const proved = await proveSteering(job, worker, steer);
  return await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof, output: proved.output },
    steeringModel,
    validator,
    { sampling: WIDE_SAMPLING, steering: record },
  );
}

Deno.test("a steered receipt alone is valid, and its verdict counts the ends it passed over", async () => {
  const { verdict, stats } = await validate(true);
  assert.equal(verdict.outcome, "valid", verdict.reason);
  assert.equal(stats.endPassed, STEERED.passed);
  assert.equal(verdict.details?.endPassed, STEERED.passed);
  assert.equal(verdict.details?.endTaken, 0);
});

Deno.test("the steered receipt that brings the worker's record to a conviction is invalid: steering", async () => {
  const below = { passed: 26 - STEERED.passed - 1, taken: 0 };
  assert.equal((await validate(true, below)).verdict.outcome, "valid");
  const { verdict } = await validate(true, { passed: 26 - STEERED.passed, taken: 0 });
  assert.equal(verdict.outcome, "invalid");
  assert.equal(verdict.reason, "steering");
  assert.equal(verdict.details?.endPassed, STEERED.passed);
  // A worker that took ends as often is not convicted by the same receipt.
  const balanced = { passed: 26 - STEERED.passed, taken: 26 };
  assert.equal((await validate(true, balanced)).verdict.outcome, "valid");
});

Deno.test("a convicted worker's honest receipt (no end passed over) is still valid", async () => {
  const { verdict } = await validate(false, { passed: 100, taken: 0 });
  assert.equal(verdict.outcome, "valid", verdict.reason);
  assert.equal(verdict.details?.endPassed, 0);
});
