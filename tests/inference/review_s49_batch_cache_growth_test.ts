/**
 * Review (s49) of the running batch's fixed cache (`inference/_batch_cache.ts`) under steady
 * traffic: a batch that never empties, because short jobs keep joining it as others leave, must
 * stay within the slots its members need. The padding that members longer than the others leave
 * behind goes when the slots run out, whether a step or a join finds them full; otherwise every
 * step would read (and the memory would hold) slots for every token the batch ever ran.
 */
import assert from "node:assert/strict";
import { BatchCache } from "../../inference/_batch_cache.ts";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import {
  cacheCapacity,
  type DecoderSession,
  type PastCache,
  type SampledStep,
} from "../../inference/_decoder_session.ts";
import {
  assertZeroOutside,
  decoderOf,
  ownCache as ownCacheOf,
  SHAPE,
} from "./_batch_cache_fixture.ts";
import type { SamplingParams } from "../../inference/sampler.ts";

const root = await Deno.makeTempDir({ prefix: "veriflow-review-s49-cache-" });
Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));

function fixedDecoder(): Promise<DecoderSession> {
  return decoderOf(root, "fixed", 5);
}

/** The value sequence `seq` holds at one position, cache tensor, head and lane. */
function value(seq: number, pos: number, k: number, h: number, d: number): number {
  return seq * 1_000 + pos * 10 + k + h / 10 + d / 1_000;
}

/** A sequence's own cache holding `length` positions of {@link value}. */
function ownCache(decoder: DecoderSession, seq: number, length: number): PastCache {
  return ownCacheOf(decoder, seq, length, value);
}

function slotsOf(batch: BatchCache, decoder: DecoderSession): number {
  return batch.feed()[decoder.pastNames[0]].dims[2];
}

Deno.test("a fixed batch cache that never empties, as short jobs keep joining, stays within the slots its longest member needs", async () => {
  const decoder = await fixedDecoder();
  try {
    const batch = new BatchCache(decoder, 8);
    const seqs: number[] = []; // by row
    const ages: number[] = []; // steps each row has run
    let next = 1;
    let longest = 0;
    let compactedAtJoin = 0;
    for (let tick = 0; tick < 400; tick++) {
      // Members leave after 6 steps, each checked to hold exactly what it was given and stepped.
      for (let row = batch.rows - 1; row >= 0; row--) {
        if (ages[row] < 6) continue;
        const length = batch.length(row);
        const { own, moved } = batch.remove(row, true);
        const data = own![decoder.pastNames[1]].data as Float32Array;
        const slots = own![decoder.pastNames[1]].dims[2];
        for (let p = 0; p < length; p++) {
          assert.equal(
            data[(2 * slots + p) * SHAPE.headDim + 3],
            Math.fround(value(seqs[row], p, 1, 2, 3)),
          );
        }
        if (moved >= 0) {
          seqs[row] = seqs[moved];
          ages[row] = ages[moved];
        }
        seqs.length = ages.length = batch.rows;
      }
      // A new short job joins at every step (a prompt of 3 tokens).
      if (batch.rows < 8) {
        const seq = next++;
        const width = batch.width;
        batch.add(ownCache(decoder, seq, 3), 3);
        seqs.push(seq);
        ages.push(0);
        // The rows moved left as it joined: nothing of their old slots is left behind.
        if (batch.width < width) {
          compactedAtJoin++;
          assertZeroOutside(batch, decoder);
        }
      }
      // One step: each row's next position written at slot `width`, as the decoder does.
      batch.reserve(1);
      const past = batch.feed();
      const width = batch.width;
      decoder.pastNames.forEach((name, k) => {
        const data = past[name].data as Float32Array;
        const slots = past[name].dims[2];
        for (let r = 0; r < batch.rows; r++) {
          for (let h = 0; h < SHAPE.numKeyValueHeads; h++) {
            for (let d = 0; d < SHAPE.headDim; d++) {
              data[((r * SHAPE.numKeyValueHeads + h) * slots + width) * SHAPE.headDim + d] = value(
                seqs[r],
                batch.length(r),
                k,
                h,
                d,
              );
            }
          }
        }
      });
      batch.stepped(1, past);
      for (let r = 0; r < batch.rows; r++) {
        ages[r]++;
        longest = Math.max(longest, batch.length(r));
      }
      assert.ok(
        slotsOf(batch, decoder) <= cacheCapacity(longest + 1),
        `step ${tick}: ${slotsOf(batch, decoder)} slots (width ${batch.width}) for members of ` +
          `at most ${longest} positions`,
      );
    }
    assert.equal(batch.rows, 6);
    assert.ok(compactedAtJoin > 0, "no join found the slots full");
  } finally {
    await decoder.session.release();
  }
});

Deno.test("generations that keep one batch busy, one joining at every step, get their solo tokens and never grow its cache", async () => {
  const decoder = await fixedDecoder();
  try {
    const plans = Array.from({ length: 80 }, (_, i) => ({
      prompt: Array.from({ length: 1 + (i % 4) }, (_, j) => 40 + ((i * 7 + j * 3) % 60)),
      params: { temperature: i % 3 === 0 ? 0 : 0.8, topK: 0, topP: 1, seed: 100 + i },
      steps: 5 + (i % 3),
    }));
    type Stepper = {
      step(
        tokens: readonly number[],
        sampling: { params: SamplingParams; position: number },
      ): Promise<SampledStep>;
      close(): void;
    };
    const run = async (seq: Stepper, plan: (typeof plans)[number], onFirst = () => {}) => {
      const out: number[] = [];
      let feed = plan.prompt;
      for (let t = 0; t < plan.steps; t++) {
        const { tokenId } = await seq.step(feed, { params: plan.params, position: t });
        if (t === 0) onFirst();
        out.push(tokenId);
        feed = [tokenId];
      }
      seq.close();
      return out;
    };
    const solo: number[][] = [];
    for (const plan of plans) solo.push(await run(decoder.sequence(), plan));

    const batched = new BatchedDecoder(decoder, { maxBatch: 8 });
    // Each job starts as the one before it gets its first token: its prompt is read at the next
    // step, and it joins the batch at the one after, so someone joins at every step and the
    // batch never empties.
    const results: Promise<number[]>[] = [];
    const start = (i: number) => {
      results.push(run(batched.sequence(), plans[i], () => {
        if (i + 1 < plans.length) start(i + 1);
      }));
    };
    start(0);
    while (results.length < plans.length) await Promise.all(results);
    assert.deepEqual(await Promise.all(results), solo);
    const stats = batched.stats();
    assert.ok(stats.maxBatch >= 4, `at most ${stats.maxBatch} rows at once`);
    // One pool of 16 slots, allocated again only as the rows double (1, 2, 4, 8): the members'
    // padding moves out as the slots fill, whether a step or a join finds them full.
    assert.ok(stats.reallocations <= 4, `${stats.reallocations} reallocations`);
    batched.dispose();
  } finally {
    await decoder.session.release();
  }
});
