/**
 * The model worker pool's supervision and lanes, through the public `TextModel`: a worker that
 * dies is replaced and health says so; one that keeps dying is given up on; a validator's
 * forward pass never queues ahead of a generation step.
 */
import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import {
  crashModelWorker,
  FAULTY_WORKER_URL,
  faultyWorkerUrl,
  holdModelSteps,
  releaseModelSteps,
} from "./_worker_faults.ts";
import { SupervisionClock } from "./_supervision_clock.ts";
import { eventually } from "../_helpers/wait.ts";
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import type { ModelHealth, ModelWorkerEvent } from "../../inference/model_health.ts";
import { ModelDisposedError, ModelWorkerError } from "../../inference/errors.ts";
import { poolSizing, webgpuPoolClamp } from "../../inference/_model_worker_pool.ts";

const { model: inThread, dir, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);

const PROMPT = inThread.tokenizer.encode("Once upon a time");
const GREEDY = params({ maxTokens: 24 });
const expected = (await collect(inThread.generate(PROMPT, GREEDY))).map((c) => c.tokenId);

/** A worker-mode model whose workers can be crashed, recording its supervision events. */
async function crashable(options: TextModelOptions = {}) {
  const events: ModelWorkerEvent[] = [];
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0 },
    onWorkerEvent: (event) => events.push(event),
    ...options,
  });
  return { model, events, [Symbol.asyncDispose]: () => model.dispose() };
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

  await eventually(() => events.some((e) => e.type === "restarted"), "the restart");
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
  await eventually(() => during !== undefined, "the crash");
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
  await eventually(() => cancelled !== undefined, "the crash");
  await cancelled;
  await eventually(async () => (await pool.model.workerStats())[0].sequences === 0, "no cache");
  // The step that waited was never posted: cancelled before any worker held its cache.
  assert.equal((await pool.model.workerStats())[0].runs, 0);
});

/** The file-driven faults' folder (one for the file: one worker module to load and check). */
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-worker-flags-" });
Deno.test.afterAll(() => Deno.remove(FLAGS, { recursive: true }));

/** A crashable model whose next replacement holds its load until crashed or disposed. */
async function withHeldReplacement() {
  const flags = FLAGS;
  await Deno.remove(`${flags}/load-held`).catch(() => {});
  const pool = await crashable({ workerUrl: faultyWorkerUrl(flags) });
  const running = pool.model.generate(PROMPT, params({ maxTokens: 1000 }));
  const reader = running.getReader();
  await reader.read(); // its cache lives in worker 0
  reader.releaseLock();
  await Deno.writeTextFile(`${flags}/hold-load`, "");
  crashModelWorker(0);
  assert.ok(await failureOf(running) instanceof ModelWorkerError);
  await eventually(() => Deno.statSync(`${flags}/load-held`), "the replacement loading");
  return {
    model: pool.model,
    events: pool.events,
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
  await eventually(async () => (await model.workerStats())[0].sequences === 0, "no cache left");
});

Deno.test("dispose while a crashed worker's replacement loads fails the generation waiting for it (ModelDisposedError), not leaves it pending", async () => {
  const held = await withHeldReplacement();
  const before = held.model.runCount;
  const waiting = held.model.generate(PROMPT, GREEDY).getReader().read();
  waiting.catch(() => {}); // awaited below
  await eventually(() => held.model.runCount > before, "its first step waiting for a worker");
  await held[Symbol.asyncDispose]();
  await assert.rejects(waiting, ModelDisposedError);
});

Deno.test("a worker that keeps dying is given up past the restart limit: health says failed and jobs fail saying what to do", async () => {
  await using pool = await crashable({ restart: { maxRestarts: 1, backoffInitialMs: 0 } });
  const { model, events } = pool;
  crashModelWorker(0);
  await eventually(() => events.some((e) => e.type === "restarted"), "the first restart");
  crashModelWorker(0);
  await eventually(() => events.some((e) => e.type === "gave_up"), "giving up");
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
  await eventually(() => events.some((e) => e.type === "restarted"), "the restart");
  const health = model.health();
  assert.equal(health.status, "ok");
  assert.equal(health.restarts, 1);
  assert.match(health.workers[0].lastError ?? "", /stalled/);
  assert.deepEqual(events.map((e) => e.type), ["crashed", "restarted"]);
  const again = await collect(model.generate(PROMPT, GREEDY));
  assert.deepEqual(again.map((c) => c.tokenId), expected);
});
