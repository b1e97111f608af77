/**
 * The wire form of a pseudo-gradient: int8 values with one float32 scale per row (a 1-D
 * tensor is one row). `scale = max|row| / 127`, `q = round(x / scale)` clamped to ±127, so every
 * value comes back within `scale / 2` of the original — about 4× smaller than float32 on the
 * wire. A row whose scale would be subnormal (max|row| < 127 · 2^−126 ≈ 1.5e−36) is sent as
 * zero: its values are float32 noise, and a subnormal scale could not carry them faithfully.
 *
 * Encoding (version 1, little-endian), tensors in the architecture's fixed order:
 * `"VFD1" ‖ u32 count ‖ per tensor: u16 nameLen ‖ name ‖ u8 rank ‖ u32 dims… ‖ f32 scales[rows]
 * ‖ i8 values`. The delta hash a training receipt signs is SHA-256 of these bytes.
 *
 * @module
 */
import { sha256Hex } from "../protocols/hash.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { TrainingError } from "./training_error.ts";

const MAGIC = new TextEncoder().encode("VFD1");
/** Largest int8 magnitude used (symmetric, so −128 is never produced). */
const Q_MAX = 127;
/** Smallest normal float32 (2^−126): a smaller scale is subnormal and imprecise. */
const MIN_NORMAL_F32 = 2 ** -126;
/** Upper bound on a decoded tensor's elements: rejects absurd headers before allocating. */
const MAX_TENSOR_ELEMENTS = 1 << 28;
/**
 * Largest magnitude a trainer's pseudo-gradient may have in any value. H AdamW steps move a
 * weight by about lr per step at most (Adam's normalised step, plus the decay), so an honest
 * delta stays near H·lr: 0.15 at the defaults (lr 3e-3, H = 50). 1024 leaves four orders of
 * magnitude for larger H and learning rates, and keeps the outer step finite: the mean of
 * bounded deltas is bounded, its momentum stays below 1024 / (1 − μ) and a round's step below
 * 7,168 at DiLoCo's settings, so no run of rounds overflows float32 (3.4e38). A huge but finite
 * delta (scales of 1e36) otherwise went in, overflowed the momentum, and every later round's
 * outer step failed.
 */
export const MAX_DELTA_VALUE = 1024;
/**
 * How far past `H × lr × adamRatio` ({@link roundDeltaBound}) a trainer's delta may reach in any
 * value. Each AdamW step moves a weight by the learning rate times Adam's normalised step (at
 * most about `max(1, (1 − β1) / √(1 − β2))`: 1 at the defaults, 3.2 at β2 = 0.999) plus a small
 * decoupled decay, so an honest delta's largest value is about `H × lr`: measured on the test
 * model at the default hyper-parameters, 1.008 to 1.030 × `H × lr` for H = 1, 3 and 8 (review s73
 * F1; `tests/training/delta_bound_test.ts` keeps honest deltas under half the bound). Four leaves room for Adam's larger steps on sparse gradients and for
 * the decay, while a poisoned delta needs to be far larger to wreck a model: the review's ±1000
 * per value was 83,000 × `H × lr`.
 */
export const DELTA_BOUND_MARGIN = 4;

/**
 * The largest magnitude any value of a trainer's delta may have in a round of `steps` local
 * steps on `hyper` (the round's announced terms, which every receipt of it signs): `H × lr ×`
 * Adam's largest normalised step `× ` {@link DELTA_BOUND_MARGIN}, and never more than
 * {@link MAX_DELTA_VALUE}. A pure function of the signed terms, so the coordinator
 * (`_round_run.ts`) and every auditor (`round_audit.ts`) draw the same line: a delta past it is
 * left out of the mean and unpaid, and an outcome that averaged one is refused.
 *
 * @example
 * ```ts
 * import { roundDeltaBound } from "./int8_delta.ts";
 * const bound = roundDeltaBound(50, { learningRate: 3e-3, beta1: 0.9, beta2: 0.95 });
 * console.assert(Math.abs(bound - 0.6) < 1e-9);
 * ```
 */
