/**
 * A failure inside a batch tick (`inference/_batch_decoder.ts`) outside the model's execution —
 * here an allocation of a sequence's own cache, as under memory pressure — fails the steps it
 * touches and nothing else. A tick is started with `void`: a failure escaping it would be an
 * unhandled rejection, which ends the process (in worker mode, the worker with every generation
 * on it), so these tests also fail if one escapes.
 */
import assert from "node:assert/strict";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import { DecoderSession, type SampledStep } from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-batch-failures-test-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));
const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 1 };

async function decoderSession(): Promise<DecoderSession> {
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
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
  const decoder = await decoderSession();
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
  const decoder = await decoderSession();
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
