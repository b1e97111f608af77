/**
 * Review s64 (red team of the router's failover): a worker that breaks the protocol after the
 * job's last token — it sends another token where its `end` event (summary, receipt) is due —
 * is not judged. Every other broken stream (a token out of order, one past `max_tokens`, an end
 * without a last token) keeps the worker off the model (`WORKER_FAULT_CODES`); this one ends the
 * job `inference_stream_invalid` on the router's side (`RemoteJob.#awaitEnd`), nothing reaches
 * the validator, and the worker stays first for the next job, which it breaks the same way. So
 * did one that sent its last token and then nothing, its connection up (cut after
 * `END_EVENT_TIMEOUT_MS`), or closed or failed its stream there.
 *
 * Now each is a broken stream where the end was due (`RemoteJob.#brokeAfterLastToken`): the
 * client, which has every token, is told the job ended as its last token said, with no receipt
 * and the break as the summary's `error` (as a finished job whose receipt is withheld is); no
 * receipt is read, so nothing pays the worker; and the router keeps it off the model.
 */
import assert from "node:assert/strict";
import { END_EVENT_TIMEOUT_MS } from "../../inference/_remote_job.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import { jobFor, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** A worker that streams the whole job, then one more token, then its end with a receipt. */
function overrunner() {
  return scriptedWorker((body, _n, identity) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    list.push({ kind: "token", index: TOKENS, tokenId: 1, text: "!" });
    list.push(endEvent(body.job, TOKENS + 1, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
}

// Failed before the fix: "the worker that broke its stream after the last token stayed in favour"
// (the client's done said error inference_stream_invalid; nothing was paid to anyone).
Deno.test({
  name: "review s64: a worker that sends a token after the job's last one (where its end event " +
    "is due) broke its stream: the client keeps the whole text, nothing is paid, and the worker " +
    "is kept off the model like any worker whose stream broke the protocol",
  fn: async () => {
    const worker = await overrunner();
    const r = await router([worker.toWorker]);
    try {
      const got = await run(r.port, jobFor("o"));
      assert.equal(got.failed, undefined);
      assert.equal(got.text, TEXT);
      assert.equal(got.summary.receipt, undefined);
      assert.equal(got.summary.finishReason, "length", "the client was told its answer failed");
      assert.equal(got.summary.error?.code, "inference_stream_invalid");
      assert.deepEqual(r.recorder.told, [], "a receipt reached the validator");
      assert.ok(
        r.workers.avoided.has(worker.key),
        "the worker that broke its stream after the last token stayed in favour",
      );
    } finally {
      await worker.close();
      await r.system.shutdown();
    }
  },
});

/** Every token of the job on the wire, then what `after` gives (a stream left open: nothing). */
function lastTokenThen(after: "nothing" | "close" | "fail") {
  return scriptedWorker((body) => {
    const list: InferenceEvent[] = [start(body.job)];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    if (after === "close") return closedAfter(list);
    return events(
      list,
      after === "fail"
        ? Promise.resolve(new VeriflowError("internal_error", "the prover died"))
        : undefined,
    );
  });
}

/** A stream of `list`, one event per pull, then closed. */
function closedAfter(list: InferenceEvent[]): ReadableStream<InferenceEvent> {
  let i = 0;
  return new ReadableStream<InferenceEvent>({
    pull: (c) => {
      if (i < list.length) c.enqueue(list[i++]);
      else c.close();
    },
  }, { highWaterMark: 0 });
}

for (const after of ["nothing", "close", "fail"] as const) {
  // Before the fix the job ended `error` (inference_stream_invalid, or the worker's code), and
  // the worker stayed first for the next job.
  Deno.test(`review s64: a worker whose last token is followed by ${after === "nothing" ? "nothing (its connection up) for the end event's timeout" : after === "close" ? "the close of its stream, without an end event" : "an error of its own"} broke its stream: the client keeps the whole text, told it ended as its last token said, nothing is paid, and the worker is kept off the model`, async () => {
    const worker = await lastTokenThen(after);
    const r = await router([worker.toWorker]);
    try {
      const job: TextJob = jobFor(`t-${after}`);
      const handle = await r.port.submit(job);
      let text = "";
      for await (const t of handle.tokens) text += t.text;
      assert.equal(text, TEXT);
      if (after === "nothing") {
        let ended = false;
        handle.done.then(() => (ended = true));
        await r.timers.advance(END_EVENT_TIMEOUT_MS - 1);
        assert.ok(!ended, "the job ended before the end event's timeout");
        await r.timers.advance(1);
      }
      const summary = await handle.done;
      assert.equal(summary.finishReason, "length");
      assert.equal(summary.error?.code, "inference_stream_invalid");
      assert.equal(summary.receipt, undefined);
      assert.deepEqual(r.recorder.told, [], "a receipt reached the validator");
      assert.ok(r.workers.avoided.has(worker.key), "the worker stayed in favour");
    } finally {
      await worker.close();
      await r.system.shutdown();
    }
  });
}
