/**
 * Review s64 (red team of the router's failover): a worker's word that the requester stopped
 * reading (`reader_stalled`) is believed whenever the read in progress has waited less than
 * `READER_STALL_GRACE_MS`, however steadily the router has read. An honest worker says it only
 * after its requester gave it no credit for its reader stall timeout (60 s by default): a router
 * that reads each token as it comes never earns it. A worker that starts each job and at once
 * says so ends every client's job it is picked for with an error, no other worker is asked, and
 * it stays in favour, first for the next job.
 *
 * Now the router believes the worker only when it left the job's events unread for
 * `MIN_READER_STALL_MS` over its last two credit windows of reads (`inference/_unread_time.ts`):
 * what it knows of its own of how long the worker may have gone without credit.
 * `routing_review_test.ts`'s test of a worker that says so now has its client really stop reading.
 */
import assert from "node:assert/strict";
import { MIN_READER_STALL_MS } from "../../inference/_remote_job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Honest, honestWorker, jobFor, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  events,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/** A worker that streams the job's first two tokens and then fails it with its own error. */
function dropper() {
  return scriptedWorker((body) =>
    events(
      [start(body.job), wireToken(0), wireToken(1)],
      Promise.resolve(new VeriflowError("internal_error", "gone")),
    )
  );
}

/** A worker that takes each job over (its `start` confirms the resume) and says reader_stalled. */
function falseStallingResumer() {
  return scriptedWorker((body) =>
    events(
      [start(body.job, { resumedFrom: body.resume?.length ?? 0 })],
      Promise.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
    )
  );
}

/** A worker that starts each job, streams its first `tokens` tokens, and says reader_stalled. */
function falseStaller(tokens: number) {
  return scriptedWorker((body) =>
    events(
      [start(body.job), ...Array.from({ length: tokens }, (_, i) => wireToken(i))],
      Promise.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
    )
  );
}

for (const tokens of [0, 2]) {
  // Failed before the fix: the client's stream failed with reader_stalled after `tokens` tokens
  // (text "" or "ab", honestPort.resumes []), and the worker was not kept off the model.
  Deno.test({
    name: `review s64: a worker that says the requester stopped reading after ${tokens} tokens, ` +
      `while the router read every token at once (no time passed), is lost: the job resumes on ` +
      `the honest worker, the client gets the whole text, and the liar is kept off the model`,

    fn: async () => {
      const liar = await falseStaller(tokens);
      const honestPort = new Honest();
      const honest = await honestWorker(honestPort);
      const r = await router([liar.toWorker, honest.toWorker]);
      try {
        const got = await run(r.port, jobFor(`s${tokens}`));
        assert.equal(got.failed, undefined, "the client's stream failed");
        assert.equal(got.text, TEXT);
        assert.deepEqual(honestPort.resumes, [tokens === 0 ? undefined : tokens]);
        assert.equal(got.summary.finishReason, "length");
        assert.ok(r.workers.avoided.has(liar.key), "the liar stayed in favour");
      } finally {
        await liar.close();
        await honest.close();
        await r.system.shutdown();
      }
    },
  });
}

// Failed before the fix: the client's stream failed with reader_stalled after "ab" (the honest
// worker was never asked: honestPort.resumes []), and the liar was not kept off the model.
Deno.test({
  name: "review s64: a worker that takes a job over after a lost one and at once says the " +
    "requester stopped reading (the router read every token as it came) is lost in turn: the " +
    "job resumes on the third worker, and the client gets the whole text",

  fn: async () => {
    const lost = await dropper();
    const liar = await falseStallingResumer();
    const honestPort = new Honest();
    const honest = await honestWorker(honestPort);
    const r = await router([lost.toWorker, liar.toWorker, honest.toWorker]);
    try {
      const got = await run(r.port, jobFor("r"));
      assert.equal(liar.submissions.length, 1);
      assert.equal(got.failed, undefined, "the client's stream failed");
      assert.equal(got.text, TEXT);
      assert.deepEqual(honestPort.resumes, [2]);
      assert.ok(r.workers.avoided.has(liar.key), "the liar stayed in favour");
    } finally {
      await lost.close();
      await liar.close();
      await honest.close();
      await r.system.shutdown();
    }
  },
});

/**
 * A worker that sends each job's start and every token but the last at once (its credit window
 * holds them), then, once `gaveUp` is resolved, says the requester stopped reading.
 */
async function bufferedStaller() {
  const gaveUp = Promise.withResolvers<VeriflowError>();
  const worker = await scriptedWorker((body) =>
    events(
      [start(body.job), ...Array.from({ length: TOKENS - 1 }, (_, i) => wireToken(i))],
      gaveUp.promise,
    )
  );
  return {
    worker,
    gaveUp: () =>
      gaveUp.resolve(new VeriflowError("reader_stalled", "the requester stopped reading")),
  };
}

for (const pausedMs of [60_000, MIN_READER_STALL_MS - 1]) {
  const believed = pausedMs >= MIN_READER_STALL_MS;
  Deno.test(`review s64: a worker that says the requester stopped reading after the client stopped for ${pausedMs} ms, behind events the router then reads at once, is ${believed ? "believed: the client's job ends with it, no other worker is asked, and the worker stays in favour" : "not believed: the job resumes on the honest worker, and the worker is kept off the model"}`, async () => {
    const { worker, gaveUp } = await bufferedStaller();
    const honestPort = new Honest();
    const honest = await honestWorker(honestPort);
    const r = await router([worker.toWorker, honest.toWorker]);
    try {
      const handle = await r.port.submit(jobFor(`b${pausedMs}`));
      const reader = handle.tokens.getReader();
      let text = (await reader.read()).value!.text;
      // The client stops reading; the worker's events wait in the router's buffer, and it gives
      // up on the client. Then the client reads the buffered tokens, no time passing.
      await r.timers.advance(pausedMs);
      gaveUp();
      let failed: string | undefined;
      try {
        for (let result = await reader.read(); !result.done; result = await reader.read()) {
          text += result.value.text;
        }
      } catch (error) {
        failed = (error as { code?: string }).code;
      }
      const summary = await handle.done;
      if (believed) {
        assert.equal(failed, "reader_stalled");
        assert.equal(text, TEXT.slice(0, TOKENS - 1));
        assert.equal(summary.error?.code, "reader_stalled");
        assert.deepEqual(honestPort.resumes, []);
        assert.ok(!r.workers.avoided.has(worker.key), "an honest worker was kept off the model");
      } else {
        assert.equal(failed, undefined);
        assert.equal(text, TEXT);
        assert.deepEqual(honestPort.resumes, [TOKENS - 1]);
        assert.ok(r.workers.avoided.has(worker.key), "the liar stayed in favour");
      }
    } finally {
      await worker.close();
      await honest.close();
      await r.system.shutdown();
    }
  });
}
