/**
 * What the batch cache tests share: a small decoder of the built-in `tiny` architecture, a
 * sequence's own cache filled with values that name their sequence, position, tensor, head and
 * lane, and the check that no row shows what another left behind.
 */
import assert from "node:assert/strict";
import type { BatchCache } from "../../inference/_batch_cache.ts";
import { DecoderSession, type PastCache } from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";

/** The cache shape of the test model. */
export const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };

/** A decoder over a `tiny` model of weight `seed`, built under `outDir`, in `kvCache`'s convention. */
export async function decoderOf(
  outDir: string,
  kvCache: "fixed" | "concat",
  seed: number,
): Promise<DecoderSession> {
  const { dir } = await buildGptModel({ size: "tiny", seed, outDir, kvCache });
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

/** The value sequence `seq` holds at position `pos`, cache tensor `k`, head `h`, lane `d`. */
export type CacheValue = (seq: number, pos: number, k: number, h: number, d: number) => number;

/** A sequence's own cache holding `length` positions of `value`. */
export function ownCache(
  decoder: DecoderSession,
  seq: number,
  length: number,
  value: CacheValue,
): PastCache {
  const cache = decoder.allocatePast(1, length);
  decoder.pastNames.forEach((name, k) => {
    const data = cache[name].data as Float32Array;
    const slots = cache[name].dims[2];
    for (let h = 0; h < SHAPE.numKeyValueHeads; h++) {
      for (let p = 0; p < length; p++) {
        for (let d = 0; d < SHAPE.headDim; d++) {
          data[(h * slots + p) * SHAPE.headDim + d] = value(seq, p, k, h, d);
        }
      }
    }
  });
  return cache;
}

/** Every slot of a used row outside its positions is zero (nothing another row left there). */
export function assertZeroOutside(batch: BatchCache, decoder: DecoderSession): void {
  const fed = batch.feed();
  for (const name of decoder.pastNames) {
    const data = fed[name].data as Float32Array;
    const slots = fed[name].dims[2];
    for (let r = 0; r < batch.rows; r++) {
      const from = batch.width - batch.length(r);
      for (let h = 0; h < SHAPE.numKeyValueHeads; h++) {
        for (let p = 0; p < slots; p++) {
          if (p >= from && p < batch.width) continue;
          const base = ((r * SHAPE.numKeyValueHeads + h) * slots + p) * SHAPE.headDim;
          for (let d = 0; d < SHAPE.headDim; d++) {
            assert.equal(data[base + d], 0, `row ${r} slot ${p} ${name} h${h} is not zero`);
          }
        }
      }
    }
  }
}
