/**
 * Pack rewrites (`storage/_pack_rewrite.ts`): a pack that loses copies is rewritten, its survivors
 * moved into a new pack.
 *
 * - The new pack was dated by the clock at the rewrite, and a copy's age is its pack's: an
 *   unreferenced survivor still inside the grace period got a whole new one every time its pack
 *   was rewritten, so young garbage beside data that moves often was never collected (review s70
 *   B, finding 6). Fixed: the survivors' pack keeps the old pack's time (`PackWriter.write`'s
 *   `packTime`).
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

const GRACE_MS = 1000;

Deno.test("a GC that rewrites a pack keeps its young unreferenced survivor's age: the next GC past its grace takes it", async () => {
  const dir = await Deno.makeTempDir();
  let now = 1_700_000_000_000;
  // Hold the first pack's write until two more objects queued, so they share the pack after it.
  const held = { stalled: Promise.withResolvers<void>(), release: Promise.withResolvers<void>() };
  let holding = true;
  let queued = 0;
  const twoQueued = Promise.withResolvers<void>();
  const store = await ChunkStore.open(dir, {
    durable: false,
    gcGraceMs: GRACE_MS,
    clock: () => now,
    faults: {
      async beforeWrite() {
        if (!holding) return;
        holding = false;
        held.stalled.resolve();
        await held.release.promise;
      },
      queued() {
        if (++queued === 3) twoQueued.resolve();
      },
    },
  });
  const pinnedBytes = pseudoRandomBytes(5000, 1);
  const youngBytes = pseudoRandomBytes(3000, 2);
  const filler = store.put(pseudoRandomBytes(16, 3));
  await held.stalled.promise;
  const puts = [store.put(pinnedBytes), store.put(youngBytes)];
  await twoQueued.promise;
  held.release.resolve();
  const [pinned, young] = await Promise.all(puts);
  await store.pin(pinned);
  await store.pin(await filler);

  // Past half the grace period a put of the pinned object writes a fresh copy, and the GC then
  // drops the old one: the shared pack is rewritten, moving the unpinned object, still young.
  now += 0.6 * GRACE_MS;
  await store.put(pinnedBytes);
  const first = await store.gc();
  assert.equal(first.removed, 0);
  assert.equal(first.young, 1, "the unpinned object is inside its grace period");
  assert.equal(first.freedBytes, pinnedBytes.length, "the old copy of the pinned object went");
  assert.equal(
    (await packFilesUnder(dir)).length,
    3,
    "the filler's, the fresh copy's, the moved one's",
  );

  // Past the grace period counted from its put, not from the move: it goes.
  now += 0.5 * GRACE_MS;
  const second = await store.gc();
  assert.equal(second.removed, 1);
  assert.equal(second.freedBytes, youngBytes.length);
  assert.equal(await store.has(young), false);
  assert.deepEqual(await store.get(pinned), pinnedBytes);
  await Deno.remove(dir, { recursive: true });
});
