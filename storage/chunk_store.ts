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
 * The store's parts live in private modules beside this file, each owned by the store: the index
 * (`_pack_index.ts`), what the quota charges (`_chunk_costs.ts`), the cap on what peers place
 * (`_replica_cap.ts`), `quarantine/` and what it takes (`_quarantine.ts`), the `pins/` and
 * `replicas/` records (`_root_records.ts`), a GC pass (`_chunk_gc.ts`), the per-CID slots, the
 * maintenance turn and the store lock (`_chunk_locks.ts`), a pack's rewrite without some of its
 * copies (`_pack_rewrite.ts`), the sweeps of crashed writers' temp files (`_temp_sweeps.ts`) and
 * directory stamps (`_dir_stamp.ts`).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { cidCodec, cidDigest, DAG_PB_CODEC, isCid, storageKey } from "../protocols/cid.ts";
import { assertDagBlockSize } from "./unixfs.ts";
import type { BlockStore, BlockStoreCallOptions } from "./block_store.ts";
import { cidOfAsync, verifyCid } from "./_hash.ts";
import { OBJECT_OVERHEAD_BYTES, PACK_OVERHEAD_BYTES } from "./_chunk_costs.ts";
import { admissionCost, ADMIT_AHEAD_BYTES, PutAdmission } from "./_put_admission.ts";
import { collectGarbage } from "./_chunk_gc.ts";
import { CidSlots, MaintenanceTurn, openStoreLock, STORE_LOCK } from "./_chunk_locks.ts";
import { dirEntries } from "./_dir_entries.ts";
import { dirStamp } from "./_dir_stamp.ts";
import { PackIndex, readRange } from "./_pack_index.ts";
import { removeFromPack } from "./_pack_rewrite.ts";
import { Quarantine } from "./_quarantine.ts";
import { ReplicaCap } from "./_replica_cap.ts";
import { encodeReplicaRecord, readReplicaRecord } from "./_replica_record.ts";
import { NO_GIVER } from "./_replica_shares.ts";
import { countFiles, readPinLabel, RootRecords } from "./_root_records.ts";
import { sweepPackTemporaries, sweepPinTemporaries } from "./_temp_sweeps.ts";
import {
  ChunkNotFoundError,
  CorruptChunkError,
  DiskFullError,
  isUnwritableOsError,
  QuotaExceededError,
  StorageUnwritableError,
  storageWriteError,
} from "./errors.ts";
import { PENDING_DIR, PINS_DIR, REPLICAS_DIR } from "./gc_roots.ts";
import { migrateLegacyChunks } from "./legacy_chunks.ts";
import {
  decideLegacyManifest,
  legacyManifestRecord,
  markLegacyManifests,
} from "./legacy_manifests.ts";
import { pathExists } from "./path_exists.ts";
import { PackWriter, syncDir, type WrittenObject } from "./pack_writer.ts";
import { OWNER_DIR_MODE } from "../protocols/owner_only.ts";

export {
  OBJECT_OVERHEAD_BYTES,
  PACK_OVERHEAD_BYTES,
  REPLICA_OVERHEAD_BYTES,
  REPLICA_RECORD_BYTES,
} from "./_chunk_costs.ts";
export { RECENT_GIVER_MS } from "./_replica_shares.ts";
// Public as what `admitPut` returns and a put draws on; made only by the store.
export { PutAdmission } from "./_put_admission.ts";

