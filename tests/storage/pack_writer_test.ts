/**
 * `PackWriter` (`storage/pack_writer.ts`): group commit into packs named by their time.
 *
 * - A pack's time is every copy's age for the GC grace period, so a pack holds objects of one time
 *   only: a rewrite's survivors keep their old pack's time (review s70 B, finding 6), and a fresh
 *   write queued beside them is not aged with them (its grace would be cut short).
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { packTimeOf, PackWriter } from "../../storage/pack_writer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

Deno.test("a pack takes objects of one time only: rewritten survivors keep their old time, a fresh write beside them is dated now", async () => {
  const dir = await Deno.makeTempDir();
  const now = 1_700_000_000_000;
  const old = now - 60_000;
  const held = { stalled: Promise.withResolvers<void>(), release: Promise.withResolvers<void>() };
  let holding = true;
  let queued = 0;
  const threeQueued = Promise.withResolvers<void>();
  const writer = new PackWriter(dir, {
    durable: false,
    clock: () => now,
    async beforeWrite() {
      if (!holding) return;
      holding = false;
      held.stalled.resolve();
      await held.release.promise;
    },
    queued() {
      if (++queued === 4) threeQueued.resolve();
    },
  });
  const write = (seed: number, packTime?: number) => {
    const bytes = pseudoRandomBytes(1000, seed);
    return writer.write(cidOf(bytes), bytes, packTime === undefined ? undefined : { packTime });
  };
  const filler = write(1);
  await held.stalled.promise;
  // Queued while the filler's pack is written: all three would share the next pack.
  const writes = [write(2, old), write(3), write(4, old)];
  await threeQueued.promise;
  held.release.resolve();
  const [survivor, fresh, otherSurvivor] = await Promise.all(writes);
  await filler;
  assert.equal(survivor.pack, otherSurvivor.pack, "the survivors share a pack");
  assert.equal(packTimeOf(survivor.pack), old, "dated as the pack they came from");
  assert.notEqual(fresh.pack, survivor.pack);
  assert.equal(packTimeOf(fresh.pack), now, "the fresh write keeps its whole grace period");
  await Deno.remove(dir, { recursive: true });
});
