/**
 * The checks of an opened training step, shared by the validator (`step_check.ts`) and by any
 * node re-checking a training fraud proof (`training_fraud_proof.ts`), so both apply exactly
 * the same rules:
 *
 * 1. **Structure** (no model needed): states k and k + 1 decode for the architecture and are
 *    leaves k and k + 1 of the receipt's `checkpointsRoot`; the batch has `batchSize` samples,
 *    their indices are `batchIndices(dataSeed, k, batchSize, shardSize)`, each is
 *    `sampleBytes` long and a leaf of `shardRoot`. A failure is `opening_mismatch`.
 * 2. **Claims** (in this order): state 0 is the start weights with zero moments
 *    (`start_mismatch`); state H's weights are start − the dequantized delta within the int8
 *    bound (`delta_mismatch`); state k + 1's moments obey |m| ≤ K·√v ({@link momentBoundExcess},
 *    `step_mismatch`); state k + 1's weights are the AdamW update of state k's weights
 *    by state k + 1's moments (`step_mismatch`, no re-run needed); re-running step k from state
 *    k on the batch gives state k + 1's moments within {@link STEP_TOLERANCE} (`step_mismatch`)
 *    and the receipt's loss of step k within {@link LOSS_TOLERANCE} (`loss_mismatch`).
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { decodeCheckedCbor, DEFAULT_MAX_CBOR_DEPTH } from "../protocols/cbor_guard.ts";
import { batchIndices } from "./brown_corpus.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { decodeInt8Delta, type Int8Tensor, nonCanonicalRow, unfitTensors } from "./int8_delta.ts";
import { loadTrainingEngine } from "./training_engine.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import type { TrainingChallenge } from "./training_challenge.ts";
import { trainingChallengeId } from "./training_challenge.ts";
import type { TrainingReceipt } from "./training_receipt.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { type StepOpening, type StepOpenings, StepOpeningsSchema } from "./step_opening.ts";
import {
  decodeTrainingState,
  startTrainingState,
  type StateDistance,
  stateDistance,
  type TrainingState,
  trainingStateBytes,
  trainingStateHash,
  verifyCheckpointPath,
  verifyShardPath,
} from "./training_state.ts";

/**
 * Largest relative L2 distance (per tensor) between the claimed moments m, v of state k + 1
 * and the validator's re-run of step k that is still honest. Measured by
 * `training/calibrate_step_tolerance.ts` (numbers in `docs/TRAINING.md`): re-running on the
 * same backend is bit-exact (0); wasm against cpu (either way) the worst seen is 2.02e-6 (test
 * model, 8 seeds × 10 steps; 1.06e-6 over 2 × 40 steps; 9.3e-7 for `tiny`); this is 10× that. A skipped or faked step is off by ≥ 1e-1 (a copied state misses the whole
 * moment update), a batch other than the committed one by ~1.
 *
 * Why the moments and not the weights: AdamW divides m̂ by √v̂, which turns float noise in a
 * near-zero gradient (the key bias, whose gradient is exactly zero in exact arithmetic since a
 * softmax ignores a constant shift) into a full ±lr step, so re-run weights differ across
 * backends by up to 7e-3 relative in such a tensor. The weights are checked instead against
 * the update AdamW derives from state k's weights and the (checked) claimed moments
 * ({@link weightUpdateUlps}), which leaves them no freedom beyond float rounding.
 */
export const STEP_TOLERANCE = 2e-5;
/**
 * Largest error, in float32 ulps of the update's scale, between the claimed weights of state
 * k + 1 and the AdamW update computed (in float64) from state k's weights and the claimed
 * moments. Measured worst honest: 2.32 ulps (`tiny`; 1.93 for the test model), on either
 * backend; this is about 10× that. A copied state scores ≥ 252.
 */
export const WEIGHT_UPDATE_TOLERANCE_ULPS = 24;
/**
 * Relative slack on the bound AdamW's moments obey ({@link momentBoundExcess}); honest moments
 * meet the bound with equality after the first step, so this covers float32 rounding only.
 */
