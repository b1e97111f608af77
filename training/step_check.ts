/**
 * The validator's check of a trainer's answer to its challenge: unseal, check the structure
 * against the receipt's commitments, then each opened step's claims (`step_verify.ts`). A
 * failure the trainer is accountable for comes back with a signed training fraud proof.
 *
 * Outcomes (`reason`):
 * - `ok`: every opened step re-runs within tolerance.
 * - `opening_missing` (proof): no answer (`sealed` undefined) once the challenge's deadline has
 *   passed, or a trainer-signed answer that cannot be opened, once it has too. An answer larger
 *   than an honest one to the challenge can be (`answerByteBound`) is one that cannot be opened:
 *   it is not unsealed. Before the deadline, `sealed` undefined gives `opening_pending` and a
 *   signed answer that cannot be opened `opening_unopenable` (no proof: one issued then would be
 *   refuted by every checker, `before_deadline`; wait for the deadline and check again).
 * - `opening_mismatch` (proof): the trainer's signed plaintext does not open its commitments.
 * - `start_mismatch`, `delta_mismatch`, `step_mismatch`, `loss_mismatch` (proof): see
 *   `step_verify.ts`.
 * - Refusals without a proof (nothing the trainer signed is wrong, or the caller erred):
 *   `bad_receipt` (signature, delta or start model), `challenge_mismatch` (the challenge is not this validator's for this
 *   receipt), `shard_mismatch` (the receipt's shard is not the one registered), and
 *   `opening_unsigned` (an answer not signed by the trainer for this challenge: ignore it and
 *   keep waiting until the deadline).
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { toHex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";
import type { GptWeights } from "./gpt_weights.ts";
import type { SealedStepOpenings, StepOpening } from "./step_opening.ts";
import { trainersAnswer, unsealStepOpenings } from "./step_opening.ts";
import {
  ANSWER_TOO_LARGE,
  answerByteBound,
  type StepMeasure,
  verifyOpeningsPlaintext,
} from "./step_verify.ts";
import { IN_PROCESS_STEP_RERUN, type OpenedAnswer, type StepRerun } from "./step_rerun.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import { challengeFitsReceipt, type TrainingChallenge } from "./training_challenge.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
  type TrainingFraudProof,
  type UnsignedTrainingFraudProof,
} from "./training_fraud_proof.ts";
import { type TrainingReceipt, verifyTrainingReceipt } from "./training_receipt.ts";

/**
 * What sealing adds to an answer's plaintext: the 16-byte tag of its XChaCha20-Poly1305
 * ciphertext (`proof/private_input.ts`).
 */
const SEAL_TAG_BYTES = 16;

/** What the validator checks an answer with. */
export interface CheckStepOpeningsOptions {
  /** The validator (it challenged; the answer is sealed to it; it signs proofs). */
  validator: Identity;
  /** Architecture. */
  arch: GptArchitecture;
  /** The round's start weights. */
  startWeights: GptWeights;
  /**
   * The encoded delta that came with the receipt; absent, state H is not checked against it
   * (a takeover of a peer's claim has no delta, and still re-runs the opened steps).
   */
  delta?: Uint8Array;
  /** The round's start model CID, when known (must match the receipt). */
  startModel?: string;
  /** The trainer's shard size as registered when it joined (must match the receipt). */
  shardSize: number;
  /** The trainer's shard root as registered, when known (must match the receipt). */
  shardRoot?: string;
  /** Backend of the re-runs; default wasm. */
  backend?: TrainingBackend;
  /**
   * Where each opened step is re-run (`step_rerun.ts`); default this thread. A node's validator
   * gives its worker: a step's re-run held the node's event loop for seconds.
   */
  rerun?: StepRerun;
  /** Clock (unix ms) for the proof's `issuedAt`. */
  now?: () => number;
  /** Per-step measurements, for calibration and logs. */
  onStep?: (step: number, measure: StepMeasure) => void;
  /**
   * Called, when no `delta` was given, with the last step's opening (step H − 1, always among a
   * challenge's) and its end state's weights once every opened step re-ran within tolerance:
   * what the delta check needs when the delta comes later (a takeover keeps it until the round's
   * outcome brings the delta: `_training_challenge_run.ts`).
   */
  onLastStep?: (opening: StepOpening, endWeights: GptWeights) => void;
}

/** Result of {@link checkStepOpenings}. */
export type StepOpeningsCheck = { ok: true } | StepOpeningsFailure;

/** A failed {@link StepOpeningsCheck}: why, and the signed fraud proof where one holds. */
export type StepOpeningsFailure = {
  ok: false;
  reason: string;
  detail?: string;
  proof?: TrainingFraudProof;
};

