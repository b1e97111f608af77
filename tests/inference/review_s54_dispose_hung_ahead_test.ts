/**
 * Review s54 of a worker-mode model's disposal when its worker hangs in a step it computes ahead
 * of its caller (`_batch_decoder.ts`, "Running ahead"). The stall watch measures only while a
 * caller's request is unanswered; a worker hung in such a step, after its client went away (a
 * cancelled stream, say: a client that saw no token for a while), holds none. `dispose()` then
 * waited for its answer to the pool's own `dispose` request, which a hung worker never gives, and
 * which the watch did not count: disposing the model (the node's shutdown) waited for ever.
 */
import assert from "node:assert/strict";
import { TextModel } from "../../inference/text_model.ts";
import type { ModelWorkerEvent } from "../../inference/model_health.ts";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

const { model: inThread, dir, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);
const FLAGS = await Deno.makeTempDir({ prefix: "veriflow-s54-hung-ahead-" });
Deno.test.afterAll(() => Deno.remove(FLAGS, { recursive: true }));

const PROMPT = [72, 101, 108, 108, 111];

/**
 * A worker-mode model whose worker hangs in a step ahead, once its caller's stream is read; with
 * `cancel`, the stream is then cancelled (else its reader just stops reading).
 */
async function hangingAhead(name: string, cancel: boolean, events: ModelWorkerEvent[] = []) {
  const flag = `${FLAGS}/${name}`;
  const url = new URL("./_review_s54_hung_ahead_worker.ts", import.meta.url);
  url.searchParams.set("flag", flag);
  const model = await TextModel.load(dir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
    workerUrl: url.href,
    restart: { backoffInitialMs: 0, stallMs: 500 },
    onWorkerEvent: (event) => events.push(event),
  });
  const reader = model.generate(PROMPT, params({ maxTokens: 100 })).getReader();
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
    const expected = (await collect(inThread.generate(PROMPT, greedy))).map((c) => c.tokenId);
    assert.deepEqual(
      (await collect(model.generate(PROMPT, greedy))).map((c) => c.tokenId),
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
