/**
 * Batch invariance as a job sees it (`inference/text_model.ts` over `_batch_decoder.ts`, in-thread
 * and in model workers): jobs that join, straggle, depart and are cancelled at random moments get
 * what each gets run alone.
 */
import assert from "node:assert/strict";
import { DecoderSession, type SampledStep, sampleRow } from "../../inference/_decoder_session.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { setImmediate } from "node:timers";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { SamplingParams } from "../../inference/sampler.ts";
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

// The inference runtime under concurrency: continuous batching against each job run alone, through
// joins, departures, cancels and the context's end, and what a generation lists as its top
// logprobs.

const { model: inThread, dir, cleanup } = await tinyModel();

Deno.test.afterAll(cleanup);

Deno.test("greedy decoding that breaks an exact tie lists its chosen token first among its top logprobs, even with top_logprobs 1", () => {
  // Two ids share the row's maximum: greedy takes the one the position's race noise prefers,
  // which for seed 0 is the larger id (docs/API.md: "With greedy decoding the chosen token is
  // the first of its top list, with the same number").
  const row = new Float32Array(260).fill(-3);
  row[10] = 4;
  row[200] = 4;
  for (let seed = 0; seed < 8; seed++) {
    for (const k of [1, 2, 5]) {
      const step = sampleRow(row, { params: params({ seed }), position: 0 }, k);
      assert.equal(step.top?.length, k);
      assert.equal(step.top![0].tokenId, step.tokenId, `seed ${seed}, k ${k}`);
      assert.equal(step.top![0].logprob, step.fingerprint.logProb);
      // The other tied id is still listed when there is room, then the rest by likelihood.
      if (k > 1) assert.deepEqual(step.top!.slice(0, 2).map((t) => t.tokenId).sort(), [10, 200]);
    }
  }
});

/** Prompts of 1 to 255 tokens (the tiny model's context is 256): some end at the context. */
function prompt(length: number, stride: number): number[] {
  return Array.from({ length }, (_, i) => 97 + (i * stride) % 26);
}

const JOBS = [
  { ids: prompt(250, 3), p: params({ maxTokens: 4096 }) },
  { ids: prompt(5, 5), p: params({ maxTokens: 4096, temperature: 0.9, seed: 7 }) },
  { ids: prompt(200, 7), p: params({ maxTokens: 4096, temperature: 1.2, seed: 9, topK: 20 }) },
  { ids: prompt(255, 11), p: params({ maxTokens: 4096 }) },
  { ids: prompt(1, 1), p: params({ maxTokens: 4096, temperature: 0.8, seed: 3, topP: 0.9 }) },
  { ids: prompt(129, 17), p: params({ maxTokens: 4096, temperature: 1, seed: 7 }) },
];

async function tokensOf(stream: ReadableStream<TokenChunk>, pauseMs = 0): Promise<number[]> {
  const out: number[] = [];
  for await (const chunk of stream) {
    out.push(chunk.tokenId);
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return out;
}

Deno.test("worker-mode batched jobs joining late, straggling and running to the context's end get their solo tokens, beside cancelled neighbours, and leave no cache", async () => {
  const alone: number[][] = [];
  for (const job of JOBS) {
    alone.push((await collect(inThread.generate(job.ids, job.p))).map((c) => c.tokenId));
  }
  const model = await TextModel.load(dir, { worker: true, workerCount: 1, intraOpThreads: 1 });
  try {
    const batched = await Promise.all(JOBS.map(async (job, i) => {
      await new Promise((resolve) => setTimeout(resolve, 3 * i)); // joins at later steps
      if (i % 2 === 1) {
        // A neighbour with the same seed and prompt, aborted mid-stream.
        const abort = new AbortController();
        const doomed = model.generate(job.ids, job.p, { signal: abort.signal });
        setTimeout(() => abort.abort(), 5 + i);
        tokensOf(doomed).catch(() => {});
      }
      return await tokensOf(model.generate(job.ids, job.p), i === 2 ? 2 : 0);
    }));
    batched.forEach((tokens, i) => assert.deepEqual(tokens, alone[i], `job ${i}`));
    const [stats] = await model.workerStats();
    assert.equal(stats.sequences, 0, "every KV cache freed");
    const [batch] = await model.batchStats();
    assert.ok(batch.maxBatch > 1, JSON.stringify(batch));
  } finally {
    await model.dispose();
  }
});

// Batch invariance under random traffic (`inference/_batch_decoder.ts`, `_batch_cache.ts`):
// sequences that join at random moments, straggle, feed several tokens mid-generation (as a resumed
// job does), run ahead, and close at a step boundary or mid-step, with random batch sizes and
// prefill budgets, each get the tokens and fingerprints they get alone, in both cache conventions.
// The interleaving varies from run to run; the outcome must not.

const root = await Deno.makeTempDir({ prefix: "veriflow-review-s47-" });

Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));

