/**
 * A model's first load in its workers (`ModelWorkerPool.start`, through `TextModel.load`) is
 * watched: while it goes on a `loading` event says so every 30 s, and past `loadTimeoutMs` the
 * workers still loading are terminated and the load rejects with `ModelLoadTimeoutError` naming
 * the model and the setting. Before, only a replacement's load was watched, and a first load hung
 * in onnxruntime held `TextModel.load` (and a node's start) for ever without a word.
 *
 * The hung load is a stand-in worker that never answers its load (`hold-load`,
 * `_faulty_model_worker.ts`); the watch reads a supervision clock the test moves by hand, so
 * nothing waits 30 s or the limit in real time. Every `Worker` the pool creates is recorded
 * (`globalThis.Worker` wrapped for the test), which is what pins "terminated": Deno's sanitizers
 * do not notice a worker left running.
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { ModelLoadError, ModelLoadTimeoutError } from "../../inference/errors.ts";
import { LOAD_PROGRESS_MS, type ModelWorkerEvent } from "../../inference/model_health.ts";
import { crashModelWorker, disarmFaults, faultyWorkerUrl } from "./_worker_faults.ts";
import { SupervisionClock } from "./_supervision_clock.ts";
import { eventually } from "../_helpers/wait.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-load-timeout-model-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-load-timeout-flags-" });

Deno.test.afterAll(async () => {
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(FLAGS, { recursive: true });
});

/** `Worker`, recording each one created and whether it was terminated. */
class RecordedWorker extends Worker {
  static created: RecordedWorker[] = [];
  terminated = false;

  constructor(url: string | URL, options?: WorkerOptions) {
    super(url, options);
    RecordedWorker.created.push(this);
  }

  override terminate(): void {
    this.terminated = true;
    super.terminate();
  }
}

/** The limit under test (on the supervision clock): past the first progress line. */
const LOAD_TIMEOUT_MS = 120_000;

/**
 * `TextModel.load` in one worker whose load is held unanswered, watched on `clock`; resolves
 * once the worker has taken the load (and holds it). `restart.stallMs` only makes the watch look
 * every 250 ms of real time (a quarter of the shorter limit): nothing here is restarted.
 */
async function heldLoad(clock: SupervisionClock, loadTimeoutMs: number, loadSignal?: AbortSignal) {
  await disarmFaults(FLAGS);
  await Deno.writeTextFile(`${FLAGS}/hold-load`, "");
  const events: ModelWorkerEvent[] = [];
  let settled = false;
  const loading = TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: faultyWorkerUrl(FLAGS),
    restart: { stallMs: 1_000 },
    loadTimeoutMs,
    ...(loadSignal ? { loadSignal } : {}),
    onWorkerEvent: (event) => events.push(event),
    supervisionClock: clock.now,
  }).finally(() => settled = true);
  loading.catch(() => {}); // awaited by the test
  await eventually(() => Deno.statSync(`${FLAGS}/load-held`), "the worker holding its load", {
    timeoutMs: 120_000,
  });
  return { loading, events, settled: () => settled };
}

