/**
 * The model worker pool's supervision (`inference/_model_worker_pool.ts`): a worker that dies is
 * replaced, one that keeps dying is given up on, a hung or never-loading replacement is terminated,
 * disposal does not wait on a hung worker, and threads left behind by terminated workers are
 * counted.
 */
import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import {
  crashModelWorker,
  disarmFaults,
  FAULTY_WORKER_URL,
  faultyWorkerUrl,
  holdModelSteps,
  releaseModelSteps,
  restartWait,
} from "./_worker_faults.ts";
import { SupervisionClock } from "./_supervision_clock.ts";
import { eventually } from "../_helpers/wait.ts";
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import type { ModelHealth, ModelWorkerEvent } from "../../inference/model_health.ts";
import { ModelDisposedError, ModelWorkerError } from "../../inference/errors.ts";
import { poolSizing, webgpuPoolClamp } from "../../inference/_model_worker_pool.ts";
import { Hono } from "hono";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { buildGptModel } from "../../inference/model_builder.ts";

// The model worker pool's supervision and lanes, through the public `TextModel`: a worker that dies
// is replaced and health says so; one that keeps dying is given up on; a validator's forward pass
// never queues ahead of a generation step.

const { model: inThread, dir, cleanup } = await tinyModel();

Deno.test.afterAll(cleanup);

const PROMPT = inThread.tokenizer.encode("Once upon a time");

const GREEDY = params({ maxTokens: 24 });

const expected = (await collect(inThread.generate(PROMPT, GREEDY))).map((c) => c.tokenId);

/**
 * A worker-mode model whose workers can be crashed, recording its supervision events; `wait`: the
 * guard of a wait across a restart.
 */
async function crashable(options: TextModelOptions = {}) {
  const events: ModelWorkerEvent[] = [];
  const began = performance.now();
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0 },
    onWorkerEvent: (event) => events.push(event),
    ...options,
  });
  const wait = restartWait(performance.now() - began);
  return { model, events, wait, [Symbol.asyncDispose]: () => model.dispose() };
}

/** Read `stream` until it fails; the error. */
async function failureOf(stream: ReadableStream<unknown>): Promise<unknown> {
  try {
    for await (const _ of stream) { /* keep reading */ }
  } catch (error) {
    return error;
  }
  assert.fail("the stream ended without an error");
}

Deno.test("a model worker that dies fails the generation it held, is restarted, serves again, and health reports the restart", async () => {
  await using pool = await crashable();
  const { model, events } = pool;
  assert.equal(model.health().status, "ok");

  const stream = model.generate(PROMPT, params({ maxTokens: 1000 }));
  const reader = stream.getReader();
  await reader.read(); // the sequence now lives in worker 0
  reader.releaseLock();
  crashModelWorker(0);
  const error = await failureOf(stream);
  assert.ok(error instanceof ModelWorkerError, String(error));
  assert.equal((error as ModelWorkerError).code, "model_worker_failed");

  await eventually(() => events.some((e) => e.type === "restarted"), "the restart", pool.wait);
  const health = model.health();
  assert.equal(health.status, "ok");
  assert.equal(health.restarts, 1);
  assert.equal(health.workers[0].restarts, 1);
  assert.match(health.workers[0].lastError ?? "", /injected crash/);
  assert.deepEqual(events.map((e) => e.type), ["crashed", "restarted"]);
  // The replacement holds the same model: the same tokens as ever.
  const again = await collect(model.generate(PROMPT, GREEDY));
  assert.deepEqual(again.map((c) => c.tokenId), expected);
});