export function roundDeltaBound(
  steps: number,
  hyper: { learningRate: number; beta1: number; beta2: number },
): number {
  const adam = Math.max(1, (1 - hyper.beta1) / Math.sqrt(1 - hyper.beta2));
  const bound = steps * hyper.learningRate * adam * DELTA_BOUND_MARGIN;
  // Terms that give no finite, positive bound (β2 = 1, a zero rate) bound nothing more than the
  // wire's own limit does.
  return Number.isFinite(bound) && bound > 0 ? Math.min(bound, MAX_DELTA_VALUE) : MAX_DELTA_VALUE;
}

/**
 * How large a fraction of the round's bound ({@link roundDeltaBound}) the root mean square of any
 * one tensor of a trainer's delta may reach. The bound caps each value alone, so a delta with
 * every value just under it (4 × an honest delta's largest) passed, and over 5 rounds took the
 * held-out loss from 5.7 to 22.8 (review s73 F1). An honest tensor's RMS is at most its largest
 * value, which is about `H × lr`, a quarter of the bound: measured on the test model (both
 * shards, first rounds), the worst tensor's RMS is 0.25 of the bound at H = 1 (Adam's first step
 * moves every weight with a gradient by lr), 0.24 at H = 4, 0.24 at H = 8, 0.21 at H = 24, 0.17
 * at H = 50 (lr 3e-3), 0.19 at lr 0.03 and 0.18 at lr 0.1 (H = 8); the whole delta's RMS is 0.22 of
 * the bound at most (H = 1) and falls with H (0.09 at H = 50). Half the bound is twice the
 * largest of these, while a delta pushing every value of a tensor against the model is cut to
 * half of what the value bound alone let through.
 */
export const DELTA_RMS_FACTOR = 0.5;

/** What a trainer's delta may reach: in any value, and in any tensor's root mean square. */
export interface DeltaLimits {
  /** Largest magnitude of a value. */
  maxValue: number;
  /** Largest root mean square of a tensor (absent: not bounded). */
  maxRms?: number;
}

/**
 * The limits of a round of `steps` local steps on `hyper`: {@link roundDeltaBound} on every
 * value and {@link DELTA_RMS_FACTOR} of it on every tensor's root mean square. The one rule the
 * coordinator (`_round_run.ts`) and every auditor (`round_audit.ts`) apply, through
 * {@link decodeFittingDelta}, so both draw the same line bit for bit.
 *
 * @example
 * ```ts
 * import { roundDeltaLimits } from "./int8_delta.ts";
 * const limits = roundDeltaLimits(50, { learningRate: 3e-3, beta1: 0.9, beta2: 0.95 });
 * console.assert(Math.abs(limits.maxRms! - 0.3) < 1e-9);
 * ```
 */
export function roundDeltaLimits(
  steps: number,
  hyper: { learningRate: number; beta1: number; beta2: number },
): DeltaLimits {
  const maxValue = roundDeltaBound(steps, hyper);
  return { maxValue, maxRms: maxValue * DELTA_RMS_FACTOR };
}

/**
 * Root mean square of every value of a (dequantized) delta, tensors in their order: how far a
 * delta moves the model. Not what a round's loss gate ranks deltas by (review s74: a small delta
 * pointed against the model does more harm than a large honest one): that is each delta's
 * measured effect (`_delta_attribution.ts`).
 *
 * @example
 * ```ts
 * import { deltaRms } from "./int8_delta.ts";
 * const rms = deltaRms(new Map([["w", { shape: [1, 2], data: Float32Array.of(3, -3) }]]));
 * console.assert(rms === 3);
 * ```
 */