Deno.test("a first load that never answers says every 30 s that it is still loading, then past loadTimeoutMs fails naming the model and the setting, its worker terminated", async () => {
  const clock = new SupervisionClock();
  const realWorker = globalThis.Worker;
  RecordedWorker.created = [];
  globalThis.Worker = RecordedWorker;
  const { loading, events, settled } = await heldLoad(clock, LOAD_TIMEOUT_MS)
    .finally(() => globalThis.Worker = realWorker);
  clock.pass(LOAD_PROGRESS_MS);
  await eventually(() => events.length > 0, "the first progress event");
  assert.equal(events[0].type, "loading");
  assert.equal(events[0].worker, 0);
  assert.match(
    events[0].message,
    /^still loading after 30 s \(0 of 1 model workers loaded; waiting on 0\); gives up at 120 s \(model\.loadTimeoutMs 120000\)$/,
  );
  assert.equal(settled(), false, "given up before its limit");
  clock.pass(LOAD_TIMEOUT_MS - LOAD_PROGRESS_MS);
  // Awaited with a guard: a load never given up would otherwise hold the test for ever.
  await eventually(settled, "the load given up");
  const error = await loading.then(
    () => assert.fail("the hung load resolved"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ModelLoadTimeoutError, String(error));
  // The same code as any load failure: a node refuses the model (or does not start) on it.
  assert.ok(error instanceof ModelLoadError);
  assert.equal(error.code, "model_load_failed");
  assert.equal(error.timeoutMs, LOAD_TIMEOUT_MS);
  assert.ok(error.message.includes(`(${dir})`), error.message);
  assert.match(error.message, /did not load within 120 s \(model\.loadTimeoutMs 120000\)/);
  assert.match(error.message, /model worker\(s\) 0 of 1 never answered in 120 s; terminated/);
  assert.match(error.message, /raise model\.loadTimeoutMs \(--model-load-timeout MS/);
  // One progress line, none after the limit.
  assert.deepEqual(events.map((e) => e.type), ["loading"]);
  // The pool's one worker, hung in its load, is gone with the load (no thread left listening).
  assert.deepEqual(RecordedWorker.created.map((w) => w.terminated), [true]);
});

Deno.test("with loadTimeoutMs 0 a first load is never given up: past the default limit it is still said to be loading", async () => {
  const clock = new SupervisionClock();
  const { loading, events, settled } = await heldLoad(clock, 0);
  // Past the default ten minutes: a timeout would be found at the same look as the progress.
  clock.pass(11 * 60_000);
  await eventually(() => events.length > 0, "a progress event");
  assert.match(
    events[0].message,
    /^still loading after 660 s .*; never given up \(model\.loadTimeoutMs 0\)$/,
  );
  assert.equal(settled(), false);
  // Ended the way a crash while loading ends it: the load fails and the pool is disposed.
  crashModelWorker(0);
  await assert.rejects(loading, (error: unknown) => !(error instanceof ModelLoadTimeoutError));
});

Deno.test("a first load that never answers is given up at once when its loadSignal aborts: the signal's reason, its worker terminated, the clock never moved", async () => {
  const clock = new SupervisionClock();
  const stop = new AbortController();
  const realWorker = globalThis.Worker;
  RecordedWorker.created = [];
  globalThis.Worker = RecordedWorker;
  const { loading, events, settled } = await heldLoad(clock, LOAD_TIMEOUT_MS, stop.signal)
    .finally(() => globalThis.Worker = realWorker);
  assert.equal(settled(), false);
  const reason = new DOMException("start-up interrupted", "AbortError");
  stop.abort(reason);
  // No clock advance: before, the load waited out loadTimeoutMs (the guard's 10 s here).
  await eventually(settled, "the load given up on abort", { timeoutMs: 10_000 });
  const error = await loading.then(
    () => assert.fail("the hung load resolved"),
    (error: unknown) => error,
  );
  assert.equal(error, reason);
  assert.deepEqual(events.map((e) => e.type), []);
  assert.deepEqual(RecordedWorker.created.map((w) => w.terminated), [true]);
});

Deno.test("a load whose loadSignal is already aborted starts no worker", async () => {
  const realWorker = globalThis.Worker;
  RecordedWorker.created = [];
  globalThis.Worker = RecordedWorker;
  try {
    const reason = new Error("stopped before");
    await assert.rejects(
      TextModel.load(dir, {
        worker: true,
        workerCount: 1,
        intraOpThreads: 1,
        loadSignal: AbortSignal.abort(reason),
      }),
      (error: unknown) => error === reason,
    );
  } finally {
    globalThis.Worker = realWorker;
  }
  assert.deepEqual(RecordedWorker.created, []);
});