Deno.test("a job submitted while its worker restarts waits for the replacement instead of failing", async () => {
  let during: Promise<number[]> | undefined;
  let healthAtCrash: ModelHealth | undefined;
  const events: ModelWorkerEvent[] = [];
  await using pool = await crashable({
    onWorkerEvent: (event) => {
      events.push(event);
      // Right after the crash, before the restart: the only worker is down.
      if (event.type === "crashed") {
        healthAtCrash = pool.model.health();
        during = collect(pool.model.generate(PROMPT, GREEDY)).then((c) => c.map((x) => x.tokenId));
      }
    },
  });
  crashModelWorker(0);
  await eventually(() => during !== undefined, "the crash", pool.wait);
  assert.equal(healthAtCrash?.status, "degraded");
  assert.equal(healthAtCrash?.workers[0].state, "restarting");
  assert.deepEqual(await during, expected);
  assert.deepEqual(events.map((e) => e.type), ["crashed", "restarted"]);
});

Deno.test("a generation cancelled while its worker restarts leaves no KV cache in the replacement", async () => {
  let cancelled: Promise<void> | undefined;
  await using pool = await crashable({
    onWorkerEvent: (event) => {
      if (event.type !== "crashed") return;
      const model = pool.model;
      const before = model.runCount;
      const reader = model.generate(PROMPT, GREEDY).getReader();
      reader.read().catch(() => {}); // its first step waits for the replacement
      cancelled = (async () => {
        // Microtasks only (the restart is a timer away): once the step is sent, cancel.
        for (let i = 0; i < 100 && model.runCount === before; i++) await Promise.resolve();
        assert.equal(model.runCount, before + 1, "the first step was sent");
        await reader.cancel();
      })();
    },
  });
  crashModelWorker(0);
  await eventually(() => cancelled !== undefined, "the crash", pool.wait);
  await cancelled;
  await eventually(
    async () => (await pool.model.workerStats())[0].sequences === 0,
    "no cache",
    pool.wait,
  );
  // The step that waited was never posted: cancelled before any worker held its cache.
  assert.equal((await pool.model.workerStats())[0].runs, 0);
});

/** The file-driven faults' folder (one for the file: one worker module to load and check). */
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-worker-flags-" });

Deno.test.afterAll(() => Deno.remove(FLAGS, { recursive: true }));

/** A crashable model whose next replacement holds its load until crashed or disposed. */
async function withHeldReplacement() {
  const flags = FLAGS;
  await disarmFaults(flags);
  const pool = await crashable({ workerUrl: faultyWorkerUrl(flags) });
  const running = pool.model.generate(PROMPT, params({ maxTokens: 1000 }));
  const reader = running.getReader();
  await reader.read(); // its cache lives in worker 0
  reader.releaseLock();
  await Deno.writeTextFile(`${flags}/hold-load`, "");
  crashModelWorker(0);
  assert.ok(await failureOf(running) instanceof ModelWorkerError);
  await eventually(() => Deno.statSync(`${flags}/load-held`), "the replacement loading", pool.wait);
  return {
    model: pool.model,
    events: pool.events,
    wait: pool.wait,
    [Symbol.asyncDispose]: () => pool.model.dispose(),
  };
}

Deno.test("a generation opened while its worker restarts survives a replacement that dies loading: it runs on the next one, token for token, and leaves no cache", async () => {
  await using held = await withHeldReplacement();
  const { model, events } = held;
  // Opened now, while the only worker is being replaced: its first step waits.
  const during = collect(model.generate(PROMPT, GREEDY));
  crashModelWorker(0); // the replacement dies while it loads
  assert.deepEqual((await during).map((c) => c.tokenId), expected);
  assert.deepEqual(events.map((e) => e.type), ["crashed", "crashed", "restarted"]);
  await eventually(
    async () => (await model.workerStats())[0].sequences === 0,
    "no cache left",
    held.wait,
  );
});

Deno.test("dispose while a crashed worker's replacement loads fails the generation waiting for it (ModelDisposedError), not leaves it pending", async () => {
  const held = await withHeldReplacement();
  const before = held.model.runCount;
  const waiting = held.model.generate(PROMPT, GREEDY).getReader().read();
  waiting.catch(() => {}); // awaited below
  await eventually(
    () => held.model.runCount > before,
    "its first step waiting for a worker",
    held.wait,
  );
  await held[Symbol.asyncDispose]();
  await assert.rejects(waiting, ModelDisposedError);
});

