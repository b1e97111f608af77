/**
 * The InferenceActor's counters kept outside it (`InferenceActorOptions.counters`, review s71
 * finding 2): handed the same object at every restart, the totals count on; the gauges (jobs
 * running, queued) are each incarnation's, and a job the crash cancelled is counted cancelled,
 * not left started and never ended.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorEvent } from "../../actors/events.ts";
import {
  emptyInferenceCounters,
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
  submitJob,
} from "../../actors/inference_actor.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

let nonce = 0;
function job(model: string): TextJob {
  return {
    kind: "text",
    model,
    prompt: "x",
    params: params({ maxTokens: 2 }),
    nonce: `s71-${++nonce}`,
  };
}

Deno.test("InferenceActor: counters handed to every incarnation count on across a restart; the running and queued gauges start afresh", async () => {
  const free = new ScriptedModel({ name: "free" });
  const model = new ScriptedModel({ name: "gated", gated: true });
  const counters = emptyInferenceCounters();
  const system = new ActorSystem({ name: "review-s71-counters" });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  const ref: ActorRef<InferenceMessage> = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([free, model]),
        concurrency: 1,
        queueLimit: 4,
        counters,
      }),
  });
  try {
    // One job to its end, then one running and one queued when the actor crashes.
    const first = await submitJob(ref, job(free.info.cid));
    await first.tokens.pipeTo(new WritableStream());
    await first.done;
    await submitJob(ref, job(model.info.cid)); // runs, held by the gated model
    await submitJob(ref, job(model.info.cid)); // waits
    const before = await ref.ask<InferenceStats>({ type: "stats" });
    assert.equal(before.activeJobs, 1);
    assert.equal(before.queuedJobs, 1);
    await ref.tell(null as never);
    await eventually(() => events.some((e) => e.type === "restarted"), "the restart");

    const after = await ref.ask<InferenceStats>({ type: "stats" });
    // Failed before the fix (no `counters` option): every counter back at 0.
    assert.ok(before.tokensGenerated > 0);
    assert.equal(after.jobsStarted, 2);
    assert.equal(after.jobsFinished, 1);
    assert.equal(after.tokensGenerated, before.tokensGenerated);
    // The two jobs the restart cancelled end here, once.
    assert.equal(after.jobsCancelled, 2);
    // Gauges are the new incarnation's: nothing runs or waits in it.
    assert.equal(after.activeJobs, 0);
    assert.equal(after.queuedJobs, 0);
  } finally {
    model.release(1e6);
    await system.shutdown();
  }
});
