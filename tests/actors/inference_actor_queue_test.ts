/**
 * How the InferenceActor admits, seats, queues and cancels jobs over a real batching model
 * (`actors/inference_actor.ts`, `actors/inference_job.ts` on `inference/text_model.ts`): jobs
 * beyond the model's batch seats wait in the actor's queue, told their place; cancelled jobs free
 * their place at once; the per-peer share is counted per peer key; and the gauges an operator reads
 * (queued jobs, the prover's active jobs) stay true across cancels and restarts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
  submitJob,
  type TextJobHandle,
} from "../../actors/inference_actor.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import {
  DEFAULT_GENERATION_PARAMS,
  type GenerationParams,
  jobId,
  type TextJob,
} from "../../protocols/job.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import type { ProverHook } from "../../actors/inference_models.ts";
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  crashModelWorker,
  FAULTY_WORKER_URL,
  holdModelSteps,
  releaseModelSteps,
} from "../inference/_worker_faults.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { INFERENCE_PROTOCOL, SubmitMessage } from "../../protocols/inference_messages.ts";
import { servePeer } from "../../network/peer_services.ts";
import { DEFAULT_MAX_JOBS_PER_PEER } from "../../inference/serve_inference.ts";
import type { ActorEvent } from "../../actors/events.ts";
import {
  type ProveHandle,
  ProverActor,
  type ProverMessage,
  type ProverStats,
} from "../../actors/prover_actor.ts";
import { scriptedChunks, scriptedJob } from "./_prover_fixtures.ts";
import { SETTLE_GUARD_MS, settlesWithin } from "./_helpers.ts";

// -------------------------------------------------------------------------------------------------
// The InferenceActor over a real model with fewer batch seats than its `concurrency`
// (`actors/inference_actor.ts` on `inference/text_model.ts`): a model whose batch seats one
// sequence (`maxBatch` 1, as a graph without `attention_mask` or `position_ids` always does)
// under the default concurrency of 4. A job started beyond the seats had its prompt read and its
// first token sent, then stood still for the whole of another job's generation (the batcher keeps
// a seat with the sequence holding it), long enough for a requester's stall timeout to give it up.
// Jobs beyond the seats now wait in the actor's queue, before their first token, told their place.

const dir = await Deno.makeTempDir({ prefix: "veriflow-seats-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

const TOKENS = 24;

for (const worker of [false, true]) {
  Deno.test(`with one batch seat and concurrency 4, no job's stream stands still mid-way for another's: the others wait before their first token (${worker ? "one model worker" : "in-thread"})`, async () => {
    const model = await TextModel.load(dir, {
      intraOpThreads: 1,
      maxBatch: 1,
      worker,
      workerCount: 1,
    });
    const system = new ActorSystem({ name: "seats" });
    try {
      assert.equal(model.batchCapacity, 1);
      const ref = await system.spawn<InferenceMessage>({
        name: "inference",
        factory: () => new InferenceActor({ models: new StaticModels([model]), concurrency: 4 }),
      });
      const jobs: TextJob[] = ["Hello", "The quick", "1 2 3"].map((prompt, i) => ({
        kind: "text",
        model: model.info.cid,
        prompt,
        params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: TOKENS, temperature: 0, stop: [] },
        nonce: `seats-${worker}-${i}`,
      }));
      const places: number[][] = jobs.map(() => []);
      const handles: TextJobHandle[] = [];
      for (const [i, job] of jobs.entries()) {
        handles.push(await submitJob(ref, job, { onQueued: (p) => places[i].push(p) }));
      }
      // Every token as it reaches its reader, in one order for all the jobs.
      const order: number[] = [];
      await Promise.all(handles.map(async (handle, i) => {
        for await (const chunk of handle.tokens as AsyncIterable<StreamedToken>) {
          assert.ok(chunk.tokenId >= 0);
          order.push(i);
        }
      }));
      assert.equal(order.length, jobs.length * TOKENS);
      // The longest a job stood still once streaming: the others' tokens between two of its own.
      const longestStill = jobs.map((_, i) => {
        let longest = 0;
        let last = -1;
        for (const [at, job] of order.entries()) {
          if (job !== i) continue;
          if (last >= 0) longest = Math.max(longest, at - last - 1);
          last = at;
        }
        return longest;
      });
      assert.deepEqual(
        longestStill,
        [0, 0, 0],
        `others' tokens inside each stream: ${longestStill}`,
      );
      // The two beyond the seat were told their places, then started (0) in the order they came.
      assert.deepEqual(places, [[], [1, 0], [2, 1, 0]]);
    } finally {
      await system.shutdown();
      await model.dispose();
    }
  });
}

// -------------------------------------------------------------------------------------------------
// The InferenceActor over a real batching model (`actors/inference_actor.ts`,
// `actors/inference_job.ts` on `inference/text_model.ts`): more jobs than the batch seats queue,
// start first come first served as seats free, a job cancelled mid-batch frees its seat for the
// next one, and every job that ends streams what it streams alone, with a receipt that a validator
// recomputing it alone accepts. When a model worker is given up on, its seats go with it: jobs
// beyond the seats left wait in the actor's queue, where they can be seen and cancelled, not inside
// the surviving worker's batch for another job to end.

const prover = Identity.generate();
const validator = Identity.generate();

const batchDir = await Deno.makeTempDir({ prefix: "veriflow-review-s50-queue-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: batchDir });
Deno.test.afterAll(() => Deno.remove(batchDir, { recursive: true }));

for (const worker of [false, true]) {
  Deno.test(`jobs beyond a real model's batch seats queue FIFO, a cancel mid-batch frees its seat, and each job streams as alone with a receipt that validates alone (${worker ? "one model worker" : "in-thread"})`, async () => {
    await checkQueue(
      await TextModel.load(batchDir, { intraOpThreads: 1, maxBatch: 2, worker, workerCount: 1 }),
    );
  });
}

async function checkQueue(model: TextModel): Promise<void> {
  const system = new ActorSystem({ name: "review-s50-queue" });
  try {
    assert.equal(model.batchCapacity, 2);
    const jobs: TextJob[] = Array.from({ length: 9 }, (_, i) => ({
      kind: "text",
      model: model.info.cid,
      prompt: ["a", "Hello world", "The quick brown fox", "1 2 3"][i % 4].repeat(1 + (i % 3)),
      params: {
        ...DEFAULT_GENERATION_PARAMS,
        maxTokens: 6 + ((i * 7) % 17),
        temperature: i % 3 === 0 ? 0 : 0.9,
        seed: 50 + i,
        stop: [],
      },
      nonce: `s50-queue-${i}`,
    }));
    const CANCELLED = 1;
    const CANCEL_AFTER = 3;
    // Each job alone, on the same model (a batch of one).
    const alone: number[][] = [];
    for (const job of jobs) {
      const ids: number[] = [];
      for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
        ids.push(c.tokenId);
      }
      alone.push(ids);
    }

    const proofs = new Map<string, ProvedJob>();
    const hook: ProverHook = async (job, jobId, chunks) => {
      const run = await proveJob(job, chunks, prover);
      proofs.set(jobId, run);
      return run.receipt;
    };
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () =>
        new InferenceActor({ models: new StaticModels([model]), concurrency: 1, prover: hook }),
    });
    const started: number[] = [];
    const handles: TextJobHandle[] = [];
    for (let i = 0; i < jobs.length; i++) {
      handles.push(
        await submitJob(ref, jobs[i], {
          onQueued: (position) => {
            if (position === 0) started.push(i);
          },
        }),
      );
    }
    const stats0 = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([stats0.activeJobs, stats0.queuedJobs], [2, 7], "two seats, seven waiting");

    const read = async (i: number): Promise<number[]> => {
      const ids: number[] = [];
      const reader = handles[i].tokens.getReader();
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        ids.push((value as StreamedToken).tokenId);
        if (i === CANCELLED && ids.length === CANCEL_AFTER) {
          await reader.cancel();
          break;
        }
      }
      return ids;
    };
    const got = await Promise.all(handles.map((_, i) => read(i)));
    const summaries = await Promise.all(handles.map((h) => h.done));

    // Queued jobs got their seats in the order they came.
    assert.deepEqual(started, [2, 3, 4, 5, 6, 7, 8]);
    for (let i = 0; i < jobs.length; i++) {
      if (i === CANCELLED) {
        assert.deepEqual(got[i], alone[i].slice(0, CANCEL_AFTER));
        assert.equal(summaries[i].finishReason, "cancelled");
        continue;
      }
      assert.deepEqual(got[i], alone[i], `job ${i}`);
      assert.equal(summaries[i].finishReason, "length", `job ${i}`);
      const run = proofs.get(handles[i].jobId)!;
      assert.deepEqual(summaries[i].receipt, run.receipt);
      const result = await validateReceipt(
        { job: jobs[i], receipt: run.receipt, proof: run.proof },
        model,
        validator,
      );
      assert.equal(result.verdict.outcome, "valid", `job ${i}: ${result.verdict.reason}`);
    }
    const end = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual(
      [end.activeJobs, end.queuedJobs, end.jobsFinished, end.jobsCancelled],
      [0, 0, 8, 1],
    );
    const [batch] = await model.batchStats();
    assert.equal(batch.maxBatch, 2, "two jobs at a time shared each step");
  } finally {
    await system.shutdown();
    await model.dispose();
  }
}

/**
 * The model on two workers of two seats each that can be crashed (`crashModelWorker`) and are
 * given up on at their first crash; `events` has the pool's worker events.
 */