Deno.test("a worker that keeps dying is given up past the restart limit: health says failed and jobs fail saying what to do", async () => {
  await using pool = await crashable({ restart: { maxRestarts: 1, backoffInitialMs: 0 } });
  const { model, events } = pool;
  crashModelWorker(0);
  await eventually(
    () => events.some((e) => e.type === "restarted"),
    "the first restart",
    pool.wait,
  );
  crashModelWorker(0);
  await eventually(() => events.some((e) => e.type === "gave_up"), "giving up", pool.wait);
  const health = model.health();
  assert.equal(health.status, "failed");
  assert.equal(health.workers[0].state, "failed");
  const error = await failureOf(model.generate(PROMPT, GREEDY));
  assert.ok(error instanceof ModelWorkerError, String(error));
  assert.match(error.message, /no longer restarted/);
  assert.match(error.message, /restart the node/);
});

Deno.test("with a validation lane, forward passes run on a worker of their own and generation steps on theirs", async () => {
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    validationWorkers: 1,
    intraOpThreads: 1,
  });
  try {
    const before = await model.workerStats();
    assert.equal(before.length, 2);
    const tokens = inThread.tokenizer.encode("teacher forcing");
    await Promise.all([model.forward(tokens), collect(model.generate(PROMPT, GREEDY))]);
    const after = await model.workerStats();
    // Worker 0 (generation) ran the steps only; worker 1 (validation) the forward pass only.
    assert.equal(after[1].runs - before[1].runs, 1);
    assert.equal(after[0].runs - before[0].runs, expected.length);
    assert.deepEqual(model.health().workers.map((w) => w.lane), ["generation", "validation"]);
  } finally {
    await model.dispose();
  }
});

Deno.test("without a validation lane, a worker answers a generation step queued behind forward passes before them", async () => {
  const model = await TextModel.load(dir, { worker: true, workerCount: 1, intraOpThreads: 1 });
  try {
    const long = inThread.tokenizer.encode("x".repeat(200));
    const order: string[] = [];
    const passes = [1, 2, 3].map((n) => model.forward(long).then(() => order.push(`forward ${n}`)));
    // The first pull sends one step, posted after the three passes.
    const reader = model.generate(PROMPT, params({ maxTokens: 1 })).getReader();
    const step = reader.read().then(() => order.push("step"));
    await Promise.all([...passes, step]);
    // The worker may have started the first pass before the step arrived; never the third.
    assert.ok(order.indexOf("step") < order.indexOf("forward 3"), order.join(", "));
  } finally {
    await model.dispose();
  }
});

Deno.test("on WebGPU the pool is one worker with no validation lane, and the node is told why; other providers keep what was asked", () => {
  const asked = { workerCount: 3, validationWorkers: 1, intraOpThreads: 2 };
  const webgpu = poolSizing({ ...asked, executionProvider: "webgpu" });
  assert.equal(webgpu.workerCount, 1);
  assert.equal(webgpu.validationWorkers, 0);
  assert.match(
    webgpuPoolClamp({ ...asked, executionProvider: "webgpu" })!,
    /one model worker.*share it.*asked: 3 worker\(s\), 1 validation/,
  );
  const cpu = poolSizing({ ...asked, executionProvider: "cpu" });
  assert.equal(cpu.workerCount, 3);
  assert.equal(cpu.validationWorkers, 1);
  assert.equal(webgpuPoolClamp({ ...asked, executionProvider: "cpu" }), undefined);
  assert.equal(webgpuPoolClamp({ workerCount: 1, executionProvider: "webgpu" }), undefined);
});

