/**
 * When the batcher's ticks start (`inference/_batch_decoder.ts`, "When a tick starts"): in the
 * steady state the next tick follows the last without waiting for another turn of the event
 * loop, provided the loop turned while the last one ran; a backend that answers in a microtask
 * still gets a turn per tick, so it cannot starve timers and messages.
 *
 * Both run on a stand-in onnxruntime session (the fixed-cache graph's names and shapes, logits
 * that make greedy sampling pick the next byte), so what is tested is the scheduling alone.
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import * as ort from "onnxruntime-node";
import { BatchedDecoder, type BatchedSequence } from "../../inference/_batch_decoder.ts";
import { DecoderSession } from "../../inference/_decoder_session.ts";

const SHAPE = { numLayers: 1, numKeyValueHeads: 2, headDim: 4, vocabSize: 16 };
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 1 };

/**
 * A session with the fixed-cache decoder's inputs and outputs whose logits make token t + 1
 * (mod the vocabulary) the likeliest after t; `yieldTurn` answers after a `setImmediate`, as
 * onnxruntime-node does, else in a microtask.
 */
function standInSession(yieldTurn: boolean): ort.InferenceSession {
  const { numKeyValueHeads: heads, headDim, vocabSize } = SHAPE;
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
  const batched = new BatchedDecoder(new DecoderSession(standInSession(false), SHAPE));
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
  // Chaining ticks without a turn would have run all 400 steps before the timer.
  assert.ok(
    stepsWhenTimerRan >= 0 && stepsWhenTimerRan < 40,
    `the timer ran after ${stepsWhenTimerRan} of 400 steps`,
  );
  batched.dispose();
});

Deno.test("in the steady state a tick follows the last one in the same turn of the event loop", async () => {
  const batched = new BatchedDecoder(new DecoderSession(standInSession(true), SHAPE));
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
  const batched = new BatchedDecoder(new DecoderSession(session, SHAPE));
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
  const batched = new BatchedDecoder(new DecoderSession(session, SHAPE));
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
