/**
 * Creates onnxruntime sessions with the execution-provider policy of the design: CUDA when it
 * is asked for and actually loads, else CPU — and always reports which one is running.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ModelLoadError } from "./errors.ts";

/** Where a model runs. */
export type ExecutionProvider = "cpu" | "cuda";

/**
 * How far onnxruntime rewrites the graph before running it (its `GraphOptimizationLevel`):
 * `"disabled"` runs the graph as written, `"all"` fuses operators (MatMul with its transposes and
 * scale, …). Fused kernels may round differently, so logits may differ in the last bits between
 * levels: one of the execution variants a calibration measures (`proof/calibrate_model.ts`).
 */
export type GraphOptimizationLevel = "disabled" | "basic" | "extended" | "all";

/** Options shared by every model loader. */
export interface SessionOptions {
  /** Preferred execution provider; `"cuda"` falls back to CPU when unavailable. Default `"cpu"`. */
  executionProvider?: ExecutionProvider;
  /**
   * Threads for intra-op parallelism on CPU. Default: onnxruntime's choice (one per core).
   * Results may differ in the last bits between thread counts; validators allow for that.
   */
  intraOpThreads?: number;
  /**
   * Let onnxruntime's idle intra-op threads spin (busy-wait) between operators instead of
   * sleeping. Default `false`: a spinning pool holds every core it was given even while it has
   * nothing to do, and a node shares those cores with its own event loop (HTTP, WebSocket,
   * peer connections, relaying, the prover). Measured on 2 cores (`deno task bench network`):
   * with spinning a relayed stream ran at 0.75–0.80 of a direct one; without, about 0.95, and a
   * single stream of the `small` model was as fast. Turning it on can help a dedicated machine
   * that does nothing but compute.
   */
  spinning?: boolean;
  /**
   * onnxruntime's graph optimization level. Default `"all"`. Honoured in-thread; the worker
   * pool (`_model_worker_pool.ts`) passes only the provider, threads and spinning on.
   */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /**
   * Text models: most generations one batched execution runs (`_batch_decoder.ts`); 1 runs each
   * alone. Default `DEFAULT_MAX_BATCH` (8). A row's logits do not depend on the other rows; a
   * batched kernel may round their last bits differently (~1e-6), inside validators' tolerances.
   */
  maxBatch?: number;
}

/** A created session and the provider it actually runs on. */
export interface CreatedSession {
  /** The session. */
  session: ort.InferenceSession;
  /** The provider in use. */
  executionProvider: ExecutionProvider;
}

/** onnxruntime log level "error": CUDA probing failures are expected and handled here. */
const LOG_SEVERITY_ERROR = 3;

/**
 * Whether onnxruntime-node ships the CUDA provider libraries on this machine. Without them a
 * CUDA session cannot load; checking first avoids onnxruntime printing a load failure on every
 * CPU-only machine. (Only linux/x64 builds ship CUDA support.)
 */
export function cudaProviderInstalled(): boolean {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return false;
  try {
    const entry = fileURLToPath(import.meta.resolve("onnxruntime-node"));
    const binDir = entry.replace(/dist[\\/]index\.js$/, "bin/napi-v6/linux/x64/");
    return existsSync(binDir + "libonnxruntime_providers_cuda.so") &&
      existsSync(binDir + "libonnxruntime_providers_shared.so");
  } catch {
    return false;
  }
}

/** Create a session over model bytes, trying CUDA first when asked for. */
export async function createSession(
  bytes: Uint8Array,
  options?: SessionOptions,
): Promise<CreatedSession> {
  const spin = options?.spinning === true ? "1" : "0";
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: options?.graphOptimizationLevel ?? "all",
    logSeverityLevel: LOG_SEVERITY_ERROR,
    // Session config entries "session.intra_op.allow_spinning" / "session.inter_op.…".
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
  if (options?.intraOpThreads !== undefined) {
    if (!Number.isSafeInteger(options.intraOpThreads) || options.intraOpThreads < 0) {
      throw new RangeError(`intraOpThreads must be a non-negative integer`);
    }
    base.intraOpNumThreads = options.intraOpThreads;
  }
  if (options?.executionProvider === "cuda" && cudaProviderInstalled()) {
    try {
      // CUDA alone (no CPU in the list): if its provider library cannot load, creation fails
      // and we know to fall back, instead of onnxruntime silently running everything on CPU.
      const session = await ort.InferenceSession.create(bytes, {
        ...base,
        executionProviders: ["cuda"],
      });
      return { session, executionProvider: "cuda" };
    } catch {
      // Not available here (no GPU, no CUDA provider library): CPU below.
    }
  }
  try {
    const session = await ort.InferenceSession.create(bytes, {
      ...base,
      executionProviders: ["cpu"],
    });
    return { session, executionProvider: "cpu" };
  } catch (cause) {
    throw new ModelLoadError(`onnxruntime cannot load the model: ${(cause as Error).message}`, {
      cause,
    });
  }
}
