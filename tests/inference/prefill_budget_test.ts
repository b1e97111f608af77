/**
 * How a batch reads prompts while its sequences decode (`inference/_batch_decoder.ts`, its
 * module doc, "While sequences decode" and "Seats"; the budgets in
 * `inference/_prefill_planner.ts`): a tick reads at most its prompt-token budget, a long prompt
 * joins in pieces with the running sequences stepping between them, and a sequence beyond the
 * seats has its prompt read only once a seat frees. Every count comes from the executions the
 * batch asks of its session (no clock).
 */
import assert from "node:assert/strict";
import {
  BatchedDecoder,
  type BatchedSequence,
  DEFAULT_PREFILL_TOKENS_PER_TICK,
  MIN_PREFILL_PIECE,
} from "../../inference/_batch_decoder.ts";
import { DecoderSession, type SampledStep } from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { SamplingParams } from "../../inference/sampler.ts";
import { TextModel } from "../../inference/text_model.ts";
import { collect, params } from "./_fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-prefill-budget-test-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };
const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, seed: 1 };

async function decoderSession(): Promise<DecoderSession> {
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

/** A prompt of `n` byte tokens, different for each `k`. */
function prompt(n: number, k: number): number[] {
  return Array.from({ length: n }, (_, j) => 97 + ((k * 3 + j * 7) % 26));
}

/** What the session was asked to run, in order. */
type Execution =
  | { kind: "decode"; rows: number }
  | { kind: "prompt"; tokens: number; first: number };

/**
 * Record every execution the batch runs on `decoder` from now on: a decode step (one new token
 * a row), or a prompt read (its real tokens, padding left out, and each row's first token).
 */
function recordExecutions(decoder: DecoderSession, log: (e: Execution) => void): void {
  // Every execution goes through `runRows` (`run` reads a piece through it too).
  const runRows = decoder.runRows.bind(decoder);
  decoder.runRows = (ids, batch, mask, ...rest) => {
    const width = ids.length / batch;
    // The prompts here are longer than one token, and so is every piece read of them.
    if (width === 1) log({ kind: "decode", rows: batch });
    else {
      // Count each row's new tokens (the mask's last `width` columns), not its left padding.
      const maskWidth = mask.length / batch;
      let tokens = 0;
      let first = -1;
      for (let i = 0; i < batch; i++) {
        for (let j = 0; j < width; j++) {
          if (mask[i * maskWidth + maskWidth - width + j] !== 1n) continue;
          tokens++;
          if (first < 0) first = Number(ids[i * width + j]);
        }
      }
      log({ kind: "prompt", tokens, first });
    }
    return runRows(ids, batch, mask, ...rest);
  };
}

/**
 * Read each sequence's short prompt and run one decode step of each: they are decoding (a
 * prompt that comes while nobody decodes is read whole, a burst's way). The tokens to feed at
 * position 2.
 */
async function startDecoding(sequences: BatchedSequence[]): Promise<number[][]> {
  return await Promise.all(sequences.map(async (s, i) => {
    const first = await s.step(prompt(10, i), { params: GREEDY, position: 0 });
    return [(await s.step([first.tokenId], { params: GREEDY, position: 1 })).tokenId];
  }));
}

/** A sequence stepping greedily from position 2 until `stop()` says so, noting each token. */
async function runUntil(
  sequence: BatchedSequence,
  first: readonly number[],
  stop: () => boolean,
  onToken: () => void,
): Promise<void> {
  let feed = first;
  for (let t = 2; t < 200 && !stop(); t++) {
    const step = await sequence.step(feed, { params: GREEDY, position: t });
    onToken();
    feed = [step.tokenId];
  }
  sequence.close();
}

/**
 * The prompt tokens read in each tick of `log` (each tick ends with its decode step), recorded
 * while sequences decode.
 */
function promptTokensPerTick(log: Execution[]): number[] {
  const sums: number[] = [];
  let sum = 0;
  for (const e of log) {
    if (e.kind === "decode") {
      sums.push(sum);
      sum = 0;
    } else sum += e.tokens;
  }
  if (sum > 0) sums.push(sum);
  return sums.filter((n) => n > 0);
}

for (
  const [name, options, budget] of [
    ["the default budget", {}, DEFAULT_PREFILL_TOKENS_PER_TICK],
    [
      "prefillTokensPerTick 48, whatever the group budget",
      { prefillTokensPerTick: 48, prefillGroupTokens: 512 },
      48,
    ],
  ] as const
) {
  Deno.test(`while sequences decode, a tick reads no more prompt tokens than ${name}`, async () => {
    // Before the budget, five prompts of 60 tokens arriving while three streams decode were read
    // as one group of 300 tokens (then a second group in the same tick): the streams' next token
    // waited for all of it.
    const decoder = await decoderSession();
    try {
      const batched = new BatchedDecoder(decoder, options);
      const log: Execution[] = [];
      const joiners = Array.from({ length: 5 }, () => batched.sequence());
      let joined = 0;
      const running = Array.from({ length: 3 }, () => batched.sequence());
      // The running streams' prompts are read, and they decode, before anyone joins.
      const feeds = await startDecoding(running);
      recordExecutions(decoder, (e) => log.push(e));
      const joins = joiners.map((s, i) =>
        s.step(prompt(60, 10 + i), { params: GREEDY, position: 0 }).then((step) => {
          joined++;
          s.close();
          return step;
        })
      );
      await Promise.all(
        running.map((s, i) => runUntil(s, feeds[i], () => joined === joiners.length, () => {}))
          .concat(joins.map(async (j) => void await j)),
      );
      const perTick = promptTokensPerTick(log);
      const read = log.filter((e) => e.kind === "prompt").reduce(
        (n, e) => n + (e.kind === "prompt" ? e.tokens : 0),
        0,
      );
      assert.equal(read, 5 * 60, `every joiner's prompt was read: ${JSON.stringify(log)}`);
      assert.ok(perTick.length >= 3, `the joins spread over ticks: ${JSON.stringify(perTick)}`);
      for (const tokens of perTick) {
        assert.ok(tokens <= budget, `a tick read ${tokens} > ${budget}: ${JSON.stringify(log)}`);
      }
      batched.dispose();
    } finally {
      await decoder.session.release();
    }
  });
}

Deno.test("a long prompt joining a decoding batch is read in pieces, each decoding sequence stepping between them", async () => {
  // Before, a prompt that fit the group budget (512 on CPU) was read whole in one execution even
  // while others decoded: 200 tokens here, the running streams' gap that whole read.
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder);
    const running = Array.from({ length: 3 }, () => batched.sequence());
    const feeds = await startDecoding(running);
    // Events in order: a prompt piece of the long one ("p"), or a token of running stream i.
    const events: (number | "p")[] = [];
    const pieces: number[] = [];
    const longPrompt = prompt(200, 7);
    recordExecutions(decoder, (e) => {
      if (e.kind === "prompt") {
        events.push("p");
        pieces.push(e.tokens);
      }
    });
    const long = batched.sequence();
    let longDone = false;
    const longStep = long.step(longPrompt, { params: GREEDY, position: 0 }).then((step) => {
      longDone = true;
      return step;
    });
    await Promise.all(
      running.map((s, i) => runUntil(s, feeds[i], () => longDone, () => events.push(i))),
    );
    const got: SampledStep = await longStep;
    long.close();

    assert.equal(pieces.reduce((a, b) => a + b, 0), longPrompt.length, JSON.stringify(pieces));
    assert.ok(pieces.length >= 2, `read in pieces: ${JSON.stringify(pieces)}`);
    for (const piece of pieces) {
      assert.ok(piece <= DEFAULT_PREFILL_TOKENS_PER_TICK, `pieces ${JSON.stringify(pieces)}`);
      assert.ok(piece >= MIN_PREFILL_PIECE, `pieces ${JSON.stringify(pieces)}`);
    }
    // Between two pieces, every running stream got a token.
    const at = events.flatMap((e, i) => e === "p" ? [i] : []);
    for (let k = 1; k < at.length; k++) {
      const between = new Set(events.slice(at[k - 1] + 1, at[k]));
      for (let i = 0; i < running.length; i++) {
        assert.ok(between.has(i), `stream ${i} had no token between pieces: ${events.join(" ")}`);
      }
    }
    // The same first token as the prompt read alone.
    const solo = decoder.sequence();
    const want = await solo.step(longPrompt, { params: GREEDY, position: 0 });
    solo.close();
    assert.equal(got.tokenId, want.tokenId);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

Deno.test("a sequence beyond the seats has no prompt read until a seat frees", async () => {
  // Before, every open sequence's prompt was read: the third stream here got its first token
  // (and held a cache) while it could not decode, then stood still until a seat freed.
  const decoder = await decoderSession();
  try {
    const batched = new BatchedDecoder(decoder, { maxBatch: 2 });
    const seated = [batched.sequence(), batched.sequence()];
    const firsts = await Promise.all(
      seated.map((s, i) => s.step(prompt(10, i), { params: GREEDY, position: 0 })),
    );
    const reads: number[] = [];
    recordExecutions(decoder, (e) => {
      if (e.kind === "prompt") reads.push(e.first);
    });
    const extraPrompt = prompt(30, 5);
    const extra = batched.sequence();
    let answered = false;
    const extraStep = extra.step(extraPrompt, { params: GREEDY, position: 0 }).then((step) => {
      answered = true;
      return step;
    });
    // The seated decode 12 more tokens each; the extra one's prompt waits, unread.
    let steps = 0;
    await Promise.all(seated.map((s, i) => {
      let n = 0;
      return runUntilOpen(s, [firsts[i].tokenId], () => ++n > 12, () => steps++);
    }));
    assert.equal(steps, 24);
    assert.equal(answered, false, "no first token without a seat");
    assert.deepEqual(reads, [], "its prompt was not read");
    // A seat frees: its prompt is read, and it decodes.
    seated[0].close();
    const first = await extraStep;
    assert.deepEqual(reads, [extraPrompt[0]]);
    const solo = decoder.sequence();
    assert.equal(
      first.tokenId,
      (await solo.step(extraPrompt, { params: GREEDY, position: 0 })).tokenId,
    );
    solo.close();
    const second = await extra.step([first.tokenId], { params: GREEDY, position: 1 });
    assert.equal(typeof second.tokenId, "number");
    seated[1].close();
    extra.close();
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});

/** Like {@link runUntil}, but the sequence stays open (it keeps its seat). */
async function runUntilOpen(
  sequence: BatchedSequence,
  first: readonly number[],
  stop: () => boolean,
  onToken: () => void,
): Promise<void> {
  let feed = first;
  for (let t = 1; !stop(); t++) {
    const step = await sequence.step(feed, { params: GREEDY, position: t });
    onToken();
    feed = [step.tokenId];
  }
}

for (const worker of [false, true]) {
  Deno.test(`the model option prefillTokensPerTick bounds a joining prompt's pieces (${worker ? "worker" : "in-thread"})`, async () => {
    // Before the option reached the batcher, the 100-token prompt joining here was read in one
    // execution (the default budget, 128, holds it): two prompt reads in all.
    const model = await TextModel.load(dir, {
      intraOpThreads: 1,
      prefillTokensPerTick: 20,
      ...(worker ? { worker: true, workerCount: 1 } : {}),
    });
    try {
      const running = model.generate(prompt(10, 1), params({ temperature: 0, maxTokens: 200 }));
      const reader = running.getReader();
      // The running stream decodes (its first tokens are out) before the long prompt comes.
      for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
      const joined = await collect(
        model.generate(prompt(100, 2), params({ temperature: 0, maxTokens: 1 })),
      );
      assert.equal(joined.length, 1);
      await reader.cancel();
      const [stats] = await model.batchStats();
      // The running stream's prompt, then 100 tokens in 5 pieces of 20.
      assert.equal(stats.prefillRuns, 1 + 5, JSON.stringify(stats));
    } finally {
      await model.dispose();
    }
  });
}

Deno.test("a model rejects a prefillTokensPerTick that is not a positive integer", async () => {
  await assert.rejects(
    TextModel.load(dir, { intraOpThreads: 1, prefillTokensPerTick: 0 }),
    /prefillTokensPerTick must be an integer ≥ 1/,
  );
});
