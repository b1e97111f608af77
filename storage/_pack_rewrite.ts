/**
 * Removing copies from the chunk store's packs: packs are never modified, so a pack that loses
 * copies (a GC, a quarantine, a delete) is rewritten — its survivors, verified, go into a new
 * pack, bad ones to `quarantine/`, and then the old pack is deleted. `ChunkStore` runs
 * {@link removeFromPack} under its store lock (`ChunkStore.#rewriting`), over a
 * {@link PackRewriteStore} view of itself; `_chunk_gc.ts` reaches it through the store. Not part
 * of the public API.
 *
 * @module
 */
import { type PackIndex, readRange } from "./_pack_index.ts";
import { verifyCid } from "./_hash.ts";
import type { Quarantine } from "./_quarantine.ts";
import { type PackWriter, syncDir, type WrittenObject } from "./pack_writer.ts";

/** What a pack rewrite reads and changes of its store. */
export interface PackRewriteStore {
  /** The store's index, reloaded under the store lock. */
  readonly index: PackIndex;
  /** The store's writer: the survivors go into its next pack. */
  readonly writer: PackWriter;
  /** The store's `quarantine/`, where a survivor that fails verification goes. */
  readonly quarantine: Quarantine;
  /** Whether the store fsyncs (`ChunkStoreOptions.durable`): the packs directory after a removal. */
  readonly durable: boolean;
  /** The store's `packs/` directory. */
  readonly packsDir: string;
}

/**
 * Rewrite pack `name` without its copies at the offsets in `drop`, and without a second copy of
 * an object in this pack: the survivors, verified, go into a new pack, then the old pack is
 * deleted. A survivor that fails verification goes to quarantine instead, and the next copy of
 * its object in this pack, if any, stands in. Objects left unindexed are looked up again in the
 * other packs (a good copy elsewhere replaces a quarantined one). Runs under
 * `ChunkStore.#rewriting`.
 *
 * Copies are named by offset, not by CID, because a pack can hold one object twice (see
 * `ChunkStore.gc`): dropping one copy must never take the other with it. For the same reason a
 * copy whose object is indexed in another pack survives too: that copy is unverified and may be
 * the rotten one, while this one, verified on its way, is then the one read. Extra copies are GC's
 * to drop, after it has found the good one.
 *
 * @throws {DiskFullError} a survivor's write hit a full disk. The old pack is left whole (GC skips
 *   it and goes on), and the packs its other survivors went to are deleted again.
 */
export async function removeFromPack(
  store: PackRewriteStore,
  name: string,
  drop: ReadonlySet<number>,
): Promise<void> {
  const info = store.index.packs.get(name);
  if (!info) return;
  const path = store.index.packPath(name);
  const survivors = info.entries.filter((e) => !drop.has(e.offset));
  const moved: Promise<WrittenObject>[] = [];
  const saved = new Set<string>(); // objects with a good copy on its way to the new pack
  for (const entry of survivors) {
    if (saved.has(entry.cid)) continue; // one good copy of an object is enough
    let bytes: Uint8Array;
    try {
      bytes = await readRange(path, entry.offset, entry.length);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      // Another process rewrote or removed this pack first: take the directory as it is now.
      await allMoved(store, moved, saved);
      return await store.index.reload();
    }
    if (await verifyCid(entry.cid, bytes)) {
      saved.add(entry.cid);
      // Dated as the pack it leaves: a move must not restart an unrooted object's grace period.
      moved.push(store.writer.write(entry.cid, bytes, { packTime: info.mtime }));
    } else {
      await store.quarantine.keep(entry.cid, bytes);
      store.index.unindex(entry.cid, name);
    }
  }
  for (const written of await allMoved(store, moved, saved)) store.index.setLocation(written);
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  if (store.durable) await syncDir(store.packsDir);
  store.index.dropPack(name);
  for (const entry of info.entries) store.index.unindex(entry.cid, name);
  store.index.indexOtherCopies(new Set(info.entries.map((e) => e.cid)));
}

/**
 * Where the survivors in `moved` (the objects of `saved`) landed, once every write has settled.
 * If one failed, the rewrite takes back the others and throws that error: the old pack stays
 * whole, and on a full disk the room those copies took is what the next rewrite needs. None is in
 * flight when this returns, so whatever runs next (the GC's next pack) never races them.
 */
async function allMoved(
  store: PackRewriteStore,
  moved: Promise<WrittenObject>[],
  saved: ReadonlySet<string>,
): Promise<WrittenObject[]> {
  const outcomes = await Promise.allSettled(moved);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  const written = outcomes.flatMap((o) => o.status === "fulfilled" ? [o.value] : []);
  if (!failed) return written;
  for (const pack of new Set(written.map((w) => w.pack))) await removeMovedPack(store, pack, saved);
  if (store.durable) await syncDir(store.packsDir);
  throw failed.reason;
}

/**
 * Delete pack `name`, made by a failed rewrite, if it holds nothing but copies of `saved` (still
 * whole in the old pack). The writer gives a pack objects of one time only, and only a rewrite
 * dates objects in the past, so it does; checked all the same, since a pack holding anything else
 * (a put's only copy) must never go.
 */
async function removeMovedPack(
  store: PackRewriteStore,
  name: string,
  saved: ReadonlySet<string>,
): Promise<void> {
  const info = store.index.packs.get(name);
  if (!info || !info.entries.every((e) => saved.has(e.cid))) return;
  await Deno.remove(store.index.packPath(name)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  store.index.dropPack(name);
  for (const entry of info.entries) store.index.unindex(entry.cid, name);
  store.index.indexOtherCopies(new Set(info.entries.map((e) => e.cid)));
}
