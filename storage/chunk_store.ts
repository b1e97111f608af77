/**
 * The local chunk store: immutable objects on disk, each named by its CID, each verified on every
 * read. Both file chunks and manifests live here.
 *
 * Objects are kept in packs — files of many objects with their index up front (see
 * `pack_format.ts`) — rather than one file per object: creating, fsyncing and renaming a file
 * per 256 KiB chunk cost more than writing the bytes (see docs/STORAGE.md, Performance). Layout
 * under the store directory:
 * ```
 * packs/<time>-<random>.pack        immutable once renamed into place
 * packs/.<name>.tmp                 a pack being written; a crashed writer's is swept on open
 * pins/<cid>                        one file per pinned root (file id), holding its label
 * pins/<cid>.<uuid>.tmp             a label being written; a crashed writer's is swept on open
 * legacy-manifests/<cid>            raw roots that are manifests written before UnixFS (see
 *                                   `legacy_manifests.ts`)
 * quarantine/                       objects that failed verification, and damaged packs
 * ```
 *
 * Durability: a put hands its object to the {@link PackWriter}, which writes every object waiting
 * at that moment into one temp file, fsyncs it, renames it into place and fsyncs the directory
 * (group commit); the put resolves once that pack is durable. After a crash an object is either
 * absent or complete, and a CID that `put` acknowledged survives power loss.
 *
 * The index (CID → pack, offset, length) lives in memory and is rebuilt from the pack headers on
 * open. Packs are never modified: removing objects (GC, quarantine) writes the survivors into a
 * new pack and then deletes the old one. A removal names copies (pack and offset), never just a
 * CID: a pack can hold one object twice (a GC moving it while a put writes a fresh copy, both
 * taken by one group commit), and dropping one must keep the other.
 *
 * Several stores (processes) may share a directory: each writes its own packs, and a lookup that
 * misses re-reads the directory when it has changed.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { cidCodec, cidDigest, DAG_PB_CODEC, isCid, storageKey } from "../protocols/cid.ts";
import { assertDagBlockSize } from "./unixfs.ts";
import type { BlockStore, BlockStoreCallOptions } from "./block_store.ts";
import { cidOfAsync, verifyCid } from "./_hash.ts";
import {
  ChunkNotFoundError,
  CorruptChunkError,
  DamagedPackError,
  QuotaExceededError,
  ReplicaQuotaExceededError,
} from "./errors.ts";
import {
  blocksReferencedBy,
  isDagNode,
  PENDING_DIR,
  PINS_DIR,
  readGcRoots,
  REPLICAS_DIR,
} from "./gc_roots.ts";
import { migrateLegacyChunks } from "./legacy_chunks.ts";
import {
  decideLegacyManifest,
  legacyManifestRecord,
  markLegacyManifests,
} from "./legacy_manifests.ts";
import { type PackEntry, readExactly, readPackIndex } from "./pack_format.ts";
import { pathExists } from "./path_exists.ts";
import {
  isTempName,
  PACK_SUFFIX,
  packTimeOf,
  PackWriter,
  syncDir,
  type WrittenObject,
} from "./pack_writer.ts";

/** Test hooks that inject faults into the write path. */
export interface ChunkStoreFaults {
  /**
   * Called after a pack's temp file is opened and locked, before its bytes are written; throwing
   * here simulates a failing write (for example an ENOSPC error from the OS).
   */
  beforeWrite?(tempPath: string): void | Promise<void>;
  /** Called after a read's bytes are in memory and before they are verified (race tests). */
  afterRead?(cid: string): void | Promise<void>;
  /** Called when a put's object joins the queue of the next pack (tests wait on it, not on time). */
  queued?(cid: string): void;
  /** The free bytes of the store's filesystem, answered instead of asking the OS (`statfs`). */
  freeBytes?(): number | Promise<number>;
}

/** Options of {@link ChunkStore.open}. */
export interface ChunkStoreOptions {
  /**
   * Maximum bytes the store may take, counted as {@link ChunkStoreStats.usedBytes} counts them
   * (every copy, with its overhead, and what `quarantine/` holds); a write past it fails with
   * `quota_exceeded`. Default: no quota.
   */
  quotaBytes?: number;
  /**
   * Most bytes this store holds for other nodes: the objects under `replicas/` records (peers'
   * `put_chunk`s), each with {@link OBJECT_OVERHEAD_BYTES}. A replica write past it fails with
   * `replica_quota_exceeded` and nothing is written; the node's own puts are not counted, so
   * peers can never take the rest of {@link quotaBytes}. Default: no cap of its own.
   */
  replicaQuotaBytes?: number;
  /**
   * Free space on the store's filesystem that replica writes never take: one that would leave
   * less fails with `replica_quota_exceeded` (peers cannot fill the disk under the node's own
   * puts, its ledger and its log). Default 0: not checked.
   */
  replicaMinFreeBytes?: number;
  /**
   * fsync each pack and its directory before acknowledging its objects. Default `true`; turning
   * it off trades crash durability for speed (tests of other layers, throwaway stores).
   */
  durable?: boolean;
  /**
   * Objects younger than this are never garbage-collected, so a put that is still writing
   * chunks (in this or another process) does not lose them before it pins its manifest.
   * Default 10 minutes: far longer than writing any single chunk takes.
   */
  gcGraceMs?: number;
  /**
   * A pack takes waiting objects until it holds at least this many bytes. Default 8 MiB: large
   * enough that the per-file cost (create, fsync, rename) is a few percent of the write, small
   * enough that rewriting a pack to drop one object stays cheap.
   */
  maxPackBytes?: number;
  /** Fault injection for tests. */
  faults?: ChunkStoreFaults;
  /**
   * Milliseconds since the epoch, for the ages of packs (recorded in their names) and so for the
   * GC grace period. Default `Date.now`; tests pass a clock they move by hand instead of sleeping.
   */
  clock?(): number;
}

