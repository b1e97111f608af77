/**
 * DiLoCo's outer step: average the trainers' pseudo-gradients (start − end weights) and apply
 * them with Nesterov momentum, `v ← μ·v + Δ̄`, `θ ← θ − η·(Δ̄ + μ·v)`.
 *
 * DiLoCo's published setting is η = 0.7, μ = 0.9; with η = 1 and μ = 0 the step is plain
 * averaging of the trainers' end weights.
 *
 * @module
 */
import type { GptWeights } from "./gpt_weights.ts";
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