export function deltaRms(delta: GptWeights): number {
  let squares = 0;
  let count = 0;
  for (const { data } of delta.values()) {
    for (const x of data) squares += x * x;
    count += data.length;
  }
  return count === 0 ? 0 : Math.sqrt(squares / count);
}

/** One quantised tensor. */
export interface Int8Tensor {
  /** Builder name. */
  name: string;
  /** Shape. */
  shape: number[];
  /** One scale per row (`shape[0]` rows for rank ≥ 2, else one). */
  scales: Float32Array;
  /** Quantised values, row-major. */
  values: Int8Array;
}

function rowsOf(shape: readonly number[]): number {
  return shape.length >= 2 ? shape[0] : 1;
}

/** Quantise a delta per row. */
export function quantizeDelta(delta: GptWeights): Int8Tensor[] {
  const out: Int8Tensor[] = [];
  for (const [name, { shape, data }] of delta) {
    const rows = rowsOf(shape);
    const width = data.length / rows;
    const scales = new Float32Array(rows);
    const values = new Int8Array(data.length);
    for (let r = 0; r < rows; r++) {
      let max = 0;
      for (let i = r * width; i < (r + 1) * width; i++) max = Math.max(max, Math.abs(data[i]));
      // A subnormal scale has lost most of its precision, so x / scale can round past 127 and
      // wrap in the Int8Array (a sign flip). Such a row (max below ~1.5e-36) is zero to within
      // float32 noise: it is sent as zero. The clamp keeps any rounding at the edge in range.
      const scale = Math.fround(max / Q_MAX);
      if (!(scale >= MIN_NORMAL_F32)) continue; // scales[r] stays 0: the row is zero
      scales[r] = scale;
      for (let i = r * width; i < (r + 1) * width; i++) {
        values[i] = Math.max(-Q_MAX, Math.min(Q_MAX, Math.round(data[i] / scale)));
      }
    }
    out.push({ name, shape: [...shape], scales, values });
  }
  return out;
}

/**
 * Why `tensor`'s rows are not scaled as {@link quantizeDelta} scales them, or null: each row's
 * scale is either 0 with every value 0 (a zero row) or a normal positive float32 with some
 * value of magnitude 127 (`scale = max|row| / 127` puts the row's largest value there; never
 * Infinity, which is not a normal float32 and which no finite row gives). Any
 * other scale still dequantizes every value within half of it of the original, so it is a free
 * choice: a scale of twice the row's largest value rounds the whole row to 0 (an empty delta
 * for honest work), one near it doubles or zeroes each value at the sender's pick. A trainer's
 * challenge convicts such a delta (`step_verify.ts`'s `delta_mismatch`: slashed); it is not
 * refused on arrival, which would leave its sender unpaid but unpunished.
 */
export function nonCanonicalRow(tensor: Int8Tensor): string | null {
  const rows = tensor.scales.length;
  const width = tensor.values.length / rows;
  for (let r = 0; r < rows; r++) {
    const scale = tensor.scales[r];
    let max = 0;
    for (let i = r * width; i < (r + 1) * width; i++) {
      max = Math.max(max, Math.abs(tensor.values[i]));
    }
    // Finite: a row scaled by Infinity (every value nonzero) dequantizes to ±Infinity, which
    // every end weight is "within half a scale" of — it passed the challenge's delta check.
    if (
      scale === 0 ? max === 0 : scale >= MIN_NORMAL_F32 && Number.isFinite(scale) && max === Q_MAX
    ) continue;
    return `${tensor.name} row ${r}: scale ${scale} with largest |value| ${max}, not max|row| / ${Q_MAX}`;
  }
  return null;
}

/** Back to float tensors. */
export function dequantizeDelta(tensors: readonly Int8Tensor[]): GptWeights {
  const out: GptWeights = new Map();
  for (const t of tensors) {
    const rows = rowsOf(t.shape);
    const width = t.values.length / rows;
    const data = new Float32Array(t.values.length);
    for (let i = 0; i < data.length; i++) data[i] = t.values[i] * t.scales[Math.floor(i / width)];
    out.set(t.name, { shape: [...t.shape], data });
  }
  return out;
}

