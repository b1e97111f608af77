/**
 * GC on a full disk (`storage/_chunk_gc.ts`). "Unpin, then `gc`" is the way out of a full disk, so
 * GC must free what needs no write even when nothing can be written: a pack of nothing but garbage
 * is deleted outright, while a pack that keeps some objects is rewritten (its survivors into a new
 * pack first), which takes room.
 *
 * - GC rewrote packs in index order, and the first mixed pack's rewrite hit ENOSPC and ended the
 *   whole pass: on a full disk it threw `disk_full` and freed almost nothing, even the packs that
 *   needed no write (review s70 B, finding 1). Fixed: packs go in order of bytes freed per byte
 *   written (all-garbage packs, which write nothing, first), and a rewrite that hits a full disk
 *   skips that pack (`GcResult.skippedPacks`), takes back the survivors it had already moved, and
 *   the pass goes on.
 *
 * The full disk is simulated through the store's fault hooks: a pack write fails with ENOSPC when
 * what it carries does not fit in what the packs on disk leave of a capacity (see {@link FakeDisk}).
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkStore, type GcResult } from "../../storage/chunk_store.ts";
import { filesUnder, objectLocation, packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

/** Grace period of the tests' stores; the clock is moved past it before each GC. */
const GRACE_MS = 1000;

/**
 * A disk of `capacity` bytes under a store's `packs/`, and a gate that groups objects into packs,
 * both through the store's fault hooks.
 *
 * The write hook runs before a pack's bytes are written, so it cannot see the pack's size: it
 * takes the objects queued since the previous pack began as this pack's (exact here, where a GC
 * rewrite moves one survivor, so every pack takes just what was queued before it).
 */
class FakeDisk {
  /** Bytes the disk holds; `Infinity` until a test fills it. */
  capacity = Infinity;
  readonly #packsDir: string;
  readonly #lengths = new Map<string, number>();
  #queuedBytes = 0;
  #writesLeft = Infinity;
  #stall: { stalled: PromiseWithResolvers<void>; release: PromiseWithResolvers<void> } | null =
    null;
  #queueWait: { count: number; reached: PromiseWithResolvers<void> } | null = null;

  constructor(dir: string) {
    this.#packsDir = `${dir}/packs`;
  }

