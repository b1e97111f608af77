/**
 * Review (stop 44), the cheating worker: a token at a tied top-k cut. With top-k and two ids
 * tied for the last slot, an honest run keeps exactly one of them; a token that both of them
 * beat in the race is then never the rule's pick, whichever one an honest worker keeps.
 */
import assert from "node:assert/strict";
import { sampleToken } from "../../inference/sampler.ts";
import { checkSampledToken, type SamplingTolerance } from "../../proof/sampling_check.ts";
import { BUILTIN_VOCAB_SIZE } from "../../inference/byte_tokenizer.ts";

const V = BUILTIN_VOCAB_SIZE;

/** The calibrated ε of the built-in models (docs/PROOF.md, "Calibration"). */
const CALIBRATED: SamplingTolerance = {
  logitEps: 0.0061,
  logitSigma: 0.00086,
  sigmas: 8,
  cdfMargin: 1e-6,
};

Deno.test("review s44: at a top-k cut that two ids tie for, a token that loses to both is refused", () => {
  // top-k 2: id 10 is surely kept; ids 11 and 12 tie for the second place (0.0005 apart, inside
  // 2ε), so an honest worker keeps exactly one of them, and under seed 8 both beat id 10's race
  // score by more than 1. No honest noise makes the rule pick id 10 here.
  const row = new Float32Array(V).fill(-20);
  row[10] = 1;
  row[11] = 0.5;
  row[12] = 0.4995;
  const params = { temperature: 1, topK: 2, topP: 1, seed: 8 };
  for (const shift of [0, 0.0005]) {
    const worker = row.slice();
    worker[12] += shift; // either of the tied ids may be the one a worker keeps
    assert.notEqual(sampleToken(worker, params, 0).token, 10);
  }
  assert.equal(
    checkSampledToken(row, 10, 0, params, CALIBRATED).ok,
    false,
    "id 10 is admitted: a worker may emit it wherever a top-k cut is tied",
  );
});
