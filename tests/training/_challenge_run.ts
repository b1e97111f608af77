/**
 * A validator's whole check of one training run, as the review tests of cheating trainers run it:
 * draw a challenge over its steps, have the trainer open them, check the openings; a fraud proof,
 * if one comes out, is checked again by an independent node after a trip through CBOR (as it
 * crosses the wire).
 */
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { GptWeights } from "../../training/gpt_weights.ts";
import { openChallengedSteps, type TrainingTrace } from "../../training/step_opening.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { checkTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** Challenge `run` (started from `start`) over `steps` steps, as `validator`. */
export async function challengeRun(
  run: { report: { receipt: TrainingReceipt; delta: Uint8Array }; trace: TrainingTrace },
  start: GptWeights,
  options: { steps: number; validator?: Identity },
) {
  const validator = options.validator ?? Identity.generate();
  const { receipt, delta } = run.report;
  const challenge = drawTrainingChallenge(receipt, validator, { steps: options.steps });
  const sealed = await openChallengedSteps(run.trace, challenge);
  const check = await checkStepOpenings(receipt, challenge, sealed, {
    validator,
    arch: TEST_ARCH,
    startWeights: start,
    delta,
    shardSize: receipt.shardSize,
  });
  const independent = check.ok || !check.proof
    ? undefined
    : await checkTrainingFraudProof(decodeCbor(encodeCbor(check.proof)), {
      arch: TEST_ARCH,
      startWeights: start,
    });
  return { challenge, check, independent };
}
