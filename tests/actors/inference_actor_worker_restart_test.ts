/**
 * The InferenceActor's queue while a model worker restarts (`actors/inference_actor.ts` on
 * `inference/text_model.ts` `batchCapacity` and `onCapacityChange`): jobs beyond the running
 * workers' seats wait in the queue, told their place, and start the moment the worker is back, on
 * it, without waiting for a running job to end.
 *
 * Review s72, finding 3: the actor admitted by seats that counted the restarting worker, so all
 * four jobs started at once, all on the surviving worker of two seats; two of them stood still
 * after their first token for another job's whole generation, and the restarted worker idled.
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
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../../protocols/job.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  crashModelWorker,
  faultyWorkerUrl,
  holdModelSteps,
  releaseModelSteps,
} from "../inference/_worker_faults.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-s72-restart-queue-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: `${dir}/tiny` });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

/** The file-driven faults' folder: `hold-load` keeps the next replacement loading. */
const FLAGS = `${dir}/flags`;
await Deno.mkdir(FLAGS);

/** Seats of each of the two workers. */
const SEATS = 2;

const TOKENS = 12;

/** Read a job's stream to its end; its token ids. */
async function tokensOf(handle: TextJobHandle): Promise<number[]> {
  const ids: number[] = [];
  for await (const chunk of handle.tokens) ids.push(chunk.tokenId);
  return ids;
}

Deno.test("jobs submitted while a model worker restarts wait in the queue beyond the running seats, and start on the worker as soon as it is back, before any running job ends", async () => {
  const events: string[] = [];
  const model = await TextModel.load(`${dir}/tiny`, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 2,
    maxBatch: SEATS,
    workerUrl: faultyWorkerUrl(FLAGS),
    restart: { backoffInitialMs: 0 },
    onWorkerEvent: (event) => events.push(event.type),
  });
  const system = new ActorSystem({ name: "s72-restart-queue" });
  try {
    const jobs: TextJob[] = ["Hello", "The quick", "1 2 3", "abc"].map((prompt, i) => ({
      kind: "text",
      model: model.info.cid,
      prompt,
      params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: TOKENS, temperature: 0, stop: [] },
      nonce: `s72-restart-${i}`,
    }));
    const alone: number[][] = [];
    for (const job of jobs) {
      const ids: number[] = [];
      for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
        ids.push(c.tokenId);
      }
      alone.push(ids);
    }
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new StaticModels([model]), concurrency: 4 }),
    });

    // Worker 1 keeps the steps it gets: the jobs it runs do not end while the test looks (told
    // before the crash, on the same channel, so it holds them by the time the replacement loads).
    holdModelSteps();
    // Worker 0 crashes; its replacement stays loading until the test crashes it too.
    await Deno.writeTextFile(`${FLAGS}/hold-load`, "");
    crashModelWorker(0);
    await eventually(() => Deno.statSync(`${FLAGS}/load-held`), "worker 0's replacement loading");

    const places: number[][] = jobs.map(() => []);
    const handles: TextJobHandle[] = [];
    for (const [i, job] of jobs.entries()) {
      handles.push(await submitJob(ref, job, { onQueued: (p) => places[i].push(p) }));
    }
    // Worker 1 seats two; the other two wait in the queue, told their place.
    assert.deepEqual(places, [[], [], [1], [2]]);

    crashModelWorker(0); // the held replacement dies loading; the next one loads
    await eventually(() => events.includes("restarted"), "worker 0's restart");
    // Worker 1's jobs are held, so none ended: the restart alone started the queued two.
    await eventually(
      () => places[2].at(-1) === 0 && places[3].at(-1) === 0,
      "the queued jobs started",
    );
    const started = await ref.ask<InferenceStats>({ type: "stats" });
    assert.deepEqual([started.activeJobs, started.queuedJobs, started.jobsFinished], [4, 0, 0]);
    // They run on the restarted worker while worker 1 still holds its steps.
    assert.deepEqual(await Promise.all(handles.slice(2).map(tokensOf)), alone.slice(2));

    releaseModelSteps();
    assert.deepEqual(await Promise.all(handles.slice(0, 2).map(tokensOf)), alone.slice(0, 2));
    const stats = await model.batchStats();
    assert.ok(
      stats.every((s) => s.maxBatch <= SEATS),
      `no worker past its seats: ${stats.map((s) => s.maxBatch)}`,
    );
  } finally {
    releaseModelSteps();
    await system.shutdown();
    await model.dispose();
  }
});
