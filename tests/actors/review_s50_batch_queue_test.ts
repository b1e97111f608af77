/**
 * Review (s50) of the InferenceActor over a real batching model (`actors/inference_actor.ts`,
 * `actors/inference_job.ts` on `inference/text_model.ts`): more jobs than the batch seats queue,
 * start first come first served as seats free, a job cancelled mid-batch frees its seat for the
 * next one, and every job that ends streams what it streams alone, with a receipt that a
 * validator recomputing it alone accepts. When a model worker is given up on, its seats go with
 * it: jobs beyond the seats left wait in the actor's queue, where they can be seen and
 * cancelled, not inside the surviving worker's batch for another job to end.
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
import type { ProverHook } from "../../actors/inference_models.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../../protocols/job.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  crashModelWorker,
  FAULTY_WORKER_URL,
  holdModelSteps,
  releaseModelSteps,
} from "../inference/_worker_faults.ts";

const prover = Identity.generate();
const validator = Identity.generate();

const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s50-queue-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

for (const worker of [false, true]) {
  Deno.test(`jobs beyond a real model's batch seats queue FIFO, a cancel mid-batch frees its seat, and each job streams as alone with a receipt that validates alone (${worker ? "one model worker" : "in-thread"})`, async () => {
    await checkQueue(
      await TextModel.load(dir, { intraOpThreads: 1, maxBatch: 2, worker, workerCount: 1 }),
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
  const model = await TextModel.load(dir, {
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