const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };

async function decoderOf(kvCache: "fixed" | "concat"): Promise<DecoderSession> {
  const { dir } = await buildGptModel({
    size: "tiny",
    seed: 0,
    outDir: `${root}/${kvCache}`,
    kvCache,
  });
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Plan {
  prompt: number[];
  params: SamplingParams;
  steps: number;
  /** Extra forced tokens fed after the sampled one at step t (a resumed-style feed). */
  extra: Map<number, number[]>;
  ahead: boolean;
  waits: number[];
  closeAt: number; // -1: never
}

type Stepper = {
  step(
    t: readonly number[],
    s: { params: SamplingParams; position: number },
    k?: number,
    a?: number | boolean,
  ): Promise<SampledStep>;
};

async function run(
  seq: Stepper,
  plan: Plan,
  real: boolean,
  close?: () => void,
): Promise<SampledStep[]> {
  const out: SampledStep[] = [];
  let feed = plan.prompt;
  for (let t = 0; t < plan.steps; t++) {
    if (real && t === plan.closeAt) {
      close?.();
      return out;
    }
    let ahead = 0;
    while (plan.ahead && t + ahead + 1 < plan.steps && !plan.extra.has(t + ahead + 1)) ahead++;
    const step = await seq.step(feed, { params: plan.params, position: t }, 0, real ? ahead : 0);
    out.push(step);
    feed = [step.tokenId, ...(plan.extra.get(t + 1) ?? [])];
    if (real) {
      for (let w = 0; w < plan.waits[t]; w++) {
        if (w % 2) await new Promise((r) => setImmediate(r));
        else await new Promise((r) => setTimeout(r, 0));
      }
    }
  }
  // A generation that ends closes its sequence, freeing its seat for one waiting beyond the
  // seats (whose prompt is read only then).
  if (real) close?.();
  return out;
}

function plans(seed: number, n: number): Plan[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = r() < 0.3 ? 60 + Math.floor(r() * 100) : 1 + Math.floor(r() * 20);
    const steps = 3 + Math.floor(r() * 30);
    const extra = new Map<number, number[]>();
    let total = len + steps;
    for (let t = 1; t < steps; t++) {
      const n = 1 + Math.floor(r() * (r() < 0.3 ? 80 : 4));
      if (r() < 0.1 && total + n < 250) {
        extra.set(t, Array.from({ length: n }, () => 32 + Math.floor(r() * 90)));
        total += n;
      }
    }
    return {
      prompt: Array.from({ length: len }, () => 32 + Math.floor(r() * 90)),
      params: {
        temperature: i % 3 === 0 ? 0 : 0.9,
        topK: i % 4 === 1 ? 20 : 0,
        topP: i % 5 === 2 ? 0.9 : 1,
        seed: 7 + i,
      },
      steps,
      extra,
      ahead: r() < 0.5,
      waits: Array.from({ length: steps }, () => (r() < 0.2 ? Math.floor(r() * 6) : 0)),
      closeAt: r() < 0.15 ? Math.floor(r() * steps) : -1,
    };
  });
}