export const MOMENT_BOUND_TOLERANCE = 1e-3;
/**
 * Absolute slack on |m| in {@link momentBoundExcess}: a gradient below ~1e-18 has g² under
 * float32's normal range (v may round or flush to 0 while m does not). A weight steered within
 * it moves by at most lr · 1e-15 / (c1 · ε) ≈ 1e-7 · lr a step.
 */
export const MOMENT_BOUND_FLOOR = 1e-15;
/**
 * Largest relative difference between a re-run step's loss and the receipt's: worst honest
 * wasm ↔ cpu 9.93e-7 (same backend: 0); this is 10× that.
 */
export const LOSS_TOLERANCE = 1e-5;
/**
 * A third-party checker confirms a `step_mismatch` / `loss_mismatch` proof above this fraction
 * of the tolerance, so a checker whose float noise differs from the validator's (another
 * backend) still confirms an honest validator's proof near the limit.
 */
export const CHECKER_SLACK = 0.8;

/**
 * How far the claimed weights of state k + 1 are from the AdamW update of step `step`
 * computed in float64 from state k's weights and state k + 1's moments, in units of
 * 2⁻²³ · (lr·|update| + |w|): float32 ulps of the values involved. Honest steps score a few;
 * returns the worst element and where.
 */
export function weightUpdateUlps(
  before: TrainingState,
  after: TrainingState,
  hyper: LocalHyperParams,
  step: number,
): { ulps: number; worst: string } {
  const t = step + 1;
  const c1 = 1 - hyper.beta1 ** t;
  const c2 = 1 - hyper.beta2 ** t;
  let ulps = 0;
  let worst = "";
  for (const [name, w0] of before.weights) {
    const w1 = after.weights.get(name)!.data;
    const m1 = after.m.get(name)!.data;
    const v1 = after.v.get(name)!.data;
    const decay = w0.shape.length >= 2 ? hyper.weightDecay : 0;
    for (let i = 0; i < w1.length; i++) {
      const w = w0.data[i];
      const u = m1[i] / c1 / (Math.sqrt(v1[i] / c2) + hyper.epsilon) + decay * w;
      const expected = w - hyper.learningRate * u;
      const scale = 2 ** -23 * (hyper.learningRate * Math.abs(u) + Math.abs(w)) + 1e-38;
      const e = Math.abs(w1[i] - expected) / scale;
      if (!(e <= ulps)) {
        ulps = Number.isNaN(e) ? Infinity : e;
        worst = `${name}[${i}]`;
        if (ulps === Infinity) return { ulps, worst };
      }
    }
  }
  return { ulps, worst };
}

/**
 * Moments of one gradient history obey |m_t| ≤ K_t · √v_t elementwise (Cauchy–Schwarz over
 * m_t = (1 − β1) Σ β1^(t−i) g_i and v_t = (1 − β2) Σ β2^(t−i) g_i², from zero moments:
 * K_t = (1 − β1) · √(Σ_{j<t} (β1²/β2)^j / (1 − β2))), which is what keeps an AdamW step near lr.
 * The re-run compares moments by relative L2 per tensor, which leaves one element's v free to be
 * 0 while its m is not: m̂ / (√0 + ε) is then a step of thousands of learning rates, every one
 * consistent with the claimed moments (a review found a weight moved 240 · H · lr in H steps,
 * passing every challenge). Returns the worst |m| over its bound (≤ 1 when honest) and where.
 */
export function momentBoundExcess(
  state: TrainingState,
  hyper: LocalHyperParams,
  t: number,
  slack = 1,
): { excess: number; worst: string } {
  const r = hyper.beta1 ** 2 / hyper.beta2;
  const sum = r === 1 ? t : (1 - r ** t) / (1 - r);
  const k = (1 - hyper.beta1) * Math.sqrt(sum / (1 - hyper.beta2));
  if (!Number.isFinite(k)) return { excess: 0, worst: "" };
  let excess = 0;
  let worst = "";
  for (const [name, mt] of state.m) {
    const m = mt.data;
    const v = state.v.get(name)!.data;
    for (let i = 0; i < m.length; i++) {
      const bound = k * Math.sqrt(v[i]) * (1 + MOMENT_BOUND_TOLERANCE * slack) + MOMENT_BOUND_FLOOR;
      const e = Math.abs(m[i]) / bound;
      if (!(e <= excess)) {
        excess = Number.isNaN(e) ? Infinity : e;
        worst = `${name}[${i}]`;
        if (excess === Infinity) return { excess, worst };
      }
    }
  }
  return { excess, worst };
}

