/**
 * The AdamW hyper-parameters and batch shape of a trainer's local steps, and their defaults:
 * plain data, apart from the tensor engine, so configuration, wire schemas and verifiers read
 * them without loading tfjs.
 *
 * @module
 */

/** AdamW hyper-parameters and batch shape of local training (all committed in the receipt). */
export interface LocalHyperParams {
  /** Inner learning rate. */
  learningRate: number;
  /** Adam β1. */
  beta1: number;
  /** Adam β2. */
  beta2: number;
  /** Adam ε. */
  epsilon: number;
  /** Decoupled weight decay, applied to matrices only (not biases, gains, or 1-D tensors). */
  weightDecay: number;
  /** Samples per step. */
  batchSize: number;
  /** Bytes per sample (the model reads length − 1 and predicts the next byte at each). */
  sampleBytes: number;
}

/**
 * Defaults for small models: DiLoCo's inner optimiser is AdamW; 3e-3 is a usual rate for
 * models of a few hundred thousand parameters, β2 = 0.95 as in GPT-style training.
 */
export const DEFAULT_LOCAL_HYPER_PARAMS: Readonly<LocalHyperParams> = Object.freeze({
  learningRate: 3e-3,
  beta1: 0.9,
  beta2: 0.95,
  epsilon: 1e-8,
  weightDecay: 0.01,
  batchSize: 8,
  sampleBytes: 65,
});

/**
 * Held-out samples evaluated after each round by default: enough for a curve that moves
 * smoothly (the estimate's spread is ≈ 0.02 bits/byte at 128), few enough that evaluation
 * costs a few seconds, not a round's worth of training.
 */
export const DEFAULT_EVAL_SAMPLES = 128;
