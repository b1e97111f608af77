/**
 * Review, stop 45: how a worker admits, queues and cancels jobs.
 *
 * 1. A queued job cancelled (a `cancel` message, a requester gone) kept counting against the
 *    queue's limit until its own `job_ended` note came back through the mailbox: a submission
 *    already waiting in the mailbox behind the cancel was refused `too_many_jobs` although the
 *    cancel had freed its place, and was told a place behind the cancelled job.
 * 2. The per-peer share of a model's jobs (`DEFAULT_MAX_JOBS_PER_PEER`) was counted per
 *    connection: a peer key may hold several connections (4 by the connection limits), so one
 *    peer took 3 × 32 places and filled the default queue (4 slots + 64), refusing every other
 *    peer and every local client.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  InferenceActor,
  type InferenceMessage,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { INFERENCE_PROTOCOL, SubmitMessage } from "../../protocols/inference_messages.ts";
import { servePeer } from "../../network/peer_services.ts";
import { DEFAULT_MAX_JOBS_PER_PEER } from "../../inference/serve_inference.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";

let nonce = 0;
function textJob(model: string, maxTokens = 2): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `q${++nonce}` };
}

Deno.test("InferenceActor: a submission that reaches the actor right after a queued job's cancel takes the freed place, and is told its true place", async () => {
  const model = new ScriptedModel({ gated: true });
  const system = new ActorSystem({ name: "review-s45-queue" });
  const ref: ActorRef<InferenceMessage> = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), concurrency: 1, queueLimit: 1 }),
  });
  const handles: TextJobHandle[] = [];
  try {
    handles.push(await submitJob(ref, textJob(model.info.cid))); // runs
    const queued = textJob(model.info.cid);
    handles.push(await submitJob(ref, queued)); // waits: the queue is full
    // The cancel and the next submission are both in the mailbox before the cancelled job's
    // `job_ended` note (a peer's connection closed while another peer's job came in).
    const cancelled = ref.ask<boolean>({ type: "cancel", jobId: jobId(queued) });
    const places: number[] = [];
    const next = submitJob(ref, textJob(model.info.cid), { onQueued: (p) => places.push(p) });
    assert.equal(await cancelled, true);
    handles.push(await next); // refused too_many_jobs before the fix
    // Told 1 (again when the cancelled job's note drops it), never 2: nothing live is ahead.
    assert.deepEqual([...new Set(places)], [1], `told ${places}`);
  } finally {
    for (const handle of handles) handle.cancel();
    model.release(1e6);
    await system.shutdown();
  }
});

/** A port that accepts every job and runs none until it is cancelled. */
class HoldingPort implements InferencePort {
  accepted = 0;
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([{ cid: "bafkmodelm", name: "m", kind: "text" }]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(job: TextJob): Promise<InferenceHandle> {
    this.accepted++;
    const id = jobId(job);
    const done = Promise.withResolvers<JobSummary>();
    let closeTokens: (() => void) | undefined;
    const cancel = () => {
      closeTokens?.();
      done.resolve({
        jobId: id,
        finishReason: "cancelled",
        usage: { promptTokens: 1, completionTokens: 0 },
        timings: { queueMs: 0, ttftMs: NaN, totalMs: 0, tokensPerS: 0 },
      });
    };
    const tokens = new ReadableStream<StreamedToken>({
      start: (c) => {
        closeTokens = () => {
          try {
            c.close();
          } catch { /* already closed */ }
        };
      },
      cancel,
    }, { highWaterMark: 0 });
    return Promise.resolve({
      jobId: id,
      model: { cid: job.model, name: "m", kind: "text" },
      promptTokens: 1,
      tokens,
      done: done.promise,
      cancel,
    });
  }
}

Deno.test("serveInference: one peer key's share of jobs is counted across all its connections, not per connection", async () => {
  const system = new ActorSystem({ name: "review-s45-share" });
  const port = new HoldingPort();
  const worker = Identity.generate();
  const peer = Identity.generate();
  const open: Connection[] = [];
  const streams: ReadableStream<unknown>[] = [];
  async function connect(who: Identity): Promise<Connection> {
    const [a, b] = memoryDuplexPair();
    const [atPeer, atWorker] = await Promise.all([
      Connection.open(a, { identity: who, protocols: [INFERENCE_PROTOCOL] }),
      Connection.open(b, { identity: worker, protocols: [INFERENCE_PROTOCOL] }),
    ]);
    servePeer(atWorker, who.publicKey, { system, inference: port });
    open.push(atPeer, atWorker);
    return atPeer;
  }
  /** Submit on `c`; whether the worker accepted the job (its `start` event came). */
  async function submit(c: Connection): Promise<boolean> {
    const stream = c.openStream(SubmitMessage, { job: textJob("bafkmodelm") });
    streams.push(stream);
    const reader = stream.getReader();
    try {
      const first = await reader.read();
      return !first.done && (first.value as { kind: string }).kind === "start";
    } catch {
      return false;
    } finally {
      reader.releaseLock();
    }
  }
  try {
    const first = await connect(peer);
    const second = await connect(peer); // the same key, a second connection
    let accepted = 0;
    for (let i = 0; i < DEFAULT_MAX_JOBS_PER_PEER; i++) if (await submit(first)) accepted++;
    for (let i = 0; i < DEFAULT_MAX_JOBS_PER_PEER; i++) if (await submit(second)) accepted++;
    assert.equal(
      accepted,
      DEFAULT_MAX_JOBS_PER_PEER,
      `one peer key got ${accepted} jobs over two connections`,
    );
    // Another peer still has its own share.
    const other = await connect(Identity.generate());
    assert.equal(await submit(other), true);
    // A job ended frees the key's place on whichever connection.
    await streams[0].cancel();
    let freed = false;
    for (let i = 0; i < 20 && !freed; i++) {
      await new Promise((r) => setTimeout(r, 5)); // the cancel's frame reaches the worker
      freed = await submit(second);
    }
    assert.equal(freed, true);
  } finally {
    for (const s of streams) await s.cancel().catch(() => {});
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await system.shutdown();
  }
});
