/**
 * Cancel storms on the InferenceActor: a client that goes away cancels its running and its
 * queued jobs in the same turn (a WebSocket's close, `StreamSession`'s `cancelAll`, in the order
 * it started them). The running job's end frees its slot before the queued jobs' ends have been
 * read from the mailbox: a queued job that has already ended must not be given the slot (a runner
 * spawned for nothing, `jobs_started_total` counting it), the next live one must.
 */
import { assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
  submitJob,
} from "../../actors/inference_actor.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

let nonce = 0;
function textJob(model: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `n${++nonce}` };
}

Deno.test("InferenceActor: a running and a queued job cancelled in the same turn, running first, leave the queued ones unstarted (no slot, not counted started) and the next job runs at once", async () => {
  const model = new ScriptedModel({ gated: true });
  const system = new ActorSystem({ name: "cancel-storm" });
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), concurrency: 1, queueLimit: 8 }),
  });
  try {
    const running = await submitJob(ref, textJob(model.info.cid, 2));
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await submitJob(ref, textJob(model.info.cid, 2)));
    const stats = () => ref.ask<InferenceStats>({ type: "stats" });
    assertEquals([(await stats()).activeJobs, (await stats()).queuedJobs], [1, 3]);

    // The client goes away: every job of it cancelled in one turn, in the order it started them.
    running.cancel();
    for (const handle of queued) handle.cancel();
    for (const handle of [running, ...queued]) {
      assertEquals((await handle.done).finishReason, "cancelled");
    }
    const honest = await submitJob(ref, textJob(model.info.cid, 2));
    model.release(2);
    let text = "";
    for await (const token of honest.tokens) text += token.text;
    assertEquals(text, "ab");
    assertEquals((await honest.done).finishReason, "length");
    const s = await stats();
    assertEquals(
      {
        started: s.jobsStarted,
        cancelled: s.jobsCancelled,
        finished: s.jobsFinished,
        active: s.activeJobs,
        queued: s.queuedJobs,
      },
      { started: 2, cancelled: 4, finished: 1, active: 0, queued: 0 },
      "only the first job and the honest one got a slot",
    );
  } finally {
    model.release(1e6);
    await system.shutdown();
  }
});