/** Test hooks that inject faults into the write path. */
export interface ChunkStoreFaults {
  /**
   * Called after a pack's temp file is opened and locked, before its bytes are written; throwing
   * here simulates a failing write (for example an ENOSPC error from the OS).
   */
  beforeWrite?(tempPath: string): void | Promise<void>;
  /**
   * Called once a pack is in place under its name, before the writer indexes it: a reload meanwhile
   * finds it first (race tests).
   */
  beforeIndex?(packPath: string): void | Promise<void>;
  /** Called after a read's bytes are in memory and before they are verified (race tests). */
  afterRead?(cid: string): void | Promise<void>;
  /** Called when a put's object joins the queue of the next pack (tests wait on it, not on time). */
  queued?(cid: string): void;
  /** The free bytes of the store's filesystem, answered instead of asking the OS (`statfs`). */
  freeBytes?(): number | Promise<number>;
  /**
   * Called before a `pins/` or `replicas/` record is written; throwing simulates the OS refusing
   * it (`ENOSPC`, `EROFS`).
   */
  beforeRecordWrite?(path: string): void | Promise<void>;
  /**
   * Whether the store's directory refuses writes, answered on open instead of probing it (opening
   * `store.lock` for writing): `true` opens the store read-only (see {@link ChunkStore.readOnly}).
   */
  refusesWrites?(): boolean | Promise<boolean>;
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
   * `put_chunk`s), each with {@link REPLICA_OVERHEAD_BYTES}. A replica write past it fails with
   * `replica_quota_exceeded` and nothing is written; the node's own puts are not counted, so
   * peers can never take the rest of {@link quotaBytes}. Default: no cap of its own. Shared
   * fairly among the peers that place chunks ({@link ChunkPutOptions.giver}): one over its share
   * takes only room that no other peer asking lately is owed (see `_replica_shares.ts`).
   */
  replicaQuotaBytes?: number;
  /**
   * Free space on the store's filesystem that replica writes never take: one that would leave
   * less fails with `replica_quota_exceeded` (peers cannot fill the disk under the node's own
   * puts, its ledger and its log). Default 0: not checked.
   */
  replicaMinFreeBytes?: number;
  /**
   * Free space on the store's filesystem that the node's own puts (client uploads: `POST
   * /v1/files`, the WebSocket API) never take: one that would leave less fails with `disk_full`
   * and writes nothing, so the ledger, the proof store and the index always have room to record
   * the work the node does (review s75 F1: uploads filled the disk to the last byte, receipts
   * then failed and the node could not restart). Replica writes keep
   * {@link replicaMinFreeBytes} instead. Default 0: not checked.
   */
  putMinFreeBytes?: number;
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
  /**
   * Where opening reports what it did beyond reading (the objects of the first layout it moved
   * into packs, and what it left there and why: `legacy_chunks.ts`). Default: stderr.
   */
  log?: (line: string) => void;
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
   * {@link REPLICA_OVERHEAD_BYTES}: what {@link ChunkStoreOptions.replicaQuotaBytes} caps.
   */
  replicaBytes: number;
  /** The cap on {@link replicaBytes}, or `null` when there is none of its own. */
  replicaQuotaBytes: number | null;
}

/** What a garbage collection pass did. */
export interface GcResult {
  /** Objects removed. */
  removed: number;
  /** Bytes freed: the removed copies' (not those of {@link GcResult.skippedPacks}). */
  freedBytes: number;
  /**
   * Packs left whole, with why: a pack that keeps some objects is rewritten (its survivors into a
   * new pack first), and `disk_full` says that write found no room. Their garbage (`garbageBytes`)
   * stays until a later GC; the other packs were still collected, those that free most per byte
   * written first (all-garbage packs, which write nothing, before any rewrite). Empty when none.
   */
  skippedPacks: { pack: string; reason: "disk_full"; garbageBytes: number }[];
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

/** Options of {@link ChunkStore.pin}. */
export interface PinOptions {
  /**
   * The root is named in a running put's `pending/` record (a {@link PendingPut} committing),
   * which GC reads before it reads the pins: the pin is written without the store lock, so a
   * commit never waits for a GC pass, nor hangs behind a stopped `cli.ts gc` (review s75 vcrash
   * F1). Default `false`: checked and written under the lock, after re-reading the packs.
   */
  recorded?: boolean;
}

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
  /**
   * The peer that placed a `replica` (hex of the key its connection proved): the chunk is
   * recorded and counted as that peer's, and refused with `replica_quota_exceeded` past its fair
   * share of {@link ChunkStoreOptions.replicaQuotaBytes} while other peers ask for room. A chunk
   * held already keeps its first giver. Default: none — counted for no peer, bounded by the cap
   * as a whole only.
   */
  giver?: string;
  /**
   * Called before the put reuses a copy already stored instead of writing one, with the put's
   * `signal`: resolves true once the copy may be reused (the index is re-read then, so a copy a
   * GC took meanwhile is written afresh), false to write a fresh copy anyway. Writes of new
   * bytes never call it. A {@link PendingPut} waits here, bounded, for a GC pass that may have
   * read its roots before its record (review s75 vcrash F1: every upload waited out every pass).
   * Default: reuse at once.
   */
  beforeReuse?: (signal: AbortSignal | undefined) => Promise<boolean>;
  /**
   * The room {@link ChunkStore.admitPut} promised the file this object is part of: the write
   * draws on it, and only what it lacks is judged against `putMinFreeBytes`. Default: none.
   */
  admission?: PutAdmission;
}

const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;
/** Attempts of a read whose pack vanished (rewritten by GC here or in another process). */
const READ_ATTEMPTS = 3;

