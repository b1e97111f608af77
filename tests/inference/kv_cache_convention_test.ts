/**
 * The two KV-cache conventions (`inference/_decoder_session.ts`) compute the same model: the
 * built-in graph with a fixed-capacity cache updated in place, and the same weights in a
 * Hugging Face export's past/present convention, generate the same tokens with fingerprints
 * equal within float rounding — alone, batched, in workers, and across the points where a
 * fixed cache grows.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { buildGptModel } from "../../inference/model_builder.ts";
import {
  CACHE_SLOT_STEP,
  cacheCapacity,
  DecoderSession,
  MIN_CACHE_SLOTS,
} from "../../inference/_decoder_session.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { fingerprintDistance } from "../../proof/fingerprint.ts";
import { collect, params } from "./_fixtures.ts";

const root = await Deno.makeTempDir({ prefix: "veriflow-kv-convention-test-" });
Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));
const fixedDir = (await buildGptModel({ size: "tiny", seed: 5, outDir: `${root}/fixed` })).dir;
const concatDir = (await buildGptModel({
  size: "tiny",
  seed: 5,
  outDir: `${root}/concat`,
  kvCache: "concat",
})).dir;

/** Float rounding between the two graphs' op orders, far below the proofs' tolerance. */
const FINGERPRINT_TOLERANCE = 1e-3;

/** Prompts of 1 to 70 tokens: generations of 60 tokens cross 16, 32, 64 and 128 slots. */
const PROMPTS: number[][] = [
  [72],
  Array.from("The quick brown fox", (c) => c.charCodeAt(0)),
  Array.from({ length: 31 }, (_, i) => 97 + (i * 5) % 26),
  Array.from({ length: 70 }, (_, i) => 65 + (i * 3) % 26),
];

function assertSameGeneration(a: TokenChunk[], b: TokenChunk[], label: string): void {
  assert.deepEqual(a.map((c) => c.tokenId), b.map((c) => c.tokenId), `${label}: tokens`);
  let worst = 0;
  a.forEach((c, i) =>
    worst = Math.max(worst, fingerprintDistance(c.fingerprint, b[i].fingerprint))
  );
  assert.ok(worst < FINGERPRINT_TOLERANCE, `${label}: fingerprint Δ ${worst}`);
}

Deno.test("a fixed cache holds the next power of two slots up to CACHE_SLOT_STEP, then the next multiple of it", () => {
  assert.equal(cacheCapacity(0), MIN_CACHE_SLOTS);
  assert.equal(cacheCapacity(MIN_CACHE_SLOTS), MIN_CACHE_SLOTS);
  assert.equal(cacheCapacity(MIN_CACHE_SLOTS + 1), 2 * MIN_CACHE_SLOTS);
  assert.equal(cacheCapacity(CACHE_SLOT_STEP), CACHE_SLOT_STEP);
  assert.equal(cacheCapacity(CACHE_SLOT_STEP + 1), 2 * CACHE_SLOT_STEP);
  assert.equal(cacheCapacity(129), 192);
  // Past 256 positions a batch no longer pays for 512 slots.
  assert.equal(cacheCapacity(257), 320);
  assert.equal(cacheCapacity(1024), 1024);
});

Deno.test("the built-in graph (fixed cache) and the same weights as a past/present export generate the same, alone and batched", async () => {
  const fixed = await TextModel.load(fixedDir, { intraOpThreads: 1 });
  const concat = await TextModel.load(concatDir, { intraOpThreads: 1 });
  try {
    assert.notEqual(fixed.info.cid, concat.info.cid);
    const opts = params({ maxTokens: 60, temperature: 0.8, seed: 11 });
    const alone: TokenChunk[][] = [];
    for (const [i, prompt] of PROMPTS.entries()) {
      const a = await collect(fixed.generate(prompt, opts));
      assertSameGeneration(a, await collect(concat.generate(prompt, opts)), `prompt ${i} alone`);
      alone.push(a);
    }
    // All at once: one batch whose cache is rebuilt as members join and leave.
    const together = await Promise.all(PROMPTS.map((p) => collect(fixed.generate(p, opts))));
    together.forEach((g, i) => assertSameGeneration(g, alone[i], `prompt ${i} batched`));
    const stats = (await fixed.batchStats())[0];
    assert.ok(stats.maxBatch > 1, "the generations shared executions");
  } finally {
    await fixed.dispose();
    await concat.dispose();
  }
});

Deno.test("in a model worker the fixed-cache model generates what it does in-thread", async () => {
  const inThread = await TextModel.load(fixedDir, { intraOpThreads: 1 });
  const worker = await TextModel.load(fixedDir, {
    intraOpThreads: 1,
    worker: true,
    workerCount: 1,
  });
  try {
    const opts = params({ maxTokens: 40 });
    const a = await Promise.all(PROMPTS.map((p) => collect(inThread.generate(p, opts))));
    const b = await Promise.all(PROMPTS.map((p) => collect(worker.generate(p, opts))));
    a.forEach((g, i) => assertSameGeneration(g, b[i], `prompt ${i}`));
  } finally {
    await inThread.dispose();
    await worker.dispose();
  }
});

Deno.test("a fixed cache grows by copy when a step would overflow it, keeping its rows, and a pass that keeps no cache leaves it untouched", async () => {
  const session = await ort.InferenceSession.create(`${fixedDir}/model.onnx`, {
    intraOpNumThreads: 1,
  });
  try {
    const decoder = new DecoderSession(session, {
      numLayers: 2,
      numKeyValueHeads: 4,
      headDim: 16,
      vocabSize: 260,
    });
    assert.equal(decoder.fixedCache, true);
    const name = decoder.pastNames[0];
    const prompt = Array.from({ length: MIN_CACHE_SLOTS - 1 }, (_, i) => 65 + i);
    const first = await decoder.run(prompt, 0, decoder.emptyPast());
    assert.equal(first.present[name].dims[2], MIN_CACHE_SLOTS);
    const before = (first.present[name].data as Float32Array).slice();
    // Two more tokens: 17 positions no longer fit 16 slots.
    const second = await decoder.run([66, 67], prompt.length, first.present);
    assert.notEqual(second.present, first.present);
    assert.equal(second.present[name].dims[2], 2 * MIN_CACHE_SLOTS);
    const grown = second.present[name].data as Float32Array;
    const headDim = 16;
    for (let h = 0; h < 4; h++) {
      const kept = before.subarray(
        h * MIN_CACHE_SLOTS * headDim,
        (h * MIN_CACHE_SLOTS + prompt.length) * headDim,
      );
      const now = grown.subarray(
        h * 2 * MIN_CACHE_SLOTS * headDim,
        (h * 2 * MIN_CACHE_SLOTS + prompt.length) * headDim,
      );
      assert.deepEqual(now, kept, `head ${h}: the rows already cached are copied as they were`);
    }
    // A forward pass (no cache kept) writes nothing into the cache it was given.
    const cache = decoder.emptyPast();
    await decoder.run([70, 71, 72], 0, cache, false);
    assert.ok((cache[name].data as Float32Array).every((x) => x === 0));
  } finally {
    await session.release();
  }
});
