/**
 * The chunk store's index: where each object is read from (CID → pack, offset, length), what
 * every known pack holds, and what they all take against the quota. It lives in memory and is
 * rebuilt from the pack headers ({@link PackIndex.reload}): on open, when a lookup misses and the
 * packs directory changed (another process wrote), and before every rewrite. An object already
 * indexed keeps its place while its pack exists. `ChunkStore` owns one `PackIndex`: its pack
 * writer registers each durable pack here ({@link PackIndex.addPack}), and its rewrites (GC,
 * quarantine) move and forget copies through it. Each change of an object's indexed copy is told
 * to the replica cap ({@link IndexCharges}), which charges what is indexed, and each pack counted
to the store, whose writes in flight are charged until then. {@link readRange}
 * reads a copy's bytes from its pack (the store's reads, rewrites and GC). A pack whose header is
 * damaged is moved to `quarantine/`; one of a newer version (a newer node's beside this process)
 * is left in place, unread, logged once and counted in {@link PackIndex.used}. Not part of the
 * public API.
 *
 * @module
 */
import { join } from "node:path";
import { PACK_OVERHEAD_BYTES, packBytes } from "./_chunk_costs.ts";
import { dirEntries } from "./_dir_entries.ts";
import { dirStamp, STAMP_TRUST_MS } from "./_dir_stamp.ts";
import { DamagedPackError } from "./errors.ts";
import { NewerPackError, type PackEntry, readExactly, readPackIndex } from "./pack_format.ts";
import { isTempName, PACK_SUFFIX, packTimeOf, type WrittenObject } from "./pack_writer.ts";

/** Pack headers read at once when (re)loading the index. */
const RELOAD_CONCURRENCY = 32;

/** What the store knows of one pack. */
export interface PackInfo {
  /** Its objects' index entries, as its header lists them. */
  entries: PackEntry[];
  /** Creation time (ms), for the GC grace period. */
  mtime: number;
}

/** Told when an object's indexed copy goes or changes (the replica cap charges indexed copies). */
export interface IndexCharges {
  /** `cid`'s indexed copy is about to leave the index or be replaced. */
  uncharge(cid: string): void;
  /** `cid` was just given an indexed copy. */
  charge(cid: string): void;
  /**
   * A pack holding `objects` was just counted (the writer's new pack, or one a reload found first):
   * what was held for their writes in flight is charged through the index from now on.
   */
  packed(objects: readonly PackEntry[]): void;
}

/** The in-memory index of a store's `packs/` directory. */
export class PackIndex {
  readonly #dir: string;
  readonly #packsDir: string;
  readonly #clock: () => number;
  readonly #charges: IndexCharges;
  readonly #index = new Map<string, WrittenObject>();
  readonly #packs = new Map<string, PackInfo>();
  /**
   * Packs of a newer version than this build reads, by name, with what each takes (its file's
   * bytes and {@link PACK_OVERHEAD_BYTES}): kept out of the index and out of every rewrite (they
   * are another node's, and only it reads them), counted in {@link used}, and not read again.
   */
  readonly #newer = new Map<string, number>();
  readonly #log: (line: string) => void;
  #used = 0;
  /** Modification time of the packs directory when it was last read; a change means news. */
  #dirStamp = -1;

  /**
   * The (empty) index of the store in `dir`, whose packs are in `dir/packs`; `clock` dates a pack
   * whose name carries no time; `log` is told of each pack of a newer version, once.
   */
  constructor(
    dir: string,
    clock: () => number,
    charges: IndexCharges,
    log: (line: string) => void = (line) => console.warn(line),
  ) {
    this.#dir = dir;
    this.#packsDir = join(dir, "packs");
    this.#clock = clock;
    this.#charges = charges;
    this.#log = log;
  }

  /** The indexed copy of `cid`, if any. */
  get(cid: string): WrittenObject | undefined {
    return this.#index.get(cid);
  }

  /** True when `cid` has an indexed copy. */
  has(cid: string): boolean {
    return this.#index.has(cid);
  }

  /** Number of indexed objects. */
  get size(): number {
    return this.#index.size;
  }

  /** The indexed CIDs. */
  keys(): IterableIterator<string> {
    return this.#index.keys();
  }

  /** Every known pack, by name. */
  get packs(): ReadonlyMap<string, PackInfo> {
    return this.#packs;
  }

  /**
   * What the known packs take against the quota ({@link packBytes} of each), and the packs of a
   * newer version (each file's bytes and {@link PACK_OVERHEAD_BYTES}).
   */
  get used(): number {
    return this.#used;
  }

  /** True when the packs directory may have changed since it was last read. */
  async changed(): Promise<boolean> {
    const stamp = await this.#packsDirStamp();
    return stamp !== this.#dirStamp;
  }

