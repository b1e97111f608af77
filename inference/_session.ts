/**
 * Creates onnxruntime sessions with the execution-provider policy of the design: a GPU provider
 * (`cuda` or `webgpu`) when it is asked for and actually loads, else CPU — and always reports
 * which one is running and, after a fallback, why the one asked for is not.
 *
 * `webgpu` is bundled with onnxruntime-node 1.30 on Linux, Windows and macOS
 * (`listSupportedBackends()`): it needs a GPU adapter at run time (Vulkan, Metal or D3D12),
 * which a machine without a GPU (or without the Vulkan loader) does not have, so creating the
 * session fails and the model runs on CPU. `cuda` needs provider libraries the package does not
 * download here.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ModelLoadError } from "./errors.ts";

/** Where a model runs. */
export type ExecutionProvider = "cpu" | "cuda" | "webgpu";

/** Every provider a model can be asked to run on. */
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ["cpu", "cuda", "webgpu"];

/**
 * How far onnxruntime rewrites the graph before running it (its `GraphOptimizationLevel`):
 * `"disabled"` runs the graph as written, `"all"` fuses operators (MatMul with its transposes and
 * scale, …). Fused kernels may round differently, so logits may differ in the last bits between
 * levels: one of the execution variants a calibration measures (`proof/calibrate_model.ts`).
 */
export type GraphOptimizationLevel = "disabled" | "basic" | "extended" | "all";

/** Options shared by every model loader. */
export interface SessionOptions {
  /**
   * Preferred execution provider; `"cuda"` and `"webgpu"` fall back to CPU when unavailable
   * (the reason is in {@link CreatedSession.fallbackReason}). Default `"cpu"`.
   */
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
  /**
   * Text models: most prompt tokens one step of the batch reads while its generations decode
   * (`_batch_decoder.ts`): a joining prompt is read in pieces of at most this, one per step,
   * so it delays the running streams' next token by one bounded piece. Default
   * `DEFAULT_PREFILL_TOKENS_PER_TICK` (128: about four steps of a full batch of the built-in
   * `small` model on CPU). Lower bounds the running streams' stall tighter, and brings a joining
   * stream's first token later; with nobody decoding, a prompt is read whole up to
   * `IDLE_PREFILL_PIECE` tokens (256 on CPU), a longer one in pieces of at most that.
   */
  prefillTokensPerTick?: number;
}

/** A created session and the provider it actually runs on. */
export interface CreatedSession {
  /** The session. */
  session: ort.InferenceSession;
  /** The provider in use. */
  executionProvider: ExecutionProvider;
  /** Set when the provider asked for could not be used: why, and that CPU runs instead. */
  fallbackReason?: string;
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

/** Whether this onnxruntime-node build bundles the WebGPU provider (`listSupportedBackends`). */
export function webgpuProviderBundled(): boolean {
  const list = (ort as unknown as {
    listSupportedBackends?: () => { name: string; bundled: boolean }[];
  }).listSupportedBackends;
  try {
    return list?.().some((b) => b.name === "webgpu" && b.bundled) ?? false;
  } catch {
    return false;
  }
}

/**
 * The gist of an onnxruntime error: its first line without the source location and function
 * signature onnxruntime prefixes (from "Failed …" / "Could not …" on when it says so).
 */
function reasonOf(error: unknown): string {
  const line = (error instanceof Error ? error.message : String(error)).split("\n")[0];
  const gist = line.match(/\b((?:Failed|Could not|Cannot|Unable|No )[^]*)$/)?.[1] ??
    line.replace(/^\S+\.(?:cc|cpp|h):\d+ /, "");
  return gist.slice(0, MAX_REASON_CHARS);
}

/** Longest fallback reason kept: enough for the cause, short enough for a log line. */
const MAX_REASON_CHARS = 300;

/** Create a session over model bytes, trying the GPU provider asked for first. */
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
  const requested = options?.executionProvider ?? "cpu";
  if (!EXECUTION_PROVIDERS.includes(requested)) {
    throw new RangeError(`executionProvider must be one of ${EXECUTION_PROVIDERS.join(", ")}`);
  }
  let fallbackReason: string | undefined;
  if (requested !== "cpu") {
    const present = requested === "cuda" ? cudaProviderInstalled() : webgpuProviderBundled();
    if (!present) {
      fallbackReason = requested === "cuda"
        ? "the CUDA provider libraries of onnxruntime-node are not installed"
        : "this onnxruntime-node build does not bundle the WebGPU provider";
    } else {
      try {
        // The GPU provider alone (no CPU in the list): if it cannot start, creation fails and
        // we know to fall back, instead of onnxruntime silently running everything on CPU.
        const session = await ort.InferenceSession.create(bytes, {
          ...base,
          executionProviders: [requested],
        });
        return { session, executionProvider: requested };
      } catch (error) {
        // Not available here (no GPU, no adapter, no provider library): CPU below.
        fallbackReason = reasonOf(error);
      }
    }
    fallbackReason = `${requested} unavailable, running on cpu: ${fallbackReason}`;
  }
  try {
    const session = await ort.InferenceSession.create(bytes, {
      ...base,
      executionProviders: ["cpu"],
    });
    return fallbackReason === undefined
      ? { session, executionProvider: "cpu" }
      : { session, executionProvider: "cpu", fallbackReason };
  } catch (cause) {
    throw new ModelLoadError(`onnxruntime cannot load the model: ${(cause as Error).message}`, {
      cause,
    });
  }
}
