/**
 * DiLoCo's outer step: average the trainers' pseudo-gradients (start − end weights) and apply
 * them with Nesterov momentum, `v ← μ·v + Δ̄`, `θ ← θ − η·(Δ̄ + μ·v)`.
 *
 * DiLoCo's published setting is η = 0.7, μ = 0.9; with η = 1 and μ = 0 the step is plain
 * averaging of the trainers' end weights.
 *
 * The step travels as an **outer update**: the change `start − next` in the int8 form of the
 * trainers' deltas (`int8_delta.ts`), and the next model is defined as `start` minus that
 * update dequantized ({@link quantizeOuterUpdate}). So a trainer that holds the round's start
 * model rebuilds the next one bit for bit from one int8 update ({@link applyOuterUpdate}), a
 * quarter of the model's float32 bytes, and checks it against the model's CID; every node that
 * redoes the step from the deltas gets the same bits too. The momentum keeps the unquantized
 * mean, so the rounding of one round's update does not feed into the next.
 *
 * @module
 */
import type { GptWeights } from "./gpt_weights.ts";
import { decodeFittingDelta, encodeInt8Delta, quantizeDelta } from "./int8_delta.ts";
import { TrainingError } from "./training_error.ts";

/** Outer optimiser settings. */
export interface OuterHyperParams {
  /** Outer learning rate η. */
  learningRate: number;
  /** Nesterov momentum μ. */
  momentum: number;
}

/** DiLoCo's outer settings (Douillard et al., 2023): η = 0.7, Nesterov μ = 0.9. */
export const DEFAULT_OUTER_HYPER_PARAMS: Readonly<OuterHyperParams> = Object.freeze({
  learningRate: 0.7,
  momentum: 0.9,
});

/** Result of {@link outerStep}. */
export interface OuterStepResult {
  /** The next round's weights. */
  weights: GptWeights;
  /** The momentum buffer to carry into the next round. */
  momentum: GptWeights;
}

/** Mean of several pseudo-gradients (same names and shapes). */
export function averageDeltas(deltas: readonly GptWeights[]): GptWeights {
  if (deltas.length === 0) throw new TrainingError("bad_delta", "no deltas to average");
  const out: GptWeights = new Map();
  for (const [name, first] of deltas[0]) {
    const sum = new Float32Array(first.data.length);
    for (const d of deltas) {
      const t = d.get(name);
      if (!t || t.data.length !== sum.length) {
        throw new TrainingError("bad_delta", `delta lacks ${name} or has another shape`);
      }
      for (let i = 0; i < sum.length; i++) sum[i] += t.data[i];
    }
    for (let i = 0; i < sum.length; i++) sum[i] /= deltas.length;
    out.set(name, { shape: [...first.shape], data: sum });
  }
  return out;
}

/**
 * Apply the averaged pseudo-gradient of `deltas` to `weights` with Nesterov momentum
 * (`momentum` is the previous round's buffer, absent in the first round).
 */
export function outerStep(
  weights: GptWeights,
  deltas: readonly GptWeights[],
  momentum?: GptWeights,
  hyper: OuterHyperParams = DEFAULT_OUTER_HYPER_PARAMS,
): OuterStepResult {
  const mean = averageDeltas(deltas);
  const next: GptWeights = new Map();
  const nextMomentum: GptWeights = new Map();
  for (const [name, w] of weights) {
    const g = mean.get(name);
    if (!g || g.data.length !== w.data.length) {
      throw new TrainingError("bad_delta", `deltas lack ${name} or have another shape`);
    }
    const prev = momentum?.get(name)?.data;
    const v = new Float32Array(w.data.length);
    const out = new Float32Array(w.data.length);
    for (let i = 0; i < v.length; i++) {
      v[i] = hyper.momentum * (prev?.[i] ?? 0) + g.data[i];
      out[i] = w.data[i] - hyper.learningRate * (g.data[i] + hyper.momentum * v[i]);
    }
    next.set(name, { shape: [...w.shape], data: out });
    nextMomentum.set(name, { shape: [...w.shape], data: v });
  }
  return { weights: next, momentum: nextMomentum };
}

/** Result of {@link quantizeOuterUpdate}. */
export interface OuterUpdate {
  /** The next model's weights: `start − dequantize(update)`, what every node rebuilds. */
  weights: GptWeights;
  /** The encoded int8 update (`int8_delta.ts`'s format). */
  update: Uint8Array;
}

/**
 * Quantize the step from `start` to `next` (the outer step's float result) to int8 and return
 * the weights a holder of `start` rebuilds from it with {@link applyOuterUpdate}; the two are
 * the same function of the same bytes, so they agree bit for bit.
 *
 * @example
 * ```ts
 * import { applyOuterUpdate, quantizeOuterUpdate } from "./outer_step.ts";
 * const start = new Map([["w", { shape: [1, 3], data: Float32Array.of(1, 2, 3) }]]);
 * const next = new Map([["w", { shape: [1, 3], data: Float32Array.of(0.9, 2.1, 3) }]]);
 * const { weights, update } = quantizeOuterUpdate(start, next);
 * const rebuilt = applyOuterUpdate(start, update);
 * console.assert(rebuilt.get("w")!.data.every((x, i) => x === weights.get("w")!.data[i]));
 * ```
 */
export function quantizeOuterUpdate(start: GptWeights, next: GptWeights): OuterUpdate {
  const step: GptWeights = new Map();
  for (const [name, w] of start) {
    const n = next.get(name);
    if (!n || n.data.length !== w.data.length) {
      throw new TrainingError("bad_delta", `next weights lack ${name} or have another shape`);
    }
    const d = new Float32Array(w.data.length);
    for (let i = 0; i < d.length; i++) d[i] = w.data[i] - n.data[i];
    step.set(name, { shape: [...w.shape], data: d });
  }
  const update = encodeInt8Delta(quantizeDelta(step));
  return { weights: applyOuterUpdate(start, update), update };
}

/**
 * The next model from the start weights and an encoded outer update: `start − dequantize`.
 * @throws {TrainingError} `bad_delta` when the update is malformed or does not fit `start`.
 */
export function applyOuterUpdate(start: GptWeights, update: Uint8Array): GptWeights {
  // The coordinator's step, not a trainer's delta: momentum makes it up to several times the
  // mean delta, and the model's CID checks it. Only finiteness is asked of it.
  const step = decodeFittingDelta(update, start, Infinity);
  const out: GptWeights = new Map();
  for (const [name, w] of start) {
    const d = step.get(name)!.data;
    const data = new Float32Array(w.data.length);
    for (let i = 0; i < data.length; i++) data[i] = w.data[i] - d[i];
    if (!data.every(Number.isFinite)) {
      throw new TrainingError("bad_delta", `the update takes ${name} past float32's range`);
    }
    out.set(name, { shape: [...w.shape], data });
  }
  return out;
}