/** An opened step that passed the structural checks. */
export interface VerifiedStep {
  /** Step k. */
  step: number;
  /** State k. */
  before: TrainingState;
  /** State k + 1. */
  after: TrainingState;
  /** Batch sample bytes, in order. */
  samples: Uint8Array[];
}

/** Structural check of one opened step against the receipt; `why` on failure. */
export function verifyStepOpening(
  receipt: TrainingReceipt,
  opening: StepOpening,
  arch: GptArchitecture,
): { ok: true; verified: VerifiedStep } | { ok: false; why: string } {
  const k = opening.step;
  if (!Number.isInteger(k) || k < 0 || k >= receipt.steps) {
    return { ok: false, why: "step out of range" };
  }
  let before: TrainingState;
  let after: TrainingState;
  try {
    before = decodeTrainingState(arch, opening.before);
    after = decodeTrainingState(arch, opening.after);
  } catch (e) {
    return { ok: false, why: `state does not decode: ${(e as Error).message}` };
  }
  const leaves = receipt.steps + 1;
  if (
    !verifyCheckpointPath(
      receipt.checkpointsRoot,
      leaves,
      k,
      trainingStateHash(arch, before),
      opening.beforePath,
    )
  ) return { ok: false, why: `state ${k} is not the committed one` };
  if (
    !verifyCheckpointPath(
      receipt.checkpointsRoot,
      leaves,
      k + 1,
      trainingStateHash(arch, after),
      opening.afterPath,
    )
  ) return { ok: false, why: `state ${k + 1} is not the committed one` };
  const { batchSize, sampleBytes } = receipt.hyper;
  const indices = batchIndices(receipt.dataSeed, k, batchSize, receipt.shardSize);
  if (opening.samples.length !== batchSize) return { ok: false, why: "batch size" };
  for (const [j, s] of opening.samples.entries()) {
    if (s.index !== indices[j]) return { ok: false, why: `sample ${j} is not the drawn index` };
    if (s.bytes.length !== sampleBytes) return { ok: false, why: `sample ${j} length` };
    if (!verifyShardPath(receipt.shardRoot, receipt.shardSize, s.index, s.bytes, s.path)) {
      return { ok: false, why: `sample ${j} is not in the committed shard` };
    }
  }
  return {
    ok: true,
    verified: { step: k, before, after, samples: opening.samples.map((s) => s.bytes) },
  };
}

/** {@link verifyOpeningsPlaintext}'s reason for a plaintext past {@link answerByteBound}. */
export const ANSWER_TOO_LARGE = "larger than an answer to the challenge can be";

/**
 * {@link verifyOpeningsPlaintext}'s verdict on an unsealed answer: its openings and the steps they
 * verify, or why its structure fails.
 */
export type OpeningsPlaintextCheck =
  | { ok: true; openings: StepOpenings; steps: VerifiedStep[] }
  | { ok: false; why: string };

/**
 * Structural check of a whole answer's plaintext: CBOR, schema, ids of this receipt and
 * challenge, exactly the challenged steps in order, each step as {@link verifyStepOpening}.
 */