for (const kv of ["fixed", "concat"] as const) {
  Deno.test(`random joins, leaves, closes, multi-token steps and run-ahead change no sequence's tokens or fingerprints (${kv} cache)`, async () => {
    const decoder = await decoderOf(kv);
    try {
      for (let seed = 1; seed <= 8; seed++) {
        const ps = plans(seed, 12);
        const expected: SampledStep[][] = [];
        for (const p of ps) {
          const s = decoder.sequence();
          expected.push(await run(s, p, false));
          s.close();
        }
        const r = rng(seed * 31);
        const batched = new BatchedDecoder(decoder, {
          maxBatch: 1 + Math.floor(r() * 9),
          ...(r() < 0.5 ? { prefillTokensPerTick: 1 + Math.floor(r() * 40) } : {}),
          ...(r() < 0.5 ? { prefillGroupTokens: 1 + Math.floor(r() * 300) } : {}),
        });
        const got = await Promise.all(ps.map(async (p, i) => {
          for (let k = 0; k < i * 2 * r(); k++) await new Promise((res) => setTimeout(res, 0));
          const s = batched.sequence();
          if (p.closeAt >= 0 && r() < 0.5) {
            // Close at a random moment instead, possibly mid-step.
            const out: SampledStep[] = [];
            const timer = setTimeout(() => s.close(), Math.floor(r() * 30));
            try {
              await run(
                {
                  step: async (...a) => {
                    const x = await s.step(...a);
                    out.push(x);
                    return x;
                  },
                },
                { ...p, closeAt: -1 },
                true,
              );
            } catch (e) {
              if (!/closed/.test(String(e))) throw e;
            }
            clearTimeout(timer);
            s.close();
            return out;
          }
          return await run(s, p, true, () => s.close());
        }));
        for (let i = 0; i < ps.length; i++) {
          const e = expected[i].slice(0, got[i].length);
          assert.deepEqual(
            got[i].map((s) => s.tokenId),
            e.map((s) => s.tokenId),
            `seed ${seed} seq ${i}`,
          );
          for (let t = 0; t < e.length; t++) {
            const d = Math.abs(got[i][t].fingerprint.logProb - e[t].fingerprint.logProb) +
              Math.abs(got[i][t].fingerprint.projection - e[t].fingerprint.projection);
            assert.ok(d < 1e-4, `seed ${seed} seq ${i} pos ${t}: ${d}`);
          }
        }
        batched.dispose();
      }
    } finally {
      await decoder.session.release();
    }
  });
}

// Continuous batching as a job sees it (`inference/text_model.ts` over `_batch_decoder.ts`,
// in-thread and in model workers): jobs of every shape the node serves — a one-token prompt, a long
// one read while others decode, one that runs into the context window, a stop string that ends a
// job early, `maxTokens` 1, a job cancelled mid-batch, greedy and seeded rules — run together,
// joining and leaving mid-decode, must each stream what they stream alone, and each one's receipt
// must pass a validator that recomputes it alone. So must the jobs of a worker whose sibling
// crashes mid-batch; a long job is not starved by short ones arriving beyond the seats; and a
// worker the pool gives up on no longer counts in `batchCapacity`.

const rootJobs = await Deno.makeTempDir({ prefix: "veriflow-review-s50-batch-" });

Deno.test.afterAll(() => Deno.remove(rootJobs, { recursive: true }));

const { dir: dirJobs } = await buildGptModel({ size: "tiny", seed: 0, outDir: `${rootJobs}/tiny` });

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
  const model = await TextModel.load(dirJobs, { intraOpThreads: 1 });
  try {
    await checkMixedBatch(model);
  } finally {
    await model.dispose();
  }
});

Deno.test("a mixed batch streams each job as alone, and its receipts validate (one model worker)", async () => {
  const model = await TextModel.load(dirJobs, { intraOpThreads: 1, worker: true, workerCount: 1 });
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
  const model = await TextModel.load(dirJobs, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 2,
    maxBatch: 4,
    workerUrl: FAULTY_WORKER_URL,
    restart: { backoffInitialMs: 0 },
    onWorkerEvent: (event) => events.push(event.type),
  });
  const reference = await TextModel.load(dirJobs, { intraOpThreads: 1 });
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
  const model = await TextModel.load(dirJobs, { intraOpThreads: 1, maxBatch: 2 });
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
  const model = await TextModel.load(dirJobs, {
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
