/**
 * Continuous batching (`inference/_batch_decoder.ts`): generations sharing one session's executions
 * get the tokens and fingerprints they get alone; a failure inside a tick outside the model's
 * execution; and when ticks start.
 */
import assert from "node:assert/strict";
import {
  BatchedDecoder,
  type BatchedSequence,
  MAX_RUN_AHEAD,
  MIN_PREFILL_PIECE,
  PREFILL_GROUP_TOKENS,
  prefillGroupTokensFor,
} from "../../inference/_batch_decoder.ts";
import {
  DecoderSession,
  type SampledStep,
  type StepSampling,
} from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import type { SamplingParams } from "../../inference/sampler.ts";
import { MIN_LOGIT_EPS } from "../../proof/calibration.ts";
import { collect, params } from "./_fixtures.ts";
import { setImmediate } from "node:timers";
import * as ort from "onnxruntime-node";

// Continuous batching (`inference/_batch_decoder.ts`): generations sharing one session's executions
// get the tokens and fingerprints they get alone, whatever joins or leaves the batch around them,
// and a long prompt is read in pieces between the others' steps.

const dir = await Deno.makeTempDir({ prefix: "veriflow-batch-test-" });

await buildGptModel({ size: "tiny", seed: 0, outDir: dir });

const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };

/** Prompts of mixed lengths (1 to 90 tokens). */
const PROMPTS: number[][] = [
  [72],
  [72, 101, 108, 108, 111],
  Array.from("The quick brown fox jumps over the lazy dog", (c) => c.charCodeAt(0)),
  Array.from({ length: 90 }, (_, i) => 97 + (i * 7) % 26),
  [49, 32, 50, 32, 51],
  Array.from("Once upon a time, in a land far away", (c) => c.charCodeAt(0)),
  [100, 101, 102],
  Array.from({ length: 40 }, (_, i) => 65 + (i * 3) % 26),
];

/** Mixed rules: greedy, sampled, top-k, top-p, each with its own seed. */
function rule(i: number): SamplingParams {
  const mode = i % 4;
  return {
    temperature: mode === 0 ? 0 : mode === 1 ? 0.7 : mode === 2 ? 1 : 1.4,
    topK: mode === 3 ? 24 : 0,
    topP: mode === 2 ? 0.92 : 1,
    seed: 500 + i,
  };
}

async function decoderSession(): Promise<DecoderSession> {
  const bytes = await Deno.readFile(`${dir}/model.onnx`);
  const { session } = await createSession(bytes, { intraOpThreads: 1 });
  return new DecoderSession(session, SHAPE);
}

/**
 * Generate `n` tokens on a sequence, feeding each token back, then close it (a generation ends
 * so, and frees its seat for a sequence waiting beyond the seats): the steps' results.
 */
async function drive(
  sequence: { step(t: readonly number[], s: StepSampling): Promise<SampledStep>; close(): void },
  prompt: number[],
  params: SamplingParams,
  n: number,
  between?: () => Promise<void>,
): Promise<SampledStep[]> {
  const out: SampledStep[] = [];
  let feed = prompt;
  for (let t = 0; t < n; t++) {
    const step = await sequence.step(feed, { params, position: t });
    out.push(step);
    feed = [step.tokenId];
    await between?.();
  }
  sequence.close();
  return out;
}

/** Each prompt alone, on the unbatched path. */
async function alone(decoder: DecoderSession, n: number[]): Promise<SampledStep[][]> {
  const results: SampledStep[][] = [];
  for (let i = 0; i < PROMPTS.length; i++) {
    results.push(await drive(decoder.sequence(), PROMPTS[i], rule(i), n[i]));
  }
  return results;
}

/**
 * How far a batched row's fingerprint may be from the same row computed alone: onnxruntime's
 * CPU kernels block a product differently for 1 and for 8 rows, so the last bits of a logit may
 * differ (measured ~1e-6 here). The validators' floor on logit noise (`MIN_LOGIT_EPS`, 1e-4) is
 * the bound that matters; a real difference (another row's data leaking in, a wrong position)
 * moves a fingerprint by far more than that.
 */