/** A directory of CID-named, verified, atomically written objects. */
export class ChunkStore implements BlockStore {
  readonly #dir: string;
  readonly #packsDir: string;
  readonly #quota: number;
  readonly #durable: boolean;
  readonly #gcGraceMs: number;
  /** {@link ChunkStoreOptions.putMinFreeBytes}. */
  readonly #putMinFree: number;
  readonly #faults: ChunkStoreFaults | undefined;
  readonly #clock: () => number;
  readonly #writer: PackWriter;
  /** Where each object is read from, and what the packs take (see `_pack_index.ts`). */
  readonly #index: PackIndex;
  /** What `quarantine/` holds, charged against the quota (see `_quarantine.ts`). */
  readonly #quarantine: Quarantine;
  /** What the writes in flight are charged (the quota's share of {@link #inFlight}). */
  #reserved = 0;
  /**
   * Room promised to admitted puts ({@link admitPut}) and not yet drawn by their writes: taken,
   * for the floors of free disk, as writes in flight are.
   */
  #admitted = 0;
  /**
   * Bytes whose in-flight reserve was taken off since the store opened (their pack was counted,
   * or their write failed): a disk read is bracketed by it ({@link #freeNow}).
   */
  #unreserved = 0;
  /**
   * Each write in flight by CID (one at a time: {@link #slots}), with the call that takes its
   * reserve off: called once a pack holding its CID is counted, or when the write ends.
   */
  readonly #inFlight = new Map<string, () => void>();
  /** The chunks held for other nodes and their cap (see `_replica_cap.ts`). */
  readonly #replicas: ReplicaCap;
  /** Writes in flight per CID, so two writers of one chunk in this process share one write. */
  readonly #slots = new CidSlots();
  /** The `pins/` and `replicas/` records, written durably (see `_root_records.ts`). */
  readonly #roots: RootRecords;
  /** Serializes index rebuilds and pack rewrites. */
  readonly #maintenance = new MaintenanceTurn();
  /** The directory refused writes when the store opened (see {@link readOnly}). */
  #readOnly = false;