Deno.test("a model worker that leaves its steps unanswered past stallMs is taken for hung: the generation fails saying so, the worker is restarted and serves again", async () => {
  // The stall watch's clock, moved on by hand once the steps are held: stalled exactly then,
  // without waiting stallMs in real time.
  const clock = new SupervisionClock();
  await using pool = await crashable({
    restart: { backoffInitialMs: 0, stallMs: 1_000 },
    supervisionClock: clock.now,
  });
  const { model, events } = pool;
  // The worker keeps every step it is sent, as one stuck in a graph that never ends would.
  holdModelSteps();
  let error: unknown;
  try {
    error = await clock.passUntil(250, failureOf(model.generate(PROMPT, GREEDY)));
  } finally {
    releaseModelSteps();
  }
  assert.ok(error instanceof ModelWorkerError, String(error));
  assert.match(error.message, /stalled: no answer to its 1 request\(s\) for \d+ s/);
  await eventually(() => events.some((e) => e.type === "restarted"), "the restart", pool.wait);
  const health = model.health();
  assert.equal(health.status, "ok");
  assert.equal(health.restarts, 1);
  assert.match(health.workers[0].lastError ?? "", /stalled/);
  assert.deepEqual(events.map((e) => e.type), ["crashed", "restarted"]);
  const again = await collect(model.generate(PROMPT, GREEDY));
  assert.deepEqual(again.map((c) => c.tokenId), expected);
});

Deno.test("a pause of the whole process (stopped, its VM or laptop asleep) longer than stallMs does not kill a healthy worker as hung: its waits start again, and a worker still silent stallMs later is", async () => {
  // Review s72 (F3): SIGSTOP for 15 s under a 10 s stall limit, and at the first look after it
  // every request looked unanswered for 15 s: the healthy worker was killed and 8 jobs failed.
  const clock = new SupervisionClock();
  let away = 0;
  await using pool = await crashable({
    restart: { backoffInitialMs: 0, stallMs: 1_000 },
    supervisionClock: clock.now,
    pauseClock: () => performance.now() + away,
  });
  const { model, events } = pool;
  holdModelSteps();
  let error: unknown;
  try {
    const failed = failureOf(model.generate(PROMPT, GREEDY));
    // Let the step be posted: a few turns of the loop (the assertion below does not race them:
    // a step posted late could only make the old code pass too, never this code fail).
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
    // The process away 10 s: both clocks jump, the next look comes long after the last.
    away += 10_000;
    clock.pass(10_000);
    error = await clock.passUntil(250, failed);
  } finally {
    releaseModelSteps();
  }
  assert.ok(error instanceof ModelWorkerError, String(error));
  // Found hung from the look after the pause, not for the pause itself (10 s).
  const seconds = Number(/for (\d+) s/.exec(error.message)?.[1]);
  assert.ok(seconds < 10, error.message);
  await eventually(() => events.some((e) => e.type === "restarted"), "the restart", pool.wait);
});

// The worker pool's supervision of a replacement worker. A replacement whose load never ends (a
// thread stuck in onnxruntime while it creates the session) must be taken for hung like a running
// worker that stops answering, or every generation waiting for it waits for ever.

const { model: inThreadRestart, dir: dirRestart, cleanup: cleanupRestart } = await tinyModel();

Deno.test.afterAll(cleanupRestart);

const FLAGS_RESTART = await Deno.makeTempDir({ prefix: "veriflow-s54-worker-flags-" });

Deno.test.afterAll(() => Deno.remove(FLAGS_RESTART, { recursive: true }));

const PROMPT_RESTART = inThreadRestart.tokenizer.encode("Once upon a time");

const GREEDY_RESTART = params({ maxTokens: 12 });

/** The stall watch's limit, on its clock (it looks every quarter of it, in real time). */
const STALL_MS = 1_000;

const expectedRestart = (await collect(inThreadRestart.generate(PROMPT_RESTART, GREEDY_RESTART)))
  .map((c) => c.tokenId);