async function twoFaultyWorkers(): Promise<{ model: TextModel; events: string[] }> {
  const events: string[] = [];
  const model = await TextModel.load(batchDir, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 2,
    maxBatch: 2,
    workerUrl: FAULTY_WORKER_URL,
    restart: { maxRestarts: 0 },
    onWorkerEvent: (event) => events.push(event.type),
  });
  return { model, events };
}

Deno.test("after a model worker is given up on, jobs beyond the seats left wait in the actor's queue, not inside the surviving worker's batch", async () => {
  const { model, events } = await twoFaultyWorkers();
  const system = new ActorSystem({ name: "review-s50-gave-up" });
  try {
    crashModelWorker(1);
    await eventually(() => events.includes("gave_up"), "worker 1 given up on");
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new StaticModels([model]), concurrency: 1 }),
    });
    const handles: TextJobHandle[] = [];
    for (let i = 0; i < 4; i++) {
      handles.push(
        await submitJob(ref, {
          kind: "text",
          model: model.info.cid,
          prompt: `job ${i}`,
          params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8, seed: i, stop: [] },
          nonce: `s50-gave-up-${i}`,
        }),
      );
    }
    const now = await ref.ask<InferenceStats>({ type: "stats" });
    // Worker 0 seats two: the other two wait where a router and their requesters can see them.
    assert.deepEqual([now.activeJobs, now.queuedJobs], [2, 2]);
    for (const handle of handles) {
      for await (const _ of handle.tokens) { /* read to the end */ }
    }
    const end = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([end.jobsFinished, end.activeJobs, end.queuedJobs], [4, 0, 0]);
  } finally {
    await system.shutdown();
    await model.dispose();
  }
});

