/**
 * Review, stop 46: a job's life in the node, as the operator's gauges and the client see it.
 *
 * 1. The prover's `active` gauge went to −1 when the prover restarted mid-job: the old job's
 *    `prove_failed` (or `proved`) note reached the new incarnation, which had never counted it.
 * 2. `stats().queuedJobs` (the hello's load, `veriflow_inference_queued_jobs`) still counted a
 *    queued job that was cancelled until its own end note came back through the mailbox.
 * 3. A job whose model's `generate` threw synchronously held its slot until its stream was next
 *    read (up to the slow-reader timeout): one bad request blocked a slot, and its `done` hung.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorEvent } from "../../actors/events.ts";
import {
  type ProveHandle,
  ProverActor,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type GenerationParams, jobId, type TextJob } from "../../protocols/job.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import type { ProvedJob } from "../../proof/prover.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";
import { SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";
import { eventually } from "../_helpers/wait.ts";

let nonce = 0;
function textJob(model: string, maxTokens = 2): TextJob {
  return {
    kind: "text",
    model,
    prompt: "x",
    params: params({ maxTokens }),
    nonce: `s46-${++nonce}`,
  };
}

Deno.test("prover: a job of the incarnation before a restart never takes the active gauge below zero", async () => {
  const system = new ActorSystem({ name: "review-s46-prover-restart" });
  const events: ActorEvent[] = [];
  system.events.subscribe((event) => events.push(event));
  try {
    const prover: ActorRef<ProverMessage> = await system.spawn<ProverMessage>({
      name: "prover",
      factory: () => new ProverActor({ identity: Identity.generate() }),
    });
    // A job still generating when the prover restarts.
    let controller!: ReadableStreamDefaultController<TokenChunk>;
    const chunks = new ReadableStream<TokenChunk>({ start: (c) => void (controller = c) });
    const job = scriptedJob("old-incarnation", 4);
    const handle = await prover.ask<ProveHandle>({ type: "prove", job, jobId: jobId(job), chunks });
    // Crash it (a malformed internal note): its supervisor restarts it, counters afresh.
    await prover.tell({ type: "proved", proved: {} as ProvedJob, job, run: 0 });
    await eventually(() => events.some((e) => e.type === "restarted"), "the prover's restart");
    // The old job's stream ends (cancelled by its client): its note reaches the new incarnation.
    controller.error(new Error("cancelled"));
    await handle.receipt.catch(() => {});
    // The new incarnation proves a job of its own, to its end.
    const fresh = scriptedJob("new-incarnation", 4);
    const next = await prover.ask<ProveHandle>({
      type: "prove",
      job: fresh,
      jobId: jobId(fresh),
      chunks: scriptedChunks(3),
    });
    await next.receipt;
    const stats = await prover.ask<ProverStats>({ type: "stats" });
    assert.equal(stats.active, 0, `active ${stats.active} with nothing being proven`);
    assert.equal(stats.proven, 1);
  } finally {
    await system.shutdown();
  }
});

Deno.test("InferenceActor: a queued job cancelled is out of queuedJobs at once, not when its end note comes back", async () => {
  const model = new ScriptedModel({ gated: true });
  const system = new ActorSystem({ name: "review-s46-queued-gauge" });
  const ref: ActorRef<InferenceMessage> = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), concurrency: 1, queueLimit: 4 }),
  });
  const handles: TextJobHandle[] = [];
  try {
    handles.push(await submitJob(ref, textJob(model.info.cid))); // runs
    const queued = textJob(model.info.cid);
    handles.push(await submitJob(ref, queued)); // waits
    // A router's hello asks for the load right behind the cancel (before the end note).
    const cancelled = ref.ask<boolean>({ type: "cancel", jobId: jobId(queued) });
    const load = ref.ask<InferenceStats>({ type: "stats" });
    assert.equal(await cancelled, true);
    const stats = await load;
    assert.equal(stats.queuedJobs, 0, "a cancelled job waits for nothing");
    assert.equal(stats.activeJobs, 1);
  } finally {
    for (const handle of handles) handle.cancel();
    model.release(1e6);
    await system.shutdown();
  }
});

/** A model whose `generate` refuses synchronously (bad params the edge let through). */
class RefusingModel extends ScriptedModel {
  override generate(
    _promptIds: number[],
    _params: GenerationParams,
  ): ReadableStream<TokenChunk> {
    throw new RangeError("refused");
  }
}

Deno.test("InferenceActor: a job whose model refuses at once frees its slot without waiting for its stream to be read", async () => {
  const refusing = new RefusingModel({ name: "refusing" });
  const system = new ActorSystem({ name: "review-s46-refused" });
  const ref: ActorRef<InferenceMessage> = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([refusing]), concurrency: 1, queueLimit: 4 }),
  });
  try {
    // Nobody reads this job's stream (a client that has not pulled yet, or never will).
    const bad = await submitJob(ref, textJob(refusing.info.cid));
    const summary = await settlesWithin(bad.done, SETTLE_GUARD_MS, "the refused job's end");
    assert.equal(summary.finishReason, "error");
    const stats = await ref.ask<InferenceStats>({ type: "stats" });
    assert.equal(stats.activeJobs, 0, "the slot is free");
    assert.equal(stats.jobsFailed, 1);
    await eventually(
      () => !system.names().some((name) => name.includes("/job-")),
      "the refused job's runner to stop",
    );
    // The reader, when it comes, still learns why.
    await assert.rejects(bad.tokens.getReader().read(), RangeError);
  } finally {
    await system.shutdown();
  }
});
