/**
 * Fault injection into model workers, for supervision tests: load a model with
 * `workerUrl: CRASHING_WORKER_URL` (the real worker plus a hook, `_crashing_model_worker.ts`),
 * then {@link crashModelWorker} makes one of its workers die of an uncaught error, as a crash in
 * onnxruntime or an out-of-memory would.
 *
 * @module
 */

/** The broadcast channel the hook listens on. */
export const CRASH_CHANNEL = "veriflow-test-model-worker-crash";

/** The worker entry with the hook, as a `workerUrl`. */
export const CRASHING_WORKER_URL: string = new URL("./_crashing_model_worker.ts", import.meta.url)
  .href;

/** Crash worker `index` of every pool started with {@link CRASHING_WORKER_URL}. */
export function crashModelWorker(index: number): void {
  const channel = new BroadcastChannel(CRASH_CHANNEL);
  channel.postMessage(`veriflow-model-worker-${index}`);
  channel.close();
}
