/**
 * The private message protocol between a model and its workers (worker execution mode), and
 * the codec that carries typed errors across the boundary.
 *
 * Every request carries an `id` and gets exactly one reply with that `id`: its result,
 * or a serialized error that the main side turns back into an instance of the same class with
 * the same `code` and fields (`ContextLengthError.tokens`, …). A worker handles one request at
 * a time, in arrival order except that queued `forward` passes wait for the other requests
 * (`_model_worker.ts`), so a `drop` sent after a `step` of the same sequence is applied after
 * that step.
 *
 * A generation `step` answers only the sampled token and its fingerprint (a few numbers), plus
 * the k most likely tokens when a request asks (O(k)): the worker samples and fingerprints the
 * logits row itself, so no row crosses the boundary per token. Large payloads travel as transferred buffers, never copied by the structured clone: the
 * model bytes once at load, a `forward` pass's full logits on the way back, tensor inputs and
 * outputs.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import { VeriflowError } from "../protocols/errors.ts";
import type { TensorData } from "../protocols/job.ts";
import type { DecoderShape, SampledStep, StepSampling } from "./_decoder_session.ts";
import type { BatchStats } from "./_batch_decoder.ts";
import type { ExecutionProvider, SessionOptions } from "./_session.ts";
import type { PreparedTensor } from "./_tensor_data.ts";
import * as inferenceErrors from "./errors.ts";

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** What a worker reports after creating its session. */
export interface LoadedSession {
  /** The provider the session actually runs on. */
  executionProvider: ExecutionProvider;
  /** Why the provider asked for is not the one running (`CreatedSession.fallbackReason`). */
  fallbackReason?: string;
  /** Graph input names. */
  inputNames: string[];
  /** Graph output names. */
  outputNames: string[];
  /** Graph input metadata (names, types, shapes). */
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  /** Graph output metadata. */
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

/** A worker's counters, for tests and diagnostics. */
export interface WorkerStats {
  /** Model executions so far (steps, forward passes and tensor runs). */
  runs: number;
  /** Open sequences (KV caches held). */
  sequences: number;
  /** Requests received. */
  requests: number;
  /** Messages received (a message carries one request or several, `_batched_post.ts`). */
  messages: number;
  /** Its batcher's counters (decoder models only). */
  batch?: BatchStats;
}

/** Each request operation: its arguments and its result. */
export interface WorkerOps {
  /** Create the session from model bytes (`decoder` set for text models). */
  load: {
    args: { bytes: Uint8Array; session: SessionOptions; decoder?: DecoderShape };
    result: LoadedSession;
  };
  /**
   * Feed tokens to sequence `seq` (created on its first step) and sample position
   * `sampling.position` from the last logits row: the token and the row's fingerprint (and its
   * `topLogprobs` most likely tokens, when asked), not the row.
   */
  step: {
    args: {
      seq: number;
      tokens: number[];
      sampling: StepSampling;
      topLogprobs?: number;
      /**
       * Steps the caller promises after this one, each feeding back the token before it: the
       * worker may compute them before they are asked for (`_batch_decoder.ts`).
       */
      ahead?: number;
    };
    result: SampledStep;
  };
  /** Teacher-forced full pass: all rows of logits. */
  forward: { args: { tokens: number[] }; result: Float32Array };
  /** One-shot run of a tensor model. */
  run: { args: { feeds: Record<string, PreparedTensor> }; result: Record<string, TensorData> };
  /** Counters. */
  stats: { args: Record<never, never>; result: WorkerStats };
  /**
   * Forget sequence `seq` and its cache. Answered like any request, though nobody needs its
   * result: the pool's stall watch waits for the reply, so a worker hung in a step it computes
   * ahead of a caller who has gone (`_batch_decoder.ts`) is found out, not left holding a seat.
   */
  drop: { args: { seq: number }; result: void };
  /** Release the session (the main side terminates the worker afterwards). */
  dispose: { args: Record<never, never>; result: void };
}

/** An operation name. */
export type WorkerOp = keyof WorkerOps;

/** A message from the main side to a worker. */
export type WorkerRequest = {
  [K in WorkerOp]: { op: K; id: number } & WorkerOps[K]["args"];
}[WorkerOp];

/** A worker's answer to request `id`. */
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError };

// ---------------------------------------------------------------------------------------------
// Errors across the boundary
// ---------------------------------------------------------------------------------------------

/** An error as it crosses the boundary. */
export interface SerializedError {
  /** Class name (`ContextLengthError`, `TypeError`, …). */
  name: string;
  /** Message. */
  message: string;
  /** The worker-side stack, kept for debugging. */
  stack?: string;
  /** Own data fields (`code`, `tokens`, …): primitives only. */
  fields: Record<string, string | number | boolean | null>;
  /** The cause, when it is an error too. */
  cause?: SerializedError;
}

/** Causes deeper than this are dropped: a cycle must not make serialization loop. */
const MAX_CAUSE_DEPTH = 4;

type ErrorClass = new (...args: never[]) => Error;

/** The classes an error can be rebuilt as, by name: every typed inference error, and builtins. */
const ERROR_CLASSES: ReadonlyMap<string, ErrorClass> = new Map<string, ErrorClass>([
  ...Object.entries(inferenceErrors).filter(([, value]) =>
    typeof value === "function" && value.prototype instanceof Error
  ) as [string, ErrorClass][],
  ["VeriflowError", VeriflowError],
  ["RangeError", RangeError],
  ["TypeError", TypeError],
  ["Error", Error],
]);

/** Turn anything thrown into its boundary form. */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    return { name: "Error", message: String(error), fields: {} };
  }
  const fields: SerializedError["fields"] = {};
  for (const [key, value] of Object.entries(error)) {
    if (key === "message" || key === "stack" || key === "cause") continue;
    if (value === null || ["string", "number", "boolean"].includes(typeof value)) {
      fields[key] = value;
    }
  }
  const cause = error.cause !== undefined && depth < MAX_CAUSE_DEPTH
    ? serializeError(error.cause, depth + 1)
    : undefined;
  return { name: error.name, message: error.message, stack: error.stack, fields, cause };
}

/**
 * Rebuild an error on the main side as an instance of its original class (plain `Error` for an
 * unknown one), with its fields, without running the class's constructor: a constructor's
 * parameters (`ContextLengthError(tokens, contextLength)`) are not the error's fields, while
 * the fields are what callers read.
 */
export function deserializeError(serialized: SerializedError): Error {
  const ctor = ERROR_CLASSES.get(serialized.name) ?? Error;
  const options = serialized.cause ? { cause: deserializeError(serialized.cause) } : undefined;
  const error: Error = Reflect.construct(Error, [serialized.message, options], ctor);
  for (const [key, value] of Object.entries(serialized.fields)) {
    Object.defineProperty(error, key, { value, writable: true, enumerable: true });
  }
  if (serialized.name !== error.name) {
    Object.defineProperty(error, "name", { value: serialized.name, writable: true });
  }
  if (serialized.stack) error.stack = serialized.stack;
  return error;
}
