/**
 * The running batch's cache (`inference/_batch_cache.ts`) keeps every member's positions intact
 * through joins, departures, steps, moves left and growth, in both cache conventions; with a
 * fixed cache a change of membership allocates nothing, and no row ever shows what another
 * sequence left behind.
 */
import assert from "node:assert/strict";
import { BatchCache } from "../../inference/_batch_cache.ts";
import {
  CACHE_SLOT_STEP,
  type DecoderSession,
  type PastCache,
} from "../../inference/_decoder_session.ts";
import {
  assertZeroOutside,
  decoderOf as decoderIn,
  ownCache as ownCacheOf,
  SHAPE,
} from "./_batch_cache_fixture.ts";

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