const BATCH_NOISE = MIN_LOGIT_EPS;

/** The same tokens, and fingerprints within {@link BATCH_NOISE}. */
function assertSameSteps(actual: SampledStep[][], expected: SampledStep[][]): void {
  for (let i = 0; i < expected.length; i++) {
    assert.deepEqual(
      actual[i].map((s) => s.tokenId),
      expected[i].map((s) => s.tokenId),
      `tokens of sequence ${i}`,
    );
    for (let t = 0; t < expected[i].length; t++) {
      const a = actual[i][t].fingerprint;
      const e = expected[i][t].fingerprint;
      const d = Math.max(Math.abs(a.logProb - e.logProb), Math.abs(a.projection - e.projection));
      assert.ok(d <= BATCH_NOISE, `sequence ${i} position ${t}: fingerprints differ by ${d}`);
    }
  }
}

Deno.test("eight generations of mixed lengths in one batch get what each gets alone", async () => {
  const decoder = await decoderSession();
  try {
    const lengths = [60, 73, 62, 65, 80, 58, 70, 67]; // they leave the batch at different steps
    const expected = await alone(decoder, lengths);
    const batched = new BatchedDecoder(decoder);
    const results = await Promise.all(
      PROMPTS.map((p, i) => drive(batched.sequence(), p, rule(i), lengths[i])),
    );
    assertSameSteps(results, expected);
    const stats = batched.stats();
    assert.equal(stats.maxBatch, 8, "all eight stepped in one execution");
    assert.ok(stats.decodeRows / stats.decodeRuns > 4, `mean batch ${JSON.stringify(stats)}`);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("sequences joining a running batch, and a straggler leaving it, change nothing", async () => {
  const decoder = await decoderSession();
  try {
    const lengths = PROMPTS.map(() => 24);
    const expected = await alone(decoder, lengths);
    const batched = new BatchedDecoder(decoder, { maxBatch: 4 });
    // Staggered starts (joins at later step boundaries), one slow consumer (evicted when it
    // misses a step boundary, rejoining later), and more sequences than seats.
    const slow = () => new Promise<void>((r) => setTimeout(r, 5));
    const results = await Promise.all(PROMPTS.map(async (p, i) => {
      for (let k = 0; k < i; k++) await new Promise((r) => setTimeout(r, 1));
      return drive(batched.sequence(), p, rule(i), lengths[i], i === 2 ? slow : undefined);
    }));
    assertSameSteps(results, expected);
    const stats = batched.stats();
    assert.ok(stats.maxBatch <= 4 && stats.maxBatch >= 2, JSON.stringify(stats));
    assert.ok(stats.joins > PROMPTS.length, `the straggler rejoined: ${JSON.stringify(stats)}`);
    // A fixed cache moves a row per change of membership; it is allocated only to grow (rows 1 →
    // 2 → 4, slots 16 → 32 → 64) and, the first time, for the first member.
    assert.ok(stats.reallocations <= 6, JSON.stringify(stats));
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

/** The length of every prompt piece `decoder` reads alone from now on (batched steps excluded). */
function recordPieces(decoder: DecoderSession): number[] {
  const pieces: number[] = [];
  const run = decoder.run.bind(decoder);
  decoder.run = (tokens, ...rest) => {
    pieces.push(tokens.length);
    return run(tokens, ...rest);
  };
  return pieces;
}

Deno.test("a long prompt is read in pieces of equal length, about the budget each, between the running sequence's steps", async () => {
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder, { prefillTokensPerTick: 16 });
    const running = batched.sequence();
    let feed = PROMPTS[1];
    let stepsMeanwhile = 0;
    let longDone = false;
    const long = batched.sequence();
    const first = await running.step(feed, { params: rule(0), position: 0 });
    feed = [first.tokenId];
    const pieces = recordPieces(decoder);
    const longStep = long.step(PROMPTS[3], { params: rule(1), position: 0 }).then((s) => {
      longDone = true;
      return s;
    });
    for (let t = 1; !longDone && t < 100; t++) {
      const step = await running.step(feed, { params: rule(0), position: t });
      feed = [step.tokenId];
      if (!longDone) stepsMeanwhile++;
    }
    const read = [...pieces];
    const expectedLong = decoder.sequence();
    const expected = await expectedLong.step(PROMPTS[3], { params: rule(1), position: 0 });
    assert.equal((await longStep).tokenId, expected.tokenId);
    // 90 tokens at 16 a tick: 5.6 budgets, 6 pieces of 15, the running sequence stepping at
    // each.
    assert.deepEqual(read, [15, 15, 15, 15, 15, 15]);
    assert.ok(stepsMeanwhile >= 5, `the running sequence stepped ${stepsMeanwhile} times`);
    assert.equal(batched.stats().prefillRuns, 7, "its prompt whole, then the long one in 6 pieces");
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

for (const [length, expected] of [[130, [65, 65]], [150, [75, 75]]] as const) {
  Deno.test(`a joining prompt is read in pieces of equal length, none shorter than MIN_PREFILL_PIECE (${length} tokens)`, async () => {
    // With the pieces sized by the decode step alone, a one-row step (cheap on `tiny`) cut the
    // prompt into pieces of a few tokens, each paying an execution's fixed cost again; cut evenly
    // into as many pieces as the budget rounded up to, they were all shorter than the floor
    // (130 tokens: 44 + 43 + 43), and too short to feed the cost estimate. (The group budget is
    // lowered below the prompt so that it is read in pieces, as a long prompt is.)
    const decoder = await decoderSession();
    try {
      const batched = new BatchedDecoder(decoder, { prefillGroupTokens: 100 });
      const running = batched.sequence();
      const long = batched.sequence();
      const prompt = Array.from({ length }, (_, i) => 97 + (i * 5) % 26);
      let feed = [(await running.step(PROMPTS[1], { params: rule(0), position: 0 })).tokenId];
      const pieces = recordPieces(decoder);
      let longDone = false;
      const longStep = long.step(prompt, { params: rule(1), position: 0 }).then((s) => {
        longDone = true;
        return s;
      });
      for (let t = 1; !longDone && t < 100; t++) {
        feed = [(await running.step(feed, { params: rule(0), position: t })).tokenId];
      }
      const read = [...pieces];
      const want = await decoder.sequence().step(prompt, { params: rule(1), position: 0 });
      assert.equal((await longStep).tokenId, want.tokenId);
      // The first piece at the floor's budget (no cost measured yet): 2 budgets, rounded, of
      // equal length; the rest fits the budget whatever the estimate says by then.
      assert.ok(MIN_PREFILL_PIECE >= 50, "a piece amortizes an execution's fixed cost");
      assert.deepEqual(read, expected, `pieces ${JSON.stringify(read)}`);
      batched.dispose();
    } finally {
      await decoder.session.release();
    }
  });
}

Deno.test("prompts that have not started are read whole and together, in one execution, within the group budget", async () => {
  const decoder = await decoderSession();
  try {
    const lengths = [12, 9, 14, 10, 11, 13, 8, 12];
    const expected = await alone(decoder, lengths);
    // Eight prompts of 1–90 tokens arriving together.
    const together = new BatchedDecoder(decoder);
    assertSameSteps(
      await Promise.all(PROMPTS.map((p, i) => drive(together.sequence(), p, rule(i), lengths[i]))),
      expected,
    );
    // Padded to the longest so far, the first five fit 512 tokens (5 × 90); the sixth would
    // make 6 × 90: the last three (padded to 40) go in a second execution.
    assert.equal(together.stats().prefillRuns, 2, JSON.stringify(together.stats()));
    together.dispose();
    // A budget of one prompt at a time: eight executions, the same steps.
    const oneByOne = new BatchedDecoder(decoder, { prefillGroupTokens: 1 });
    assertSameSteps(
      await Promise.all(PROMPTS.map((p, i) => drive(oneByOne.sequence(), p, rule(i), lengths[i]))),
      expected,
    );
    assert.ok(oneByOne.stats().prefillRuns >= 8, JSON.stringify(oneByOne.stats()));
    oneByOne.dispose();
    // On a GPU provider's budget the eight are read in one execution (the CPU's keeps 512).
    assert.equal(prefillGroupTokensFor("cpu"), PREFILL_GROUP_TOKENS);
    const onGpu = new BatchedDecoder(decoder, {
      prefillGroupTokens: prefillGroupTokensFor("webgpu"),
    });
    assertSameSteps(
      await Promise.all(PROMPTS.map((p, i) => drive(onGpu.sequence(), p, rule(i), lengths[i]))),
      expected,
    );
    assert.equal(onGpu.stats().prefillRuns, 1, JSON.stringify(onGpu.stats()));
    onGpu.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("a closed sequence's waiting step fails and its rows leave the batch", async () => {
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder);
    const a = batched.sequence();
    const b = batched.sequence();
    const p = { params: rule(0), position: 0 };
    await Promise.all([a.step([1, 2, 3], p), b.step([4, 5], p)]);
    await Promise.all([a.step([6], p), b.step([7], p)]);
    const waiting = a.step([8], p);
    a.close();
    await assert.rejects(waiting, /closed/);
    await assert.rejects(a.step([9], p), /closed/);
    await b.step([9], p); // b alone now
    assert.equal(batched.openSequences, 1);
    batched.dispose();
    await assert.rejects(b.step([10], p), { code: "model_disposed" });
  } finally {
    await decoder.session.release();
  }
});

Deno.test("concurrent generate() streams, in-thread and in workers, equal each stream alone", async () => {
  const inThread = await TextModel.load(dir, { intraOpThreads: 1 });
  const worker = await TextModel.load(dir, { intraOpThreads: 1, worker: true, workerCount: 1 });
  try {
    const jobs = PROMPTS.map((p, i) => ({ p, params: params({ ...rule(i), maxTokens: 16 + i }) }));
    const steps = (chunks: TokenChunk[]): SampledStep[] =>
      chunks.map((c) => ({ tokenId: c.tokenId, fingerprint: c.fingerprint }));
    const aloneResults: SampledStep[][] = [];
    for (const j of jobs) aloneResults.push(steps(await collect(inThread.generate(j.p, j.params))));
    const together: SampledStep[][][] = [];
    for (const model of [inThread, worker]) {
      const chunks = await Promise.all(jobs.map((j) => collect(model.generate(j.p, j.params))));
      assertSameSteps(chunks.map(steps), aloneResults);
      together.push(chunks.map(steps));
    }
    // Both modes run the same batcher on the same tensors: bit-identical to each other when
    // their batches formed alike, and within the noise bound in any case.
    assertSameSteps(together[1], together[0]);
  } finally {
    await inThread.dispose();
    await worker.dispose();
  }
});

Deno.test("maxBatch 1 runs the sequences one at a time with the same results", async () => {
  const decoder = await decoderSession();
  try {
    const lengths = PROMPTS.map(() => 10);
    const expected = await alone(decoder, lengths);
    const batched = new BatchedDecoder(decoder, { maxBatch: 1 });
    const results = await Promise.all(
      PROMPTS.map((p, i) => drive(batched.sequence() as BatchedSequence, p, rule(i), 10)),
    );
    assertSameSteps(results, expected);
    assert.equal(batched.stats().maxBatch, 1);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("a step asked with `ahead` queues the next one, answered from it when asked for", async () => {
  const decoder = await decoderSession();
  try {
    const lengths = PROMPTS.map(() => 20);
    const expected = await alone(decoder, lengths);
    const batched = new BatchedDecoder(decoder);
    const aheadSequence = (s: BatchedSequence) => ({
      step: (t: readonly number[], sampling: StepSampling) => s.step(t, sampling, 0, true),
      close: () => s.close(),
    });
    const results = await Promise.all(
      PROMPTS.map((p, i) => drive(aheadSequence(batched.sequence()), p, rule(i), 20)),
    );
    assertSameSteps(results, expected);
    // The step after each sequence's last is computed ahead too (rows beyond the 8 × 19 decode
    // steps asked; 161 was seen once under load and is not explained yet, hence the slack).
    const { decodeRows } = batched.stats();
    assert.ok(decodeRows >= 8 * 19 && decodeRows <= 8 * 21, `rows ${decodeRows}`);

    // Without waiting for the request, the step ahead is computed at the next tick.
    const one = batched.sequence();
    const first = await one.step(PROMPTS[1], { params: rule(0), position: 0 }, 0, true);
    const before = batched.stats().decodeRuns;
    for (let i = 0; i < 2000 && batched.stats().decodeRuns === before; i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(batched.stats().decodeRuns, before + 1, "computed before it was asked for");
    const second = await one.step([first.tokenId], { params: rule(0), position: 1 });
    assert.equal(batched.stats().decodeRuns, before + 1, "answered from the step ahead");
    const solo = decoder.sequence();
    await solo.step(PROMPTS[1], { params: rule(0), position: 0 });
    assert.equal(
      second.tokenId,
      (await solo.step([first.tokenId], { params: rule(0), position: 1 })).tokenId,
    );
    // A request for another token than the one fed ahead is refused (the cache holds that one).
    await one.step([second.tokenId], { params: rule(0), position: 2 }, 0, true);
    await assert.rejects(one.step([999], { params: rule(0), position: 3 }), /another token/);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("a step promising n more runs at most MAX_RUN_AHEAD beyond the last one asked", async () => {
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder);
    const a = batched.sequence();
    const at = (position: number) => ({ params: rule(1), position });
    const first = await a.step(PROMPTS[2], at(0), 0, 10);
    const rowsAfter = async (runs: number) => {
      for (let i = 0; i < 2000 && batched.stats().decodeRuns < runs; i++) {
        await new Promise((r) => setTimeout(r, 1));
      }
      return batched.stats().decodeRows;
    };
    const before = batched.stats().decodeRuns;
    // Positions 1 and 2 are computed without being asked for…
    const rows = await rowsAfter(before + MAX_RUN_AHEAD);
    // …and no third: a probe sequence's decode step runs alone (a third step of `a` would have
    // been pending and shared its execution).
    const probe = batched.sequence();
    const probed = await probe.step(PROMPTS[1], at(0));
    await probe.step([probed.tokenId], at(1));
    assert.equal(batched.stats().decodeRows, rows + 1, JSON.stringify(batched.stats()));
    // Asking for position 1 (answered from the step ahead) lets position 3 run; the tokens are
    // what the sequence gets alone.
    const got = [first];
    for (let t = 1; t < 6; t++) got.push(await a.step([got[t - 1].tokenId], at(t), 0, 10 - t));
    const solo = decoder.sequence();
    const expected = [await solo.step(PROMPTS[2], at(0))];
    for (let t = 1; t < 6; t++) expected.push(await solo.step([expected[t - 1].tokenId], at(t)));
    assertSameSteps([got], [expected]);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("a sequence closed while its batched step runs is dropped without disturbing the others", async () => {
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder);
    const a = batched.sequence();
    const b = batched.sequence();
    const p = (position: number) => ({ params: rule(0), position });
    const [, firstB] = await Promise.all([a.step([1, 2, 3], p(0)), b.step([4, 5], p(0))]);
    // Close `a` while the execution of both rows runs, as a worker does when a drop arrives
    // mid-step.
    const original = decoder.runRows.bind(decoder);
    decoder.runRows = (...args) => {
      decoder.runRows = original;
      const running = original(...args);
      a.close();
      return running;
    };
    const stepA = a.step([7], p(1));
    const stepB = b.step([firstB.tokenId], p(1));
    await assert.rejects(stepA, /closed/);
    const solo = decoder.sequence();
    await solo.step([4, 5], p(0));
    assert.equal((await stepB).tokenId, (await solo.step([firstB.tokenId], p(1))).tokenId);
    assert.equal(batched.stats().maxBatch, 2, "both rows were in the execution");
    assert.equal(batched.openSequences, 1);
    await b.step([(await stepB).tokenId], p(2)); // b goes on alone
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

// A failure inside a batch tick (`inference/_batch_decoder.ts`) outside the model's execution —
// here an allocation of a sequence's own cache, as under memory pressure — fails the steps it
// touches and nothing else. A tick is started with `void`: a failure escaping it would be an
// unhandled rejection, which ends the process (in worker mode, the worker with every generation on
// it), so these tests also fail if one escapes.

const dirFailures = await Deno.makeTempDir({ prefix: "veriflow-batch-failures-test-" });

await buildGptModel({ size: "tiny", seed: 0, outDir: dirFailures });

Deno.test.afterAll(() => Deno.remove(dirFailures, { recursive: true }));

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 1 };

async function decoderSessionFailures(): Promise<DecoderSession> {
  const { session } = await createSession(await Deno.readFile(`${dirFailures}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

/** Make the next allocation of a cache of `batch` rows and `width` positions fail, once. */
function failNextAllocation(decoder: DecoderSession, batch: number, width: number): Error {
  const error = new RangeError("Array buffer allocation failed");
  const allocate = decoder.allocatePast.bind(decoder);
  decoder.allocatePast = (b, w) => {
    if (b !== batch || w !== width) return allocate(b, w);
    decoder.allocatePast = allocate;
    throw error;
  };
  return error;
}

/** `n` greedy tokens after `prompt` on `sequence`. */
async function greedy(
  sequence: {
    step(
      t: readonly number[],
      s: { params: typeof GREEDY; position: number },
    ): Promise<SampledStep>;
  },
  prompt: number[],
  n: number,
): Promise<number[]> {
  const out: number[] = [];
  let feed = prompt;
  for (let t = 0; t < n; t++) {
    const step = await sequence.step(feed, { params: GREEDY, position: t });
    out.push(step.tokenId);
    feed = [step.tokenId];
  }
  return out;
}

Deno.test("a failed copy of a straggler out of the batch fails that step's members, not the process, and later sequences still run", async () => {
  const decoder = await decoderSessionFailures();
  try {
    const batched = new BatchedDecoder(decoder);
    const a = batched.sequence();
    const b = batched.sequence();
    const [sa, sb] = await Promise.all([
      a.step([72, 101], { params: GREEDY, position: 0 }),
      b.step([104, 105], { params: GREEDY, position: 0 }),
    ]);
    // Both join the batch.
    const [sa1] = await Promise.all([
      a.step([sa.tokenId], { params: GREEDY, position: 1 }),
      b.step([sb.tokenId], { params: GREEDY, position: 1 }),
    ]);
    // b straggles; at the tick a asks for, b's 3 positions are copied out of the batch into a
    // cache of its own, and that allocation fails.
    const error = failNextAllocation(decoder, 1, 3);
    await assert.rejects(
      a.step([sa1.tokenId], { params: GREEDY, position: 2 }),
      (e) => e === error,
    );
    // The batch's cache was reset: b's rows went with it.
    await assert.rejects(b.step([5], { params: GREEDY, position: 2 }), (e) => e === error);
    a.close();
    b.close();
    // A later sequence gets what it gets alone, on the same batcher.
    const prompt = [84, 104, 101, 32];
    assert.deepEqual(
      await greedy(batched.sequence(), prompt, 6),
      await greedy(decoder.sequence(), prompt, 6),
    );
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("a failed allocation of one prompt's own cache after a group's prefill fails that sequence alone", async () => {
  const decoder = await decoderSessionFailures();
  try {
    const batched = new BatchedDecoder(decoder);
    const first = [72, 101, 108, 108, 111];
    const second = [104, 105, 33];
    // Both prompts arrive in one turn: read together, then each copied into a cache of its own;
    // the first one's fails.
    const error = failNextAllocation(decoder, 1, first.length);
    const [lost, kept] = await Promise.allSettled([
      greedy(batched.sequence(), first, 4),
      greedy(batched.sequence(), second, 4),
    ]);
    assert.equal(lost.status, "rejected");
    assert.equal((lost as PromiseRejectedResult).reason, error);
    assert.deepEqual(kept, {
      status: "fulfilled",
      value: await greedy(decoder.sequence(), second, 4),
    });
    assert.deepEqual(
      await greedy(batched.sequence(), first, 4),
      await greedy(decoder.sequence(), first, 4),
    );
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

// When the batcher's ticks start (`inference/_batch_decoder.ts`, "When a tick starts"): in the
// steady state the next tick follows the last without waiting for another turn of the event loop,
// provided the loop turned while the last one ran; a backend that answers in a microtask still gets
// a turn per tick, so it cannot starve timers and messages.
//
// Both run on a stand-in onnxruntime session (the fixed-cache graph's names and shapes, logits
// that make greedy sampling pick the next byte), so what is tested is the scheduling alone.

const SHAPE_TICK = { numLayers: 1, numKeyValueHeads: 2, headDim: 4, vocabSize: 16 };

/**
 * A session with the fixed-cache decoder's inputs and outputs whose logits make token t + 1
 * (mod the vocabulary) the likeliest after t; `yieldTurn` answers after a `setImmediate`, as
 * onnxruntime-node does, else in a microtask.
 */
function standInSession(yieldTurn: boolean): ort.InferenceSession {
  const { numKeyValueHeads: heads, headDim, vocabSize } = SHAPE_TICK;
  const caches = ["kv_cache.0.key", "kv_cache.0.value"];
  return {
    inputNames: ["input_ids", "attention_mask", "position_ids", ...caches],
    outputNames: ["logits", "kv_new.0.key", "kv_new.0.value"],
    async run(feeds: Record<string, ort.Tensor>) {
      if (yieldTurn) await new Promise((resolve) => setImmediate(resolve));
      const [batch, n] = feeds.input_ids.dims;
      const ids = feeds.input_ids.data as BigInt64Array;
      const logits = new Float32Array(batch * n * vocabSize);
      for (let i = 0; i < batch * n; i++) {
        logits[i * vocabSize + (Number(ids[i]) + 1) % vocabSize] = 1;
      }
      const fresh = () =>
        new ort.Tensor("float32", new Float32Array(batch * heads * n * headDim), [
          batch,
          heads,
          n,
          headDim,
        ]);
      return {
        logits: new ort.Tensor("float32", logits, [batch, n, vocabSize]),
        "kv_new.0.key": fresh(),
        "kv_new.0.value": fresh(),
      };
    },
  } as unknown as ort.InferenceSession;
}

/** `steps` tokens after `prompt`, each step promising the rest (as `TextModel` does). */
async function generate(
  sequence: BatchedSequence,
  prompt: number[],
  steps: number,
  onStep: () => void,
): Promise<number[]> {
  const tokens: number[] = [];
  let feed = prompt;
  for (let t = 0; t < steps; t++) {
    const step = await sequence.step(feed, { params: GREEDY, position: t }, 0, steps - 1 - t);
    tokens.push(step.tokenId);
    onStep();
    feed = [step.tokenId];
  }
  return tokens;
}

Deno.test("a backend answering in a microtask still lets timers run between ticks", async () => {
  const batched = new BatchedDecoder(new DecoderSession(standInSession(false), SHAPE_TICK));
  let steps = 0;
  let stepsWhenTimerRan = -1;
  const timer = new Promise<void>((resolve) =>
    setTimeout(() => {
      stepsWhenTimerRan = steps;
      resolve();
    }, 0)
  );
  const runs = [[3], [5, 6]].map((prompt) =>
    generate(batched.sequence(), prompt, 200, () => steps++)
  );
  const [a, b] = await Promise.all(runs);
  await timer;
  assert.deepEqual(a.slice(0, 3), [4, 5, 6]);
  assert.deepEqual(b.slice(0, 3), [7, 8, 9]);
  // Chaining ticks without a turn would have run all 400 steps before the timer. How many run
  // first is a matter of speed (a 0 ms timer waits at least 1 ms, and a loaded machine's turns
  // come late: 42 were seen beside a CPU hog), so the bound is half the run, not a count.
  assert.ok(
    stepsWhenTimerRan >= 0 && stepsWhenTimerRan < 200,
    `the timer ran after ${stepsWhenTimerRan} of 400 steps`,
  );
  batched.dispose();
});

Deno.test("in the steady state a tick follows the last one in the same turn of the event loop", async () => {
  const batched = new BatchedDecoder(new DecoderSession(standInSession(true), SHAPE_TICK));
  // Counts the loop's turns: each callback queues the next, which runs in the following turn.
  let turns = 0;
  let counting = true;
  const count = () => {
    turns++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  const runs = [[1], [2], [3]].map((prompt) => generate(batched.sequence(), prompt, 100, () => {}));
  await Promise.all(runs);
  counting = false;
  const { ticks } = batched.stats();
  // Each execution takes a turn; a tick that waited for one more before starting took two. (A
  // prompt's tick runs its first decode step too: 99 ticks for 100 tokens.)
  assert.ok(ticks >= 99, `${ticks} ticks`);
  assert.ok(turns < 1.3 * ticks, `${turns} turns for ${ticks} ticks`);
  batched.dispose();
});

Deno.test("a first token is answered before the next tick's execution is set up", async () => {
  // The steady state starts the next tick at once, and setting up its execution (the new
  // member's prompt cache copied into the batch) is synchronous work: a first token waiting for
  // its reply behind it reached its client that much later (time to first token).
  const session = standInSession(true);
  let runs = 0;
  const run = session.run.bind(session);
  session.run = ((feeds: Record<string, ort.Tensor>) => {
    runs++;
    return run(feeds);
  }) as typeof session.run;
  const batched = new BatchedDecoder(new DecoderSession(session, SHAPE_TICK));
  // The step promises the steps after it, so the batcher queues the next one by itself.
  const first = batched.sequence().step([1, 2, 3], { params: GREEDY, position: 0 }, 0, 10);
  // The reply goes out a few promise hops after the step settles (the worker's request handler).
  const runsWhenAnswered = await first.then(async (step) => {
    for (let hop = 0; hop < 4; hop++) await Promise.resolve();
    assert.equal(step.tokenId, 4);
    return runs;
  });
  assert.equal(runsWhenAnswered, 1, "the next execution started before the first token's reply");
  batched.dispose();
});

Deno.test("a prompt waiting when a tick starts is read before that tick's decode step, and joins it", async () => {
  // Read after the decode step, prompts that arrived while one stream's prompt was read got
  // their first tokens a step later (8 clients on WebGPU: TTFT p50 132 ms, one stream's 39).
  const session = standInSession(true);
  const runs: string[] = [];
  let second: Promise<number[]> | undefined;
  const batched = new BatchedDecoder(new DecoderSession(session, SHAPE_TICK));
  const run = session.run.bind(session);
  session.run = ((feeds: Record<string, ort.Tensor>) => {
    const [batch, n] = feeds.input_ids.dims;
    runs.push(`${batch}x${n}`);
    // The second client arrives while the first one's prompt is read.
    second ??= generate(batched.sequence(), [7, 8, 9], 3, () => {});
    return run(feeds);
  }) as typeof session.run;
  const first = await generate(batched.sequence(), [1, 2, 3, 4, 5], 3, () => {});
  assert.deepEqual(first, [6, 7, 8]);
  assert.deepEqual(await second, [10, 11, 12]);
  // The first prompt alone; then the second prompt, then one step for both; then both again.
  assert.deepEqual(runs.slice(0, 4), ["1x5", "1x3", "2x1", "2x1"]);
  batched.dispose();
});
