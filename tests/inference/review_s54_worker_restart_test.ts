/**
 * Review s54: the worker pool's supervision of a replacement worker. A replacement whose load
 * never ends (a thread stuck in onnxruntime while it creates the session) must be taken for hung
 * like a running worker that stops answering, or every generation waiting for it waits for ever.
 */
import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { crashModelWorker, faultyWorkerUrl } from "./_worker_faults.ts";
import { eventually } from "../_helpers/wait.ts";
import { SupervisionClock } from "./_supervision_clock.ts";
import { TextModel } from "../../inference/text_model.ts";
import type { ModelWorkerEvent } from "../../inference/model_health.ts";
import { ModelWorkerError } from "../../inference/errors.ts";

const { model: inThread, dir, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-s54-worker-flags-" });
Deno.test.afterAll(() => Deno.remove(FLAGS, { recursive: true }));

const PROMPT = inThread.tokenizer.encode("Once upon a time");
const GREEDY = params({ maxTokens: 12 });
/** The stall watch's limit, on its clock (it looks every quarter of it, in real time). */
const STALL_MS = 1_000;
const expected = (await collect(inThread.generate(PROMPT, GREEDY))).map((c) => c.tokenId);

Deno.test("a replacement worker whose load never ends is taken for hung after stallMs: the generation waiting for it runs on the next replacement", async () => {
  const events: ModelWorkerEvent[] = [];
  // The stall watch's clock, moved on by hand: the hung load is given up once it has gone
  // unanswered for stallMs on it (or 4 × the first load's time on it: 0, the clock stood still),
  // whatever the load of the machine, and without waiting that long in real time.
  const clock = new SupervisionClock();
  const began = performance.now();
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: faultyWorkerUrl(FLAGS),
    restart: { backoffInitialMs: 0, stallMs: STALL_MS },
    onWorkerEvent: (event) => events.push(event),
    supervisionClock: clock.now,
  });
  // The replacements load in real time: a machine slow enough to stretch the first load
  // stretches theirs, so the waits below grow with it (a CI run under load timed out at 60 s).
  const slow = { timeoutMs: 60_000 + 10 * (performance.now() - began) };
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
    await eventually(() => Deno.statSync(`${FLAGS}/load-held`), "the replacement loading", slow);
    // Opened while the only worker's replacement hangs in its load: its first step waits.
    const during = collect(model.generate(PROMPT, GREEDY));
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
    assert.deepEqual((await during).map((c) => c.tokenId), expected);
    assert.deepEqual(events.map((e) => e.type), ["crashed", "crashed", "restarted"]);
    assert.match(events[1].message, /stalled/);
    assert.equal(model.health().status, "ok");
  } finally {
    await model.dispose();
  }
});