export function verifyOpeningsPlaintext(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  plaintext: Uint8Array,
  arch: GptArchitecture,
): OpeningsPlaintextCheck {
  // Larger than an honest answer can be: not decoded (its numbers would fill the heap).
  if (plaintext.length > answerByteBound(receipt, challenge, arch)) {
    return { ok: false, why: ANSWER_TOO_LARGE };
  }
  let value: unknown;
  try {
    // The trainer's bytes: no more maps, arrays and byte strings than an answer to this challenge
    // can hold, checked before any is built.
    value = decodeCheckedCbor(
      plaintext,
      DEFAULT_MAX_CBOR_DEPTH,
      answerValueBound(receipt, challenge),
    );
  } catch {
    return { ok: false, why: "not CBOR" };
  }
  const parsed = StepOpeningsSchema.safeParse(value);
  if (!parsed.success) return { ok: false, why: "not step openings" };
  const openings = parsed.data;
  if (openings.receiptId !== trainingReceiptId(receipt)) {
    return { ok: false, why: "another receipt" };
  }
  if (openings.challengeId !== trainingChallengeId(challenge)) {
    return { ok: false, why: "another challenge" };
  }
  const steps = openings.steps.map((s) => s.step);
  if (steps.length !== challenge.steps.length || steps.some((s, i) => s !== challenge.steps[i])) {
    return { ok: false, why: "not the challenged steps" };
  }
  const verified: VerifiedStep[] = [];
  for (const o of openings.steps) {
    const r = verifyStepOpening(receipt, o, arch);
    if (!r.ok) return r;
    verified.push(r.verified);
  }
  return { ok: true, openings, steps: verified };
}

/** Most entries of a Merkle path the answer's schema takes (`step_opening.ts`). */
const MAX_PATH_ENTRIES = 64;
/**
 * Built CBOR values (maps, arrays, byte strings) of one opened step besides its samples: its map,
 * the two states, the two paths' arrays and the samples' array.
 */
const STEP_VALUES = 6;
/** Built values of one opened sample besides its path's entries: its map, bytes and path array. */
const SAMPLE_VALUES = 3;

/**
 * The most maps, arrays and byte strings an answer to `challenge` can hold under the answer's
 * schema (paths of at most {@link MAX_PATH_ENTRIES}; `batchSize` samples a step): a few thousand.
 * An answer is the trainer's CBOR, and without a bound one of millions of empty arrays (a byte
 * each) was built in full before the schema looked: on the main thread a stall of seconds, in the
 * re-run worker a heap past its limit, both tries failed and a lazy trainer's challenge left
 * undecided instead of convicted (`tests/training/answer_opening_worker_test.ts`).
 */
export function answerValueBound(receipt: TrainingReceipt, challenge: TrainingChallenge): number {
  const sample = SAMPLE_VALUES + MAX_PATH_ENTRIES;
  const step = STEP_VALUES + 2 * MAX_PATH_ENTRIES + receipt.hyper.batchSize * sample;
  // The answer's map and its steps' array.
  return 2 + challenge.steps.length * step;
}

/** CBOR's longest head of an item (its type and length): a byte and an 8-byte argument. */
const CBOR_HEAD_BYTES = 9;
/** The longest map key of the answer's schema ("challengeId") with its head. */
const CBOR_KEY_BYTES = 1 + "challengeId".length;
/** One Merkle path entry: a 32-byte hash with its byte-string head. */
const PATH_ENTRY_BYTES = 2 + 32;
/**
 * Room past the bound computed from the answer's schema: the computation takes each head at its
 * longest, so an honest answer is already below it; this keeps an honest answer inside should a
 * field be added to the answer or the state's header without the bound following at once.
 */
const ANSWER_BYTES_MARGIN = 64 * 1024;

/** Entries of a Merkle path among `leaves` leaves (an odd node is carried up: none for it). */
function pathEntries(leaves: number): number {
  let depth = 0;
  while (2 ** depth < leaves) depth++;
  return Math.min(depth, MAX_PATH_ENTRIES);
}

/**
 * The most bytes an honest answer to `challenge` can take, as plaintext: per challenged step its
 * two states (their size is fixed by `arch`: {@link trainingStateBytes}), their paths among the
 * H + 1 checkpoints, and `batchSize` samples of `sampleBytes` each with its path among the
 * shard's; every CBOR head at its longest, and {@link ANSWER_BYTES_MARGIN}. The value bound
 * ({@link answerValueBound}) leaves numbers uncounted: 24 MB of half-floats (3 bytes each) were
 * boxed into some 190 MB of the re-run worker's heap, past its limit, and the challenge was left
 * undecided. A validator checks an answer's size against this before it unseals, decodes or hands
 * it to its worker (`step_check.ts`); this module's check of a plaintext too.
 */