  /** The store's fault hooks. */
  get faults() {
    return {
      beforeWrite: async () => {
        const stall = this.#stall;
        this.#stall = null;
        if (stall) {
          stall.stalled.resolve();
          await stall.release.promise;
        }
        const need = this.#queuedBytes;
        this.#queuedBytes = 0;
        if (this.#writesLeft-- <= 0 || need > this.capacity - await this.used()) {
          throw Object.assign(new Error("No space left on device (os error 28)"), {
            code: "ENOSPC",
          });
        }
      },
      queued: (cid: string) => {
        this.#queuedBytes += this.#lengths.get(cid) ?? 0;
        if (this.#queueWait && --this.#queueWait.count === 0) this.#queueWait.reached.resolve();
      },
    };
  }

  /** Bytes of the files under `packs/`. */
  async used(): Promise<number> {
    let bytes = 0;
    for (const path of await filesUnder(this.#packsDir)) bytes += (await Deno.stat(path)).size;
    return bytes;
  }

  /** Let the next `count` pack writes through, whatever their size, and fail every one after. */
  acceptWrites(count: number): void {
    this.#writesLeft = count;
  }

  /** Fill the disk but for `freeBytes`. */
  async fill(freeBytes: number): Promise<void> {
    this.capacity = await this.used() + freeBytes;
  }

  /**
   * Put each group of `groups` into a pack of its own (in that order, so the store's index lists
   * them in that order too), behind a small pinned pack that holds the writer while the first
   * group queues. Returns the groups' CIDs.
   */
  async putInPacks(store: ChunkStore, groups: Uint8Array[][]): Promise<string[][]> {
    for (const bytes of groups.flat()) this.#lengths.set(cidOf(bytes), bytes.length);
    let stall = this.#arm();
    const filler = store.put(pseudoRandomBytes(16, 9999));
    await stall.stalled.promise;
    const puts: Promise<string>[][] = [];
    for (const [i, group] of groups.entries()) {
      const reached = Promise.withResolvers<void>();
      this.#queueWait = { count: group.length, reached };
      puts.push(group.map((bytes) => store.put(bytes)));
      await reached.promise;
      this.#queueWait = null;
      // The group's pack waits in turn while the next group queues behind it.
      const previous = stall;
      if (i < groups.length - 1) stall = this.#arm();
      previous.release.resolve();
      if (i < groups.length - 1) await stall.stalled.promise;
    }
    await store.pin(await filler);
    this.#queuedBytes = 0;
    return await Promise.all(puts.map((group) => Promise.all(group)));
  }

  #arm() {
    const stall = {
      stalled: Promise.withResolvers<void>(),
      release: Promise.withResolvers<void>(),
    };
    this.#stall = stall;
    return stall;
  }
}

/** A store in a fresh directory over a {@link FakeDisk}, with a clock the test moves. */
async function openStore() {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/packs`, { recursive: true });
  const disk = new FakeDisk(dir);
  const clock = { now: 1_700_000_000_000 };
  const store = await ChunkStore.open(dir, {
    durable: false,
    gcGraceMs: GRACE_MS,
    clock: () => clock.now,
    faults: disk.faults,
  });
  return { dir, disk, clock, store };
}

/** The file name of the pack that holds `cid` in the store at `dir`. */
async function packOf(dir: string, cid: string): Promise<string> {
  return basename((await objectLocation(dir, cid)).path);
}

Deno.test("GC on a full disk deletes the all-garbage packs and skips, with the reason, a pack it cannot rewrite", async () => {
  const { dir, disk, clock, store } = await openStore();
  const keep = pseudoRandomBytes(300_000, 1);
  const junk = pseudoRandomBytes(50_000, 2);
  const junkAlone = pseudoRandomBytes(20_000, 3);
  const [[kept, sharing], [alone]] = await disk.putInPacks(store, [[keep, junk], [junkAlone]]);
  await store.pin(kept);
  const mixedPack = await packOf(dir, kept);
  // Deleting the all-garbage pack leaves 20 kB free, not enough to move the pinned 300 kB.
  await disk.fill(0);
  clock.now += 10 * GRACE_MS;

  const result: GcResult = await store.gc();
  assert.equal(result.freedBytes, junkAlone.length, "the all-garbage pack went");
  assert.equal(result.removed, 1);
  assert.deepEqual(result.skippedPacks, [
    { pack: mixedPack, reason: "disk_full", garbageBytes: junk.length },
  ]);
  assert.equal(await store.has(alone), false);
  assert.deepEqual(await store.get(kept), keep, "the pinned chunk still reads back");
  assert.deepEqual(await store.get(sharing), junk, "the skipped pack is left whole");

  // Room made elsewhere: the next GC finishes the job.
  disk.capacity = Infinity;
  const again = await store.gc();
  assert.equal(again.freedBytes, junk.length);
  assert.deepEqual(again.skippedPacks, []);
  assert.equal(await store.has(sharing), false);
  assert.deepEqual(await store.get(kept), keep);
  assert.deepEqual(await (await ChunkStore.open(dir)).get(kept), keep, "and after reopening");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("GC on a full disk deletes an all-garbage pack first, making room to rewrite a mixed one", async () => {
  const { dir, disk, clock, store } = await openStore();
  const keep = pseudoRandomBytes(300_000, 4);
  const junk = pseudoRandomBytes(50_000, 5);
  const junkAlone = pseudoRandomBytes(400_000, 6);
  // The mixed pack comes first in the index: the order GC used to rewrite in.
  const [[kept, sharing], [alone]] = await disk.putInPacks(store, [[keep, junk], [junkAlone]]);
  await store.pin(kept);
  await disk.fill(10_000);
  clock.now += 10 * GRACE_MS;
  const before = await disk.used();

  const result = await store.gc();
  assert.equal(result.freedBytes, junk.length + junkAlone.length);
  assert.equal(result.removed, 2);
  assert.deepEqual(result.skippedPacks, []);
  assert.equal(await store.has(alone), false);
  assert.equal(await store.has(sharing), false);
  assert.deepEqual(await store.get(kept), keep, "the pinned chunk still reads back");
  assert.ok(before - await disk.used() >= junk.length + junkAlone.length, "the disk has the room");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("GC rewrites the mixed pack that frees most per byte written first, so a full disk takes both", async () => {
  const { dir, disk, clock, store } = await openStore();
  const bigKeep = pseudoRandomBytes(300_000, 7);
  const smallJunk = pseudoRandomBytes(20_000, 8);
  const smallKeep = pseudoRandomBytes(20_000, 9);
  const bigJunk = pseudoRandomBytes(400_000, 10);
  // First in the index: a pack that frees 20 kB for a 300 kB write; then one that frees 400 kB for
  // a 20 kB write. Only the second fits in 50 kB, and it leaves room for the first.
  const [[a, aJunk], [b, bJunk]] = await disk.putInPacks(store, [
    [bigKeep, smallJunk],
    [smallKeep, bigJunk],
  ]);
  await store.pin(a);
  await store.pin(b);
  await disk.fill(50_000);
  clock.now += 10 * GRACE_MS;

  const result = await store.gc();
  assert.deepEqual(result.skippedPacks, []);
  assert.equal(result.freedBytes, smallJunk.length + bigJunk.length);
  assert.equal(await store.has(aJunk), false);
  assert.equal(await store.has(bJunk), false);
  assert.deepEqual(await store.get(a), bigKeep);
  assert.deepEqual(await store.get(b), smallKeep);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a rewrite that runs out of room midway takes back what it wrote: the disk is left as it was", async () => {
  const { dir, disk, clock, store } = await openStore();
  const first = pseudoRandomBytes(30_000, 11);
  const second = pseudoRandomBytes(30_000, 12);
  const junk = pseudoRandomBytes(50_000, 13);
  const [[a, b, j]] = await disk.putInPacks(store, [[first, second, junk]]);
  await store.pin(a);
  await store.pin(b);
  clock.now += 10 * GRACE_MS;
  // The rewrite's first survivor goes into a pack of its own (nothing else is queued when it
  // starts); the disk takes that pack and refuses the next, holding the second survivor.
  disk.acceptWrites(1);
  const packsBefore = (await packFilesUnder(dir)).sort();
  const usedBefore = await disk.used();

  const result = await store.gc();
  assert.deepEqual(result.skippedPacks.map((p) => p.reason), ["disk_full"]);
  assert.equal(result.freedBytes, 0);
  assert.deepEqual((await packFilesUnder(dir)).sort(), packsBefore, "no half-moved survivors left");
  assert.equal(await disk.used(), usedBefore);
  assert.deepEqual(await store.get(a), first);
  assert.deepEqual(await store.get(b), second);
  assert.deepEqual(await store.get(j), junk, "the skipped pack is left whole");

  disk.acceptWrites(Infinity);
  assert.equal((await store.gc()).freedBytes, junk.length);
  assert.equal(await store.has(j), false);
  assert.deepEqual(await (await ChunkStore.open(dir)).get(a), first);
  assert.deepEqual(await (await ChunkStore.open(dir)).get(b), second);
  await Deno.remove(dir, { recursive: true });
});
