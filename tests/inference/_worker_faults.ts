/**
 * Fault injection into model workers, for supervision and life-cycle tests: load a model with
 * `workerUrl: FAULTY_WORKER_URL` (the real worker plus hooks, `_faulty_model_worker.ts`), then
 * {@link crashModelWorker} makes one of its workers die of an uncaught error, as a crash in
 * onnxruntime or an out-of-memory would, and {@link holdModelSteps} keeps generation steps
 * waiting (jobs stay running) until {@link releaseModelSteps}.
 *
 * @module
 */

/** The broadcast channel the hooks listen on. */
export const FAULTS_CHANNEL = "veriflow-test-model-worker-faults";

/** A fault, as broadcast to the workers. */
export type WorkerFault =
  | { type: "crash"; worker: string }
  | { type: "hold" }
  | { type: "release" };

/** The worker entry with the hooks, as a `workerUrl`. */
export const FAULTY_WORKER_URL: string = new URL("./_faulty_model_worker.ts", import.meta.url)
  .href;

function broadcast(fault: WorkerFault): void {
  const channel = new BroadcastChannel(FAULTS_CHANNEL);
  channel.postMessage(fault);
  channel.close();
}

/**
 * A {@link FAULTY_WORKER_URL} whose workers also take file-driven faults in `dir`: write
 * `dir/hold-load` and the next worker to load (a replacement) holds its load, unanswered, and
 * writes `dir/load-held` (see `_faulty_model_worker.ts`).
 */
export function faultyWorkerUrl(dir: string): string {
  return `${FAULTY_WORKER_URL}?flags=${encodeURIComponent(dir)}`;
}

/** Crash worker `index` of every pool started with {@link FAULTY_WORKER_URL}. */
export function crashModelWorker(index: number): void {
  broadcast({ type: "crash", worker: `veriflow-model-worker-${index}` });
}

/** From now on, every faulty worker keeps the generation steps it receives. */
export function holdModelSteps(): void {
  broadcast({ type: "hold" });
}

/** Let the held steps (and later ones) run. */
export function releaseModelSteps(): void {
  broadcast({ type: "release" });
}