  private constructor(dir: string, options: ChunkStoreOptions | undefined) {
    this.#dir = dir;
    this.#packsDir = join(dir, "packs");
    this.#durable = options?.durable ?? true;
    this.#quota = options?.quotaBytes ?? Infinity;
    this.#clock = options?.clock ?? Date.now;
    this.#index = new PackIndex(dir, this.#clock, {
      uncharge: (cid) => this.#replicas.uncharge(cid),
      charge: (cid) => this.#replicas.charge(cid),
      packed: (objects) => {
        for (const { cid } of objects) this.#inFlight.get(cid)?.();
      },
    });
    this.#replicas = new ReplicaCap({
      quotaBytes: options?.replicaQuotaBytes ?? Infinity,
      minFreeBytes: options?.replicaMinFreeBytes ?? 0,
      // Peers never take what the node's own puts keep: read-only for them too (`_replica_cap.ts`).
      putMinFreeBytes: options?.putMinFreeBytes ?? 0,
      dir,
      index: this.#index,
      reserved: () => this.#reserved + this.#admitted,
      faults: options?.faults,
      clock: this.#clock,
    });
    this.#quarantine = new Quarantine(dir);
    this.#roots = new RootRecords(dir, this.#durable, options?.faults);
    this.#gcGraceMs = options?.gcGraceMs ?? DEFAULT_GC_GRACE_MS;
    this.#putMinFree = options?.putMinFreeBytes ?? 0;
    this.#faults = options?.faults;
    this.#writer = new PackWriter(this.#packsDir, {
      durable: this.#durable,
      maxPackBytes: options?.maxPackBytes,
      beforeWrite: options?.faults?.beforeWrite,
      beforeIndex: options?.faults?.beforeIndex,
      queued: options?.faults?.queued,
      clock: this.#clock,
      onPack: (name, entries) => this.#index.addPack(name, entries),
    });
  }

  /**
   * Open (creating if needed) the store in `dir`: sweeps the temp files of crashed writers,
   * moves objects of the earlier one-file-per-object layout into packs, and reads every pack's
   * index. On a directory the OS will not let it write (a filesystem turned read-only, no
   * permission, a failing device) it opens read-only instead: nothing is swept, migrated or
   * written, what is stored is served, and every write is refused (see {@link readOnly}); a folder
   * that never held a store opens so too, empty (a store folder it cannot make holds nothing).
   *
   * @throws {LegacyChunksUnreadableError} the earlier layout's `chunks/` holds an entry that
   * cannot be read (a link to a volume not mounted); nothing was moved (`legacy_chunks.ts`).
   * @throws {LegacyMigrationOverQuotaError} moving the earlier layout needs more than the quota
   * leaves; nothing was moved.
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
    store.#readOnly = await options?.faults?.refusesWrites?.() === true ||
      !await store.#prepareForWrites();
    if (!store.#readOnly) {
      await sweepPackTemporaries(store.#packsDir);
      await sweepPinTemporaries(store.#dir);
    }
    // Asked once now, so a process not allowed to ask (`--allow-sys=statfs`) fails to open.
    if (store.#replicas.minFree > 0) await store.#replicas.diskFree();
    // Before the index is read, so indexing each replica's object charges it (to its giver).
    for await (const cid of store.replicas()) {
      store.#replicas.add(cid, await readReplicaRecord(join(dir, REPLICAS_DIR, cid)));
    }
    await store.#exclusive(() => store.#index.reload());
    // Both write (packs, a record): a read-only store leaves them to its next writable open.
    if (!store.#readOnly) {
      await migrateLegacyChunks(
        dir,
        store,
        join(dir, "quarantine"),
        options?.log ?? ((line) => console.error(line)),
      );
      await markLegacyManifests(dir, (cid) => store.get(cid), store.#durable);
    }
    await store.#exclusive(() => store.#quarantine.count(store.#readOnly));
    return store;
  }

  /**
   * Make the store's directories and open `store.lock` for writing, as every pin and GC will:
   * false when the OS refuses ({@link isUnwritableOsError}), and the store opens read-only then.
   * A directory that is not there and cannot be made holds nothing: a folder that never held a
   * store (a read-only mount) opens as an empty read-only store, where it used to throw and crash
   * the StorageActor at every restart until its supervisor gave up.
   */
  async #prepareForWrites(): Promise<boolean> {
    const dir = this.#dir;
    const subs = ["packs", PINS_DIR, REPLICAS_DIR, PENDING_DIR, "quarantine"];
    try {
      // Every directory made here is an entry in its parent: fsynced there before anything is
      // acknowledged, or a power cut could take `packs/` (or the whole store) with every pack in it.
      const made: string[] = [];
      for (const sub of subs) {
        for (let path = join(dir, sub); !await pathExists(path); path = dirname(path)) {
          made.push(path);
        }
        await Deno.mkdir(join(dir, sub), { recursive: true, mode: OWNER_DIR_MODE });
      }
      if (this.#durable) {
        for (const parent of new Set(made.map(dirname))) await syncDir(parent);
      }
      (await openStoreLock(dir)).close();
      return true;
    } catch (error) {
      if (!isUnwritableOsError(error)) throw error;
      return false;
    }
  }

  /**
   * Free bytes of the store's filesystem now (the `freeBytes` test hook's answer, else the OS's),
   * as the replica reserve reads them: `/metrics` and `/healthz` show it (review s74 F2).
   */
  async diskFree(): Promise<number> {
    return await this.#replicas.diskFree();
  }

  /** Free disk bytes replica writes never take (`replicaMinFreeBytes`; 0: not checked). */
  get minFreeBytes(): number {
    return this.#replicas.minFree;
  }

  /**
   * True when the store opened read-only: its directory refused writes then (a filesystem turned
   * read-only, no permission, a failing device). It serves what it holds; every put, pin, unpin,
   * delete and GC fails with `storage_unwritable`, and a corrupt copy is refused but not moved to
   * quarantine. Opening the store again, once the directory can be written, makes it writable.
   */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** Throws `storage_unwritable` when the store is {@link readOnly}. */
  #assertWritable(): void {
    if (this.#readOnly) {
      throw new StorageUnwritableError(`the store ${this.#dir} (opened read-only)`);
    }
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /** Capacity figures (including objects other processes added since the last look). */
  async stats(): Promise<ChunkStoreStats> {
    await this.#reloadIfChanged();
    return {
      usedBytes: this.#index.used + this.#quarantine.bytes,
      quarantineBytes: this.#quarantine.bytes,
      quotaBytes: Number.isFinite(this.#quota) ? this.#quota : null,
      objectCount: this.#index.size,
      pinCount: (await this.pins()).length,
      replicaCount: await countFiles(join(this.#dir, REPLICAS_DIR)),
      replicaBytes: this.#replicas.bytes,
      replicaQuotaBytes: Number.isFinite(this.#replicas.quota) ? this.#replicas.quota : null,
    };
  }

  /**
   * Store `bytes` under their CID. Idempotent: storing an object that is already present costs
   * nothing and does not count against the quota twice.
   *
   * @throws {QuotaExceededError} the object does not fit under the quota (nothing written).
   * @throws {ReplicaQuotaExceededError} `options.replica` and the object would be written past
   * what the store holds for other nodes, or into the disk's reserve (nothing written).
   * @throws {DiskFullError} the put would leave less free disk than `putMinFreeBytes` (nothing
   * written), the disk filled up (the partial pack was removed), or the `replicas/`
   * record of `options.replica` hit it (the record was removed: nothing roots the object).
   * @throws {StorageUnwritableError} the OS refused the write (`EROFS`, `EACCES`, `EIO`), or the
   * store is {@link readOnly}; nothing is kept, as for `disk_full`.
   * @throws {CorruptChunkError} `options.cid` was given and the bytes do not match it.
   * @throws {BlockTooLargeError} `options.cid` names a dag-pb node over 2 MiB.
   */
  async put(bytes: Uint8Array, options?: ChunkPutOptions): Promise<string> {
    options?.signal?.throwIfAborted();
    this.#assertWritable();
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
    await this.#slots.run(cid, async () => {
      await this.#writeIfAbsent(cid, bytes, options);
      // Recorded after the write (until then the object is inside the grace period, and a record
      // of an object that failed to store would root nothing), in the CID's slot, so that two
      // givers of one chunk leave one record, the first's.
      if (options?.replica) await this.#recordReplica(cid, options.giver ?? NO_GIVER);
    });
    return cid;
  }

  /**
   * Promise a file put of `size` bytes (cut into `chunkSize` chunks) its room under
   * `putMinFreeBytes` before a byte of it is read: it is counted taken until its writes draw on
   * it ({@link ChunkPutOptions.admission}) or it is released, so as many puts of a burst as fit
   * are admitted and the rest are refused at once, having written nothing (review s75 vcrash F2:
   * 32 uploads into room for 4 interleaved their chunks and all failed, and their partial chunks
   * held the room for the grace period). The whole size is judged, but only
   * {@link ADMIT_AHEAD_BYTES} of it is held ahead of the put's writes, topped up as they draw on
   * it (review s75 fix-admission: held whole, an upload declaring all the room and trickling at
   * the minimum rate kept every other upload out for as long as it took to send). Release it when
   * the put ends, whichever way. With no floor (`putMinFreeBytes` 0) nothing is checked or
   * promised.
   *
   * @example
   * ```ts
   * import { ChunkStore } from "./chunk_store.ts";
   * const store = await ChunkStore.open(await Deno.makeTempDir(), { putMinFreeBytes: 1024 });
   * const admission = await store.admitPut(5, 256 * 1024);
   * try {
   *   await store.put(new TextEncoder().encode("hello"), { admission });
   * } finally {
   *   admission.release();
   * }
   * ```
   *
   * @throws {DiskFullError} the put's room and the floor are not free, the room promised to
   * writes under way counted off (nothing promised).
   * @throws {StorageUnwritableError} the store is {@link readOnly}.
   */
  async admitPut(size: number, chunkSize: number): Promise<PutAdmission> {
    this.#assertWritable();
    if (this.#putMinFree <= 0) return new PutAdmission(0, () => {});
    const cost = admissionCost(size, chunkSize);
    const free = await this.#freeNow();
    // From the check to the promise nothing awaits, so concurrent admissions see each other's.
    const promised = this.#reserved + this.#admitted;
    if (free - promised - cost < this.#putMinFree) {
      throw new DiskFullError(
        undefined,
        `no room for an upload of ${size} bytes (${cost} with what the store adds): the disk ` +
          `has ${free} bytes free, ${promised} of them promised to writes under way, and the ` +
          `store keeps ${this.#putMinFree} (storage.putMinFreeBytes) for the ledger, receipts ` +
          "and index; retry when the uploads under way have ended, free space on the disk, or " +
          "lower the floor",
      );
    }
    // Judged whole, held only ahead of its writes: one upload cannot hold the disk for as long
    // as it takes to send (ADMIT_AHEAD_BYTES); its writes top the hold up ({@link #writeIfAbsent}).
    const held = Math.min(cost, ADMIT_AHEAD_BYTES);
    this.#admitted += held;
    return new PutAdmission(held, (left) => this.#admitted -= left, cost - held);
  }

  /**
   * Free disk bytes to judge against the reserves and promises as they are now: the disk's
   * answer, less the reserves taken off while it was asked. The OS (or the test hook) reads the
   * disk at some point during the await; a write whose pack landed after that point and whose
   * reserve was taken off before the answer came back was counted neither on the disk nor in
   * flight, and a put was admitted past the room (CI, stop 81: 5 uploads stored into room for 4).
   * Counted off whether the read saw them or not, since that cannot be told: at worst a put
   * arriving in that window is refused room it had, never given room the disk has not.
   */
  async #freeNow(): Promise<number> {
    const before = this.#unreserved;
    const free = await this.#replicas.diskFree();
    return free - (this.#unreserved - before);
  }

  /**
   * Bytes held here for the peer `giver` (hex of its key; `""`: for no peer), each chunk with
   * {@link REPLICA_OVERHEAD_BYTES}, writes in flight included: what its fair share is judged on.
   */
  heldFor(giver: string): number {
    return this.#replicas.heldFor(giver);
  }

  /** Write the `replicas/` record of `cid`, placed by `giver`, unless it has one already. */
  async #recordReplica(cid: string, giver: string): Promise<void> {
    if (await this.isReplica(cid)) return this.#replicas.holdForPeers(cid, giver);
    // Written in place, not atomically: a torn record still roots the chunk, and reads back
    // as placed by no peer (`_replica_record.ts`).
    await this.#roots.touchRoot(REPLICAS_DIR, cid, encodeReplicaRecord(giver), false)
      .catch(async (error) => {
        // A record that failed roots nothing: one left partial (its entry made, its content not:
        // a full disk) is removed, or the chunk of a put its peer was told failed was held here
        // for good, for no peer. Charged from its write or its check, it leaves the set with it.
        await Deno.remove(join(this.#dir, REPLICAS_DIR, cid)).catch(() => {});
        if (!await this.isReplica(cid)) this.#replicas.leaveReplicaSet(cid);
        throw error;
      });
    this.#replicas.holdForPeers(cid, giver);
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
    let existing = this.#index.get(cid);
    // Deduplicate only against a copy well inside the GC grace period: an older unpinned copy may
    // be collected by a GC (here or in another process) before this put's caller pins it, so the
    // put writes a fresh copy instead, and the old one goes at the next GC. A replica already
    // recorded under `replicas/` is rooted for good (records are never removed), so no GC can take
    // its copy: a peer sending it again refreshes nothing and writes nothing.
    const reusable = async () => {
      const young = existing !== undefined &&
        this.#clock() - (this.#index.packs.get(existing.pack)?.mtime ?? 0) < this.#gcGraceMs / 2;
      const rooted = existing !== undefined && !young && options?.replica === true &&
        await this.isReplica(cid);
      return young || rooted;
    };
    let reuse = await reusable();
    if (reuse && options?.beforeReuse) {
      reuse = await options.beforeReuse(options.signal);
      // The caller waited (a GC pass may have ended): what the pass left is judged, not the copy
      // this index saw before it.
      if (reuse) {
        await this.#reloadIfChanged();
        existing = this.#index.get(cid);
        reuse = await reusable();
      }
    }
    const forPeers = options?.replica === true;
    const giver = options?.giver ?? NO_GIVER;
    // We hold this CID's slot: check in place; a bad copy is quarantined, making room.
    if (existing && reuse && (!verifyExisting || await this.#quarantineLocked(cid))) {
      // A peer's record of a copy already here (the node's own, young) holds it for peers for good:
      // charged from now, so it must fit as a written one must (nothing is written: no disk check).
      if (forPeers) {
        this.#replicas.room(cid, existing.length, Infinity, giver);
        this.#replicas.holdForPeers(cid, giver);
      }
      return;
    }
    // Each kind of put keeps its own floor of free disk: peers the larger one, the node's own
    // puts one that still leaves the ledger and proofs room.
    const floor = forPeers ? this.#replicas.minFree : this.#putMinFree;
    const free = floor > 0 ? await this.#freeNow() : Infinity;
    // From the checks to the reserves nothing awaits, so concurrent puts see each other's.
    // Charged as a copy in a pack of its own until its pack is written (see PACK_OVERHEAD_BYTES).
    const cost = bytes.length + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;
    const taken = this.#index.used + this.#quarantine.bytes + this.#reserved;
    if (taken + cost > this.#quota) {
      throw new QuotaExceededError(cost, this.#quota - taken);
    }
    // Writes in flight are not on the disk yet: what they will take is counted off as well, and
    // so is the room promised to admitted puts. What this put was promised was judged when it
    // was admitted: only the rest of the write is judged now (judged again, the promise was
    // counted twice while the pack was written, on the disk and in flight, and the admitted
    // puts of a burst failed as before).
    const admission = forPeers ? undefined : options?.admission;
    const promised = Math.min(cost, admission?.left ?? 0);
    const unpromised = cost - promised;
    if (
      !forPeers && unpromised > 0 &&
      free - this.#reserved - (this.#admitted - promised) - unpromised < this.#putMinFree
    ) {
      throw new DiskFullError(
        undefined,
        `no room for a put of ${cost} bytes: the disk has ${free} bytes free, and the store ` +
          `keeps ${this.#putMinFree} (storage.putMinFreeBytes) for the ledger, receipts and ` +
          "index; free space on the disk, or lower the floor",
      );
    }
    const replicaCost = forPeers ? this.#replicas.room(cid, bytes.length, free, giver) : 0;
    // Joins the replica set before it is written, so the index charges the copy it takes.
    const joined = forPeers && !this.#replicas.has(cid);
    if (joined) this.#replicas.holdForPeers(cid, giver);
    // An indexed copy joining the set was charged as it joined: its fresh copy is not charged again.
    const replicaReserve = joined && existing ? 0 : replicaCost;
    // The promise becomes a write in flight: still counted, once.
    this.#admitted -= admission?.draw(cost) ?? 0;
    this.#reserved += cost;
    // The hold moves ahead with the writes, as far as the room above the floor allows now.
    if (admission !== undefined && admission.wanted > 0) {
      const room = free - this.#reserved - this.#admitted - this.#putMinFree;
      const more = Math.max(0, Math.min(admission.wanted, room));
      admission.extend(more);
      this.#admitted += more;
    }
    this.#replicas.reserve(giver, replicaReserve);
    // Taken off in the turn a pack holding the CID is counted (the writer's onPack, or a reload
    // that found the pack on disk first), which charges the copy from then on: taken off at the
    // write's end instead, each copy was counted twice until then, and puts arriving meanwhile were
    // refused short of the caps (CI, stop 72: a three-holder put of 33 chunks into 40 chunks' room).
    const unreserve = () => {
      if (this.#inFlight.get(cid) !== unreserve) return;
      this.#inFlight.delete(cid);
      this.#reserved -= cost;
      this.#unreserved += cost;
      this.#replicas.release(giver, replicaReserve);
    };
    this.#inFlight.set(cid, unreserve);
    let done = false;
    try {
      // A new object is indexed by onPack; a fresh copy over an old one counts as one more copy
      // (both are on disk until a GC keeps one), and is the one read from now on.
      const written = await this.#writer.write(cid, bytes).catch((error) => {
        throw storageWriteError(error, this.#packsDir);
      });
      if (existing) this.#index.setLocation(written);
      done = true;
    } finally {
      unreserve();
      // A failed write roots nothing: it leaves the set unless a record already put it there.
      if (joined && !done && !await this.isReplica(cid)) this.#replicas.leaveReplicaSet(cid);
    }
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
        bytes = await readRange(
          this.#index.packPath(location.pack),
          location.offset,
          location.length,
        );
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // Its pack was rewritten (GC, quarantine) since we looked it up: look again.
        await this.#exclusive(() => this.#index.reload());
        continue;
      }
      await this.#faults?.afterRead?.(cid);
      if (await verifyCid(cid, bytes)) return bytes;
      if (this.#readOnly) {
        // Nothing can be set aside: refused, and left for a writable open's read to quarantine.
        throw new CorruptChunkError(
          id,
          `${this.#index.packPath(location.pack)}@${location.offset}`,
        );
      }
      // The bytes were bad when we read them, but a repair may have replaced them since:
      // re-check under the CID's slot, and only quarantine the copy we proved bad.
      const good = await this.#slots.run(cid, () => this.#quarantineLocked(cid, location));
      if (good) return good;
      if (this.#index.has(cid)) continue; // another copy (here or from another process) stands in
      throw new CorruptChunkError(id, `${this.#index.packPath(location.pack)}@${location.offset}`);
    }
    throw new ChunkNotFoundError(id);
  }

  /** True when `cid` is stored (not verified; use {@link get} for that). */
  async has(id: string): Promise<boolean> {
    const cid = storageKey(id);
    return (await this.#locate(cid)) !== undefined;
  }

  /**
   * The index in `ids` of the first not stored, from `from` on (not verified), or -1: {@link has}
   * of many in one call, for the check a file read makes of a node's leaves before its status
   * (`actors/_storage_may_read.ts`, review s76 vcar F1). An id already in the index under its own
   * name (a raw leaf's CID is its storage key) is not parsed again: parsing was most of the cost.
   */
  async firstMissing(ids: readonly string[], from = 0): Promise<number> {
    for (let i = from; i < ids.length; i++) {
      if (this.#index.get(ids[i]) === undefined && !await this.has(ids[i])) return i;
    }
    return -1;
  }

  /**
   * Bytes stored under `cid`, from the index (not read, not verified), or `undefined` when it is
   * not stored: what a check of a raw leaf's length against its file node needs, without hashing
   * every leaf of a file again (`unixfs.ts` `assertRawLeafSizes`).
   */
  async storedLength(id: string): Promise<number | undefined> {
    return (await this.#locate(storageKey(id)))?.length;
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
      for (const [name, info] of this.#index.packs) {
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
    for await (const entry of dirEntries(join(this.#dir, REPLICAS_DIR))) {
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
   * A root a running put's `pending/` record names ({@link PinOptions.recorded}) is pinned
   * without the lock: GC reads the records before the pins, so the record keeps it until the pin
   * does.
   *
   * @throws {ChunkNotFoundError} the object is not stored here: a pin of nothing would stop
   * every GC (it cannot know what the missing object references). Put it first.
   */
  async pin(cid: string, label?: PinLabel, options?: PinOptions): Promise<void> {
    const key = storageKey(cid);
    const text = label?.name !== undefined || label?.mime !== undefined || label?.local
      ? JSON.stringify({ name: label.name, mime: label.mime, local: label.local || undefined })
      : "";
    const write = async () => {
      if (!this.#index.has(key)) {
        throw new ChunkNotFoundError(cid, "the local store; put it before pinning it");
      }
      if (label === undefined && await pathExists(join(this.#dir, PINS_DIR, cid))) return;
      await this.#roots.touchRoot(PINS_DIR, cid, new TextEncoder().encode(text));
    };
    if (!options?.recorded) return await this.#rewriting(write);
    // The put stored or reused the root after its record, having waited out any pass that read
    // the roots without it (`PendingPut`): this index holds what is on disk for it.
    this.#assertWritable();
    await write();
  }

  /**
   * The name, MIME type and locality a pin recorded (a public UnixFS file's id has neither, so
   * the owner's labels live beside the pin); `undefined` when none; `{ local: true }` when the
   * pin file does not parse (it may have said so: kept to this node rather than shared).
   */
  async pinLabel(cid: string): Promise<PinLabel | undefined> {
    return await readPinLabel(join(this.#dir, PINS_DIR, cid));
  }

  /**
   * Unpin a root; true when it was pinned. Its objects go at the next GC. Durable before it
   * resolves (when the store is): a pin brought back by a power cut after a GC collected its
   * objects would be a root over nothing, and stop every GC.
   */
  async unpin(cid: string): Promise<boolean> {
    cidDigest(cid);
    this.#assertWritable();
    const path = join(this.#dir, PINS_DIR, cid);
    try {
      await Deno.remove(path);
      if (this.#durable) await this.#roots.syncRootDir(join(this.#dir, PINS_DIR));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw storageWriteError(error, path);
    }
    return true;
  }

  /** Whether `cid` is pinned now (here or by another process on this directory). */
  async isPinned(cid: string): Promise<boolean> {
    return isCid(cid) && await pathExists(join(this.#dir, PINS_DIR, cid));
  }

  /**
   * Modification time (ms) of the pins directory: it changes when a pin is made or removed, here
   * or by another process, so a view of the pins can tell it is out of date.
   */
  async pinsStamp(): Promise<number> {
    return await dirStamp(join(this.#dir, PINS_DIR));
  }

  /** The pinned roots. */
  async pins(): Promise<string[]> {
    const out: string[] = [];
    for await (const entry of dirEntries(join(this.#dir, PINS_DIR))) {
      // Not a label's temporary file (`RootRecords.touchRoot`), which a crash may leave behind.
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
    return this.#rewriting(() =>
      collectGarbage({
        dir: this.#dir,
        index: this.#index,
        clock: this.#clock,
        writing: (cid) => this.#slots.has(cid),
        isLegacyManifest: (cid, bytes) => this.isLegacyManifest(cid, bytes),
        removeFromPack: (name, drop) => this.#removeFromPack(name, drop),
      }, graceMs)
    );
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
      bytes = await readRange(
        this.#index.packPath(location.pack),
        location.offset,
        location.length,
      );
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    if (await verifyCid(cid, bytes)) return bytes;
    if (seen && (seen.pack !== location.pack || seen.offset !== location.offset)) return null;
    await this.#quarantine.keep(cid, bytes).catch((error) => {
      throw storageWriteError(error, join(this.#dir, "quarantine"));
    });
    await this.#rewriting(() => this.#removeFromPack(location.pack, new Set([location.offset])));
    return null;
  }

  /**
   * Rewrite pack `name` without its copies at the offsets in `drop` (see `_pack_rewrite.ts`, where
   * the whole rule is documented). Runs under {@link #rewriting}.
   */
  async #removeFromPack(name: string, drop: ReadonlySet<number>): Promise<void> {
    return await removeFromPack(
      {
        index: this.#index,
        writer: this.#writer,
        quarantine: this.#quarantine,
        durable: this.#durable,
        packsDir: this.#packsDir,
      },
      name,
      drop,
    ).catch((error) => {
      throw storageWriteError(error, this.#index.packPath(name));
    });
  }

  async #reloadIfChanged(): Promise<void> {
    if (await this.#index.changed()) await this.#exclusive(() => this.#index.reload());
    if (await this.#quarantine.changed()) {
      await this.#exclusive(() => this.#quarantine.count(this.#readOnly));
    }
  }

  /** Run `fn` after every earlier maintenance task (reloads, rewrites) has finished. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#maintenance.run(fn);
  }

  /**
   * Run `fn` (which removes objects from packs) under {@link #exclusive} and an exclusive lock
   * on `store.lock` shared by every process using this directory, after reloading the
   * index: so two processes never rewrite at once, and each sees the other's packs before it
   * decides which copies are extra. Refused with `storage_unwritable` when the store is
   * {@link readOnly}.
   */
  #rewriting<T>(fn: () => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      this.#assertWritable();
      const lock = await openStoreLock(this.#dir).catch((error) => {
        throw storageWriteError(error, join(this.#dir, STORE_LOCK));
      });
      try {
        await lock.lock(true);
        await this.#index.reload();
        return await fn();
      } finally {
        lock.close(); // releases the lock
      }
    });
  }
}