/** Capacity figures of a store. */
export interface ChunkStoreStats {
  /**
   * Bytes charged against the quota: every copy of every object on disk, each with
   * {@link OBJECT_OVERHEAD_BYTES}, and {@link PACK_OVERHEAD_BYTES} per pack file; and
   * {@link quarantineBytes}.
   */
  usedBytes: number;
  /**
   * Bytes `quarantine/` holds (bad copies and damaged packs set aside for forensics), each file
   * with {@link PACK_OVERHEAD_BYTES}: part of {@link usedBytes}. Nothing removes them but the
   * operator; deleting the files gives the room back.
   */
  quarantineBytes: number;
  /** The quota, or `null` when unlimited. */
  quotaBytes: number | null;
  /** Number of stored objects (chunks and manifests). */
  objectCount: number;
  /** Number of pinned roots. */
  pinCount: number;
  /** Number of chunks held for other nodes. */
  replicaCount: number;
  /**
   * Bytes of the chunks held for other nodes that are stored here, each with
   * {@link OBJECT_OVERHEAD_BYTES}: what {@link ChunkStoreOptions.replicaQuotaBytes} caps.
   */
  replicaBytes: number;
  /** The cap on {@link replicaBytes}, or `null` when there is none of its own. */
  replicaQuotaBytes: number | null;
}

/** What a garbage collection pass did. */
export interface GcResult {
  /** Objects removed. */
  removed: number;
  /** Bytes freed. */
  freedBytes: number;
  /** Objects kept because a root (pin, replica, running put) references them. */
  kept: number;
  /** Unreferenced objects kept because a copy is younger than the grace period. */
  young: number;
  /** Records of puts whose process died (their objects are collected like any garbage). */
  abandonedPuts: number;
  /**
   * Pinned roots that could not be read (missing or corrupt). While any exist GC removes
   * nothing, since it cannot know which chunks they reference; repair them first.
   */
  unreadableRoots: string[];
}

/** What a pin records beside the CID: the owner's labels for the file. */
export interface PinLabel {
  /** File name. */
  name?: string;
  /** MIME type. */
  mime?: string;
  /** Kept on this node only: never replicated, not even by a repair of every pin. */
  local?: boolean;
}

/** A pin file larger than this is not a label we wrote: ignored. */
const MAX_PIN_LABEL_BYTES = 4096;
/** Options of {@link ChunkStore.put}. */
export interface ChunkPutOptions extends BlockStoreCallOptions {
  /**
   * The CID the caller claims for the bytes (a peer pushing a chunk). The bytes are hashed and
   * rejected with `corrupt_chunk` if they do not match.
   */
  cid?: string;
  /**
   * Re-verify an existing copy before skipping the write (repair path): a bad copy is replaced.
   * Default `false`, since deduplicated writes are the common case and reads verify anyway.
   */
  verifyExisting?: boolean;
  /**
   * The object is a chunk this node holds for another node (a peer's `put_chunk`): it is
   * recorded under `replicas/` and GC keeps it. Default `false`.
   */
  replica?: boolean;
}

/** What the store knows of one pack. */
interface PackInfo {
  entries: PackEntry[];
  /** Creation time (ms), for the GC grace period. */
  mtime: number;
}

/**
 * What each stored copy costs beyond its bytes, charged against the quota: its pack index entry
 * (36 bytes), the record that roots most objects (a `replicas/` or `pins/` file: an inode and a
 * directory entry, a few hundred bytes) and its place in the in-memory index, rounded up. Without
 * it a peer's `put_chunk` of tiny objects filled the disk many times over the quota: 1024 objects
 * of 4 bytes under a 4096-byte quota took 1331 files and 1.3 MiB.
 */
export const OBJECT_OVERHEAD_BYTES = 512;
/**
 * What each pack file costs beyond its objects, charged against the quota: its header's fixed part
 * and the unused end of its last disk block (files take whole 4 KiB blocks). A put is judged as if
 * its object went into a pack of its own (a lone put does), then charged for the pack it shared.
 */
export const PACK_OVERHEAD_BYTES = 4096;

const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;
/**
 * A temp file this young is left alone on open even if unlocked: its writer may be between
 * creating it and locking it (microseconds; a second is plenty).
 */
const TEMP_SWEEP_MIN_AGE_MS = 1000;
/** How old the packs directory's mtime must be before an unchanged one proves nothing changed. */
const STAMP_TRUST_MS = 1000;
/**
 * Lock file (in the store directory) held while any process collects garbage or rewrites packs,
 * so two processes never remove objects at once and each decides on the other's packs.
 */
const STORE_LOCK = "store.lock";
/** Pack headers read at once when (re)loading the index. */
const RELOAD_CONCURRENCY = 32;
/** Attempts of a read whose pack vanished (rewritten by GC here or in another process). */
const READ_ATTEMPTS = 3;