/**
 * Bytes {@link encodeInt8Delta} writes for tensors of these names and shapes (their values do
 * not change the size).
 * @param tensors Each tensor's name and shape, in order.
 * @returns The encoded size.
 */
export function int8DeltaBytes(
  tensors: readonly { name: string; shape: readonly number[] }[],
): number {
  let size = MAGIC.length + 4;
  for (const { name, shape } of tensors) {
    const elements = shape.reduce((a, b) => a * b, 1);
    const nameBytes = new TextEncoder().encode(name).length;
    size += 2 + nameBytes + 1 + 4 * shape.length + 4 * rowsOf(shape) + elements;
  }
  return size;
}

/** Serialise quantised tensors (see the module doc for the layout). */
export function encodeInt8Delta(tensors: readonly Int8Tensor[]): Uint8Array {
  const names = tensors.map((t) => new TextEncoder().encode(t.name));
  let size = MAGIC.length + 4;
  tensors.forEach((t, i) => {
    size += 2 + names[i].length + 1 + 4 * t.shape.length + 4 * t.scales.length + t.values.length;
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(MAGIC);
  let o = MAGIC.length;
  view.setUint32(o, tensors.length, true);
  o += 4;
  tensors.forEach((t, i) => {
    view.setUint16(o, names[i].length, true);
    out.set(names[i], o + 2);
    o += 2 + names[i].length;
    out[o++] = t.shape.length;
    for (const d of t.shape) o = (view.setUint32(o, d, true), o + 4);
    for (const s of t.scales) o = (view.setFloat32(o, s, true), o + 4);
    out.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.length), o);
    o += t.values.length;
  });
  return out;
}

/** Parse {@link encodeInt8Delta}'s bytes; throws `bad_delta` on anything malformed. */
export function decodeInt8Delta(bytes: Uint8Array): Int8Tensor[] {
  const bad = (why: string) => new TrainingError("bad_delta", `malformed delta: ${why}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (o: number, n: number) => {
    if (o + n > bytes.length) throw bad("truncated");
  };
  need(0, MAGIC.length + 4);
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw bad("magic");
  let o = MAGIC.length;
  const count = view.getUint32(o, true);
  o += 4;
  const out: Int8Tensor[] = [];
  for (let k = 0; k < count; k++) {
    need(o, 2);
    const nameLen = view.getUint16(o, true);
    need(o + 2, nameLen + 1);
    const name = new TextDecoder().decode(bytes.subarray(o + 2, o + 2 + nameLen));
    o += 2 + nameLen;
    const rank = bytes[o++];
    need(o, 4 * rank);
    const shape = Array.from({ length: rank }, (_, i) => view.getUint32(o + 4 * i, true));
    o += 4 * rank;
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements > MAX_TENSOR_ELEMENTS) throw bad(`tensor ${name} too large`);
    const rows = rowsOf(shape);
    need(o, 4 * rows + elements);
    const scales = new Float32Array(rows);
    for (let r = 0; r < rows; r++) scales[r] = view.getFloat32(o + 4 * r, true);
    o += 4 * rows;
    const values = new Int8Array(bytes.slice(o, o + elements).buffer);
    o += elements;
    out.push({ name, shape, scales, values });
  }
  if (o !== bytes.length) throw bad("trailing bytes");
  return out;
}

/** Hex SHA-256 of an encoded delta: what a training receipt signs. */
export function deltaHash(encoded: Uint8Array): string {
  return sha256Hex(encoded);
}

/**
 * Why `tensors` are not a delta of `start`'s form, or null: the same tensors as `start` (no
 * more, no fewer, none twice), each of the same shape. What the round asks of a report's delta
 * ({@link decodeFittingDelta}) and what a challenge's delta check asks of it
 * (`step_verify.ts`'s `deltaMismatch`), so that a delta the round refuses for its form never
 * passes a challenge: a tensor named twice passed that check (it kept the last copy).
 *
 * @param tensors A decoded delta's tensors (names and shapes).
 * @param start The round's start weights.
 * @returns Why not, or null when they fit.
 */
export function unfitTensors(
  tensors: readonly { name: string; shape: readonly number[] }[],
  start: GptWeights,
): string | null {
  if (tensors.length !== start.size) {
    return `delta has ${tensors.length} tensors, not ${start.size}`;
  }
  const seen = new Set<string>();
  for (const { name, shape } of tensors) {
    const w = start.get(name);
    if (w === undefined) return `delta has ${name}, which the model lacks`;
    if (seen.has(name)) return `delta has ${name} twice`;
    seen.add(name);
    if (shape.length !== w.shape.length || shape.some((n, i) => n !== w.shape[i])) {
      return `delta's ${name} is [${shape}], not [${w.shape}]`;
    }
  }
  return null;
}

