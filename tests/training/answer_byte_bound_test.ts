/**
 * A trainer's answer to a challenge is bounded in bytes by what an honest answer to that challenge
 * can be (`answerByteBound`, `training/step_verify.ts`), checked before the answer is unsealed,
 * decoded or handed to the re-run worker (`training/step_check.ts`): the bound of built values
 * counts no plain numbers, and 24 MB of half-floats filled the worker's heap past 64 MB
 * (`answer_opening_worker_test.ts`). The trainer's signed answer past the bound is one that
 * cannot be opened: `opening_unopenable` before the deadline, `opening_missing` after, which any
 * checker confirms. An honest answer passes.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import {
  openChallengedSteps,
  sealOpeningBytes,
  unsealStepOpenings,
} from "../../training/step_opening.ts";
import { IN_PROCESS_STEP_RERUN, type StepRerun } from "../../training/step_rerun.ts";
import {
  ANSWER_TOO_LARGE,
  answerByteBound,
  verifyOpeningsPlaintext,
} from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { checkTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { trainedRun } from "./_trained_run.ts";

/**
 * Steps of the honest run: the challenge below opens every one of them, the largest answer a
 * receipt of this many steps can be asked for.
 */
const HONEST_STEPS = 3;
/**
 * How close an honest answer comes to the bound: the states fill almost all of it (the bound
 * takes every CBOR head at its longest and adds its margin), so the bound is not a loose one.
 */
const HONEST_SHARE_OF_BOUND = 0.95;

/** CBOR of an array of half-floats (`f9 3e 00`, 1.5) filling `bytes` bytes (a 5-byte head). */
function halfFloats(bytes: number): Uint8Array {
  const n = Math.floor((bytes - 5) / 3);
  const out = new Uint8Array(bytes);
  out[0] = 0x9a;
  new DataView(out.buffer).setUint32(1, n);
  for (let at = 5; at + 3 <= 5 + 3 * n; at += 3) out.set([0xf9, 0x3e, 0x00], at);
  return out;
}

/** A receipt, its challenge by a fresh validator, and junk of `size` bytes sealed by `signer`. */
function junkAnswer(size: (bound: number) => number, signer?: Identity) {
  const trainer = Identity.generate();
  const validator = Identity.generate();
  const receipt = placeholderReceipt(0, "start", trainer);
  const challenge = drawTrainingChallenge(receipt, validator);
  const bound = answerByteBound(receipt, challenge, TEST_ARCH);
  const plaintext = halfFloats(size(bound));
  const sealed = sealOpeningBytes(plaintext, challenge, signer ?? trainer);
  return { receipt, challenge, validator, bound, plaintext, sealed };
}

/** A re-run that counts the answers handed to it, and opens them as this thread would. */
function countingRerun(): { rerun: StepRerun; opened: () => number } {
  let opened = 0;
  const rerun: StepRerun = {
    check: IN_PROCESS_STEP_RERUN.check,
    open: (sealed, challenge, receipt, validator, arch) => {
      opened++;
      const unsealed = unsealStepOpenings(sealed, challenge, receipt, validator);
      if (!unsealed.ok) return Promise.resolve({ unsealed });
      const structure = verifyOpeningsPlaintext(receipt, challenge, unsealed.plaintext, arch);
      return Promise.resolve({ unsealed, structure });
    },
  };
  return { rerun, opened: () => opened };
}

Deno.test("a trainer's answer larger than an honest answer can be is never handed to the worker: unopenable before the deadline, opening_missing after, confirmed by any checker", async () => {
  const { receipt, challenge, validator, sealed } = junkAnswer((bound) => bound + 1);
  const { rerun, opened } = countingRerun();
  const options = {
    validator,
    arch: TEST_ARCH,
    startWeights: new Map(),
    shardSize: receipt.shardSize,
    rerun,
  };
  const early = await checkStepOpenings(receipt, challenge, sealed, {
    ...options,
    now: () => challenge.deadline - 1,
  });
  assert.equal(!early.ok && early.reason, "opening_unopenable");
  assert.equal(!early.ok && early.detail, ANSWER_TOO_LARGE);
  assert.equal(!early.ok && early.proof, undefined, "no proof before the deadline");
  const late = await checkStepOpenings(receipt, challenge, sealed, {
    ...options,
    now: () => challenge.deadline,
  });
  assert.equal(!late.ok && late.reason, "opening_missing");
  assert.ok(!late.ok && late.proof !== undefined);
  assert.equal(opened(), 0, "not unsealed, decoded nor handed to the worker");
  const checked = await checkTrainingFraudProof(!late.ok && late.proof, {
    arch: TEST_ARCH,
    startWeights: new Map(),
  });
  assert.equal(checked.reason, "confirmed");
});

Deno.test("an oversized answer the trainer did not sign is nobody's answer: ignored, not opened", async () => {
  const { receipt, challenge, validator, sealed } = junkAnswer(
    (bound) => bound + 1,
    Identity.generate(),
  );
  const { rerun, opened } = countingRerun();
  const result = await checkStepOpenings(receipt, challenge, sealed, {
    validator,
    arch: TEST_ARCH,
    startWeights: new Map(),
    shardSize: receipt.shardSize,
    rerun,
    now: () => challenge.deadline,
  });
  assert.equal(!result.ok && result.reason, "opening_unsigned");
  assert.equal(opened(), 0);
});

Deno.test("an answer of exactly the bound is opened and judged by what it holds; a plaintext past it is refused by any checker before decoding", async () => {
  const { receipt, challenge, validator, bound, sealed } = junkAnswer((bound) => bound);
  const { rerun, opened } = countingRerun();
  const result = await checkStepOpenings(receipt, challenge, sealed, {
    validator,
    arch: TEST_ARCH,
    startWeights: new Map(),
    shardSize: receipt.shardSize,
    rerun,
  });
  assert.equal(opened(), 1, "at the bound it is opened");
  assert.equal(!result.ok && result.reason, "opening_mismatch");
  assert.equal(!result.ok && result.detail, "not step openings", "decoded: numbers, not openings");
  // A proof's plaintext past the bound (a validator that did not weigh it) is judged unopened.
  const past = verifyOpeningsPlaintext(receipt, challenge, halfFloats(bound + 1), TEST_ARCH);
  assert.deepEqual(past, { ok: false, why: ANSWER_TOO_LARGE });
});

Deno.test("an honest answer to a challenge of every step, the largest a receipt can be asked, is within the bound and passes", async () => {
  const trainer = Identity.generate();
  const validator = Identity.generate();
  const { start, report, trace } = await trainedRun(HONEST_STEPS, trainer);
  const challenge = drawTrainingChallenge(report.receipt, validator, { steps: HONEST_STEPS });
  assert.equal(challenge.steps.length, HONEST_STEPS);
  const honest = await openChallengedSteps(trace, challenge);
  const unsealed = unsealStepOpenings(honest, challenge, report.receipt, validator);
  assert.ok(unsealed.ok);
  const bound = answerByteBound(report.receipt, challenge, TEST_ARCH);
  assert.ok(unsealed.plaintext.length <= bound, "within the bound");
  assert.ok(
    unsealed.plaintext.length >= HONEST_SHARE_OF_BOUND * bound,
    `the bound is close to it (${unsealed.plaintext.length} of ${bound} bytes)`,
  );
  const result = await checkStepOpenings(report.receipt, challenge, honest, {
    validator,
    arch: TEST_ARCH,
    startWeights: start,
    delta: report.delta,
    shardSize: report.receipt.shardSize,
  });
  assert.deepEqual(result, { ok: true });
});
