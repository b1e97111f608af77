/**
 * A finished job whose unread tokens the worker evicted (`slow_reader`) reaches the router's
 * client as `slow_reader`, not as a broken worker (review s77 vclient, F2): the worker ends its
 * peer stream with the typed error (the edges' rule, `inference/undelivered_tokens.ts`) rather
 * than a normal `end` after fewer tokens than it made, which the router took for a broken stream
 * (`inference_stream_invalid`, a failover that booked the honest worker `broken` and ran the job
 * again). The router believes it as it believes `reader_stalled`: only when it had left the
 * job's events unread long enough for a worker to evict them; the client's job then ends with
 * it, no worker blamed. The router's timers are a fake clock: no real time is waited on.
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { MIN_SLOW_READER_UNREAD_MS } from "../../inference/_remote_job.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { InferenceStreamError } from "../../inference/remote_errors.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  JobSummary,
} from "../../inference/inference_port.ts";
import { isStartedJobError, isWorkerFault } from "../../network/_failure_codes.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { params, ScriptedModel } from "../server/_fixtures.ts";

const served = new ScriptedModel().info;
/** Tokens the job made, and those that reached the worker's stream before the eviction. */
const MADE = 25;
const KEPT = 2;

const job: TextJob = {
  kind: "text",
  model: served.cid,
  prompt: "x",
  params: params({ maxTokens: MADE }),
  nonce: "evicted",
};

/**
 * A worker's port whose every job finished (`length`, {@link MADE} tokens) and had its unread
 * tokens evicted after {@link KEPT}: its token stream fails with `slow_reader`, as the inference
 * actor's does (`actors/inference_job.ts` `evict`).
 */
function evictingPort(): InferencePort {
  return {
    submit(submitted): Promise<InferenceHandle> {
      let sent = 0;
      const summary: JobSummary = {
        jobId: jobId(submitted as TextJob),
        finishReason: "length",
        usage: { promptTokens: 1, completionTokens: MADE },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      };
      return Promise.resolve({
        jobId: summary.jobId,
        model: served,
        promptTokens: 1,
        tokens: new ReadableStream({
          pull(controller) {
            if (sent === KEPT) {
              controller.error(
                new VeriflowError("slow_reader", "the job's reader read too slowly: evicted"),
              );
              return;
            }
            controller.enqueue({ index: sent, tokenId: 97, text: "a" });
            sent++;
          },
        }, { highWaterMark: 0 }),
        done: Promise.resolve(summary),
        cancel: () => {},
      });
    },
    models: () => Promise.resolve([served]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
}

/** A router's remote port to a worker serving {@link evictingPort}, on a fake clock. */
async function withRouter(
  body: (remote: RemoteInferencePort, timers: ManualTimers) => Promise<void>,
): Promise<void> {
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [router, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(worker, evictingPort());
  const timers = new ManualTimers();
  try {
    await body(new RemoteInferencePort(router, { timers }), timers);
  } finally {
    await router.close();
    await worker.close();
  }
}

Deno.test("a worker's evicted finished job reaches a router that left it unread as slow_reader: the job's own end, no worker fault, no failover", async () => {
  await withRouter(async (remote, timers) => {
    const handle = await remote.submit(job);
    // The router's own client stopped reading: the job's events wait unread.
    await timers.advance(MIN_SLOW_READER_UNREAD_MS);
    const reader = handle.tokens.getReader();
    for (let index = 0; index < KEPT; index++) {
      assertEquals((await reader.read()).value?.index, index);
    }
    const error = await reader.read().then(() => undefined, (e) => e);
    assert(error instanceof VeriflowError, String(error));
    assertEquals(error.code, "slow_reader");
    assert(error.message.includes(`${KEPT} of its ${MADE} tokens`), error.message);
    // What a failover router decides on: the job's own end, the worker not to blame.
    assertEquals([isStartedJobError(error), isWorkerFault(error)], [true, false]);
    const summary = await handle.done;
    assertEquals(summary.error?.code, "slow_reader");
  });
});

Deno.test("a worker that says slow_reader while the router read every event at once is not believed: its stream is broken", async () => {
  await withRouter(async (remote) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    for (let index = 0; index < KEPT; index++) {
      assertEquals((await reader.read()).value?.index, index);
    }
    await assertRejects(() => reader.read(), InferenceStreamError);
  });
});