export function answerByteBound(
  receipt: TrainingReceipt,
  challenge: TrainingChallenge,
  arch: GptArchitecture,
): number {
  const { batchSize, sampleBytes } = receipt.hyper;
  const bytesItem = (n: number) => CBOR_HEAD_BYTES + n;
  const path = (leaves: number) => CBOR_HEAD_BYTES + pathEntries(leaves) * PATH_ENTRY_BYTES;
  // A sample's map: index, bytes, path.
  const sample = CBOR_HEAD_BYTES + 3 * CBOR_KEY_BYTES + CBOR_HEAD_BYTES +
    bytesItem(sampleBytes) + path(receipt.shardSize);
  // A step's map: step, before, beforePath, after, afterPath, samples.
  const step = CBOR_HEAD_BYTES + 6 * CBOR_KEY_BYTES + CBOR_HEAD_BYTES +
    2 * (bytesItem(trainingStateBytes(arch)) + path(receipt.steps + 1)) +
    CBOR_HEAD_BYTES + batchSize * sample;
  // The answer's map: v, receiptId, challengeId (64 hex characters each), steps.
  const answer = CBOR_HEAD_BYTES + 4 * CBOR_KEY_BYTES + CBOR_HEAD_BYTES + 2 * bytesItem(64) +
    CBOR_HEAD_BYTES;
  return answer + challenge.steps.length * step + ANSWER_BYTES_MARGIN;
}

/** Claims about an opened step that re-checking can confirm. */
export type StepClaimReason =
  | "start_mismatch"
  | "delta_mismatch"
  | "step_mismatch"
  | "loss_mismatch";

/** Options of {@link checkVerifiedStep}. */
export interface CheckStepOptions {
  /** Architecture. */
  arch: GptArchitecture;
  /** The round's start weights. */
  startWeights: GptWeights;
  /** The encoded delta the receipt signs (for step H − 1). */
  delta?: Uint8Array;
  /** Backend of the re-run; default wasm. */
  backend?: TrainingBackend;
  /** Multiplier of the tolerances (the checker's {@link CHECKER_SLACK}); default 1. */
  slack?: number;
}

/** What {@link checkVerifiedStep} measured. */
export interface StepMeasure {
  /** Distance of the re-run state from the claimed one (when re-run). */
  distance?: StateDistance;
  /** Relative loss difference (when re-run). */
  lossError?: number;
  /** Weight-update error in ulps (see {@link weightUpdateUlps}). */
  updateUlps?: number;
}

/**
 * Check an opened step's claims (see the module doc), stopping at the first that fails.
 * `only` restricts to one claim (a fraud-proof checker checks what the proof claims).
 */
