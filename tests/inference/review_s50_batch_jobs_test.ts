/**
 * Review (s50) of continuous batching as a job sees it (`inference/text_model.ts` over
 * `_batch_decoder.ts`, in-thread and in model workers): jobs of every shape the node serves — a
 * one-token prompt, a long one read while others decode, one that runs into the context window,
 * a stop string that ends a job early, `maxTokens` 1, a job cancelled mid-batch, greedy and
 * seeded rules — run together, joining and leaving mid-decode, must each stream what they stream
 * alone, and each one's receipt must pass a validator that recomputes it alone. So must the jobs
 * of a worker whose sibling crashes mid-batch; a long job is not starved by short ones arriving
 * beyond the seats; and a worker the pool gives up on no longer counts in `batchCapacity`.
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { EmptyPromptError, ModelWorkerError } from "../../inference/errors.ts";
import { crashModelWorker, FAULTY_WORKER_URL } from "./_worker_faults.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  DEFAULT_GENERATION_PARAMS,
  type GenerationParams,
  type TextJob,
} from "../../protocols/job.ts";
import { Identity } from "../../protocols/identity.ts";
import { proveJob } from "../../proof/prover.ts";
import { validateReceipt } from "../../proof/validation.ts";

const root = await Deno.makeTempDir({ prefix: "veriflow-review-s50-batch-" });
Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));
const { dir } = await buildGptModel({ size: "tiny", seed: 0, outDir: `${root}/tiny` });
const worker = Identity.generate();
const validator = Identity.generate();

/** One job of a mixed batch. */
interface Spec {
  prompt: string;
  params: GenerationParams;
  /** Cancel the job after this many tokens (it keeps those). */
  cancelAfter?: number;
  /** Start once job `after.job` has streamed `after.tokens` tokens (else at once). */
  after?: { job: number; tokens: number };
}

function p(over: Partial<GenerationParams>): GenerationParams {
  return { ...DEFAULT_GENERATION_PARAMS, stop: [], ...over };
}

const LOREM = "Veriflow proves inference without trusting the worker. ".repeat(6);

function specs(stop: string): Spec[] {
  return [
    { prompt: "a", params: p({ maxTokens: 40, temperature: 0, seed: 1 }) },
    // A long prompt read while others decode, seeded, then runs into the context window (256).
    { prompt: LOREM.slice(0, 210), params: p({ maxTokens: 80, temperature: 0.9, seed: 2 }) },
    { prompt: "max one", params: p({ maxTokens: 1, temperature: 0.8, seed: 3 }) },
    // Ends early on its stop string (found in its own output alone).
    { prompt: "Hello world", params: p({ maxTokens: 60, temperature: 1, seed: 4, stop: [stop] }) },
    // Cancelled mid-batch.
    {
      prompt: "cancel me please",
      params: p({ maxTokens: 50, temperature: 0.7, seed: 5 }),
      cancelAfter: 6,
    },
    // Joins mid-decode, a prompt of a different length, top-k and top-p.
    {
      prompt: LOREM.slice(0, 130),
      params: p({ maxTokens: 30, temperature: 1.2, topK: 20, seed: 6 }),
      after: { job: 0, tokens: 5 },
    },
    {
      prompt: "join",
      params: p({ maxTokens: 25, temperature: 0.9, topP: 0.9, seed: 7 }),
      after: { job: 0, tokens: 12 },
    },
    // A prompt one token short of the context: one token, then the window is full.
    {
      prompt: LOREM.repeat(2).slice(0, 255),
      params: p({ maxTokens: 10, temperature: 0, seed: 8 }),
      after: { job: 1, tokens: 3 },
    },
    {
      prompt: "late greedy",
      params: p({ maxTokens: 20, temperature: 0, seed: 9 }),
      after: { job: 4, tokens: 6 },
    },
  ];
}

function jobOf(model: TextModel, spec: Spec, i: number): TextJob {
  return {
    kind: "text",
    model: model.info.cid,
    prompt: spec.prompt,
    params: spec.params,
    nonce: `s50-${i}`,
  };
}

/** Run one spec, calling `onToken` with each chunk's count as it comes. */
async function runSpec(
  model: TextModel,
  spec: Spec,
  onToken: (count: number) => void = () => {},
): Promise<TokenChunk[]> {
  const controller = new AbortController();
  const stream = model.generate(model.tokenizer.encode(spec.prompt), spec.params, {
    signal: controller.signal,
  });
  const chunks: TokenChunk[] = [];
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      onToken(chunks.length);
      if (chunks.length === spec.cancelAfter) {
        await reader.cancel();
        break;
      }
    }
  } finally {
    reader.releaseLock();
  }
  return chunks;
}

/** Every spec alone, one after the other (a batch of one). */
async function solo(model: TextModel, all: Spec[]): Promise<TokenChunk[][]> {
  const out: TokenChunk[][] = [];
  for (const spec of all) out.push(await runSpec(model, spec));
  return out;
}

