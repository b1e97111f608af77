/**
 * The running batch's cache (`inference/_batch_cache.ts`): every member's positions stay intact
 * through joins, departures, steps, moves left and growth, and a batch that never empties does not
 * grow it without bound.
 */
import assert from "node:assert/strict";
import { BatchCache } from "../../inference/_batch_cache.ts";
import {
  CACHE_SLOT_STEP,
  cacheCapacity,
  type DecoderSession,
  type PastCache,
  type SampledStep,
} from "../../inference/_decoder_session.ts";
import {
  assertZeroOutside,
  decoderOf as decoderIn,
  ownCache as ownCacheOf,
  SHAPE,
} from "./_batch_cache_fixture.ts";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import type { SamplingParams } from "../../inference/sampler.ts";

// The running batch's cache (`inference/_batch_cache.ts`) keeps every member's positions intact
// through joins, departures, steps, moves left and growth, in both cache conventions; with a fixed
// cache a change of membership allocates nothing, and no row ever shows what another sequence left
// behind.

const root = await Deno.makeTempDir({ prefix: "veriflow-batch-cache-test-" });

Deno.test.afterAll(() => Deno.remove(root, { recursive: true }));

function decoderOf(kvCache: "fixed" | "concat"): Promise<DecoderSession> {
  return decoderIn(`${root}/${kvCache}`, kvCache, 3);
}

/** The value a sequence holds at one position, cache tensor, head and lane. */
function value(seq: number, pos: number, k: number, h: number, d: number): number {
  return seq * 100_000 + pos * 100 + k * 10 + h + d / 100;
}

/** A sequence's own cache holding `length` positions of {@link value}. */
function ownCache(decoder: DecoderSession, seq: number, length: number): PastCache {
  return ownCacheOf(decoder, seq, length, value);
}

/** Check a cache of one row holds `length` positions of sequence `seq`. */
function assertHolds(cache: PastCache, decoder: DecoderSession, seq: number, length: number) {
  decoder.pastNames.forEach((name, k) => {
    const data = cache[name].data as Float32Array;
    const slots = cache[name].dims[2];
    for (let h = 0; h < SHAPE.numKeyValueHeads; h++) {
      for (let p = 0; p < length; p++) {
        for (let d = 0; d < SHAPE.headDim; d += 5) {
          const at = data[(h * slots + p) * SHAPE.headDim + d];
          assert.equal(
            at,
            Math.fround(value(seq, p, k, h, d)),
            `seq ${seq} pos ${p} ${name} h${h}`,
          );
        }
      }
    }
  });
}

/**
 * One step of one new position on every row, as the decoder writes it: a fixed cache in place
 * at slot `width`, a concat cache as a new one of `width + 1` slots.
 */
function step(batch: BatchCache, decoder: DecoderSession, seqs: number[], checkZeros = true): void {
  batch.reserve(1);
  const past = batch.feed();
  const rows = batch.rows;
  const width = batch.width;
  const present = decoder.fixedCache ? past : decoder.allocatePast(rows, width + 1);
  decoder.pastNames.forEach((name, k) => {
    const data = present[name].data as Float32Array;
    const slots = present[name].dims[2];
    assert.equal(present[name].dims[0], rows);
    for (let r = 0; r < rows; r++) {
      const length = batch.length(r);
      for (let h = 0; h < SHAPE.numKeyValueHeads; h++) {
        const base = (r * SHAPE.numKeyValueHeads + h) * slots;
        if (!decoder.fixedCache) {
          const old = (past[name].data as Float32Array).subarray(
            (r * SHAPE.numKeyValueHeads + h) * width * SHAPE.headDim,
            (r * SHAPE.numKeyValueHeads + h + 1) * width * SHAPE.headDim,
          );
          data.set(old, base * SHAPE.headDim);
        }
        for (let d = 0; d < SHAPE.headDim; d++) {
          data[(base + width) * SHAPE.headDim + d] = value(seqs[r], length, k, h, d);
        }
      }
    }
  });
  batch.stepped(1, present);
  if (checkZeros) assertZeroOutside(batch, decoder);
}

