/**
 * Where a text model computes: this thread's session behind a batcher ({@link inThreadEngine}),
 * or a pool of model workers ({@link workerEngine}), both behind one {@link TextEngine}
 * interface, with the KV cache of each generation as a {@link TextSequence}. Used by `TextModel`
 * (`text_model.ts`), which picks one at load (`worker: true` or not) and by the generation stream
 * (`_generation_stream.ts`), which steps a sequence. Not part of the public API.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import {
  DecoderSession,
  type DecoderShape,
  type SampledStep,
  type StepSampling,
} from "./_decoder_session.ts";
import {
  BatchedDecoder,
  type BatchStats,
  idlePrefillPieceFor,
  prefillGroupTokensFor,
} from "./_batch_decoder.ts";
import { ModelWorkerPool, poolSizing } from "./_model_worker_pool.ts";
import { IN_THREAD_HEALTH, type ModelHealth } from "./model_health.ts";
import { createSession, type ExecutionProvider, type SessionOptions } from "./_session.ts";
import type { ModelWorkerStats, TextModelOptions } from "./text_model.ts";

/** A generation's KV cache, wherever the session runs. */
export interface TextSequence {
  /**
   * Feed `tokens` after the cached ones; the token sampled under `sampling` from the logits row
   * of the last of them, that row's fingerprint and, with `topLogprobs` > 0, its most likely
   * tokens (the row stays where it was computed).
   */
  step(
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs: number,
    ahead: number,
  ): Promise<SampledStep>;
  /** Free the cache (after any step already running). */
  close(): void;
}

/** Where the model computes: this thread's session, or a pool of workers. */
export interface TextEngine {
  sequence(): TextSequence;
  batchStats(): Promise<BatchStats[]>;
  forward(tokens: readonly number[]): Promise<Float32Array>;
  stats(): Promise<ModelWorkerStats[]>;
  health(): ModelHealth;
  dispose(): Promise<void>;
}

/** What an engine reports once its session exists. */
export interface LoadedEngine {
  engine: TextEngine;
  executionProvider: ExecutionProvider;
  fallbackReason?: string;
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** The graph's declared types and shapes, checked against `config.json` at load. */
  inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
}

/** The session on this thread, its concurrent generations batched (`BatchedDecoder`). */
export async function inThreadEngine(
  bytes: Uint8Array,
  shape: DecoderShape,
  options?: SessionOptions,
) {
  const { session, executionProvider, fallbackReason } = await createSession(bytes, options);
  const decoder = new DecoderSession(session, shape);
  // Concurrent generations share each execution (continuous batching), as in a worker.
  const batched = new BatchedDecoder(decoder, {
    maxBatch: options?.maxBatch,
    prefillTokensPerTick: options?.prefillTokensPerTick,
    prefillGroupTokens: prefillGroupTokensFor(executionProvider),
    prefillIdlePieceTokens: idlePrefillPieceFor(executionProvider),
  });
  const engine: TextEngine = {
    sequence: () => batched.sequence(),
    batchStats: () => Promise.resolve([batched.stats()]),
    forward: (tokens) => decoder.forward(tokens),
    stats: () => Promise.resolve([]),
    health: () => structuredClone(IN_THREAD_HEALTH),
    dispose: () => {
      batched.dispose();
      return session.release();
    },
  };
  return {
    engine,
    executionProvider,
    fallbackReason,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
  } satisfies LoadedEngine;
}

/**
 * Sessions in a pool of model workers (`ModelWorkerPool`), sized by `poolSizing`; `model` is what
 * a load timeout's error calls the model.
 */
export async function workerEngine(
  bytes: Uint8Array,
  shape: DecoderShape,
  options: TextModelOptions,
  model?: string,
) {
  const { pool, loaded } = await ModelWorkerPool.start(bytes, {
    ...poolSizing(options),
    decoder: shape,
    restart: options.restart,
    loadTimeoutMs: options.loadTimeoutMs,
    signal: options.loadSignal,
    model,
    onEvent: options.onWorkerEvent,
    workerUrl: options.workerUrl,
    supervisionClock: options.supervisionClock,
    pauseClock: options.pauseClock,
  });
  const engine: TextEngine = {
    sequence: () => pool.openSequence(),
    batchStats: async () => (await pool.stats()).flatMap((s) => s.batch ? [s.batch] : []),
    forward: (tokens) => pool.forward(tokens),
    stats: () => pool.stats(),
    health: () => pool.health(),
    dispose: () => pool.dispose(),
  };
  return {
    engine,
    executionProvider: loaded.executionProvider,
    fallbackReason: loaded.fallbackReason,
    inputNames: loaded.inputNames,
    outputNames: loaded.outputNames,
    inputMetadata: loaded.inputMetadata,
    outputMetadata: loaded.outputMetadata,
  } satisfies LoadedEngine;
}
