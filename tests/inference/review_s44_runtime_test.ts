/**
 * Review of the inference runtime under concurrency (session 44): continuous batching against
 * each job run alone, through joins, departures, cancels and the context's end, and what a
 * generation lists as its top logprobs.
 */
import assert from "node:assert/strict";
import { sampleRow } from "../../inference/_decoder_session.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { collect, params, tinyModel } from "./_fixtures.ts";

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