for (const kvCache of ["fixed", "concat"] as const) {
  Deno.test(`a ${kvCache} batch cache keeps each member's positions through joins, leaves and growth`, async () => {
    const decoder = await decoderOf(kvCache);
    try {
      const batch = new BatchCache(decoder, 4);
      const seqs: number[] = []; // by row
      const lengths = new Map<number, number>();
      const join = (seq: number, length: number) => {
        const row = batch.add(ownCache(decoder, seq, length), length);
        assert.equal(row, seqs.length);
        seqs.push(seq);
        lengths.set(seq, length);
        assertZeroOutside(batch, decoder);
      };
      const leave = (seq: number, keep = true) => {
        const row = seqs.indexOf(seq);
        const length = batch.length(row);
        assert.equal(length, lengths.get(seq));
        const { own, moved } = batch.remove(row, keep);
        if (keep) assertHolds(own!, decoder, seq, length);
        else assert.equal(own, null);
        const last = seqs.pop()!;
        if (moved >= 0) {
          assert.equal(moved, seqs.length);
          seqs[row] = last;
        }
        assert.equal(batch.rows, seqs.length);
        if (batch.rows > 0) assertZeroOutside(batch, decoder);
      };
      const steps = (n: number) => {
        for (let i = 0; i < n; i++) {
          step(batch, decoder, seqs);
          for (const s of seqs) lengths.set(s, lengths.get(s)! + 1);
        }
      };

      join(1, 5);
      join(2, 20);
      join(3, 9);
      steps(10); // width 30: two slots short of 32
      const allocated = batch.reallocations;
      leave(2); // the longest: the others share 10 slots of padding
      steps(6); // past 32 slots: a fixed cache moves left instead of growing
      if (decoder.fixedCache) assert.equal(batch.reallocations, allocated, "moved, not grown");
      join(4, 40); // longer than the batch: every row moves right (or the cache grows)
      join(5, 1);
      steps(30);
      leave(1, false);
      join(6, 3);
      steps(2);
      if (decoder.fixedCache) {
        // First row, 2 then 4 rows, and growth to 64 then 128 slots: nothing for the moves.
        assert.ok(batch.reallocations <= 6, `${batch.reallocations} reallocations`);
      }
      for (const s of [...seqs]) leave(s);
      assert.equal(batch.rows, 0);
      assert.equal(batch.width, 0);
      // A new batch takes as few slots as it needs, in the memory it has: growing and moving
      // right happen in place.
      const before = batch.reallocations;
      join(7, 12);
      join(8, 3);
      steps(10); // past 16 slots
      join(9, 30); // longer than the batch
      steps(40); // past 32 and 64 slots
      if (decoder.fixedCache) assert.equal(batch.reallocations, before, "all in place");
      for (const s of [8, 7, 9]) leave(s);
    } finally {
      await decoder.session.release();
    }
  });
}

Deno.test("a fixed batch cache grows by CACHE_SLOT_STEP slots past it, within memory allocated a power of two ahead", async () => {
  const decoder = await decoderOf("fixed");
  try {
    const batch = new BatchCache(decoder, 2);
    batch.add(ownCache(decoder, 1, 60), 60);
    batch.add(ownCache(decoder, 2, 30), 30);
    const allocated = batch.reallocations;
    const capacities: number[] = [batch.feed()[decoder.pastNames[0]].dims[2]];
    for (let i = 0; i < 470; i++) {
      step(batch, decoder, [1, 2], false);
      const capacity = batch.feed()[decoder.pastNames[0]].dims[2];
      if (capacity !== capacities.at(-1)) {
        capacities.push(capacity);
        assertZeroOutside(batch, decoder); // rows moved within the memory leave nothing behind
      }
    }
    // A step reads every slot it is given: never more than one step of slots unused.
    assert.deepEqual(capacities, [64, 128, 192, 256, 320, 384, 448, 512, 576]);
    assert.ok(batch.width + 1 > capacities.at(-1)! - CACHE_SLOT_STEP);
    // New memory only past 64, 128, 256 and 512 slots: the growths in between were in place.
    assert.equal(batch.reallocations - allocated, 4);
    assert.equal(batch.width, 530);
    assertHolds(batch.remove(1, true).own!, decoder, 2, 500);
    assertHolds(batch.remove(0, true).own!, decoder, 1, 530);
  } finally {
    await decoder.session.release();
  }
});

// The running batch's fixed cache (`inference/_batch_cache.ts`) under steady traffic: a batch that
// never empties, because short jobs keep joining it as others leave, must stay within the slots its
// members need. The padding that members longer than the others leave behind goes when the slots
// run out, whether a step or a join finds them full; otherwise every step would read (and the
// memory would hold) slots for every token the batch ever ran.

const rootGrowth = await Deno.makeTempDir({ prefix: "veriflow-review-s49-cache-" });

Deno.test.afterAll(() => Deno.remove(rootGrowth, { recursive: true }));

function fixedDecoder(): Promise<DecoderSession> {
  return decoderIn(rootGrowth, "fixed", 5);
}

/** The value sequence `seq` holds at one position, cache tensor, head and lane. */
function valueGrowth(seq: number, pos: number, k: number, h: number, d: number): number {
  return seq * 1_000 + pos * 10 + k + h / 10 + d / 1_000;
}

/** A sequence's own cache holding `length` positions of {@link value}. */
function ownCacheGrowth(decoder: DecoderSession, seq: number, length: number): PastCache {
  return ownCacheOf(decoder, seq, length, valueGrowth);
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
            Math.fround(valueGrowth(seqs[row], p, 1, 2, 3)),
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
        batch.add(ownCacheGrowth(decoder, seq, 3), 3);
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
              data[((r * SHAPE.numKeyValueHeads + h) * slots + width) * SHAPE.headDim + d] =
                valueGrowth(
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
