/**
 * The re-run of a fraud proof a TrainingValidator checks (`_fraud_proof_checks.ts`): its start
 * model fetched, the architecture sent beside it (unsigned) checked to be the one that gives the
 * start model's CID, then the proof checked (`checkTrainingFraudProof`: the disputed step re-run,
 * or the missing opening's window). Throws when the proof cannot be checked here (no start model,
 * `arch_mismatch`), or when the step's re-run could not be made (its worker failed twice:
 * `step_rerun_failed`; stopped: `step_rerun_stopped`): it settles nothing.
 *
 * Owns only the answers kept to "is this the architecture of that start model" (a model built and
 * hashed, tens of milliseconds each). Runs outside the validator's mailbox. Not part of the public
 * API.
 *
 * @module
 */
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { RoundModels } from "./round_models.ts";
import { TrainingError } from "./training_error.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { DEFAULT_OPENING_DEADLINE_MS } from "./training_challenge.ts";
import { checkTrainingFraudProof } from "./training_fraud_proof.ts";
import type { TrainingValidatorOptions } from "./training_validator.ts";
import type { StepRerun } from "./step_rerun.ts";

/**
 * Answers kept to "is this the architecture of that start model" (a model built and hashed, tens
 * of milliseconds): a proof re-sent under a wrong architecture, which is not marked seen so that
 * the genuine copy is still checked, costs a lookup.
 */
const KEPT_ARCH_CHECKS = 256;

/** See the module doc. */
export class FraudProofRerun {
  /** The validator's options, read at each use (`models`, `openingDeadlineMs`). */
  readonly #options: Pick<TrainingValidatorOptions, "models" | "openingDeadlineMs">;
  /** Whether an architecture is a start model's, by `cid|arch` ({@link KEPT_ARCH_CHECKS}). */
  readonly #archChecks = new Map<string, boolean>();
  /** Where the disputed step is re-run (the validator's worker). */
  readonly #rerun: StepRerun | undefined;

  /**
   * @param options The validator's options.
   * @param rerun Where the disputed step is re-run (`step_rerun.ts`); default this thread.
   */
  constructor(
    options: Pick<TrainingValidatorOptions, "models" | "openingDeadlineMs">,
    rerun?: StepRerun,
  ) {
    this.#options = options;
    this.#rerun = rerun;
  }

  /** Check a fraud proof; `rerunning` is called once its start model and architecture hold. */
  async check(
    body: TrainingFraudProofBody,
    rerunning?: () => void,
  ): Promise<{ confirmed: boolean; reason: string }> {
    const receipt = body.proof.receipt;
    const start = await this.#options.models.get(receipt.startModel, body.arch, body.startFile);
    // `arch` travels beside the signed proof, unsigned: under another architecture an honest
    // opening does not decode (a false `opening_mismatch` confirmed) and a true step claim
    // does not either (its accuser charged). The receipt signs its start model's CID, which
    // the architecture and the start weights must give.
    if (!this.#archOf(receipt.startModel, body.arch, start.weights)) {
      throw new TrainingError(
        "arch_mismatch",
        `the architecture sent with the proof is not that of start model ${receipt.startModel}`,
      );
    }
    rerunning?.();
    return await checkTrainingFraudProof(body.proof, {
      arch: body.arch,
      startWeights: start.weights,
      // A trainer is owed at least the window this node gives when it challenges.
      minOpeningWindowMs: this.#options.openingDeadlineMs ?? DEFAULT_OPENING_DEADLINE_MS,
      ...(this.#rerun === undefined ? {} : { rerun: this.#rerun }),
    });
  }

  /** Whether `arch` with `weights` is start model `cid` (their `gptModelId` is it). */
  #archOf(cid: string, arch: GptArchitecture, weights: GptWeights): boolean {
    const key = `${cid}|${JSON.stringify(arch)}`;
    let same = this.#archChecks.get(key);
    if (same === undefined) {
      try {
        same = RoundModels.cidOf(arch, weights) === cid;
      } catch {
        same = false; // weights of another shape
      }
      this.#archChecks.set(key, same);
      if (this.#archChecks.size > KEPT_ARCH_CHECKS) {
        this.#archChecks.delete(this.#archChecks.keys().next().value!);
      }
    }
    return same;
  }
}
