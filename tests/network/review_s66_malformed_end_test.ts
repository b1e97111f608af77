/**
 * Review (stop 66, helper-R): a worker that streams every token of a job and then sends an end
 * event its requester cannot read (a body the wire schema refuses: `invalid_body`) broke the
 * inference protocol where its end was due, as one that sends another event there. Its stream is
 * judged as such (`inference_stream_invalid`): kept off the model, paid nothing; the client keeps
 * its whole answer. Before the fix the refused end was taken for a lost connection (any error but
 * the worker's own `error` frame or a stream break): the job ended with `invalid_body` and the
 * worker went unjudged, free to do it on every job of the model.
 */
import assert from "node:assert/strict";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { eventually } from "../server/_fixtures.ts";
import { jobFor, TOKENS } from "./_hostile_worker_fixture.ts";
import { events, router, scriptedWorker, start, wireToken } from "./_scripted_worker_fixture.ts";

Deno.test("review s66: a worker whose end event is refused (invalid_body) after every token is judged a broken stream: kept off the model, paid nothing", async () => {
  const bad = await scriptedWorker((body) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    // An end whose summary is not a summary: the requester's wire refuses the frame.
    list.push({ kind: "end", summary: { jobId: 7 } } as unknown as InferenceEvent);
    return events(list);
  });
  const r = await router([bad.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("malformed-end"));
    let text = "";
    for await (const t of handle.tokens) text += t.text;
    const summary = await handle.done;
    assert.equal(text.length, TOKENS, "the client has its whole answer");
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.receipt, undefined);
    assert.equal(summary.error?.code, "inference_stream_invalid", "judged as a broken stream");
    assert.deepEqual(r.recorder.told.filter((m) => m.type === "receipt"), [], "paid");
    await eventually(() => r.workers.avoided.has(bad.key), "the worker kept off the model");
  } finally {
    await bad.close();
    await r.system.shutdown();
  }
});