/**
 * Decode and dequantize one report's delta and check it fits the start weights: the same
 * tensors (no more, no fewer, none twice), each of the same shape, every value finite and, for
 * a trainer's delta, within `limits` (a number: the largest magnitude of a value, default
 * {@link MAX_DELTA_VALUE}; a round's {@link roundDeltaLimits}: that, and each tensor's root mean
 * square within `maxRms`). The outer step would otherwise
 * fail on it for the whole round (one trainer's bad delta throwing away every honest one), carry
 * a NaN into the next model, or overflow the momentum so that every later round fails.
 * `aggregateRound` refuses a report whose delta fails this, and only that report; a trainer
 * refuses an outer update that fails it (an outer update is the coordinator's step, checked
 * against the model's CID, so it is bounded by finiteness alone: `maxValue` Infinity).
 *
 * @param encoded The report's encoded int8 delta.
 * @param start The round's start weights.
 * @param limits The largest magnitude of a value, or a round's limits; default
 *   {@link MAX_DELTA_VALUE}.
 * @returns The dequantized delta.
 * @throws {TrainingError} `bad_delta` when it is malformed or does not fit, `delta_too_large`
 *   when a value is finite but larger than the largest allowed, or a tensor's root mean square
 *   is larger than `maxRms`.
 */
export function decodeFittingDelta(
  encoded: Uint8Array,
  start: GptWeights,
  limits: number | DeltaLimits = MAX_DELTA_VALUE,
): GptWeights {
  const { maxValue, maxRms } = typeof limits === "number" ? { maxValue: limits } : limits;
  const tensors = decodeInt8Delta(encoded);
  const unfit = unfitTensors(tensors, start);
  if (unfit !== null) throw new TrainingError("bad_delta", unfit);
  const delta = dequantizeDelta(tensors);
  for (const name of start.keys()) {
    const { data } = delta.get(name)!;
    let squares = 0;
    for (const x of data) {
      if (!Number.isFinite(x)) {
        throw new TrainingError("bad_delta", `delta's ${name} has a value that is not finite`);
      }
      if (Math.abs(x) > maxValue) {
        throw new TrainingError(
          "delta_too_large",
          `delta's ${name} has a value of magnitude ${
            Math.abs(x).toExponential(2)
          }, over the bound ${maxValue}`,
        );
      }
      squares += x * x;
    }
    // In float64, in the tensor's order: every node that applies the rule sums the same way.
    const rms = data.length === 0 ? 0 : Math.sqrt(squares / data.length);
    if (maxRms !== undefined && rms > maxRms) {
      throw new TrainingError(
        "delta_too_large",
        `delta's ${name} has a root mean square of ${
          rms.toExponential(2)
        }, over the bound ${maxRms}`,
      );
    }
  }
  return delta;
}
