/**
 * Review s54: the worker pool's supervision of a replacement worker. A replacement whose load
 * never ends (a thread stuck in onnxruntime while it creates the session) must be taken for hung
 * like a running worker that stops answering, or every generation waiting for it waits for ever.
 */
import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { crashModelWorker, faultyWorkerUrl } from "./_worker_faults.ts";
import { eventually } from "../_helpers/wait.ts";
import { TextModel } from "../../inference/text_model.ts";
import type { ModelWorkerEvent } from "../../inference/model_health.ts";
import { ModelWorkerError } from "../../inference/errors.ts";

const { model: inThread, dir, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-s54-worker-flags-" });
Deno.test.afterAll(() => Deno.remove(FLAGS, { recursive: true }));

const PROMPT = inThread.tokenizer.encode("Once upon a time");
const GREEDY = params({ maxTokens: 12 });
const expected = (await collect(inThread.generate(PROMPT, GREEDY))).map((c) => c.tokenId);

Deno.test("a replacement worker whose load never ends is taken for hung after stallMs: the generation waiting for it runs on the next replacement", async () => {
  const events: ModelWorkerEvent[] = [];
  const began = performance.now();
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: faultyWorkerUrl(FLAGS),
    restart: { backoffInitialMs: 0, stallMs: 1_000 },
    onWorkerEvent: (event) => events.push(event),
  });
  // The pool gives the hung load up after stallMs or 4 × its first load's time (about this
  // load's), then loads the next replacement: a machine slow enough to stretch the first load
  // stretches both, so the waits below grow with it rather than race a fixed time (a CI run under
  // load timed out at a fixed 60 s).
  const loadMs = performance.now() - began;
  const slow = { timeoutMs: 60_000 + 10 * loadMs };
  try {
    const running = model.generate(PROMPT, params({ maxTokens: 1000 }));
    const reader = running.getReader();
    await reader.read(); // its cache lives in worker 0
    // The next worker to load (the replacement) holds its load, unanswered, for ever.
    await Deno.writeTextFile(`${FLAGS}/hold-load`, "");
    crashModelWorker(0);
    await assert.rejects(async () => {
      while (!(await reader.read()).done) { /* the chunks computed before the crash */ }
    }, ModelWorkerError);
    // Real time (the pool's stall watch reads `performance.now`): the hung load is given up after
    // stallMs or 4 × the first load's time, which a busy machine stretches past the default wait.
    await eventually(() => Deno.statSync(`${FLAGS}/load-held`), "the replacement loading", slow);
    // Opened while the only worker's replacement hangs in its load: its first step waits.
    const during = collect(model.generate(PROMPT, GREEDY));
    during.catch(() => {}); // awaited below
    await eventually(
      () => events.some((e) => e.type === "restarted"),
      "a replacement that runs (the hung one given up as stalled)",
      slow,
    );
    assert.deepEqual((await during).map((c) => c.tokenId), expected);
    assert.deepEqual(events.map((e) => e.type), ["crashed", "crashed", "restarted"]);
    assert.match(events[1].message, /stalled/);
    assert.equal(model.health().status, "ok");
  } finally {
    await model.dispose();
  }
});
