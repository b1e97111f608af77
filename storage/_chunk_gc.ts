/**
 * A garbage collection pass of the chunk store: the objects no root reaches and whose every copy
 * is older than the grace period, and the extra copies of the objects that stay, are removed.
 * `ChunkStore.gc` (where the whole rule is documented) runs {@link collectGarbage} under the store
 * lock, right after reloading its index, over a {@link GcStore} view of itself; the roots are
 * those `gc_roots.ts` reads from disk. Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { verifyCid } from "./_hash.ts";
import { DiskFullError } from "./errors.ts";
import { type PackIndex, readRange } from "./_pack_index.ts";
import type { GcResult } from "./chunk_store.ts";
import { blocksReferencedBy, isDagNode, readGcRoots } from "./gc_roots.ts";
import type { WrittenObject } from "./pack_writer.ts";

/** What a garbage collection reads and changes of its store. */
export interface GcStore {
  /** The store directory, whose roots (`gc_roots.ts`) are read. */
  readonly dir: string;
  /** The store's index, just reloaded under the store lock. */
  readonly index: PackIndex;
  /** Milliseconds since the epoch (the store's clock), for the grace period. */
  clock(): number;
  /** True while a write of `cid` holds its slot in this process: rooted like a pinned object. */
  writing(cid: string): boolean;
  /** `ChunkStore.isLegacyManifest`. */
  isLegacyManifest(cid: string, bytes: Uint8Array): Promise<boolean>;
  /** Rewrite pack `name` without its copies at the offsets in `drop` (the store's rewrite). */
  removeFromPack(name: string, drop: ReadonlySet<number>): Promise<void>;
}

/**
 * Collect `store`'s garbage, keeping every unrooted object with a copy younger than `graceMs`
 * (see `ChunkStore.gc`). Runs under the store lock.
 */
export async function collectGarbage(store: GcStore, graceMs: number): Promise<GcResult> {
  const cutoff = store.clock() - graceMs;
  const result: GcResult = {
    removed: 0,
    freedBytes: 0,
    kept: 0,
    young: 0,
    abandonedPuts: 0,
    unreadableRoots: [],
    skippedPacks: [],
  };
  const ageOf = (copy: WrittenObject) => store.index.packs.get(copy.pack)?.mtime ?? 0;
  const copies = new Map<string, WrittenObject[]>();
  for (const [pack, info] of store.index.packs) {
    for (const entry of info.entries) {
      const list = copies.get(entry.cid) ?? [];
      list.push({ ...entry, pack });
      copies.set(entry.cid, list);
    }
  }
  // Youngest first. An object is as young as its youngest copy: a put that just wrote a
  // fresh copy over an old one is protected by the grace period whichever copy an index
  // (here or in another process) points at.
  for (const list of copies.values()) list.sort((a, b) => ageOf(b) - ageOf(a));

  const roots = await readGcRoots(store.dir);
  result.abandonedPuts = roots.abandonedPuts;
  const live = new Set([...roots.pending, ...roots.replicas].map(storageKey));
  // Walk every pinned DAG: a UnixFS file of more than 174 chunks has inner dag-pb nodes,
  // and a directory links files. A node that cannot be read stops the GC like a lost root.
  const walk = roots.pins.map((root) => ({ id: root, root }));
  const walked = new Set<string>();
  // Links no store here can hold (a valid dag-json or blake3 CID in a peer's directory): nothing
  // to keep for them, and they must not stop the pass, so they are counted and told once.
  let unstorable = 0;
  let firstUnstorable = "";
  const onUnstorable = (link: string) => {
    if (unstorable++ === 0) firstUnstorable = link;
  };
  while (walk.length > 0) {
    const { id, root } = walk.pop()!;
    const key = storageKey(id);
    if (walked.has(key)) continue;
    walked.add(key);
    live.add(key);
    const good = await firstGoodCopy(store.index, copies.get(key) ?? []);
    if (!good) {
      if (!result.unreadableRoots.includes(root)) result.unreadableRoots.push(root);
      continue;
    }
    const legacyManifest = id === root && await store.isLegacyManifest(id, good.bytes);
    for (const link of blocksReferencedBy(id, good.bytes, { legacyManifest, onUnstorable })) {
      if (isDagNode(link)) walk.push({ id: link, root });
      else live.add(storageKey(link));
    }
  }
  if (unstorable > 0) {
    // One line a pass, as `_pack_index.ts` tells of a pack it leaves unread.
    console.warn(
      `storage: gc passed over ${unstorable} link(s) to blocks no store here holds (not raw, ` +
        `dag-pb or dag-cbor sha2-256), first ${firstUnstorable.slice(0, 80)}`,
    );
  }
  if (result.unreadableRoots.length > 0) return result;

  // Dead copies by pack and offset, never by CID: one pack can hold an object twice (a GC
  // moving it while a put writes a fresh copy, both taken by one group commit), and dropping
  // the extra copy must leave the one kept.
  const dead = new Map<string, Set<number>>();
  const drop = (copy: WrittenObject) => {
    const set = dead.get(copy.pack) ?? new Set<number>();
    set.add(copy.offset);
    dead.set(copy.pack, set);
  };
  const garbage: WrittenObject[][] = []; // the copies of each object removed
  for (const [cid, list] of copies) {
    const rooted = live.has(cid) || store.writing(cid);
    if (!rooted && ageOf(list[0]) <= cutoff) {
      list.forEach(drop);
      garbage.push(list);
      continue;
    }
    if (rooted) result.kept++;
    else result.young++;
    if (list.length === 1) continue;
    // Extra copies (two processes wrote one object, a crash mid-rewrite, a fresh copy over
    // an old one): keep the youngest copy that verifies, so a rotten copy never outlives a
    // good one; while none verifies, keep them all for the reads to sort out.
    const keep = (await firstGoodCopy(store.index, list))?.copy;
    if (!keep) continue;
    store.index.setLocation(keep);
    for (const copy of list) if (copy !== keep) drop(copy);
  }
  const skipped = await removeDeadCopies(store, dead, result);
  result.removed = garbage.filter((list) => !list.some((copy) => skipped.has(copy.pack))).length;
  return result;
}