Deno.test("a replacement worker whose load never ends is taken for hung after stallMs: the generation waiting for it runs on the next replacement", async () => {
  const events: ModelWorkerEvent[] = [];
  // The stall watch's clock, moved on by hand: the hung load is given up once it has gone
  // unanswered for stallMs on it (or 4 × the first load's time on it: 0, the clock stood still),
  // whatever the load of the machine, and without waiting that long in real time.
  const clock = new SupervisionClock();
  await disarmFaults(FLAGS_RESTART);
  const began = performance.now();
  const model = await TextModel.load(dirRestart, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: faultyWorkerUrl(FLAGS_RESTART),
    restart: { backoffInitialMs: 0, stallMs: STALL_MS },
    onWorkerEvent: (event) => events.push(event),
    supervisionClock: clock.now,
  });
  // The replacements load in real time: a machine slow enough to stretch the first load
  // stretches theirs, so the waits below grow with it (a CI run under load timed out at 60 s).
  const slow = { timeoutMs: 60_000 + 10 * (performance.now() - began) };
  try {
    const running = model.generate(PROMPT_RESTART, params({ maxTokens: 1000 }));
    const reader = running.getReader();
    await reader.read(); // its cache lives in worker 0
    // The next worker to load (the replacement) holds its load, unanswered, for ever.
    await Deno.writeTextFile(`${FLAGS_RESTART}/hold-load`, "");
    crashModelWorker(0);
    await assert.rejects(async () => {
      while (!(await reader.read()).done) { /* the chunks computed before the crash */ }
    }, ModelWorkerError);
    await eventually(
      () => Deno.statSync(`${FLAGS_RESTART}/load-held`),
      "the replacement loading",
      slow,
    );
    // Opened while the only worker's replacement hangs in its load: its first step waits.
    const during = collect(model.generate(PROMPT_RESTART, GREEDY_RESTART));
    during.catch(() => {}); // awaited below
    // Not yet given up: its load has gone unanswered for no time on the clock.
    assert.deepEqual(events.map((e) => e.type), ["crashed"]);
    // Its load (posted before it wrote load-held) now unanswered for stallMs.
    clock.pass(STALL_MS);
    await eventually(
      () => events.some((e) => e.type === "restarted"),
      "a replacement that runs (the hung one given up as stalled)",
      slow,
    );
    assert.deepEqual((await during).map((c) => c.tokenId), expectedRestart);
    assert.deepEqual(events.map((e) => e.type), ["crashed", "crashed", "restarted"]);
    assert.match(events[1].message, /stalled/);
    assert.equal(model.health().status, "ok");
  } finally {
    await model.dispose();
  }
});

// A model worker terminated as hung (past `stallMs`) may keep its thread, and that thread its core,
// until the process ends (`terminate()` does not interrupt a native call or a JavaScript loop).
// Once its replacement runs, the model's health said `ok` and `/healthz` said nothing: an operator
// whose node lost a core to a hung thread saw no sign of it. The model's health counts those
// threads, and `/healthz` lists them as a condition.

const {
  model: inThreadAbandonedThreads,
  dir: dirAbandonedThreads,
  cleanup: cleanupAbandonedThreads,
} = await tinyModel();

Deno.test.afterAll(cleanupAbandonedThreads);

const PROMPT_ABANDONED_THREADS = inThreadAbandonedThreads.tokenizer.encode("Once upon a time");

const GREEDY_ABANDONED_THREADS = params({ maxTokens: 8 });

/** A port with no jobs: `/healthz` here is about the model runtime. */
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve(emptyInferenceStats()),
};

