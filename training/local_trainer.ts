/**
 * A trainer's inner loop in the DiLoCo style: H AdamW steps from a round's start weights on
 * the trainer's own shard, returning the pseudo-gradient (start − end weights), the per-step
 * loss trace and the ids of the samples used — what a training receipt commits to.
 *
 * Batches are drawn by a counter-based RNG (`batchIndices`), so the batch of any step is a
 * pure function of the seed and the step number.
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { tf, type TrainingBackend, useTrainingBackend } from "./tf_backend.ts";
import { gptLoss, type TfWeights, toTfWeights } from "./tf_gpt.ts";
import { type GptWeights, gptWeightShapes } from "./gpt_weights.ts";
import { batchIndices, sampleAt, sampleCount, type TextShard } from "./brown_corpus.ts";
import { startTrainingState, type TrainingState, trainingStateHash } from "./training_state.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./hyper_params.ts";

/** Options of {@link trainLocal}. */
export interface LocalTrainingOptions {
  /** Architecture of the weights. */
  arch: GptArchitecture;
  /** Round start weights (not modified). */
  start: GptWeights;
  /** The trainer's shard. */
  shard: TextShard;
  /** Number of local steps H. */
  steps: number;
  /** Seed of the batch draws. */
  seed: number;
  /** Hyper-parameters; defaults {@link DEFAULT_LOCAL_HYPER_PARAMS}. */
  hyper?: Partial<LocalHyperParams>;
  /** Backend; default `wasm` (falls back to `cpu`). */
  backend?: TrainingBackend;
  /** Called after each step's loss is known (progress display); does not change the result. */
  onStep?: (step: number, loss: number) => void;
  /**
   * Record the training state after every step (its hash; the full state every `keepEvery`
   * steps and the last): what a trainer needs to open challenged steps later.
   */
  record?: { keepEvery: number };
  /**
   * Awaited before each step; the run's backend is then selected again. A trainer's worker
   * yields to its event loop there, so a challenge of an earlier run is opened between two steps
   * instead of after the whole round (which took it past its deadline: `opening_missing`).
   */
  between?: () => Promise<void>;
}

/** What {@link trainLocal} returns. */
export interface LocalTrainingResult {
  /** The pseudo-gradient: start − end, per tensor (DiLoCo's outer gradient). */
  pseudoGradient: GptWeights;
  /** Training loss (nats per byte) of each step, before its update. */
  losses: number[];
  /** Ids of the samples used, step by step, in batch order. */
  sampleIds: string[];
  /** The hyper-parameters used. */
  hyper: LocalHyperParams;
  /** The backend that ran. */
  backend: TrainingBackend;
  /** With `record`: hex hashes of states 0 … H. */
  stateHashes?: string[];
  /** With `record`: the full states kept (every `keepEvery` steps, and state H). */
  keptStates?: Map<number, TrainingState>;
}

/** The batch of step `step` as a [batch, sampleBytes] int32 tensor, plus its sample ids. */
export function stepBatch(
  shard: TextShard,
  hyper: LocalHyperParams,
  seed: number,
  step: number,
): { tokens: tf.Tensor2D; ids: string[] } {
  const count = sampleCount(shard, hyper.sampleBytes);
  if (count === 0) throw new RangeError("shard has no complete sample");
  const flat = new Int32Array(hyper.batchSize * hyper.sampleBytes);
  const ids: string[] = [];
  batchIndices(seed, step, hyper.batchSize, count).forEach((index, j) => {
    const s = sampleAt(shard, hyper.sampleBytes, index);
    flat.set(s.bytes, j * hyper.sampleBytes);
    ids.push(s.id);
  });
  return { tokens: tf.tensor2d(flat, [hyper.batchSize, hyper.sampleBytes], "int32"), ids };
}

/** AdamW state on the tfjs side: trainable weights and the two moments, by builder name. */
export interface TfTrainingState {
  /** Weights as trainable variables. */
  params: Record<string, tf.Variable>;
  /** First moments. */
  m: TfWeights;
  /** Second moments. */
  v: TfWeights;
}

/**
 * One AdamW step, in place: the loss of `tokens` at the current weights (returned), its
 * gradients, then the moment and weight updates of step `step` (bias correction t = step + 1).
 * The one step function: `trainLocal` runs it H times, and a validator re-running a
 * challenged step runs it once ({@link runTrainingStep}), so both compute the same thing.
 */
export async function adamwStep(
  arch: GptArchitecture,
  hyper: LocalHyperParams,
  state: TfTrainingState,
  tokens: tf.Tensor2D,
  step: number,
): Promise<number> {
  const { params, m, v } = state;
  const names = gptWeightShapes(arch).map(([n]) => n);
  const { value, grads } = tf.variableGrads(
    () => gptLoss(arch, params, tokens),
    names.map((n) => params[n]),
  );
  const loss = (await value.data())[0];
  const t = step + 1;
  const c1 = 1 - hyper.beta1 ** t;
  const c2 = 1 - hyper.beta2 ** t;
  for (const n of names) {
    tf.tidy(() => {
      const g = grads[params[n].name];
      const m1 = tf.add(tf.mul(m[n], hyper.beta1), tf.mul(g, 1 - hyper.beta1));
      const v1 = tf.add(tf.mul(v[n], hyper.beta2), tf.mul(tf.square(g), 1 - hyper.beta2));
      let update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), hyper.epsilon));
      if (params[n].rank >= 2) update = tf.add(update, tf.mul(params[n], hyper.weightDecay));
      params[n].assign(tf.sub(params[n], tf.mul(update, hyper.learningRate)));
      m[n].dispose();
      v[n].dispose();
      m[n] = tf.keep(m1);
      v[n] = tf.keep(v1);
    });
  }
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}