/** What opening an answer needs (no model, no delta, no shard registration). */
interface OpenAnswerOptions {
  /** The validator (it challenged; the answer is sealed to it; it signs proofs). */
  validator: Identity;
  /** Architecture (the openings' states decode for it). */
  arch: GptArchitecture;
  /** Clock (unix ms) for the deadline and the proof's `issuedAt`. */
  now?: () => number;
  /**
   * Where the answer is unsealed and its structure checked (its `open`, else its `unseal` and the
   * check here), else this thread.
   */
  rerun?: StepRerun;
}

/**
 * Check the trainer's answer `sealed` to `challenge` of `receipt` (pass `undefined` once the
 * deadline has passed without one). See the module doc for the outcomes.
 */
export async function checkStepOpenings(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  sealed: SealedStepOpenings | undefined | null,
  options: CheckStepOpeningsOptions,
): Promise<StepOpeningsCheck> {
  const rc = verifyTrainingReceipt(receipt, {
    delta: options.delta,
    startModel: options.startModel,
  });
  if (!rc.ok) return { ok: false, reason: "bad_receipt", detail: rc.reason };
  if (!isOwnChallenge(receipt, challenge, options.validator)) {
    return { ok: false, reason: "challenge_mismatch" };
  }
  if (
    receipt.shardSize !== options.shardSize ||
    (options.shardRoot !== undefined && receipt.shardRoot !== options.shardRoot)
  ) return { ok: false, reason: "shard_mismatch" };
  const opened = await openAnswer(receipt, challenge, sealed, options);
  if (!opened.ok) return opened;
  const convict = convictor(receipt, challenge, options);
  let last: { opening: StepOpening; endWeights: GptWeights } | undefined;
  for (const [i, step] of opened.steps.entries()) {
    await nextTurn();
    const r = await (options.rerun ?? IN_PROCESS_STEP_RERUN).check(receipt, step, {
      arch: options.arch,
      startWeights: options.startWeights,
      delta: options.delta,
      backend: options.backend,
    });
    options.onStep?.(step.step, { distance: r.distance, lossError: r.lossError });
    if (!r.ok) {
      return convict(r.reason, r.detail, {
        opening: opened.openings.steps[i],
        ...(r.reason === "delta_mismatch" ? { delta: options.delta } : {}),
      });
    }
    if (step.step === receipt.steps - 1) {
      last = { opening: opened.openings.steps[i], endWeights: step.after.weights };
    }
  }
  if (options.delta === undefined && last !== undefined) {
    options.onLastStep?.(last.opening, last.endWeights);
  }
  return { ok: true };
}

/**
 * Resolves at the next turn of the event loop that polls I/O (a `setTimeout` of 0), taken before
 * each opened step's re-run. tfjs computes synchronously and the steps' promises settle in
 * microtasks, so the whole check held the node's loop at once: 6.2 to 11.8 s for a challenge of 9
 * of 20 `tiny` steps on a loaded 2-core machine (`tmp/s75/trainloop/rerun_block.ts`), past the 5 s
 * `network.idleTimeoutMs`: the validator's peers dropped it (review s75 newcomer F1), and in
 * README's example with every receipt challenged an honest trainer whose answer died with its
 * connection was slashed for `opening_missing` (`tmp/s75/trainloop/p1_before`). Now a block
 * is one step's re-run: 0.2 to 2.5 s there (step 0, which also hashes the start state, the
 * longest), 1.4 s at most in README's three-node example with every receipt challenged.
 *
 * Not `setImmediate`, nor a MessageChannel message: in Deno neither reaches the I/O phase, so a
 * re-run turning the loop that way completed no socket read at all (measured: 0 reads over 9.7 s
 * of 1.2 s blocks with a peer writing every 100 ms; 8 reads with `setTimeout`, one a turn). The
 * peers' keepalives stayed unread, and in README's example with every receipt challenged the
 * coordinator dropped both trainers at once, "nothing received for 5000 ms", while its longest
 * block was 1.4 s (stop 76). A `setTimeout` turn costs a few ms at most (clamped once nested).
 *
 * A node's validator re-runs in a worker since (`options.rerun`, `step_rerun.ts`): one step still
 * held the loop up to 4.3 s under load. The turn matters for a re-run on this thread (the default:
 * tests and tools).
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Whether `challenge` fits `receipt` and is `validator`'s. */
function isOwnChallenge(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  validator: Identity,
): boolean {
  return challengeFitsReceipt(challenge, receipt) &&
    toHex(challenge.validator) === toHex(validator.publicKey);
}