/** Every spec together, the `after` ones started as their trigger job reaches its count. */
async function together(model: TextModel, all: Spec[]): Promise<TokenChunk[][]> {
  const results: Promise<TokenChunk[]>[] = new Array(all.length);
  const waiting = new Map<number, number[]>(); // trigger job → specs waiting for it
  all.forEach((spec, i) => {
    if (spec.after) waiting.set(spec.after.job, [...(waiting.get(spec.after.job) ?? []), i]);
  });
  const start = (i: number) => {
    results[i] = runSpec(model, all[i], (count) => {
      for (const j of waiting.get(i) ?? []) {
        if (all[j].after!.tokens === count) start(j);
      }
    });
  };
  all.forEach((spec, i) => {
    if (!spec.after) start(i);
  });
  // Started jobs start the others: wait until every one has started and ended.
  while (results.filter(Boolean).length < all.length || results.some((r) => r === undefined)) {
    await Promise.all(results.filter(Boolean));
  }
  return await Promise.all(results);
}

/** A stop string that occurs in the stop job's own output, early. */
async function stopString(model: TextModel): Promise<string> {
  const free = await runSpec(model, {
    prompt: "Hello world",
    params: p({ maxTokens: 60, temperature: 1, seed: 4 }),
  });
  const text = free.map((c) => c.text).join("");
  for (let at = 8; at + 2 <= text.length; at++) {
    const s = text.slice(at, at + 2);
    if (text.indexOf(s) === at && !/\uFFFD/.test(s)) return s;
  }
  throw new Error(`no stop string in ${JSON.stringify(text)}`);
}

async function checkMixedBatch(model: TextModel): Promise<void> {
  const all = specs(await stopString(model));
  assert.throws(() => model.generate([], p({})), EmptyPromptError);
  const alone = await solo(model, all);
  // The shapes the specs aim at really happened alone.
  assert.equal(alone[1].at(-1)!.finishReason, "length");
  assert.ok(alone[1].length < 80, "job 1 runs into the context window");
  assert.equal(alone[2].length, 1);
  assert.equal(alone[3].at(-1)!.finishReason, "stop");
  assert.ok(alone[3].length < 60, "job 3 ends on its stop string");
  assert.equal(alone[4].length, 6);
  assert.equal(alone[7].length, 1);
  const before = await model.batchStats();
  for (let round = 0; round < 2; round++) {
    const got = await together(model, all);
    for (let i = 0; i < all.length; i++) {
      assert.deepEqual(
        got[i].map((c) => [c.index, c.tokenId, c.text, c.finishReason]),
        alone[i].map((c) => [c.index, c.tokenId, c.text, c.finishReason]),
        `round ${round}, job ${i}`,
      );
      for (let t = 0; t < got[i].length; t++) {
        const a = got[i][t].fingerprint;
        const b = alone[i][t].fingerprint;
        const d = Math.abs(a.logProb - b.logProb) + Math.abs(a.projection - b.projection);
        assert.ok(d < 1e-4, `round ${round}, job ${i}, position ${t}: ${d}`);
      }
      if (all[i].cancelAfter !== undefined) continue;
      // The receipt of the batched run, validated by a validator that recomputes it alone.
      const job = jobOf(model, all[i], i);
      const run = await proveJob(job, ReadableStream.from(got[i]), worker);
      const result = await validateReceipt(
        { job, receipt: run.receipt, proof: run.proof },
        model,
        validator,
      );
      assert.equal(
        result.verdict.outcome,
        "valid",
        `round ${round}, job ${i}: ${result.verdict.reason}`,
      );
    }
  }
  const after = await model.batchStats();
  const largest = Math.max(...after.map((s) => s.maxBatch));
  const joins = after.reduce((a, s) => a + s.joins, 0) - before.reduce((a, s) => a + s.joins, 0);
  assert.ok(largest >= 4, `the jobs really ran together (largest batch ${largest})`);
  assert.ok(joins >= all.length, `${joins} joins`);
}

Deno.test("a mixed batch (long and short prompts, context window, stop string, maxTokens 1, a cancel, late joiners) streams each job as alone, and its receipts validate (in-thread)", async () => {
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    await checkMixedBatch(model);
  } finally {
    await model.dispose();
  }
});

Deno.test("a mixed batch streams each job as alone, and its receipts validate (one model worker)", async () => {
  const model = await TextModel.load(dir, { intraOpThreads: 1, worker: true, workerCount: 1 });
  try {
    await checkMixedBatch(model);
    // Every job's cache was freed in the worker, the cancelled one's included.
    const [stats] = await model.workerStats();
    assert.equal(stats.sequences, 0);
  } finally {
    await model.dispose();
  }
});