/** A pack GC removes copies from, and what that costs and gains. */
interface PackPlan {
  pack: string;
  /** Offsets of its copies to remove. */
  drop: ReadonlySet<number>;
  /** Bytes of those copies. */
  freed: number;
  /** Bytes its rewrite writes (one copy of each surviving object); 0 for an all-garbage pack. */
  written: number;
}

/**
 * Remove the `dead` copies (by pack, then offset) from `store`'s packs, adding what was freed and
 * what was skipped to `result`; returns the skipped packs. A pack that keeps survivors must write
 * them into a new pack before it goes, which a full disk refuses: so the packs that free most per
 * byte written go first (all-garbage packs, which write nothing, before any rewrite), each freeing
 * room for the next, and a rewrite that hits a full disk leaves its pack whole
 * ({@link GcResult.skippedPacks}) while the pass goes on. Any other error ends the pass.
 */
async function removeDeadCopies(
  store: GcStore,
  dead: ReadonlyMap<string, ReadonlySet<number>>,
  result: GcResult,
): Promise<Set<string>> {
  const plans: PackPlan[] = [];
  for (const [pack, drop] of dead) {
    const entries = store.index.packs.get(pack)?.entries ?? [];
    let freed = 0;
    const survivors = new Map<string, number>();
    for (const entry of entries) {
      if (drop.has(entry.offset)) freed += entry.length;
      else survivors.set(entry.cid, entry.length);
    }
    const written = survivors.values().reduce((sum, length) => sum + length, 0);
    plans.push({ pack, drop, freed, written });
  }
  const yieldOf = (plan: PackPlan) => plan.written === 0 ? Infinity : plan.freed / plan.written;
  plans.sort((a, b) => yieldOf(b) - yieldOf(a));
  const skipped = new Set<string>();
  for (const plan of plans) {
    try {
      await store.removeFromPack(plan.pack, plan.drop);
    } catch (error) {
      if (!(error instanceof DiskFullError)) throw error;
      skipped.add(plan.pack);
      result.skippedPacks.push({ pack: plan.pack, reason: "disk_full", garbageBytes: plan.freed });
      continue;
    }
    result.freedBytes += plan.freed;
  }
  return skipped;
}

/**
 * The first of `copies` whose bytes verify, with its bytes. Runs under the store lock, where
 * the index was just reloaded and no pack can vanish (a plain `ChunkStore.get` would wait for the
 * lock's own maintenance turn).
 */
async function firstGoodCopy(
  index: PackIndex,
  copies: WrittenObject[],
): Promise<{ copy: WrittenObject; bytes: Uint8Array } | undefined> {
  for (const copy of copies) {
    const bytes = await readRange(index.packPath(copy.pack), copy.offset, copy.length);
    if (await verifyCid(copy.cid, bytes)) return { copy, bytes };
  }
  return undefined;
}