  /** Index a copy from any known pack for each of `cids` that has none indexed. */
  indexOtherCopies(cids: Set<string>): void {
    for (const cid of cids) if (this.#index.has(cid)) cids.delete(cid);
    if (cids.size === 0) return;
    for (const [name, info] of this.#packs) {
      for (const entry of info.entries) {
        if (cids.has(entry.cid) && !this.#index.has(entry.cid)) {
          this.setLocation({ ...entry, pack: name });
        }
      }
    }
  }

  /**
   * Register a durable pack (one the writer just made, or one found on disk): its objects that
   * have no indexed copy yet become readable from it.
   */
  addPack(
    name: string,
    entries: readonly PackEntry[],
    mtime = packTimeOf(name) ?? this.#clock(),
  ): void {
    const known = this.#packs.get(name);
    if (known) this.#used -= packBytes(known.entries);
    this.#packs.set(name, { entries: [...entries], mtime });
    this.#used += packBytes(entries);
    for (const entry of entries) {
      if (!this.#index.has(entry.cid)) this.setLocation({ ...entry, pack: name });
    }
    this.#charges.packed(entries);
  }

  /** Index `location` as the copy of its object read from now on. */
  setLocation(location: WrittenObject): void {
    this.#charges.uncharge(location.cid);
    this.#index.set(location.cid, { ...location });
    this.#charges.charge(location.cid);
  }

  /** Forget pack `name` (deleted, here or by another process): its copies no longer count. */
  dropPack(name: string): PackInfo | undefined {
    const info = this.#packs.get(name);
    if (!info) return undefined;
    this.#packs.delete(name);
    this.#used -= packBytes(info.entries);
    return info;
  }

  /** Forget `cid` if its indexed copy is in pack `name`. */
  unindex(cid: string, name: string): void {
    const location = this.#index.get(cid);
    if (location?.pack !== name) return;
    this.#charges.uncharge(cid);
    this.#index.delete(cid);
  }

  /**
   * Bring the index in line with the packs directory: read the headers of packs not seen yet and
   * forget packs that are gone (then look for other copies of their objects). An object already
   * indexed keeps its place while its pack exists, so a reload never moves it under a reader.
   * Runs in the store's maintenance turn.
   */
  async reload(): Promise<void> {
    const readAt = Date.now();
    const stamp = await this.#packsDirStamp();
    // Packs the writer registers while this reload runs were not in the listing; keep them.
    const known = new Set(this.#packs.keys());
    const present = new Set<string>();
    for await (const entry of dirEntries(this.#packsDir)) {
      if (entry.isFile && entry.name.endsWith(PACK_SUFFIX) && !isTempName(entry.name)) {
        present.add(entry.name);
      }
    }
    for (const [name, bytes] of this.#newer) {
      if (present.has(name)) continue;
      this.#newer.delete(name); // removed by the node that wrote it
      this.#used -= bytes;
    }
    const unseen = [...present].filter((name) => !this.#packs.has(name) && !this.#newer.has(name));
    // Header reads in parallel: a store of many small packs opens in a fraction of the time.
    const read = await mapConcurrently(unseen, RELOAD_CONCURRENCY, async (name) => {
      const path = this.packPath(name);
      try {
        const entries = await readPackIndex(path);
        const mtime = packTimeOf(name) ?? (await Deno.stat(path)).mtime?.getTime() ?? Date.now();
        return { name, entries, mtime };
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return null;
        if (error instanceof NewerPackError) {
          await this.#keepNewer(name, error);
          return null;
        }
        if (!(error instanceof DamagedPackError)) throw error;
        await Deno.rename(path, join(this.#dir, "quarantine", name)).catch(() => {});
        return null;
      }
    });
    for (const pack of read) if (pack) this.addPack(pack.name, pack.entries, pack.mtime);
    const orphans = new Set<string>();
    for (const [name, info] of this.#packs) {
      if (present.has(name) || !known.has(name)) continue;
      this.dropPack(name);
      for (const entry of info.entries) {
        this.unindex(entry.cid, name);
        orphans.add(entry.cid);
      }
    }
    this.indexOtherCopies(orphans);
    // A stamp from the last second cannot tell a change made later in the same tick (mtimes
    // have millisecond resolution here): distrust it, so the next miss looks again.
    this.#dirStamp = readAt - stamp < STAMP_TRUST_MS ? -1 : stamp;
  }

  /**
   * Leave pack `name`, of a newer version, where it is: moved to quarantine it was lost to the
   * node that wrote it, pinned objects and all (review B, stop 70). Counted, logged once.
   */
  async #keepNewer(name: string, error: NewerPackError): Promise<void> {
    const size = await Deno.stat(this.packPath(name)).then((s) => s.size, () => null);
    if (size === null || this.#newer.has(name)) return; // removed meanwhile
    this.#newer.set(name, size + PACK_OVERHEAD_BYTES);
    this.#used += size + PACK_OVERHEAD_BYTES;
    this.#log(`storage: ${error.message}; left in place, unread (a newer node's)`);
  }

  #packsDirStamp(): Promise<number> {
    return dirStamp(this.#packsDir);
  }

  /** The path of pack `name`. */
  packPath(name: string): string {
    return join(this.#packsDir, name);
  }
}

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapConcurrently<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** `length` bytes at `offset` of the file at `path` (fewer if the file is shorter). */
export async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    return await readExactly(file, length);
  } finally {
    file.close();
  }
}
