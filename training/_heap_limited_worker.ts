/**
 * A worker thread with a JS heap limit of its own, in the shape of a Web `Worker` (`onmessage`,
 * `onerror`, `postMessage`, `terminate`): what `WorkerStepRerun` (`step_rerun.ts`) starts.
 *
 * A Web Worker in Deno 2.9.6 has no heap limit of its own: one that runs out of JS heap ends the
 * whole process ("Fatal JavaScript out of memory", exit 133) before any event reaches the main
 * thread (`tmp/s78/trainfix/oom_web_worker.ts`; `deno: { memoryMb }`, denoland/deno#35766, is not
 * in 2.9.6: the option is ignored). A `node:worker_threads` worker takes `resourceLimits`
 * (denoland/deno#32430), and past `maxOldGenerationSizeMb` the runtime stops that worker alone:
 * the process goes on. Filled at its module's top level, it ends with an `error` event of code
 * `ERR_WORKER_OUT_OF_MEMORY` (`tmp/s78/trainfix/oom_node_worker.ts`: 128 MB, 1.4 s); filled inside
 * a message handler, where a re-run runs, it stops with no event at all, neither `error` nor
 * `exit` (`tmp/s78/trainfix/hog_probe3.ts`): the caller finds it by its silence. In Deno such a
 * worker is a Deno worker underneath: the module's `globalThis.onmessage` and `postMessage` are
 * the same, so the worker's module does not change.
 *
 * The limit is on the JS heap only: `ArrayBuffer`s (the decoded states' `Float32Array`s) and the
 * wasm engine's memory are outside it (a wasm heap that runs out aborts the engine: `fatal`,
 * `_step_rerun_worker.ts`).
 *
 * Not part of the public API.
 *
 * @module
 */
import { Worker as NodeWorker } from "node:worker_threads";

/** The Web `Worker` members `WorkerStepRerun` uses. */
interface WorkerShape {
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: ErrorEvent) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
  terminate(): void;
}

/** A `node:worker_threads` worker seen through {@link WorkerShape}. */
class HeapLimitedWorker implements WorkerShape {
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  readonly #worker: NodeWorker;
  #ended = false;

  constructor(url: URL, heapMb: number) {
    this.#worker = new NodeWorker(url, { resourceLimits: { maxOldGenerationSizeMb: heapMb } });
    this.#worker.on("message", (data: unknown) => {
      if (!this.#ended) this.onmessage?.(new MessageEvent("message", { data }));
    });
    this.#worker.on("error", (error: Error & { code?: string }) => {
      this.#fail(error.code === undefined ? error.message : `${error.code}: ${error.message}`);
    });
    // An exit we did not ask for (`Deno.exit` or `close()` in it) is a failure the Web Worker
    // never reported: the main thread found it only by the silence bound.
    this.#worker.on("exit", (code: number) => this.#fail(`the worker exited (code ${code})`));
  }

  postMessage(message: unknown, transfer: Transferable[] = []): void {
    this.#worker.postMessage(message, transfer as ArrayBuffer[]);
  }

  terminate(): void {
    this.#ended = true;
    // Dropped whatever its promise says: a rejection left unhandled would end the process.
    this.#worker.terminate().catch(() => {});
  }

  /** Report the worker's end once (an `error` is followed by its `exit`). */
  #fail(message: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.onerror?.(new ErrorEvent("error", { message, cancelable: true }));
  }
}

/**
 * Start the module at `url` in a worker thread whose JS heap may grow to `heapMb` MB: past it, that
 * worker stops, not the process (with an `ERR_WORKER_OUT_OF_MEMORY: …` error event, or none: see
 * the module doc).
 *
 * @param url The worker's module (it reads `globalThis.onmessage`, answers `postMessage`).
 * @param heapMb Its old-generation heap limit, in MB.
 * @returns It, as a Web `Worker` (only `onmessage`, `onerror`, `postMessage`, `terminate` work).
 */
export function startHeapLimitedWorker(url: URL, heapMb: number): Worker {
  return new HeapLimitedWorker(url, heapMb) as unknown as Worker;
}