Deno.test("a worker that crashes mid-batch fails only its own jobs: the other worker's batch streams each job as alone, and the replacement serves the same tokens", async () => {
  const events: string[] = [];
  const model = await TextModel.load(dir, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 2,
    maxBatch: 4,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0 },
    onWorkerEvent: (event) => events.push(event.type),
  });
  const reference = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    const jobs = Array.from({ length: 6 }, (_, i) => ({
      prompt: model.tokenizer.encode(["a", "Hello world", LOREM.slice(0, 90)][i % 3]),
      params: p({ maxTokens: 120, temperature: i % 2 ? 0.9 : 0, seed: 60 + i }),
    }));
    const alone: number[][] = [];
    for (const job of jobs) {
      const ids: number[] = [];
      for await (const c of reference.generate(job.prompt, job.params)) ids.push(c.tokenId);
      alone.push(ids);
    }
    // Opened in turn, the jobs alternate between the workers (fewest sequences, ties: first).
    const readers = jobs.map((job) => model.generate(job.prompt, job.params).getReader());
    const got: number[][] = jobs.map(() => []);
    for (let i = 0; i < jobs.length; i++) {
      for (let t = 0; t < 2; t++) got[i].push((await readers[i].read()).value!.tokenId);
    }
    crashModelWorker(0);
    // Its jobs wait, unread, for the crash to land: none can finish first.
    await eventually(() => events.includes("crashed"), "worker 0's crash");
    const ends = await Promise.all(readers.map(async (reader, i) => {
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) return "done";
          got[i].push(value.tokenId);
        }
      } catch (error) {
        return error;
      }
    }));
    for (let i = 0; i < jobs.length; i++) {
      if (i % 2 === 0) {
        assert.ok(ends[i] instanceof ModelWorkerError, `job ${i} (worker 0): ${ends[i]}`);
        assert.deepEqual(got[i], alone[i].slice(0, got[i].length), `job ${i}`);
      } else {
        assert.equal(ends[i], "done", `job ${i} (worker 1)`);
        assert.deepEqual(got[i], alone[i], `job ${i}`);
      }
    }
    await eventually(() => events.includes("restarted"), "worker 0's replacement");
    const again = await Promise.all(jobs.map(async (job) => {
      const ids: number[] = [];
      for await (const c of model.generate(job.prompt, job.params)) ids.push(c.tokenId);
      return ids;
    }));
    assert.deepEqual(again, alone);
    assert.deepEqual((await model.workerStats()).map((s) => s.sequences), [0, 0]);
  } finally {
    await model.dispose();
    await reference.dispose();
  }
});

Deno.test("a long job keeps its turn while short ones keep arriving beyond the batch's seats: it ends while they still arrive, streaming what it streams alone", async () => {
  const model = await TextModel.load(dir, { intraOpThreads: 1, maxBatch: 2 });
  try {
    const long: Spec = {
      prompt: "a long one",
      params: p({ maxTokens: 60, temperature: 0.9, seed: 70 }),
    };
    const short = (i: number): Spec => ({
      prompt: `short ${i}`,
      params: p({ maxTokens: 4, temperature: i % 2 ? 0 : 0.8, seed: 71 + i }),
    });
    const ARRIVALS = 60;
    const alone = await solo(model, [
      long,
      ...Array.from({ length: ARRIVALS }, (_, i) => short(i)),
    ]);
    const ended: number[] = []; // job numbers as they end (0: the long one)
    const results: Promise<TokenChunk[]>[] = [];
    const start = (i: number) => {
      const spec = i === 0 ? long : short(i - 1);
      results.push(
        runSpec(model, spec, (count) => {
          // Each job brings another at its first token: arrivals go on for as long as jobs run.
          if (count === 1 && results.length <= ARRIVALS) start(results.length);
        }).then((chunks) => {
          ended.push(i);
          return chunks;
        }),
      );
    };
    for (let i = 0; i < 3; i++) start(i);
    while (results.length < ARRIVALS + 1) await Promise.all(results);
    const got = await Promise.all(results);
    assert.deepEqual(
      got.map((chunks) => chunks.map((c) => c.tokenId)),
      alone.map((chunks) => chunks.map((c) => c.tokenId)),
    );
    assert.ok(
      ended.indexOf(0) < ARRIVALS - 20,
      `the long job ended ${ended.indexOf(0) + 1}th of ${ended.length}: it waited for the arrivals`,
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("a model worker given up on takes its batch seats with it: batchCapacity counts only the workers that can still compute", async () => {
  const events: string[] = [];
  const model = await TextModel.load(dir, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 2,
    maxBatch: 3,
    workerUrl: FAULTY_WORKER_URL,
    // The first crash is one too many: the worker is given up on at once.
    restart: { maxRestarts: 0 },
    onWorkerEvent: (event) => events.push(event.type),
  });
  try {
    assert.equal(model.batchCapacity, 6);
    crashModelWorker(1);
    await eventually(() => events.includes("gave_up"), "worker 1 given up on");
    assert.equal(model.health().status, "degraded");
    // Every generation now goes to worker 0, whose batch seats three: a fourth job would wait
    // inside it, past its first token, for a whole job to end, while the queue said it ran.
    assert.equal(model.batchCapacity, 3);
  } finally {
    await model.dispose();
  }
});