Deno.test("a worker terminated as hung is counted as an abandoned thread once its replacement runs, the log says a restart frees its core, and /healthz lists it (a crashed worker's is not)", async () => {
  const events: ModelWorkerEvent[] = [];
  // The stall watch's clock: still through the crash, moved on by hand once the steps are held.
  const clock = new SupervisionClock();
  const began = performance.now();
  const model = await TextModel.load(dirAbandonedThreads, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0, stallMs: 1_000 },
    onWorkerEvent: (event) => events.push(event),
    supervisionClock: clock.now,
  });
  const wait = restartWait(performance.now() - began);
  const health = new Hono().route(
    "/",
    healthRoutes(
      new InferenceGateway({ inference: IDLE_PORT }),
      new MetricsRegistry(),
      () => [{ cid: "bafkmodel", name: "tiny", ...model.health() }],
    ),
  );
  const healthz = async () => {
    const response = await health.request("/healthz");
    assert.equal(response.status, 200);
    return await response.json();
  };
  try {
    // A crash: its thread is gone, nothing is abandoned.
    const crashed = model.generate(PROMPT_ABANDONED_THREADS, params({ maxTokens: 1000 }))
      .getReader();
    await crashed.read();
    crashModelWorker(0);
    await assert.rejects(async () => {
      while (!(await crashed.read()).done) { /* the chunks computed before the crash */ }
    });
    await eventually(() => events.some((e) => e.type === "restarted"), "the first restart", wait);
    assert.equal(model.health().abandonedThreads, 0);
    assert.equal((await healthz()).conditions, undefined);

    // A hang: the worker keeps its step, as one stuck in a graph that never ends would; the
    // stall watch terminates it once its clock has passed stallMs.
    holdModelSteps();
    try {
      await clock.passUntil(
        250,
        assert.rejects(
          collect(model.generate(PROMPT_ABANDONED_THREADS, GREEDY_ABANDONED_THREADS)),
          /stalled/,
        ),
      );
    } finally {
      releaseModelSteps();
    }
    await eventually(
      () => events.filter((e) => e.type === "restarted").length === 2,
      "the hung worker's replacement",
      wait,
    );
    const crashes = events.filter((e) => e.type === "crashed");
    assert.doesNotMatch(crashes[0].message, /core/);
    assert.match(crashes[1].message, /stalled.*core.*restart the node/);

    const runtime = model.health();
    assert.equal(runtime.status, "ok", "every worker runs: the model serves");
    assert.equal(runtime.abandonedThreads, 1);
    const body = await healthz();
    assert.equal(body.model_runtime[0].abandoned_threads, 1);
    assert.deepEqual(
      body.conditions?.map((c: { component: string; status: string; code: string }) => [
        c.component,
        c.status,
        c.code,
      ]),
      [["model_runtime", "degraded", "model_threads_abandoned"]],
      JSON.stringify(body),
    );
    assert.match(body.conditions[0].message, /tiny.*1 .*thread.*restart the node/);
    assert.equal(body.status, "degraded");
  } finally {
    await model.dispose();
  }
});

// A worker-mode model's disposal (`inference/_model_worker_pool.ts`). A worker that leaves its
// requests unanswered for `restart.stallMs` is taken for hung (a graph that never ends) and
// terminated. But `dispose()` stopped that watch first, then waited for each worker to answer its
// `dispose` request: a hung worker never does, so disposing the model (the node's shutdown, which
// closes its models last) waited for ever, its worker spinning. The watch now runs until the
// workers are gone: a worker hung during disposal is terminated like any other.

const dirDisposeHung = await Deno.makeTempDir({ prefix: "veriflow-review-s52-hung-" });

await buildGptModel({ size: "tiny", seed: 0, outDir: dirDisposeHung });

Deno.test.afterAll(() => Deno.remove(dirDisposeHung, { recursive: true }));

const HUNG_WORKER_URL = new URL("./_hung_worker.ts", import.meta.url).href;

/** Far beyond the stall time below: only a dispose that waits for the hung worker reaches it. */
const NEVER_MS = 20_000;

Deno.test("disposing a worker-mode model whose worker hangs in a step ends once the worker is taken for hung, instead of waiting for it for ever", async () => {
  const model = await TextModel.load(dirDisposeHung, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: HUNG_WORKER_URL,
    restart: { backoffInitialMs: 0, stallMs: 500 },
  });
  // The stream sends its first step at once (worker mode): the worker hangs on it.
  const reader = model.generate([72, 101, 108, 108, 111], params({ maxTokens: 4 })).getReader();
  const read = reader.read().then(() => undefined, (error: unknown) => error);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const never = new Promise<"waiting">((resolve) => {
    timer = setTimeout(() => resolve("waiting"), NEVER_MS);
  });
  try {
    const outcome = await Promise.race([model.dispose().then(() => "disposed" as const), never]);
    assert.equal(outcome, "disposed", "dispose() waits for the hung worker for ever");
  } finally {
    clearTimeout(timer);
  }
  // The step the worker hung on failed, as any request a hung worker held does.
  assert.ok(await read instanceof Error);
});