Deno.test("jobs queued when a model worker is given up on start only as the seats left free up, not one for each job that worker failed", async () => {
  const { model, events } = await twoFaultyWorkers();
  const system = new ActorSystem({ name: "review-s50-gave-up-queued" });
  holdModelSteps();
  try {
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new StaticModels([model]), concurrency: 1 }),
    });
    const handles: TextJobHandle[] = [];
    for (let i = 0; i < 6; i++) {
      handles.push(
        await submitJob(ref, {
          kind: "text",
          model: model.info.cid,
          prompt: `job ${i}`,
          params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8, seed: i, stop: [] },
          nonce: `s50-gave-up-queued-${i}`,
        }),
      );
    }
    const before = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([before.activeJobs, before.queuedJobs], [4, 2], "four seats, two waiting");
    // Every requester reads; the steps are held, so the four running jobs stay running.
    const reads = handles.map(async (handle) => {
      try {
        for await (const _ of handle.tokens) { /* read to the end */ }
        return "done";
      } catch {
        return "failed";
      }
    });
    crashModelWorker(1);
    await eventually(() => events.includes("gave_up"), "worker 1 given up on");
    // Worker 1's two jobs fail; worker 0 seats two, both taken: the queued jobs keep waiting.
    const after = await eventually(async () => {
      const now = await ref.ask<InferenceStats>({ type: "stats" });
      return now.jobsFailed === 2 ? now : undefined;
    }, "worker 1's jobs failed");
    assert.deepEqual([after.activeJobs, after.queuedJobs], [2, 2]);
    releaseModelSteps();
    assert.deepEqual(
      (await Promise.all(reads)).toSorted(),
      ["done", "done", "done", "done", "failed", "failed"],
    );
    const end = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([end.jobsFinished, end.activeJobs, end.queuedJobs], [4, 0, 0]);
  } finally {
    releaseModelSteps();
    await system.shutdown();
    await model.dispose();
  }
});

// -------------------------------------------------------------------------------------------------
// How a worker admits, queues and cancels jobs.
//
// 1. A queued job cancelled (a `cancel` message, a requester gone) kept counting against the
//    queue's limit until its own `job_ended` note came back through the mailbox: a submission
//    already waiting in the mailbox behind the cancel was refused `too_many_jobs` although the
//    cancel had freed its place, and was told a place behind the cancelled job.
// 2. The per-peer share of a model's jobs (`DEFAULT_MAX_JOBS_PER_PEER`) was counted per
//    connection: a peer key may hold several connections (4 by the connection limits), so one
//    peer took 3 × 32 places and filled the default queue (4 slots + 64), refusing every other
//    peer and every local client.

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

// -------------------------------------------------------------------------------------------------
// A job's life in the node, as the operator's gauges and the client see it.
//
// 1. The prover's `active` gauge went to −1 when the prover restarted mid-job: the old job's
//    `prove_failed` (or `proved`) note reached the new incarnation, which had never counted it.
// 2. `stats().queuedJobs` (the hello's load, `veriflow_inference_queued_jobs`) still counted a
//    queued job that was cancelled until its own end note came back through the mailbox.
// 3. A job whose model's `generate` threw synchronously held its slot until its stream was next
//    read (up to the slow-reader timeout): one bad request blocked a slot, and its `done` hung.

function lifeJob(model: string, maxTokens = 2): TextJob {
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
    handles.push(await submitJob(ref, lifeJob(model.info.cid))); // runs
    const queued = lifeJob(model.info.cid);
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
    const bad = await submitJob(ref, lifeJob(refusing.info.cid));
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