export async function checkVerifiedStep(
  receipt: TrainingReceipt,
  v: VerifiedStep,
  options: CheckStepOptions,
  only?: StepClaimReason,
): Promise<({ ok: true } | { ok: false; reason: StepClaimReason; detail: string }) & StepMeasure> {
  const { arch } = options;
  const want = (r: StepClaimReason) => only === undefined || only === r;
  if (v.step === 0 && want("start_mismatch")) {
    const start = trainingStateHash(arch, startTrainingState(options.startWeights));
    if (trainingStateHash(arch, v.before) !== start) {
      return { ok: false, reason: "start_mismatch", detail: "state 0 is not the start model" };
    }
  }
  if (v.step === receipt.steps - 1 && options.delta && want("delta_mismatch")) {
    const why = deltaMismatch(options.startWeights, v.after.weights, options.delta);
    if (why) return { ok: false, reason: "delta_mismatch", detail: why };
  }
  if (only === "start_mismatch" || only === "delta_mismatch") return { ok: true };
  const slack = options.slack ?? 1;
  let updateUlps: number | undefined;
  if (want("step_mismatch")) {
    const b = momentBoundExcess(v.after, receipt.hyper, v.step + 1, slack);
    if (!(b.excess <= 1)) {
      return {
        ok: false,
        reason: "step_mismatch",
        detail: `step ${v.step}: moments no gradient history gives (|m| ${
          b.excess.toExponential(2)
        } × its bound K·√v at ${b.worst})`,
      };
    }
    const u = weightUpdateUlps(v.before, v.after, receipt.hyper, v.step);
    if (!(u.ulps <= WEIGHT_UPDATE_TOLERANCE_ULPS * slack)) {
      return {
        ok: false,
        reason: "step_mismatch",
        detail: `step ${v.step}: weights are not the AdamW update (${
          u.ulps.toExponential(2)
        } ulps at ${u.worst})`,
        updateUlps: u.ulps,
      };
    }
    updateUlps = u.ulps;
  }
  const { runTrainingStep } = await loadTrainingEngine();
  const rerun = await runTrainingStep(
    arch,
    receipt.hyper,
    v.before,
    v.samples,
    v.step,
    options.backend,
  );
  const distance = stateDistance(v.after, rerun.state);
  const claimedLoss = receipt.losses[v.step];
  const lossError = Math.abs(claimedLoss - rerun.loss) / Math.max(Math.abs(rerun.loss), 1e-12);
  const moments = Math.max(distance.m, distance.v);
  if (want("step_mismatch") && !(moments <= STEP_TOLERANCE * slack)) {
    return {
      ok: false,
      reason: "step_mismatch",
      detail: `step ${v.step}: moments off by relative L2 ${moments.toExponential(2)} (${
        distance.m >= distance.v ? "m" : "v"
      })`,
      distance,
      lossError,
      updateUlps,
    };
  }
  if (want("loss_mismatch") && !(lossError <= LOSS_TOLERANCE * slack)) {
    return {
      ok: false,
      reason: "loss_mismatch",
      detail: `step ${v.step}: loss ${claimedLoss} claimed, ${rerun.loss} re-run`,
      distance,
      lossError,
    };
  }
  return { ok: true, distance, lossError, updateUlps };
}

/**
 * Why state H's weights are not `start − dequantize(delta)` within the int8 bound (each value
 * within half its row's scale, plus float32 rounding of the subtraction), or null. The scales
 * must be the ones the format defines ({@link nonCanonicalRow}): the bound is half of one, so a
 * scale of the trainer's choosing would let it send any coarser delta, down to an empty one.
 * Nor may the delta's form be other than the model's ({@link unfitTensors}: the round's rule).
 */
export function deltaMismatch(
  start: GptWeights,
  endWeights: GptWeights,
  delta: Uint8Array,
): string | null {
  let tensors: Int8Tensor[];
  try {
    tensors = decodeInt8Delta(delta);
  } catch {
    return "delta does not decode";
  }
  for (const t of tensors) {
    const why = nonCanonicalRow(t);
    if (why !== null) return `delta not quantised as defined: ${why}`;
  }
  // The form the round asks of a delta (`decodeFittingDelta`): one the round refuses must not
  // pass here (a tensor named twice did, its last copy checked).
  const unfit = unfitTensors(tensors, start);
  if (unfit !== null) return unfit;
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const [name, s] of start) {
    const t = byName.get(name);
    const e = endWeights.get(name);
    if (!t || !e || t.values.length !== s.data.length || e.data.length !== s.data.length) {
      return `delta lacks ${name}`;
    }
    const width = t.values.length / t.scales.length;
    for (let i = 0; i < s.data.length; i++) {
      const scale = t.scales[Math.floor(i / width)];
      const q = t.values[i] * scale;
      const err = Math.abs(s.data[i] - q - e.data[i]);
      const bound = scale / 2 * (1 + 1e-4) +
        2 ** -22 * (Math.abs(s.data[i]) + Math.abs(e.data[i])) + 1e-30;
      if (!(err <= bound)) return `${name}[${i}]: end weight off by ${err} (bound ${bound})`;
    }
  }
  return null;
}