// A worker-mode model's disposal when its worker hangs in a step it computes ahead of its caller
// (`_batch_decoder.ts`, "Running ahead"). The stall watch measures only while a caller's request is
// unanswered; a worker hung in such a step, after its client went away (a cancelled stream, say: a
// client that saw no token for a while), holds none. `dispose()` then waited for its answer to the
// pool's own `dispose` request, which a hung worker never gives, and which the watch did not count:
// disposing the model (the node's shutdown) waited for ever.

const {
  model: inThreadDisposeHungAhead,
  dir: dirDisposeHungAhead,
  cleanup: cleanupDisposeHungAhead,
} = await tinyModel();

Deno.test.afterAll(cleanupDisposeHungAhead);

const FLAGS_DISPOSE_HUNG_AHEAD = await Deno.makeTempDir({ prefix: "veriflow-s54-hung-ahead-" });

Deno.test.afterAll(() => Deno.remove(FLAGS_DISPOSE_HUNG_AHEAD, { recursive: true }));

const PROMPT_DISPOSE_HUNG_AHEAD = [72, 101, 108, 108, 111];

/**
 * A worker-mode model whose worker hangs in a step ahead, once its caller's stream is read; with
 * `cancel`, the stream is then cancelled (else its reader just stops reading).
 */
async function hangingAhead(name: string, cancel: boolean, events: ModelWorkerEvent[] = []) {
  const flag = `${FLAGS_DISPOSE_HUNG_AHEAD}/${name}`;
  const url = new URL("./_hung_ahead_worker.ts", import.meta.url);
  url.searchParams.set("flag", flag);
  const model = await TextModel.load(dirDisposeHungAhead, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: url.href,
    restart: { backoffInitialMs: 0, stallMs: 500 },
    onWorkerEvent: (event) => events.push(event),
  });
  const reader = model.generate(PROMPT_DISPOSE_HUNG_AHEAD, params({ maxTokens: 100 })).getReader();
  assert.equal((await reader.read()).done, false); // token 0; token 1 is asked (run-ahead)
  await eventually(() => Deno.statSync(flag), "the worker hanging in a step ahead");
  // The client goes away: its stream's cache is dropped, no step of the main side waits.
  if (cancel) await reader.cancel();
  return model;
}

Deno.test("a worker hung in a step computed ahead, after its client went away, is taken for hung and replaced before a new job is placed on it", async () => {
  const events: ModelWorkerEvent[] = [];
  const model = await hangingAhead("idle", true, events);
  try {
    await eventually(
      () => events.some((e) => e.type === "restarted"),
      "the hung worker replaced (nothing waited on it but the dropped cache)",
    );
    assert.match(events[0].message, /stalled/);
    const greedy = params({ maxTokens: 8 });
    const expected =
      (await collect(inThreadDisposeHungAhead.generate(PROMPT_DISPOSE_HUNG_AHEAD, greedy))).map((
        c,
      ) => c.tokenId);
    assert.deepEqual(
      (await collect(model.generate(PROMPT_DISPOSE_HUNG_AHEAD, greedy))).map((c) => c.tokenId),
      expected,
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("disposing a worker-mode model whose worker hangs in a step computed ahead, with no request waiting, ends once the worker is taken for hung", async () => {
  // The stream's reader stops reading (no further step is asked, nothing is dropped).
  const model = await hangingAhead("dispose", false);
  let disposed = false;
  const disposal = model.dispose().then(() => disposed = true);
  await eventually(() => disposed, "dispose() to end (it waits for the hung worker for ever)");
  await disposal;
});