/** Upload a training state to tfjs (weights as variables). */
export function uploadTrainingState(state: TrainingState): TfTrainingState {
  return {
    params: toTfWeights(state.weights, true) as Record<string, tf.Variable>,
    m: toTfWeights(state.m, false),
    v: toTfWeights(state.v, false),
  };
}

/** Download a tfjs training state (copies). */
export async function downloadTrainingState(
  arch: GptArchitecture,
  state: TfTrainingState,
): Promise<TrainingState> {
  const out: TrainingState = { weights: new Map(), m: new Map(), v: new Map() };
  for (const [name, shape] of gptWeightShapes(arch)) {
    out.weights.set(name, {
      shape,
      data: (await state.params[name].data() as Float32Array).slice(),
    });
    out.m.set(name, { shape, data: (await state.m[name].data() as Float32Array).slice() });
    out.v.set(name, { shape, data: (await state.v[name].data() as Float32Array).slice() });
  }
  return out;
}

/** Dispose a tfjs training state. */
export function disposeTrainingState(state: TfTrainingState): void {
  tf.dispose([
    ...Object.values(state.params),
    ...Object.values(state.m),
    ...Object.values(state.v),
  ]);
}

/** A batch of samples (each `sampleBytes` long) as a [batch, sampleBytes] int32 tensor. */
export function batchTensor(samples: readonly Uint8Array[], sampleBytes: number): tf.Tensor2D {
  const flat = new Int32Array(samples.length * sampleBytes);
  samples.forEach((s, j) => flat.set(s, j * sampleBytes));
  return tf.tensor2d(flat, [samples.length, sampleBytes], "int32");
}

/**
 * Run training step `step` from `state` on `samples` (the step's batch, in order) on
 * `backend`: what a validator does to check an opened step, and what a trainer does to
 * recompute a state it did not keep. Returns the next state and the step's loss.
 */
export async function runTrainingStep(
  arch: GptArchitecture,
  hyper: LocalHyperParams,
  state: TrainingState,
  samples: readonly Uint8Array[],
  step: number,
  backend: TrainingBackend = "wasm",
): Promise<{ state: TrainingState; loss: number }> {
  await useTrainingBackend(backend);
  const tfState = uploadTrainingState(state);
  const tokens = batchTensor(samples, hyper.sampleBytes);
  try {
    const loss = await adamwStep(arch, hyper, tfState, tokens, step);
    return { state: await downloadTrainingState(arch, tfState), loss };
  } finally {
    tokens.dispose();
    disposeTrainingState(tfState);
  }
}

/** Run H local AdamW steps; see the module doc. */
export async function trainLocal(options: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const backend = await useTrainingBackend(options.backend ?? "wasm");
  const hyper: LocalHyperParams = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...options.hyper };
  const { arch, shard, seed } = options;
  const names = gptWeightShapes(arch).map(([n]) => n);
  const state = uploadTrainingState(startTrainingState(options.start));
  const losses: number[] = [];
  const sampleIds: string[] = [];
  const record = options.record;
  const stateHashes: string[] = [];
  const keptStates = new Map<number, TrainingState>();
  const keep = async (k: number) => {
    if (!record) return;
    const s = await downloadTrainingState(arch, state);
    stateHashes.push(trainingStateHash(arch, s));
    if (k % record.keepEvery === 0 || k === options.steps) keptStates.set(k, s);
  };
  try {
    await keep(0);
    for (let step = 0; step < options.steps; step++) {
      if (options.between) {
        await options.between();
        await useTrainingBackend(backend); // what ran meanwhile may have selected another
      }
      const { tokens, ids } = stepBatch(shard, hyper, seed, step);
      sampleIds.push(...ids);
      try {
        losses.push(await adamwStep(arch, hyper, state, tokens, step));
      } finally {
        tokens.dispose();
      }
      options.onStep?.(step, losses[step]);
      await keep(step + 1);
    }
    const pseudoGradient: GptWeights = new Map();
    for (const n of names) {
      const start = options.start.get(n)!;
      const end = await state.params[n].data() as Float32Array;
      const d = new Float32Array(end.length);
      for (let i = 0; i < d.length; i++) d[i] = start.data[i] - end[i];
      pseudoGradient.set(n, { shape: start.shape, data: d });
    }
    return {
      pseudoGradient,
      losses,
      sampleIds,
      hyper,
      backend,
      ...(record ? { stateHashes, keptStates } : {}),
    };
  } finally {
    disposeTrainingState(state);
  }
}

/** Mean loss (nats per byte) of `weights` over the first `maxSamples` samples of `shard`. */
export async function evaluateLoss(
  arch: GptArchitecture,
  weights: GptWeights,
  shard: TextShard,
  options: { sampleBytes: number; maxSamples: number; batchSize?: number },
): Promise<number> {
  const count = Math.min(sampleCount(shard, options.sampleBytes), options.maxSamples);
  const batch = options.batchSize ?? 16;
  const w = toTfWeights(weights, false);
  let total = 0;
  try {
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const flat = new Int32Array(n * options.sampleBytes);
      for (let j = 0; j < n; j++) {
        flat.set(sampleAt(shard, options.sampleBytes, start + j).bytes, j * options.sampleBytes);
      }
      const tokens = tf.tensor2d(flat, [n, options.sampleBytes], "int32");
      const loss = gptLoss(arch, w, tokens);
      total += (await loss.data())[0] * n;
      tf.dispose([tokens, loss]);
    }
  } finally {
    tf.dispose(Object.values(w));
  }
  return total / count;
}
