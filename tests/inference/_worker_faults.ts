/**
 * Fault injection into model workers, for supervision and life-cycle tests: load a model with
 * `workerUrl: FAULTY_WORKER_URL` (the real worker plus hooks, `_faulty_model_worker.ts`), then
 * {@link crashModelWorker} makes one of its workers die of an uncaught error, as a crash in
 * onnxruntime or an out-of-memory would, and {@link holdModelSteps} keeps generation steps
 * waiting (jobs stay running) until {@link releaseModelSteps}.
 *
 * @module
 */

/**
 * The liveness guard (`eventually`'s options) of a wait across a model worker's restart, given
 * how long the pool took to start (ms of real time, measured around `TextModel.load` or
 * `ModelWorkerPool.start`). A replacement is a new `Worker`: under `deno test` its module graph is
 * built and checked again at each spawn ("Check …"), then onnxruntime loads the model, so a
 * restart costs about what a start does and grows with the machine's load as a start does.
 * `eventually`'s 15 s was too short for it (stop 81: a CI run of the whole suite on a loaded
 * 2-core machine failed three restart waits; restarts measured 2–5 s here at load 14, after a
 * 40 s start), and a wait that gave up while a replacement was about to take a file-driven fault
 * left that fault for the next test's first load, which then never ended ({@link disarmFaults}).
 */
export function restartWait(startMs: number): { timeoutMs: number } {
  return { timeoutMs: 60_000 + 10 * startMs };
}

/**
 * Remove the file-driven faults from `dir` (`hold-load` and its `load-held` answer): before a
 * pool starts, so a fault a failed test left armed is never taken by a first load. A first load
 * held that way is given up only past `loadTimeoutMs` (ten minutes by default), so the test
 * would wait that long instead of failing.
 */
export async function disarmFaults(dir: string): Promise<void> {
  for (const name of ["hold-load", "load-held"]) {
    await Deno.remove(`${dir}/${name}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

/** The broadcast channels the hooks listen on: this name, then the test module's scope. */
export const FAULTS_CHANNEL = "veriflow-test-model-worker-faults";

/**
 * This test module's scope (each test module has its own copy of this module): its faults reach
 * only the workers it started. A BroadcastChannel reaches every worker of the process, and
 * `deno test --parallel` runs test modules side by side in one: one module's `crash` of
 * `veriflow-model-worker-1` killed another module's worker of that name mid-test.
 */
const SCOPE = crypto.randomUUID();

/** The channel of the workers started from `workerUrl` (its `scope` parameter). */
export function faultsChannel(scope: string | null): string {
  return `${FAULTS_CHANNEL}/${scope ?? ""}`;
}

/** A fault, as broadcast to the workers. */
export type WorkerFault =
  | { type: "crash"; worker: string }
  | { type: "hold" }
  | { type: "release" };

/** The worker entry with the hooks, as a `workerUrl`, in this test module's scope. */
export const FAULTY_WORKER_URL: string = workerUrlWith({ scope: SCOPE });

function workerUrlWith(params: Record<string, string>): string {
  const url = new URL("./_faulty_model_worker.ts", import.meta.url);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}

function broadcast(fault: WorkerFault): void {
  const channel = new BroadcastChannel(faultsChannel(SCOPE));
  channel.postMessage(fault);
  channel.close();
}

/**
 * A {@link FAULTY_WORKER_URL} whose workers also take file-driven faults in `dir`: write
 * `dir/hold-load` and the next worker to load (a replacement) holds its load, unanswered, and
 * writes `dir/load-held` (see `_faulty_model_worker.ts`).
 */
export function faultyWorkerUrl(dir: string): string {
  return workerUrlWith({ scope: SCOPE, flags: dir });
}

/** Crash worker `index` of every pool this test module started with {@link FAULTY_WORKER_URL}. */
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