/** A directory of CID-named, verified, atomically written objects. */
export class ChunkStore implements BlockStore {
  readonly #dir: string;
  readonly #packsDir: string;
  readonly #quota: number;
  readonly #durable: boolean;
  readonly #gcGraceMs: number;
  readonly #faults: ChunkStoreFaults | undefined;
  readonly #clock: () => number;
  readonly #writer: PackWriter;
  readonly #index = new Map<string, WrittenObject>();
  readonly #packs = new Map<string, PackInfo>();
  #used = 0;
  /**
   * What `quarantine/` takes (see {@link ChunkStoreStats.quarantineBytes}). Charged against the
   * quota like the packs: each quarantined copy leaves the packs (freeing its charge there) while
   * its bytes stay on disk, so a disk that kept rotting a chunk, repaired each time, took the
   * store past its quota by one copy per repair, unnoticed (a review found it at stop 56).
   */
  #quarantined = 0;
  #reserved = 0;
  readonly #replicaQuota: number;
  readonly #replicaMinFree: number;
  /** Storage keys with a `replicas/` record, or with a replica write in flight. */
  readonly #replicaSet = new Set<string>();
  /** What {@link ChunkStoreStats.replicaBytes} reports: the indexed objects of `#replicaSet`. */
  #replicaBytes = 0;
  /** Replica writes in flight, charged until they are indexed (then briefly twice). */
  #replicaReserved = 0;
  /** Modification time of the packs directory when it was last read; a change means news. */
  #dirStamp = -1;
  /** Modification time of `quarantine/` when {@link #quarantined} was counted. */
  #quarantineStamp = -1;
  /** Writes in flight per CID, so two writers of one chunk in this process share one write. */
  readonly #inflight = new Map<string, Promise<unknown>>();
  /** The latest directory sync per root directory (see {@link #syncRootDir}). */
  readonly #dirSyncs = new Map<string, { started: boolean; done: Promise<void> }>();
  /** Serializes index rebuilds and pack rewrites. */
  #maintenance: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, options: ChunkStoreOptions | undefined) {
    this.#dir = dir;
    this.#packsDir = join(dir, "packs");
    this.#durable = options?.durable ?? true;
    this.#quota = options?.quotaBytes ?? Infinity;
    this.#replicaQuota = options?.replicaQuotaBytes ?? Infinity;
    this.#replicaMinFree = options?.replicaMinFreeBytes ?? 0;
    this.#gcGraceMs = options?.gcGraceMs ?? DEFAULT_GC_GRACE_MS;
    this.#faults = options?.faults;
    this.#clock = options?.clock ?? Date.now;
    this.#writer = new PackWriter(this.#packsDir, {
      durable: this.#durable,
      maxPackBytes: options?.maxPackBytes,
      beforeWrite: options?.faults?.beforeWrite,
      queued: options?.faults?.queued,
      clock: this.#clock,
      onPack: (name, entries) => this.#addPack(name, entries),
    });
  }

  /**
   * Open (creating if needed) the store in `dir`: sweeps the temp files of crashed writers,
   * moves objects of the earlier one-file-per-object layout into packs, and reads every pack's
   * index.
   *
   * @example
   * ```ts
   * import { ChunkStore } from "./chunk_store.ts";
   * const dir = await Deno.makeTempDir();
   * const store = await ChunkStore.open(dir);
   * const cid = await store.put(new TextEncoder().encode("hello"));
   * const bytes = await store.get(cid);
   * ```
   */
  static async open(dir: string, options?: ChunkStoreOptions): Promise<ChunkStore> {
    const store = new ChunkStore(dir, options);
    // Every directory made here is an entry in its parent: fsynced there before anything is
    // acknowledged, or a power cut could take `packs/` (or the whole store) with every pack in it.
    const made: string[] = [];
    for (const sub of ["packs", PINS_DIR, REPLICAS_DIR, PENDING_DIR, "quarantine"]) {
      for (let path = join(dir, sub); !await pathExists(path); path = dirname(path)) {
        made.push(path);
      }
      await Deno.mkdir(join(dir, sub), { recursive: true });
    }
    if (store.#durable) {
      for (const parent of new Set(made.map(dirname))) await syncDir(parent);
    }
    await store.#sweepTemp();
    await store.#sweepPinTemporaries();
    // Asked once now, so a process not allowed to ask (`--allow-sys=statfs`) fails to open.
    if (store.#replicaMinFree > 0) await store.#diskFree();
    // Before the index is read, so indexing each replica's object charges it.
    for await (const cid of store.replicas()) store.#replicaSet.add(cid);
    await store.#exclusive(() => store.#reload());
    await migrateLegacyChunks(dir, store, join(dir, "quarantine"));
    await markLegacyManifests(dir, (cid) => store.get(cid), store.#durable);
    await store.#exclusive(() => store.#countQuarantine());
    return store;
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /** Capacity figures (including objects other processes added since the last look). */
  async stats(): Promise<ChunkStoreStats> {
    await this.#reloadIfChanged();
    return {
      usedBytes: this.#used + this.#quarantined,
      quarantineBytes: this.#quarantined,
      quotaBytes: Number.isFinite(this.#quota) ? this.#quota : null,
      objectCount: this.#index.size,
      pinCount: (await this.pins()).length,
      replicaCount: await countFiles(join(this.#dir, REPLICAS_DIR)),
      replicaBytes: this.#replicaBytes,
      replicaQuotaBytes: Number.isFinite(this.#replicaQuota) ? this.#replicaQuota : null,
    };
  }

  /**
   * Store `bytes` under their CID. Idempotent: storing an object that is already present costs
   * nothing and does not count against the quota twice.
   *
   * @throws {QuotaExceededError} the object does not fit under the quota (nothing written).
   * @throws {ReplicaQuotaExceededError} `options.replica` and the object would be written past
   * what the store holds for other nodes, or into the disk's reserve (nothing written).
   * @throws {DiskFullError} the disk filled up (the partial pack was removed).
   * @throws {CorruptChunkError} `options.cid` was given and the bytes do not match it.
   * @throws {BlockTooLargeError} `options.cid` names a dag-pb node over 2 MiB.
   */
  async put(bytes: Uint8Array, options?: ChunkPutOptions): Promise<string> {
    options?.signal?.throwIfAborted();
    const cid = await cidOfAsync(bytes);
    // A claim may name the object by any codec (a dag-pb node); the store keys it by its digest.
    // A malformed claim is an invalid_cid, not a corrupt chunk.
    if (options?.cid !== undefined && storageKey(options.cid) !== cid) {
      throw new CorruptChunkError(options.cid, "the writer");
    }
    // A peer's claim names the codec: a DAG node too large to ever walk is not worth storing.
    if (options?.cid !== undefined && cidCodec(options.cid) === DAG_PB_CODEC) {
      assertDagBlockSize(options.cid, bytes.length);
    }
    await this.#withSlot(cid, () => this.#writeIfAbsent(cid, bytes, options));
    // Recorded after the write: until then the object is inside the grace period, and a record
    // of an object that failed to store would root nothing.
    if (options?.replica) {
      await this.#touchRoot(REPLICAS_DIR, cid).catch(async (error) => {
        // Charged from its write or its check: a record that failed roots nothing.
        if (!await this.isReplica(cid)) this.#leaveReplicaSet(cid);
        throw error;
      });
      this.#holdForPeers(cid);
    }
    return cid;
  }

  async #writeIfAbsent(
    cid: string,
    bytes: Uint8Array,
    options: ChunkPutOptions | undefined,
  ): Promise<void> {
    const verifyExisting = options?.verifyExisting;
    // The quota is the directory's, and other stores (the node and `cli.ts put`) write into it
    // too: count their objects before judging this one. A stat when nothing changed.
    if (Number.isFinite(this.#quota)) await this.#reloadIfChanged();
    const existing = this.#index.get(cid);
    // Deduplicate only against a copy well inside the GC grace period: an older unpinned copy may
    // be collected by a GC (here or in another process) before this put's caller pins it, so the
    // put writes a fresh copy instead, and the old one goes at the next GC. A replica already
    // recorded under `replicas/` is rooted for good (records are never removed), so no GC can take
    // its copy: a peer sending it again refreshes nothing and writes nothing.
    const young = existing !== undefined &&
      this.#clock() - (this.#packs.get(existing.pack)?.mtime ?? 0) < this.#gcGraceMs / 2;
    const rooted = existing !== undefined && !young && options?.replica === true &&
      await this.isReplica(cid);
    const forPeers = options?.replica === true;
    // We hold this CID's slot: check in place; a bad copy is quarantined, making room.
    if (existing && (young || rooted) && (!verifyExisting || await this.#quarantineLocked(cid))) {
      // A peer's record of a copy already here (the node's own, young) holds it for peers for good:
      // charged from now, so it must fit as a written one must (nothing is written: no disk check).
      if (forPeers) {
        this.#replicaRoom(cid, existing.length, Infinity);
        this.#holdForPeers(cid);
      }
      return;
    }
    const free = forPeers && this.#replicaMinFree > 0 ? await this.#diskFree() : Infinity;
    // From the checks to the reserves nothing awaits, so concurrent puts see each other's.
    // Charged as a copy in a pack of its own until its pack is written (see PACK_OVERHEAD_BYTES).
    const cost = bytes.length + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
    const taken = this.#used + this.#quarantined + this.#reserved;
    if (taken + cost > this.#quota) {
      throw new QuotaExceededError(cost, this.#quota - taken);
    }
    const replicaCost = forPeers ? this.#replicaRoom(cid, bytes.length, free) : 0;
    // Joins the replica set before it is written, so the write is charged from when onPack
    // indexes it (the reserve and the charge overlap until then, never a gap between them).
    const joined = forPeers && !this.#replicaSet.has(cid);
    if (joined) this.#holdForPeers(cid);
    this.#reserved += cost;
    this.#replicaReserved += replicaCost;
    let done = false;
    try {
      // A new object is indexed by onPack; a fresh copy over an old one counts as one more copy
      // (both are on disk until a GC keeps one), and is the one read from now on.
      const written = await this.#writer.write(cid, bytes);
      if (existing) this.#setLocation(written);
      done = true;
    } finally {
      this.#reserved -= cost;
      this.#replicaReserved -= replicaCost;
      // A failed write roots nothing: it leaves the set unless a record already put it there.
      if (joined && !done && !await this.isReplica(cid)) this.#leaveReplicaSet(cid);
    }
  }

  /**
   * What a replica write of `length` bytes for `cid` is charged against the replica cap, after
   * checking it fits there and, with `free` bytes free on the disk, outside the disk's reserve.
   *
   * @throws {ReplicaQuotaExceededError} it does not.
   */
  #replicaRoom(cid: string, length: number, free: number): number {
    const cost = length + OBJECT_OVERHEAD_BYTES;
    // A copy replacing one already charged (a repair after quarantine is charged anew: the
    // quarantine released it) moves nothing into the cap.
    const charged = this.#replicaSet.has(cid) && this.#index.has(cid);
    const held = this.#replicaBytes + this.#replicaReserved;
    if (!charged && held + cost > this.#replicaQuota) {
      throw new ReplicaQuotaExceededError(
        cost,
        `the ${this.#replicaQuota} bytes it holds for peers (${held} held)`,
      );
    }
    if (this.#replicaMinFree > 0) {
      // Writes in flight have not reached the disk yet: count them as taken.
      const left = free - this.#reserved - cost - PACK_OVERHEAD_BYTES;
      if (left < this.#replicaMinFree) {
        throw new ReplicaQuotaExceededError(
          cost,
          `the ${this.#replicaMinFree} bytes of disk kept free (${free} free)`,
        );
      }
    }
    return charged ? 0 : cost;
  }

  /** Free bytes of the store's filesystem: the test hook's answer, else the OS's. */
  async #diskFree(): Promise<number> {
    return await (this.#faults?.freeBytes?.() ?? diskFreeBytes(this.#dir));
  }

  /** Record `cid` as held for other nodes (its record was written): charged while indexed. */
  #holdForPeers(cid: string): void {
    if (this.#replicaSet.has(cid)) return;
    this.#replicaSet.add(cid);
    this.#replicaBytes += this.#replicaCharge(cid);
  }

  #leaveReplicaSet(cid: string): void {
    if (!this.#replicaSet.delete(cid)) return;
    this.#replicaBytes -= this.#replicaCharge(cid);
  }

  /** What an object counts against the replica cap while indexed: its bytes and overhead. */
  #replicaCharge(cid: string): number {
    const location = this.#index.get(cid);
    return location === undefined ? 0 : location.length + OBJECT_OVERHEAD_BYTES;
  }

  /**
   * The verified bytes of `cid`.
   *
   * @throws {ChunkNotFoundError} not stored here.
   * @throws {CorruptChunkError} the stored bytes do not hash to `cid` (moved to quarantine).
   */
  async get(id: string, options?: BlockStoreCallOptions): Promise<Uint8Array> {
    options?.signal?.throwIfAborted();
    const cid = storageKey(id);
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const location = await this.#locate(cid);
      if (!location) break;
      let bytes: Uint8Array;
      try {
        bytes = await readRange(this.#packPath(location.pack), location.offset, location.length);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // Its pack was rewritten (GC, quarantine) since we looked it up: look again.
        await this.#exclusive(() => this.#reload());
        continue;
      }
      await this.#faults?.afterRead?.(cid);
      if (await verifyCid(cid, bytes)) return bytes;
      // The bytes were bad when we read them, but a repair may have replaced them since:
      // re-check under the CID's slot, and only quarantine the copy we proved bad.
      const good = await this.#withSlot(cid, () => this.#quarantineLocked(cid, location));
      if (good) return good;
      if (this.#index.has(cid)) continue; // another copy (here or from another process) stands in
      throw new CorruptChunkError(id, `${this.#packPath(location.pack)}@${location.offset}`);
    }
    throw new ChunkNotFoundError(id);
  }

  /** True when `cid` is stored (not verified; use {@link get} for that). */
  async has(id: string): Promise<boolean> {
    const cid = storageKey(id);
    return (await this.#locate(cid)) !== undefined;
  }

  /**
   * Remove `cid`, every copy of it in every pack; true when it was there. A copy left in another
   * pack (a fresh put over an old copy, a second process's write) would be indexed in its place,
   * and the object would still be stored.
   */
  async delete(id: string): Promise<boolean> {
    const cid = storageKey(id);
    if (!await this.#locate(cid)) return false;
    return await this.#rewriting(async () => {
      // Where its copies are now, after any rewrite before us.
      const copies = new Map<string, Set<number>>();
      for (const [name, info] of this.#packs) {
        for (const entry of info.entries) {
          if (entry.cid === cid) {
            copies.set(name, (copies.get(name) ?? new Set()).add(entry.offset));
          }
        }
      }
      for (const [pack, offsets] of copies) await this.#removeFromPack(pack, offsets);
      return copies.size > 0;
    });
  }

  /**
   * True when `cid` is held for another node: a `replicas/` record exists (a peer's `put_chunk`
   * stored it here). Says nothing about whether the object itself is still stored.
   */
  async isReplica(id: string): Promise<boolean> {
    const cid = storageKey(id);
    try {
      await Deno.stat(join(this.#dir, REPLICAS_DIR, cid));
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /** The storage keys of every chunk held for other nodes (`replicas/`), in no particular order. */
  async *replicas(): AsyncGenerator<string> {
    for await (const entry of Deno.readDir(join(this.#dir, REPLICAS_DIR))) {
      if (entry.isFile && isCid(entry.name)) yield storageKey(entry.name);
    }
  }

  /**
   * True when raw-labelled `cid` is a manifest written before UnixFS, by this store's record
   * (`legacy_manifests.ts`), never by its bytes: any other raw object is a leaf, its own bytes.
   * A root the record left undecided (unreadable when it was made) is decided now, from its
   * bytes (`bytes`, already read and verified, or read here: an unreadable one throws).
   */
  async isLegacyManifest(cid: string, bytes?: Uint8Array): Promise<boolean> {
    const record = await legacyManifestRecord(this.#dir, cid);
    if (record !== "undecided") return record;
    return await decideLegacyManifest(this.#dir, cid, bytes ?? await this.get(cid), this.#durable);
  }

  /** Every stored CID (chunks and manifests), in no particular order. */
  async *list(): AsyncGenerator<string> {
    await this.#reloadIfChanged();
    yield* [...this.#index.keys()];
  }

  /**
   * Pin a root (a file id): GC keeps it and, when it is a manifest, every chunk it lists.
   *
   * Checked and written under the store lock, after re-reading the packs, as GC decides: this
   * process's index may still hold an object another process on the directory has collected
   * (`cli.ts gc` beside the node), and a GC must not collect the object between the check and the
   * pin.
   *
   * Without a `label`, a root pinned already keeps what its pin recorded: there is nothing to
   * record, and rewriting the pin empty dropped its `local` (a local file's chunks then went to
   * the peers) when `cli.ts import` pinned the roots of that file's CAR. A `label` replaces it.
   *
   * @throws {ChunkNotFoundError} the object is not stored here: a pin of nothing would stop
   * every GC (it cannot know what the missing object references). Put it first.
   */
  async pin(cid: string, label?: PinLabel): Promise<void> {
    const key = storageKey(cid);
    const text = label?.name !== undefined || label?.mime !== undefined || label?.local
      ? JSON.stringify({ name: label.name, mime: label.mime, local: label.local || undefined })
      : "";
    await this.#rewriting(async () => {
      if (!this.#index.has(key)) {
        throw new ChunkNotFoundError(cid, "the local store; put it before pinning it");
      }
      if (label === undefined && await pathExists(join(this.#dir, PINS_DIR, cid))) return;
      await this.#touchRoot(PINS_DIR, cid, new TextEncoder().encode(text));
    });
  }

  /**
   * The name, MIME type and locality a pin recorded (a public UnixFS file's id has neither, so
   * the owner's labels live beside the pin); `undefined` when none; `{ local: true }` when the
   * pin file does not parse (it may have said so: kept to this node rather than shared).
   */
  async pinLabel(cid: string): Promise<PinLabel | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(join(this.#dir, PINS_DIR, cid));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (text === "" || text.length > MAX_PIN_LABEL_BYTES) return undefined;
    try {
      const raw = JSON.parse(text) as Record<string, unknown>;
      const label: PinLabel = {};
      if (typeof raw.name === "string") label.name = raw.name;
      if (typeof raw.mime === "string") label.mime = raw.mime;
      if (raw.local === true) label.local = true;
      return label;
    } catch {
      // A label that does not parse (a damaged disk) may have said `local`: kept to this node
      // rather than shared on a guess.
      return { local: true };
    }
  }

  /**
   * Create the root file `sub/cid` (empty by default), durably when the store is durable. A file
   * with content (a pin's label) is written whole or not at all (a temporary file, fsynced, then
   * renamed): written in place, a power cut could leave the entry with no content, and a `local`
   * file's label lost that way made its chunks served to peers after the restart (a review
   * found it at stop 33).
   */
  async #touchRoot(sub: string, cid: string, content = new Uint8Array()): Promise<void> {
    const path = join(this.#dir, sub, cid);
    if (this.#durable && content.length > 0) return await writeFileDurably(path, content);
    await Deno.writeFile(path, content);
    if (this.#durable) await this.#syncRootDir(join(this.#dir, sub));
  }

  /**
   * fsync a root directory for every file created or removed in it so far. Group commit: callers
   * that arrive while a sync runs share the next one (a peer's put_chunks, 16 at a time, pay a few
   * directory syncs rather than one each).
   */
  #syncRootDir(path: string): Promise<void> {
    const queued = this.#dirSyncs.get(path);
    if (queued?.started === false) return queued.done;
    const done = (queued?.done ?? Promise.resolve()).catch(() => {}).then(() => {
      sync.started = true;
      return syncDir(path);
    });
    const sync = { started: false, done };
    this.#dirSyncs.set(path, sync);
    return done;
  }

  /**
   * Unpin a root; true when it was pinned. Its objects go at the next GC. Durable before it
   * resolves (when the store is): a pin brought back by a power cut after a GC collected its
   * objects would be a root over nothing, and stop every GC.
   */
  async unpin(cid: string): Promise<boolean> {
    cidDigest(cid);
    try {
      await Deno.remove(join(this.#dir, PINS_DIR, cid));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
    if (this.#durable) await this.#syncRootDir(join(this.#dir, PINS_DIR));
    return true;
  }

  /**
   * Modification time (ms) of the pins directory: it changes when a pin is made or removed, here
   * or by another process, so a view of the pins can tell it is out of date.
   */
  async pinsStamp(): Promise<number> {
    return (await Deno.stat(join(this.#dir, PINS_DIR))).mtime?.getTime() ?? 0;
  }

  /** The pinned roots. */
  async pins(): Promise<string[]> {
    const out: string[] = [];
    for await (const entry of Deno.readDir(join(this.#dir, PINS_DIR))) {
      // Not a label's temporary file (`#touchRoot`), which a crash may leave behind.
      if (entry.isFile && isCid(entry.name)) out.push(entry.name);
    }
    return out.sort();
  }

  /**
   * Remove every object no root reaches and whose every copy is older than the grace period,
   * and every extra copy of the objects that stay. Roots (`gc_roots.ts`): pinned files with the
   * chunks they list, replicas held for other nodes, and the objects of puts still running in
   * any process. Everything is decided under the store lock, from the roots and packs on disk
   * as they are then, so a put or GC in another process is never judged from a stale index.
   * Packs whose objects are all unreachable are deleted; a pack with survivors is rewritten
   * without the rest. If a pinned root cannot be read, nothing is removed (see
   * {@link GcResult.unreadableRoots}): GC never guesses what a lost manifest referenced.
   */
  gc(options?: { graceMs?: number }): Promise<GcResult> {
    const graceMs = options?.graceMs ?? this.#gcGraceMs;
    return this.#rewriting(async () => {
      const cutoff = this.#clock() - graceMs;
      const result: GcResult = {
        removed: 0,
        freedBytes: 0,
        kept: 0,
        young: 0,
        abandonedPuts: 0,
        unreadableRoots: [],
      };
      const ageOf = (copy: WrittenObject) => this.#packs.get(copy.pack)?.mtime ?? 0;
      const copies = new Map<string, WrittenObject[]>();
      for (const [pack, info] of this.#packs) {
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

      const roots = await readGcRoots(this.#dir);
      result.abandonedPuts = roots.abandonedPuts;
      const live = new Set([...roots.pending, ...roots.replicas].map(storageKey));
      // Walk every pinned DAG: a UnixFS file of more than 174 chunks has inner dag-pb nodes,
      // and a directory links files. A node that cannot be read stops the GC like a lost root.
      const walk = roots.pins.map((root) => ({ id: root, root }));
      const walked = new Set<string>();
      while (walk.length > 0) {
        const { id, root } = walk.pop()!;
        const key = storageKey(id);
        if (walked.has(key)) continue;
        walked.add(key);
        live.add(key);
        const good = await this.#firstGoodCopy(copies.get(key) ?? []);
        if (!good) {
          if (!result.unreadableRoots.includes(root)) result.unreadableRoots.push(root);
          continue;
        }
        const legacyManifest = id === root && await this.isLegacyManifest(id, good.bytes);
        for (const link of blocksReferencedBy(id, good.bytes, { legacyManifest })) {
          if (isDagNode(link)) walk.push({ id: link, root });
          else live.add(storageKey(link));
        }
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
        result.freedBytes += copy.length;
      };
      for (const [cid, list] of copies) {
        const rooted = live.has(cid) || this.#inflight.has(cid);
        if (!rooted && ageOf(list[0]) <= cutoff) {
          list.forEach(drop);
          result.removed++;
          continue;
        }
        if (rooted) result.kept++;
        else result.young++;
        if (list.length === 1) continue;
        // Extra copies (two processes wrote one object, a crash mid-rewrite, a fresh copy over
        // an old one): keep the youngest copy that verifies, so a rotten copy never outlives a
        // good one; while none verifies, keep them all for the reads to sort out.
        const keep = (await this.#firstGoodCopy(list))?.copy;
        if (!keep) continue;
        this.#setLocation(keep);
        for (const copy of list) if (copy !== keep) drop(copy);
      }
      for (const [pack, offsets] of dead) await this.#removeFromPack(pack, offsets);
      return result;
    });
  }

  /**
   * The first of `copies` whose bytes verify, with its bytes. Runs under the store lock, where
   * the index was just reloaded and no pack can vanish (a plain {@link get} would wait for the
   * lock's own maintenance turn).
   */
  async #firstGoodCopy(
    copies: WrittenObject[],
  ): Promise<{ copy: WrittenObject; bytes: Uint8Array } | undefined> {
    for (const copy of copies) {
      const bytes = await readRange(this.#packPath(copy.pack), copy.offset, copy.length);
      if (await verifyCid(copy.cid, bytes)) return { copy, bytes };
    }
    return undefined;
  }

  /** The location of `cid`, re-reading the packs directory once if it changed and `cid` is unknown. */
  async #locate(cid: string): Promise<WrittenObject | undefined> {
    const location = this.#index.get(cid);
    if (location) return location;
    await this.#reloadIfChanged();
    return this.#index.get(cid);
  }

  /**
   * Quarantine the copy of `cid` at `seen` (default: its current copy) if it still fails
   * verification; returns the bytes instead when the current copy is good (a repair replaced the
   * bad one meanwhile). The caller holds the CID's slot, so no write of this CID in this process
   * lands between the check and the removal.
   */
  async #quarantineLocked(cid: string, seen?: WrittenObject): Promise<Uint8Array | null> {
    const location = this.#index.get(cid);
    if (!location) return null; // another reader already moved it
    let bytes: Uint8Array;
    try {
      bytes = await readRange(this.#packPath(location.pack), location.offset, location.length);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    if (await verifyCid(cid, bytes)) return bytes;
    if (seen && (seen.pack !== location.pack || seen.offset !== location.offset)) return null;
    await this.#keepForensics(cid, bytes);
    await this.#rewriting(() => this.#removeFromPack(location.pack, new Set([location.offset])));
    return null;
  }

  /**
   * Rewrite pack `name` without its copies at the offsets in `drop`, and without a second copy of
   * an object in this pack: the survivors, verified, go into a new pack, then the old pack is
   * deleted. A survivor that fails verification goes to quarantine instead, and the next copy of
   * its object in this pack, if any, stands in. Objects left unindexed are looked up again in the
   * other packs (a good copy elsewhere replaces a quarantined one). Runs under {@link #rewriting}.
   *
   * Copies are named by offset, not by CID, because a pack can hold one object twice (see
   * {@link gc}): dropping one copy must never take the other with it. For the same reason a copy
   * whose object is indexed in another pack survives too: that copy is unverified and may be the
   * rotten one, while this one, verified on its way, is then the one read. Extra copies are GC's
   * to drop, after it has found the good one.
   */
  async #removeFromPack(name: string, drop: ReadonlySet<number>): Promise<void> {
    const info = this.#packs.get(name);
    if (!info) return;
    const path = this.#packPath(name);
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
        await Promise.all(moved);
        return await this.#reload();
      }
      if (await verifyCid(entry.cid, bytes)) {
        saved.add(entry.cid);
        moved.push(this.#writer.write(entry.cid, bytes));
      } else {
        await this.#keepForensics(entry.cid, bytes);
        this.#unindex(entry.cid, name);
      }
    }
    for (const written of await Promise.all(moved)) this.#setLocation(written);
    await Deno.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    if (this.#durable) await syncDir(this.#packsDir);
    this.#dropPack(name);
    for (const entry of info.entries) this.#unindex(entry.cid, name);
    this.#indexOtherCopies(new Set(info.entries.map((e) => e.cid)));
  }

  /** Index a copy from any known pack for each of `cids` that has none indexed. */
  #indexOtherCopies(cids: Set<string>): void {
    for (const cid of cids) if (this.#index.has(cid)) cids.delete(cid);
    if (cids.size === 0) return;
    for (const [name, info] of this.#packs) {
      for (const entry of info.entries) {
        if (cids.has(entry.cid) && !this.#index.has(entry.cid)) {
          this.#setLocation({ ...entry, pack: name });
        }
      }
    }
  }

  /** Copy bad bytes to quarantine/ for forensics (the pack itself is about to be rewritten). */
  async #keepForensics(cid: string, bytes: Uint8Array): Promise<void> {
    const quarantine = join(this.#dir, "quarantine");
    await Deno.mkdir(quarantine, { recursive: true }); // an operator may have removed it whole
    await Deno.writeFile(join(quarantine, `${cid}.${Date.now()}`), bytes);
  }

  /**
   * Register a durable pack (one the writer just made, or one found on disk): its objects that
   * have no indexed copy yet become readable from it.
   */
  #addPack(
    name: string,
    entries: readonly PackEntry[],
    mtime = packTimeOf(name) ?? this.#clock(),
  ): void {
    const known = this.#packs.get(name);
    if (known) this.#used -= packBytes(known.entries);
    this.#packs.set(name, { entries: [...entries], mtime });
    this.#used += packBytes(entries);
    for (const entry of entries) {
      if (!this.#index.has(entry.cid)) this.#setLocation({ ...entry, pack: name });
    }
  }

  #setLocation(location: WrittenObject): void {
    const replica = this.#replicaSet.has(location.cid);
    if (replica) this.#replicaBytes -= this.#replicaCharge(location.cid);
    this.#index.set(location.cid, { ...location });
    if (replica) this.#replicaBytes += this.#replicaCharge(location.cid);
  }

  /** Forget pack `name` (deleted, here or by another process): its copies no longer count. */
  #dropPack(name: string): PackInfo | undefined {
    const info = this.#packs.get(name);
    if (!info) return undefined;
    this.#packs.delete(name);
    this.#used -= packBytes(info.entries);
    return info;
  }

  /** Forget `cid` if its indexed copy is in pack `name`. */
  #unindex(cid: string, name: string): void {
    const location = this.#index.get(cid);
    if (location?.pack !== name) return;
    if (this.#replicaSet.has(cid)) this.#replicaBytes -= this.#replicaCharge(cid);
    this.#index.delete(cid);
  }

  async #reloadIfChanged(): Promise<void> {
    const stamp = await this.#packsDirStamp();
    if (stamp !== this.#dirStamp) await this.#exclusive(() => this.#reload());
    // Quarantined here, by another process, or emptied by the operator: counted again.
    const quarantine = await dirStamp(join(this.#dir, "quarantine")).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return null; // removed whole: made again
      throw error;
    });
    if (quarantine === null || quarantine !== this.#quarantineStamp) {
      await this.#exclusive(() => this.#countQuarantine());
    }
  }

  /**
   * Count what `quarantine/` holds into {@link #quarantined}: each file's bytes and
   * {@link PACK_OVERHEAD_BYTES} (a file of its own, like a lone pack: its last block's unused end,
   * its inode and directory entry). Runs under {@link #exclusive}.
   */
  async #countQuarantine(): Promise<void> {
    const readAt = Date.now();
    const path = join(this.#dir, "quarantine");
    await Deno.mkdir(path, { recursive: true }); // an operator may have removed it whole
    const stamp = await dirStamp(path);
    let bytes = 0;
    for await (const entry of Deno.readDir(path)) {
      if (!entry.isFile) continue;
      const size = await Deno.stat(join(path, entry.name)).then((s) => s.size, () => null);
      if (size !== null) bytes += size + PACK_OVERHEAD_BYTES; // null: removed meanwhile
    }
    this.#quarantined = bytes;
    // As for the packs directory (see #reload): a stamp from the last second proves nothing.
    this.#quarantineStamp = readAt - stamp < STAMP_TRUST_MS ? -1 : stamp;
  }

  /**
   * Bring the index in line with the packs directory: read the headers of packs not seen yet and
   * forget packs that are gone (then look for other copies of their objects). An object already
   * indexed keeps its place while its pack exists, so a reload never moves it under a reader.
   * Runs under {@link #exclusive}.
   */
  async #reload(): Promise<void> {
    const readAt = Date.now();
    const stamp = await this.#packsDirStamp();
    // Packs the writer registers while this reload runs were not in the listing; keep them.
    const known = new Set(this.#packs.keys());
    const present = new Set<string>();
    for await (const entry of Deno.readDir(this.#packsDir)) {
      if (entry.isFile && entry.name.endsWith(PACK_SUFFIX) && !isTempName(entry.name)) {
        present.add(entry.name);
      }
    }
    const unseen = [...present].filter((name) => !this.#packs.has(name));
    // Header reads in parallel: a store of many small packs opens in a fraction of the time.
    const read = await mapConcurrently(unseen, RELOAD_CONCURRENCY, async (name) => {
      const path = this.#packPath(name);
      try {
        const entries = await readPackIndex(path);
        const mtime = packTimeOf(name) ?? (await Deno.stat(path)).mtime?.getTime() ?? Date.now();
        return { name, entries, mtime };
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return null;
        if (!(error instanceof DamagedPackError)) throw error;
        await Deno.rename(path, join(this.#dir, "quarantine", name)).catch(() => {});
        return null;
      }
    });
    for (const pack of read) if (pack) this.#addPack(pack.name, pack.entries, pack.mtime);
    const orphans = new Set<string>();
    for (const [name, info] of this.#packs) {
      if (present.has(name) || !known.has(name)) continue;
      this.#dropPack(name);
      for (const entry of info.entries) {
        this.#unindex(entry.cid, name);
        orphans.add(entry.cid);
      }
    }
    this.#indexOtherCopies(orphans);
    // A stamp from the last second cannot tell a change made later in the same tick (mtimes
    // have millisecond resolution here): distrust it, so the next miss looks again.
    this.#dirStamp = readAt - stamp < STAMP_TRUST_MS ? -1 : stamp;
  }

  #packsDirStamp(): Promise<number> {
    return dirStamp(this.#packsDir);
  }

  /** Remove temp files whose writer is gone: unlocked, and not brand new. */
  async #sweepTemp(): Promise<void> {
    for await (const entry of Deno.readDir(this.#packsDir)) {
      if (!entry.isFile || !isTempName(entry.name)) continue;
      const path = join(this.#packsDir, entry.name);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true, write: true });
      } catch {
        continue; // renamed or removed meanwhile
      }
      try {
        if (!await file.tryLock(true)) continue; // a live writer holds it
        const info = await file.stat();
        const age = Date.now() - (info.mtime?.getTime() ?? 0);
        if (info.size > 0 || age >= TEMP_SWEEP_MIN_AGE_MS) {
          await Deno.remove(path).catch(() => {}); // its writer may have renamed it meanwhile
        }
      } finally {
        file.close();
      }
    }
  }

  /**
   * Remove the temporary files of pin labels ({@link #touchRoot}) that a process killed between
   * writing one and renaming it left in `pins/`: never read, they stayed for good, one per crash.
   * A label is written under the store lock, so while this holds it no pin is being written; when
   * another process holds it (a pin, or a GC, which can take long) the sweep is left to a later
   * open rather than waited for.
   */
  async #sweepPinTemporaries(): Promise<void> {
    const lock = await Deno.open(join(this.#dir, STORE_LOCK), {
      read: true,
      write: true,
      create: true,
    });
    try {
      if (await lock.tryLock(true)) await removeTemporaries(join(this.#dir, PINS_DIR), isCid);
    } finally {
      lock.close(); // releases the lock
    }
  }

  /** Run `fn` while holding `cid`'s slot (after any write of `cid` already in flight). */
  async #withSlot<T>(cid: string, fn: () => Promise<T>): Promise<T> {
    for (let pending = this.#inflight.get(cid); pending; pending = this.#inflight.get(cid)) {
      await pending.catch(() => {});
    }
    const run = fn();
    this.#inflight.set(cid, run);
    try {
      return await run;
    } finally {
      if (this.#inflight.get(cid) === run) this.#inflight.delete(cid);
    }
  }

  /** Run `fn` after every earlier maintenance task (reloads, rewrites) has finished. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#maintenance.then(fn);
    this.#maintenance = run.catch(() => {});
    return run;
  }

  /**
   * Run `fn` (which removes objects from packs) under {@link #exclusive} and an exclusive lock
   * on `packs/.rewrite.lock` shared by every process using this directory, after reloading the
   * index: so two processes never rewrite at once, and each sees the other's packs before it
   * decides which copies are extra.
   */
  #rewriting<T>(fn: () => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      const lock = await Deno.open(join(this.#dir, STORE_LOCK), {
        read: true,
        write: true,
        create: true,
      });
      try {
        await lock.lock(true);
        await this.#reload();
        return await fn();
      } finally {
        lock.close(); // releases the lock
      }
    });
  }

  #packPath(name: string): string {
    return join(this.#packsDir, name);
  }
}

/**
 * What a pack adds to the store's usage: its copies' bytes, each copy's overhead and the pack's
 * own ({@link OBJECT_OVERHEAD_BYTES}, {@link PACK_OVERHEAD_BYTES}).
 */
function packBytes(entries: readonly PackEntry[]): number {
  let bytes = PACK_OVERHEAD_BYTES;
  for (const entry of entries) bytes += entry.length + OBJECT_OVERHEAD_BYTES;
  return bytes;
}

/** Modification time (ms) of directory `dir`: it changes when an entry is added or removed. */
async function dirStamp(dir: string): Promise<number> {
  return (await Deno.stat(dir)).mtime?.getTime() ?? 0;
}

/** Bytes an unprivileged writer may still take on the filesystem holding `dir`. */
async function diskFreeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

/** Number of files in `dir`. */
async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) n++;
  return n;
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
async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    return await readExactly(file, length);
  } finally {
    file.close();
  }
}