/** A failure with `validator`'s signed fraud proof against `receipt` on `challenge`. */
function convictor(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  options: OpenAnswerOptions,
) {
  const now = options.now ?? Date.now;
  return (
    reason: UnsignedTrainingFraudProof["reason"],
    detail: string,
    extra: Partial<UnsignedTrainingFraudProof> = {},
  ): StepOpeningsFailure => ({
    ok: false,
    reason,
    detail,
    proof: signTrainingFraudProof({
      v: TRAINING_FRAUD_PROOF_VERSION,
      reason,
      receipt,
      challenge,
      ...extra,
      issuedAt: Math.floor(now()),
    }, options.validator),
  });
}

/**
 * Unseal the answer and check its structure against the receipt's commitments (no model): in
 * `options.rerun`'s worker when it opens answers, since on this thread a `tiny` challenge's answer
 * held the loop 198 to 570 ms unsealing and 47 to 320 ms checking
 * (`tmp/s78/trainfix/unseal_block.ts`).
 */
async function openAnswer(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  sealed: SealedStepOpenings | undefined | null,
  options: OpenAnswerOptions,
): Promise<
  Extract<ReturnType<typeof verifyOpeningsPlaintext>, { ok: true }> | StepOpeningsFailure
> {
  const now = options.now ?? Date.now;
  const convict = convictor(receipt, challenge, options);
  if (sealed === undefined || sealed === null) {
    // Before the deadline a missing answer is not (yet) a fault: a proof issued now would be
    // refuted by every checker (`before_deadline`).
    if (Math.floor(now()) < challenge.deadline) return { ok: false, reason: "opening_pending" };
    return convict("opening_missing", "no answer by the deadline");
  }
  if (sealedBytes(sealed) > answerByteBound(receipt, challenge, options.arch) + SEAL_TAG_BYTES) {
    // Larger than an honest answer can be: neither unsealed, decoded nor handed to the worker,
    // whose heap it could fill. The trainer's signed one is a signed answer that cannot be
    // opened (the consequence below); anything else is nobody's answer, as unsealing finds.
    if (trainersAnswer(sealed, challenge, receipt) === undefined) {
      return { ok: false, reason: "opening_unsigned" };
    }
    if (Math.floor(now()) < challenge.deadline) {
      return { ok: false, reason: "opening_unopenable", detail: ANSWER_TOO_LARGE };
    }
    return convict("opening_missing", `the signed answer is ${ANSWER_TOO_LARGE}`);
  }
  const opened = await unsealAndCheck(receipt, challenge, sealed, options);
  if (!("structure" in opened)) {
    const { unsealed } = opened;
    if (unsealed.reason === "opening_unsigned") return { ok: false, reason: "opening_unsigned" };
    // The trainer signed it, and it opens nothing: no answer, a fault once the deadline passed.
    if (Math.floor(now()) < challenge.deadline) return { ok: false, reason: "opening_unopenable" };
    return convict("opening_missing", "the signed answer cannot be opened");
  }
  const { unsealed, structure } = opened;
  if (!structure.ok) {
    return convict("opening_mismatch", structure.why, {
      answer: { plaintext: unsealed.plaintext, sig: sealed.sig },
    });
  }
  return structure;
}

/** The length of a sealed answer's ciphertext (0 when it has none): what it would unseal to. */
function sealedBytes(sealed: SealedStepOpenings): number {
  const ciphertext: unknown = (sealed as { box?: { ciphertext?: unknown } }).box?.ciphertext;
  return ciphertext instanceof Uint8Array ? ciphertext.length : 0;
}

/**
 * `sealed` unsealed and, when it opened, its structure checked: both in `options.rerun`'s worker
 * when it opens answers ({@link StepRerun.open}), else the unsealing there when it unseals, and
 * the rest on this thread.
 */
async function unsealAndCheck(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  sealed: SealedStepOpenings,
  options: OpenAnswerOptions,
): Promise<OpenedAnswer> {
  const { rerun, validator, arch } = options;
  if (rerun?.open !== undefined) {
    return await rerun.open(sealed, challenge, receipt, validator, arch);
  }
  const unsealed = rerun?.unseal === undefined
    ? unsealStepOpenings(sealed, challenge, receipt, validator)
    : await rerun.unseal(sealed, challenge, receipt, validator);
  if (!unsealed.ok) return { unsealed };
  return {
    unsealed,
    structure: verifyOpeningsPlaintext(receipt, challenge, unsealed.plaintext, arch),
  };
}
