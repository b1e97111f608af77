/**
 * The StorageActor: the node's storage role behind one mailbox. What it is asked and answers is
 * in `storage_actor_messages.ts` (typed failures are answered there as a {@link StorageReply};
 * anything else crashes the actor); `storage_actor_peer.ts` lets other nodes and the HTTP
 * gateway reach it through its ref.
 *
 * It owns the local {@link ChunkStore} (and, when storage peers are configured, a
 * {@link ReplicatedStore} over them), the pins, and the capacity accounting. Other actors and
 * the peer connection ask it; nobody touches the store directly.
 *
 * Long transfers never hold the mailbox: `put` answers at once with a {@link PutHandle} whose
 * `done` settles when the file is stored, and `get` answers with the file's `ReadableStream` as
 * soon as the manifest is read. The chunk store is safe under concurrent transfers (per-CID
 * write joining, atomic renames), so the actor stays responsive while gigabytes move.
 *
 * @module
 */
import { join } from "node:path";
import { VeriflowError } from "../protocols/errors.ts";
import type { Identity } from "../protocols/identity.ts";
import type { Verdict } from "../protocols/verdict.ts";
import { type AuditResult, StorageAuditor } from "../storage/audit.ts";
import { type AuditRoundReport, runAuditRound } from "../storage/audit_round.ts";
import type { BlockStore } from "../storage/block_store.ts";
import { ChunkStore, type ChunkStoreOptions } from "../storage/chunk_store.ts";
import { ChunkNotFoundError, ReplicaQuotaExceededError, StorageError } from "../storage/errors.ts";
import { type FileInfo, FileStore, type FileStoreOptions } from "../storage/file_store.ts";
import { dagBlocks, isDagNode } from "../storage/dag_links.ts";
import { exportCar } from "../storage/car.ts";
import { ShareStore } from "../storage/share_links.ts";
import { isCid, storageKey } from "../protocols/cid.ts";
import { PendingPut } from "../storage/pending_put.ts";
import type { OwnerKey } from "../storage/private_tier.ts";
import {
  type RepairReport,
  REPLICA_FAILURE_REASONS,
  type ReplicaFailure,
  type ReplicaFailureReason,
  ReplicatedStore,
  type ReplicatedStoreOptions,
} from "../storage/replicated_store.ts";
import { LogLimiter } from "../network/log_limiter.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../storage/given_chunks.ts";
import { type PeerCallOptions, proveFromStore, type StoragePeer } from "../storage/storage_peer.ts";
import type { ActorSystem } from "./actor_system.ts";
import { HolderRepair } from "../storage/holder_repair.ts";
import { LocalStoragePeer } from "../storage/storage_peer.ts";
import type {
  PutHandle,
  StorageCapacity,
  StorageMessage,
  StoragePutMessage,
  StorageReply,
} from "./storage_actor_messages.ts";

/** Options of {@link StorageActor}. */
export interface StorageActorOptions {
  /** The store directory (`<data dir>/store`). */
  dir: string;
  /** Chunk store options (quota, durability, GC grace). */
  store?: ChunkStoreOptions;
  /** Chunk size of new files. Default 256 KiB. */
  chunkSize?: number;
  /**
   * Largest file `get_bytes` assembles in memory; larger ones fail with `file_too_large` (stream
   * them with `get`). Default 64 MiB (`DEFAULT_MAX_IN_MEMORY_BYTES`).
   */
  maxInMemoryBytes?: number;
  /** Owner key for private files. Without it, private puts fail with `key_required`. */
  ownerKey?: OwnerKey;
  /**
   * Storage peers to replicate files over. Default: none — files stay in the local store only.
   * Include a peer for this node itself if it should hold copies too.
   */
  peers?: readonly StoragePeer[];
  /**
   * Replication options (r, w, timeouts). Its `onReplicaFailure`, if any, is told each failure
   * after the actor has counted and logged it.
   */
  replication?: ReplicatedStoreOptions;
  /** The node identity; needed for `audit` (it signs verdicts). */
  identity?: Identity;
  /** Sink for audit verdicts (the ledger). */
  onVerdict?(verdict: Verdict): void | Promise<void>;
  /**
   * Hold copies here too: when files are spread over peers, this node's own store is one of
   * the holders (needs `identity`, whose key is its holder id). Default `false`.
   */
  holdHere?: boolean;
  /**
   * Registry name of the NetworkActor, asked for the current storage peers when this actor
   * (re)starts; it sends `set_peers` on every change after that.
   */
  network?: string;
  /**
   * Where repair passes, audit rounds and storage peers' failures (a few lines per peer at a
   * time) are reported.
   */
  log?: (line: string) => void;
  /**
   * Run an audit round (`audit_round`) this often, ms: a few of this node's replicated files
   * are sampled and their holders asked for a few chunks each; a failure is a signed verdict
   * (`onVerdict`) and the failed chunks are repaired. Default 0: only when asked.
   */
  auditIntervalMs?: number;
}

/** The part of the runtime's `ActorContext` the actor uses (declared structurally). */
export interface StorageActorContext {
  /** Aborted when this actor instance stops. */
  signal?: AbortSignal;
  /** The actor system (to find the NetworkActor on start). */
  system?: ActorSystem;
  /** This actor (its audit timer tells it to run a round). */
  self?: { tell(message: StorageMessage): Promise<void> };
}

/**
 * What the pins of a store reach (storage keys): the blocks of `local` pins (a trainer's private
 * shard, never on peers) and the blocks of every other pin. Leaves are listed from their parents,
 * not read, so a block missing here is still known to belong to its file.
 */
interface PinScope {
  /** Blocks reachable from a `local` pin. */
  local: Set<string>;
  /** Blocks reachable from any other pin. */
  network: Set<string>;
  /** The pins directory's modification time when this was read ({@link ChunkStore.pinsStamp}). */
  stamp: number;
}

/** Add every block of the DAG under `root`, read with `get`, to `scope`'s `local` or `network`. */
async function addDag(
  scope: PinScope,
  root: string,
  local: boolean,
  get: (cid: string) => Promise<Uint8Array>,
  isLegacyManifest: (cid: string) => Promise<boolean>,
): Promise<void> {
  if (!isCid(root)) return; // a stray file among the pins roots nothing
  const into = local ? scope.local : scope.network;
  into.add(storageKey(root));
  try {
    for await (const block of dagBlocks(root, get, { isLegacyManifest })) {
      into.add(storageKey(block.cid));
    }
  } catch {
    // An unreadable root or inner node: what was reached is recorded (GC reports the rest).
  }
}

/** Take one off the count of each of `keys` in `counts`, dropping those that reach zero. */
function uncount(counts: Map<string, number>, keys: readonly string[]): void {
  for (const key of keys) {
    const n = counts.get(key)! - 1;
    if (n === 0) counts.delete(key);
    else counts.set(key, n);
  }
}

/** What a {@link SelfPeer} asks its actor. */
interface SelfPeerHooks {
  /** A chunk was written here as one of its holders: holder repair notes its placement. */
  noted(key: string): void;
  /**
   * True when a pin here that is not `local`, or a put of this node's still running, reaches
   * `key`: this node's own file, whose copy here that pin (or put) keeps.
   */
  ownedHere(key: string): Promise<boolean>;
}

/**
 * This node's store as one of its own holders (with `holdHere`). Every write is reported with
 * `noted`, like a peer's `put_chunk`, for holder repair.
 *
 * What roots a copy written here depends on whose file it is. This node's own put writes through
 * {@link SelfPeer.putOwn} into that put's record, and the file's pin keeps it: unpinned, it is
 * garbage like a single node's file. Any other write ({@link SelfPeer.putChunk}: a read repair, a
 * repair) is held for the network as a replica (`replicas/`, never released) — this node is a
 * holder of another node's chunk, whose owner may audit it — unless this node's own file reaches
 * the chunk, whose pin keeps it already. A peer's own `put_chunk` never comes through here: the
 * actor records it as a replica whatever this node pins, so a chunk shared between this node's
 * file and a peer's stays when the file goes.
 */
class SelfPeer extends LocalStoragePeer {
  readonly #hooks: SelfPeerHooks;

  constructor(store: ChunkStore, publicKey: Uint8Array, hooks: SelfPeerHooks) {
    super(store, publicKey);
    this.#hooks = hooks;
  }

  override async putChunk(
    cid: string,
    bytes: Uint8Array,
    options?: PeerCallOptions & { repair?: boolean },
  ): Promise<void> {
    const key = storageKey(cid);
    if (await this.#hooks.ownedHere(key)) {
      await this.store.put(bytes, {
        cid,
        verifyExisting: options?.repair,
        signal: options?.signal,
      });
    } else await super.putChunk(cid, bytes, options); // a replica
    this.#hooks.noted(key);
  }

  /**
   * This node's own put writing the copy it holds of `cid` into `into` (the put's
   * {@link PendingPut}, which records it until the file is pinned; the store itself once the put
   * is closing, when only the pin can root it).
   */
  async putOwn(
    cid: string,
    bytes: Uint8Array,
    into: BlockStore,
    options: PeerCallOptions,
  ): Promise<void> {
    await into.put(bytes, { signal: options.signal });
    this.#hooks.noted(storageKey(cid));
  }
}

/** The node's storage actor. */
export class StorageActor {
  readonly #options: StorageActorOptions;
  #store: ChunkStore | null = null;
  #local: FileStore | null = null;
  #files: FileStore | null = null;
  #replicated: ReplicatedStore | null = null;
  /** The share records (`<dir>/shares/`), opened with the store (its crashed creates swept). */
  #shares: ShareStore | null = null;
  /** `set_peers` messages taken so far (a peer set asked for before one is out of date). */
  #peerUpdates = 0;
  #opening: Promise<void> | null = null;
  /** This node's own store as a holder (with `holdHere`). */
  #self: SelfPeer | null = null;
  #holderRepair: HolderRepair | null = null;
  /** What the pins here reach, by label (see {@link PinScope}); `null` until read or after an unpin. */
  #pinScope: Promise<PinScope> | null = null;
  /** Storage keys stored by `local` puts still running (not pinned yet), with a count per key. */
  readonly #localPuts = new Map<string, number>();
  /**
   * Storage keys this node's running puts (not `local`) write or wrote to its own store as one of
   * their holders (not pinned yet), with a count per key from the moment the write starts: held
   * for the network like a pinned file's.
   */
  readonly #ownPuts = new Map<string, number>();
  /**
   * Which chunks each peer was given or proved (`<dir>/given-chunks.log`, loaded in `preStart`),
   * kept when the replicated store is rebuilt and across restarts.
   */
  #given: GivenChunks | null = null;
  /** The audit round running, if one is. */
  #auditing: Promise<AuditRoundReport> | null = null;
  /** Aborted when the actor stops: a running audit round ends after its current holder. */
  readonly #stopping = new AbortController();
  /**
   * Storage peers' failures (reads, writes, proofs, repair copies) since this actor started, by
   * reason: the `capacity` answer's `replicaFailures`, `/metrics`'
   * `veriflow_storage_replica_failures_total`.
   */
  readonly #replicaFailures = Object.fromEntries(
    REPLICA_FAILURE_REASONS.map((reason) => [reason, 0]),
  ) as Record<ReplicaFailureReason, number>;
  /** The log lines storage peers cause: a few per peer at a time (`log_limiter.ts`). */
  readonly #peerLog: LogLimiter;

  /**
   * An actor over the store in `options.dir` (opened in `preStart`).
   *
   * @param options Where the store lives and how files are replicated.
   *
   * @example
   * ```ts
   * import { StorageActor } from "./storage_actor.ts";
   * import { type PutHandle, unwrapReply } from "./storage_actor_messages.ts";
   * const actor = new StorageActor({ dir: await Deno.makeTempDir() });
   * await actor.preStart();
   * const { done } = await actor.receive({
   *   type: "put",
   *   source: ReadableStream.from([new TextEncoder().encode("hello")]),
   * }) as PutHandle;
   * const { cid } = await done;
   * const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid }));
   * ```
   */
  constructor(options: StorageActorOptions) {
    this.#options = options;
    this.#peerLog = new LogLimiter((line) => this.#options.log?.(line));
  }

  /** Open the store (the runtime calls this before the first message). */
  preStart(ctx?: StorageActorContext): Promise<void> {
    this.#opening ??= this.#open(ctx);
    return this.#opening;
  }

  async #open(ctx: StorageActorContext | undefined): Promise<void> {
    const store = await ChunkStore.open(this.#options.dir, this.#options.store);
    this.#store = store;
    this.#given = await GivenChunks.open(join(this.#options.dir, GIVEN_CHUNKS_FILE), {
      durable: this.#options.store?.durable,
      log: this.#options.log,
    });
    this.#local = new FileStore(store, this.#fileOptions());
    this.#shares = await ShareStore.open(this.#options.dir);
    const { identity, holdHere } = this.#options;
    if (holdHere && identity !== undefined) {
      this.#self = new SelfPeer(store, identity.publicKey, {
        noted: (key) => {
          if (this.#replicated) this.#holderRepair?.noteWrite(this.#replicated.peers, key);
        },
        ownedHere: async (key) => this.#ownPuts.has(key) || (await this.#scope()).network.has(key),
      });
      this.#holderRepair = new HolderRepair({
        selfId: this.#self.id,
        held: () => this.#heldForNetwork(),
        read: (cid) => store.get(cid),
        onPass: (pass) => {
          if (pass.checked === 0 && pass.gaveUp.length === 0) return;
          this.#options.log?.(
            (pass.departed.length > 0
              ? `storage: ${pass.departed.length} holder(s) left; `
              : "storage: repair retried; ") +
              `repaired ${pass.repaired} copies of ${pass.checked} chunks` +
              (pass.lost.length ? `, ${pass.lost.length} lost` : "") +
              (pass.failedChecks ? `, ${pass.failedChecks} checks failed (retried later)` : "") +
              (pass.gaveUp.length ? `, ${pass.gaveUp.length} still short, given up` : ""),
          );
        },
        onError: (error) =>
          this.#options.log?.(`storage: repair after a departure failed: ${String(error)}`),
      });
    }
    this.#setPeers(this.#options.peers ?? [], ctx?.signal);
    const every = this.#options.auditIntervalMs ?? 0;
    if (every > 0 && ctx?.self !== undefined) {
      const self = ctx.self;
      const timer = setInterval(() => self.tell({ type: "audit_round" }).catch(() => {}), every);
      ctx.signal?.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
    // A restart: the network already knows the peers (it tells us on every change after this).
    // Asked without waiting: on the node's first start the network actor starts after this one,
    // so the ask would sit in its mailbox and hold up the whole start (5 s) for nothing. An
    // answer that comes after a `set_peers` is older than it and is dropped.
    const network = this.#options.network && ctx?.system?.lookup(this.#options.network);
    if (network) {
      const asked = this.#peerUpdates;
      network.ask<StoragePeer[]>({ type: "storage_peers" }, { timeoutMs: 5_000 }).then(
        (peers) => {
          if (this.#peerUpdates !== asked || ctx?.signal?.aborted) return;
          this.#setPeers(peers, ctx?.signal);
        },
        () => {}, // no network yet (first start): it sends set_peers on its first change
      );
    }
  }

  /**
   * Files go to the peers when there are any (and to this node too with `holdHere`), else to
   * the local store. Holders that left have what they held repaired (see `holder_repair.ts`).
   */
  #setPeers(remote: readonly StoragePeer[], signal?: AbortSignal): void {
    const peers = remote.length === 0 || this.#self === null ? remote : [this.#self, ...remote];
    const before = this.#replicated?.peers ?? [];
    if (peers.length === 0) {
      // No holders at all: their retention starts (a store built again says who is back).
      if (this.#replicated) this.#given!.setPeers([]);
      this.#replicated = null;
    } else if (this.#replicated) {
      this.#replicated.setPeers(peers);
      this.#holderRepair?.peersChanged(this.#replicated, before, signal);
    } else {
      this.#replicated = new ReplicatedStore(peers, {
        ...this.#options.replication,
        given: this.#given!,
        onReplicaFailure: (event) => {
          this.#replicaFailed(event);
          this.#options.replication?.onReplicaFailure?.(event);
        },
      });
    }
    this.#files = new FileStore(this.#blocks(), this.#fileOptions());
  }

  /**
   * Count a storage peer's failure by reason and log it, a few lines per peer at a time (the rest
   * are counted in one line when its window ends). Before, the replicated store's failures went to
   * no one: a holder answering reads with garbage, timing out or refusing every write showed in no
   * log line and no metric, and its operator could not see it (a review found it at stop 56).
   */
  #replicaFailed(event: ReplicaFailure): void {
    this.#replicaFailures[event.reason]++;
    const short = event.peerId.slice(0, 16);
    const error = event.error as { code?: unknown; message?: unknown } | null;
    const detail = typeof error?.code === "string"
      ? error.code
      : typeof error?.message === "string"
      ? error.message
      : String(event.error);
    this.#peerLog.line(
      `storage: peer ${short}`,
      `storage: peer ${short}: ${event.op} of ${event.cid} failed: ${event.reason} (${detail})`,
    );
  }

  /**
   * A block read for a caller with `signal`: the replicas' fetch is cancelled with it, and a
   * read its caller gave up on (its client went away) is answered `read_aborted`: its reason, an
   * AbortError, is no failure of this actor, which a plain error thrown here would crash. With
   * `local`, from this node's own store only (a block not here is `chunk_not_found`).
   */
  async #readBlock(
    cid: string,
    signal: AbortSignal | undefined,
    local = false,
  ): Promise<Uint8Array> {
    const blocks = local ? this.#store! : this.#blocks();
    return await blocks.get(storageKey(cid), { signal }).catch((error) => {
      if (!signal?.aborted || error instanceof VeriflowError) throw error;
      throw new StorageError("read_aborted", `the read of ${cid} was aborted`, {
        cause: signal.reason,
      });
    });
  }

  /**
   * Where blocks are read and written: the peers when there are any, else the local store — but
   * an object only `local` pins (or a running `local` put) here reach is read from this node's
   * store only: asking the peers for it would name it to them, and a read repair would write
   * this node's copy to every holder that answered `chunk_not_found`.
   */
  #blocks(): BlockStore {
    const store = this.#store!;
    const replicated = this.#replicated;
    if (!replicated) return store;
    return {
      put: (bytes, options) => replicated.put(bytes, options),
      get: async (cid, options) =>
        await (await this.#localOnly(cid) ? store : replicated).get(cid, options),
      has: async (cid, options) =>
        await (await this.#localOnly(cid) ? store : replicated).has(cid, options),
      // This store's record of raw manifests written before UnixFS (`legacy_manifests.ts`).
      isLegacyManifest: (cid) => store.isLegacyManifest(cid),
    };
  }

  /**
   * True when `cid` is this node's own: reachable from a `local` pin (or stored by a `local` put
   * still running), and neither reachable from another pin nor held for a peer (a `replicas/`
   * record: the network gave it to us). Such an object never leaves this node.
   */
  async #localOnly(cid: string): Promise<boolean> {
    const key = storageKey(cid);
    const scope = await this.#scope();
    if (!scope.local.has(key) && !this.#localPuts.has(key)) return false;
    if (scope.network.has(key) || this.#ownPuts.has(key)) return false;
    return !await this.#store!.isReplica(key);
  }

  /**
   * True when `cid` is one this node holds for the network, so a peer may read it (`get_chunk`),
   * learn that it is here (`has_chunk`) and challenge it (`prove`): a chunk a peer gave it
   * (`replicas/`), or an object of a pin that is not `local` or of a put of this node's still
   * running (see {@link #heldForNetwork}).
   */
  async #servesPeers(cid: string): Promise<boolean> {
    const key = storageKey(cid); // invalid_cid before it names a file
    if (this.#ownPuts.has(key) || await this.#store!.isReplica(key)) return true;
    return (await this.#scope()).network.has(key);
  }

  /**
   * What this node holds for the network, which holder repair may copy to peers: the chunks peers
   * gave it (`replicas/`), its objects of every pin but `local` ones and the copies its running
   * puts wrote here as a holder. Never a block that only `local` pins reach, nor an unpinned
   * leftover (a failed put's chunks, an unpinned file's).
   */
  async *#heldForNetwork(): AsyncGenerator<string> {
    const store = this.#store!;
    const listed = new Set<string>();
    for await (const key of store.replicas()) {
      if (!await store.has(key)) continue; // lost here: the holders that still have it repair it
      listed.add(key);
      yield key;
    }
    const scope = await this.#scope();
    for (const keys of [scope.network, this.#ownPuts.keys()]) {
      for (const key of keys) {
        if (listed.has(key)) continue;
        listed.add(key);
        if (await store.has(key)) yield key;
      }
    }
  }

  /**
   * What the pins reach, read once and kept up to date: puts and pins here add to it, an unpin
   * drops it (a block may be shared, so it is read again), and a pin another process made
   * (`cli.ts put` into this store) shows as a change of the pins directory and reads it again.
   */
  async #scope(): Promise<PinScope> {
    const stamp = await this.#store!.pinsStamp();
    const current = this.#pinScope && await this.#pinScope.catch(() => null);
    if (current && current.stamp === stamp) return current;
    const reading = this.#readScope(stamp);
    this.#pinScope = reading;
    reading.catch(() => {
      if (this.#pinScope === reading) this.#pinScope = null;
    });
    return await reading;
  }

  async #readScope(stamp: number): Promise<PinScope> {
    const store = this.#store!;
    const scope: PinScope = { local: new Set(), network: new Set(), stamp };
    for (const root of await store.pins()) {
      const label = await store.pinLabel(root).catch(() => undefined);
      await addDag(
        scope,
        root,
        label?.local === true,
        (cid) => store.get(cid),
        (cid) => store.isLegacyManifest(cid),
      );
    }
    return scope;
  }

  /** Record a new pin of `root` (labelled `local` or not) in the scope, if one is kept. */
  async #scopeAdd(root: string, local: boolean, blocks?: Iterable<string>): Promise<void> {
    const pending = this.#pinScope;
    const scope = pending && await pending.catch(() => null);
    if (!scope || this.#pinScope !== pending) return; // read afresh on next use: it sees the pin
    const into = local ? scope.local : scope.network;
    if (blocks) { for (const cid of blocks) into.add(storageKey(cid)); }
    else {
      const store = this.#store!;
      await addDag(
        scope,
        root,
        local,
        (cid) => store.get(cid),
        (cid) => store.isLegacyManifest(cid),
      );
    }
    // Our own pin changed the directory: not another process's change.
    scope.stamp = await this.#store!.pinsStamp();
  }

  /** The storage keys of the blocks of the DAG under `root` this store can walk. */
  async #reached(root: string): Promise<Set<string>> {
    const store = this.#store!;
    const scope: PinScope = { local: new Set(), network: new Set(), stamp: 0 };
    await addDag(
      scope,
      root,
      false,
      (cid) => store.get(cid),
      (cid) => store.isLegacyManifest(cid),
    );
    return scope.network;
  }

  /**
   * Forget, for every holder, the blocks among `reached` (an unpinned file's) that no pin left
   * here reaches: nobody here will audit them, and the record of what was given stays as small as
   * what is kept.
   *
   * Being held for a peer (`replicas/`) does not keep a block's record: stores written before
   * `SelfPeer` put this node's own copies into the put hold them as replicas too, which on disk
   * cannot be told from a peer's `put_chunk` — skipping replicas forgot nothing at all there. A
   * block that a peer did give this node loses what was recorded for it here: that only fails
   * safe (no verdict), and a later repair or audit records it again.
   */
  async #forgetGiven(reached: Iterable<string>): Promise<void> {
    const scope = await this.#scope();
    const gone: string[] = [];
    for (const key of reached) {
      if (!scope.network.has(key) && !scope.local.has(key)) gone.push(key);
    }
    await this.#given!.forget(gone);
  }

  /** Resolves when repair passes started by departed holders are done (tests, shutdown). */
  repairIdle(): Promise<void> {
    return this.#holderRepair?.idle() ?? Promise.resolve();
  }

  #fileOptions(): FileStoreOptions {
    return { chunkSize: this.#options.chunkSize, maxInMemoryBytes: this.#options.maxInMemoryBytes };
  }

  /** Let in-flight background replication finish (the runtime calls this on stop). */
  async postStop(): Promise<void> {
    this.#stopping.abort();
    await this.#auditing?.catch(() => {}); // it writes to the record closed below
    await this.#holderRepair?.idle();
    this.#holderRepair?.stop(); // its retry timer (queued retries wait for the next change)
    await this.#replicated?.flush();
    await this.#given?.close();
    this.#peerLog.flush(); // the count of the peers' lines left out, and their timers stopped
  }

  /**
   * Handle one message. `put` is answered with a {@link PutHandle}; every other message with a
   * {@link StorageReply} of the value named in its message type's documentation.
   */
  async receive(
    message: StorageMessage,
    ctx?: StorageActorContext,
  ): Promise<StorageReply<unknown> | PutHandle> {
    await this.preStart(ctx);
    if (message.type === "put") return this.#put(message, ctx);
    try {
      return { ok: true, value: await this.#handle(message, ctx) };
    } catch (error) {
      if (error instanceof VeriflowError) return { ok: false, error };
      throw error; // not a failure we understand: crash, and let the supervisor restart us
    }
  }

  async #handle(message: StorageMessage, ctx?: StorageActorContext): Promise<unknown> {
    const store = this.#store!;
    const files = this.#files!;
    switch (message.type) {
      case "put":
        return this.#put(message, ctx);
      case "put_bytes": {
        const { done } = this.#put({
          type: "put",
          source: ReadableStream.from([message.bytes]),
          name: message.name,
          mime: message.mime,
          private: message.private,
          local: message.local,
          pin: message.pin,
        }, ctx);
        return await done;
      }
      // `local` (the gateway's `only-if-cached`): this node's own store only, as `get_bytes`.
      case "get":
        return await (message.local ? this.#local! : files).get(message.cid, {
          key: this.#options.ownerKey,
          start: message.start,
          end: message.end,
          signal: message.signal,
        });
      case "get_bytes":
        return await (message.local ? this.#local! : files).content(message.cid, {
          key: this.#options.ownerKey,
        });
      case "stat": {
        const info = await (message.local ? this.#local! : files).stat(message.cid, {
          key: this.#options.ownerKey,
        });
        // A public UnixFS id has no name or type: the pin here may have recorded them.
        return info.tier === "public" ? { ...info, ...await store.pinLabel(message.cid) } : info;
      }
      case "pin": {
        storageKey(message.cid); // invalid_cid before it names a file
        // Pinning again keeps what the pin recorded: a `local` file stays this node's own.
        const label = await store.pinLabel(message.cid);
        if (!label?.local) await this.#holdLocally(message.cid);
        await store.pin(message.cid, label);
        await this.#scopeAdd(message.cid, label?.local === true);
        return true;
      }
      case "unpin": {
        // What the file reaches, read while its pin still keeps its root and inner nodes here.
        const reached = await this.#reached(message.cid);
        const unpinned = await store.unpin(message.cid);
        if (unpinned) {
          this.#pinScope = null; // its blocks may be shared: read the pins again
          await this.#forgetGiven(reached);
        }
        return unpinned;
      }
      case "gc":
        for (const root of await store.pins()) {
          if ((await store.pinLabel(root).catch(() => undefined))?.local) continue;
          await this.#holdLocally(root).catch(() => {});
        }
        return await store.gc({ graceMs: message.graceMs });
      case "capacity": {
        const capacity: StorageCapacity = {
          ...await store.stats(),
          replicaFailures: { ...this.#replicaFailures },
        };
        return capacity;
      }
      case "list":
        return await this.#list();
      case "put_chunk":
        // The writer counts this answer as a good copy here (its quorum): a copy already here is
        // verified first, and a rotten one replaced, repair or not.
        await store.put(message.bytes, {
          cid: message.cid,
          verifyExisting: true,
          replica: true,
        });
        // Holder repair judges its placement under the peer set it came in under, too.
        if (this.#replicated) {
          this.#holderRepair?.noteWrite(this.#replicated.peers, storageKey(message.cid));
        }
        return undefined;
      // A peer is answered only for what this node holds for the network: to a peer a local-only
      // object (or an unpinned leftover) is not here.
      case "get_chunk":
        if (!await this.#servesPeers(message.cid)) throw new ChunkNotFoundError(message.cid);
        return await store.get(message.cid);
      case "has_chunk":
        return await this.#servesPeers(message.cid) && await store.has(message.cid);
      case "prove": {
        // Per CID: one this node cannot name (another hash, a typo) is not served here — it
        // does not fail the batch, which would read as no answer for chunks it does hold.
        const served: string[] = [];
        for (const cid of message.cids) {
          if (isCid(cid) && await this.#servesPeers(cid)) served.push(cid);
        }
        // Bound to this node's key, which peers know it by (`possessionProof`).
        const prover = this.#options.identity?.publicKey;
        if (prover === undefined) {
          throw new VeriflowError(
            "no_identity",
            "this storage node has no identity, so it cannot prove possession to peers",
          );
        }
        const proofs = await proveFromStore(store, prover, message.nonce, served);
        // A peer counts a chunk proven to it as given here, and audits this node for it from
        // then on: it is held for the network now, whatever pin brought it (else unpinning this
        // node's own file that shares it would collect it, and the peer blame the loss).
        for (let i = 0; i < served.length; i++) {
          if (proofs[i] === null || await store.isReplica(served[i])) continue;
          // Past what it holds for peers, the proof still stands; the chunk stays the owner's.
          await store.put(await store.get(served[i]), { cid: served[i], replica: true })
            .catch((error) => {
              if (!(error instanceof ReplicaQuotaExceededError)) throw error;
            });
        }
        return message.cids.map((cid) => {
          const i = served.indexOf(cid);
          return i < 0 ? null : proofs[i];
        });
      }
      case "repair":
        return await this.#repair(message.cids);
      case "audit":
        return await this.#audit(message.holder, message.cids);
      case "audit_round":
        return { done: this.#auditRound() };
      case "set_peers":
        this.#peerUpdates++;
        this.#setPeers(message.peers, ctx?.signal);
        await this.#given!.flush(); // who left and who came back
        return undefined;
      case "get_block":
        return await this.#readBlock(message.cid, message.signal, message.local);
      case "export_car": {
        const blocks = message.local ? store : this.#blocks();
        // Read the root now, so an unknown CID is answered as an error, not a broken stream.
        await this.#readBlock(message.cid, message.signal, message.local);
        return exportCar(message.cid, (cid, signal) => blocks.get(cid, { signal }), {
          scope: message.scope,
          signal: message.signal,
          isLegacyManifest: (cid) => this.#store!.isLegacyManifest(cid),
        });
      }
      case "share":
        return (await this.#shares!.get(message.id)) ?? null;
      default: {
        const unknown: never = message;
        throw new StorageError(
          "unknown_message",
          `StorageActor does not handle ${(unknown as { type: string }).type}`,
        );
      }
    }
  }

  /**
   * A put runs as a {@link PendingPut}, so a GC in any process keeps what it stored until it is
   * pinned. With peers, the chunks go to them and the manifest is also held here: the pin is a
   * root GC can read, and `list` can name the file. The copies this node holds of its own file as
   * one of its holders (`holdHere`) are that put's too ({@link SelfPeer.putOwn}): its pin keeps
   * them, and once unpinned they are garbage.
   */
  #put(message: StoragePutMessage, ctx: StorageActorContext | undefined): PutHandle {
    const replicated = message.local ? null : this.#replicated;
    const files = this.#files!;
    const store = this.#store!;
    const signals = [message.signal, ctx?.signal].filter((s): s is AbortSignal => !!s);
    const done = (async () => {
      if (message.private && !this.#options.ownerKey) {
        throw new StorageError("key_required", "private put needs an owner key on this node");
      }
      const pending = await PendingPut.begin(store);
      // A `local` put's objects are this node's own from the first one stored (see #localOnly).
      const stored: string[] = [];
      const local: BlockStore = {
        put: async (bytes, options) => {
          const cid = await pending.put(bytes, options);
          if (message.local) {
            this.#localPuts.set(cid, (this.#localPuts.get(cid) ?? 0) + 1);
            stored.push(cid);
          }
          return cid;
        },
        get: (cid, options) => pending.get(cid, options),
        has: (cid) => pending.has(cid),
      };
      // This node's own copies (it is one of the holders) go into the put's record; one that a
      // holder's late failure hands to this node after the put stopped recording is written
      // plainly, rooted by the pin alone (or garbage, if the put failed).
      const self = this.#self;
      const own: string[] = [];
      const selfWrites = new Set<Promise<unknown>>();
      let recording = true;
      const write = (peer: StoragePeer, cid: string, bytes: Uint8Array, o: PeerCallOptions) => {
        if (peer !== self) return peer.putChunk(cid, bytes, o);
        if (!recording) return self.putOwn(cid, bytes, store, o);
        // The put reaches the chunk from now, not from when its copy here lands: the quorum may
        // answer first, and a read of it (the put's own, of its root) then repairs this node's
        // copy through `SelfPeer.putChunk`, which must find it this put's, not a replica.
        const key = storageKey(cid);
        this.#ownPuts.set(key, (this.#ownPuts.get(key) ?? 0) + 1);
        own.push(key);
        const written = self.putOwn(cid, bytes, pending, o);
        selfWrites.add(written);
        return written;
      };
      const stopRecording = async () => {
        recording = false;
        await Promise.allSettled(selfWrites); // none writes to the record once it is gone
      };
      try {
        const target = replicated
          ? new FileStore({
            ...this.#blocks(),
            put: (bytes, options) => replicated.put(bytes, { ...options, write }),
          }, this.#fileOptions())
          : new FileStore(local, this.#fileOptions());
        const result = await target.put(message.source, {
          name: message.name,
          mime: message.mime,
          key: message.private ? this.#options.ownerKey : undefined,
          signal: signals.length ? AbortSignal.any(signals) : undefined,
        });
        // The root is held here too; a UnixFS file's inner nodes as well (a root over 174
        // chunks links them), so the pin is a root GC and `list` can read without the peers.
        if (replicated) {
          await this.#given!.flush(); // who was given its chunks, on disk before it is done
          for (const cid of await files.blocks(result.cid)) {
            if (isDagNode(cid) || cid === result.cid) {
              await pending.put(await replicated.get(storageKey(cid)));
            }
          }
        }
        const label = message.private
          ? (message.local ? { local: true } : undefined)
          : { name: message.name, mime: message.mime, local: message.local };
        if (message.pin ?? true) {
          await stopRecording();
          await pending.commit(result.cid, label);
          await this.#scopeAdd(result.cid, message.local === true);
        }
        return result;
      } finally {
        await stopRecording();
        await pending.release();
        uncount(this.#localPuts, stored);
        uncount(this.#ownPuts, own);
      }
    })();
    done.catch(() => {}); // the caller observes it through the handle
    return { done };
  }

  /** Make sure the local store holds `cid` (with peers, fetched from them), so it can be pinned. */
  async #holdLocally(cid: string): Promise<void> {
    const store = this.#store!;
    const replicated = this.#replicated;
    if (!replicated) return;
    if (!await store.has(cid)) await store.put(await replicated.get(storageKey(cid)));
    if (!isDagNode(cid)) return; // a raw root (a leaf, an old manifest) links no inner nodes
    // A UnixFS root over 174 chunks links inner nodes: GC walks them, so they are held too.
    const remote = new FileStore(replicated, this.#fileOptions());
    for (const block of await remote.blocks(cid)) {
      if (isDagNode(block) && !await store.has(block)) {
        await store.put(await replicated.get(storageKey(block)));
      }
    }
  }

  async #list(): Promise<FileInfo[]> {
    const out: FileInfo[] = [];
    for (const cid of await this.#store!.pins()) {
      try {
        const info = await this.#local!.stat(cid, { key: this.#options.ownerKey });
        out.push({ ...info, ...await this.#store!.pinLabel(cid) });
      } catch {
        // A pin of a raw object or an unreadable manifest: list it without metadata.
        out.push({ cid, tier: "public", size: null, chunkSize: null, chunks: [] });
      }
    }
    return out;
  }

  async #repair(cids: string[] | undefined): Promise<RepairReport> {
    const replicated = this.#replicated;
    if (!replicated) {
      throw new StorageError("not_replicated", "this node has no storage peers to repair across");
    }
    let targets = cids;
    if (targets) {
      // A local-only object is never sent out, whoever asks.
      const shared: string[] = [];
      for (const cid of targets) if (!await this.#localOnly(cid)) shared.push(cid);
      targets = shared;
    } else {
      targets = [];
      const files = new FileStore(replicated, this.#fileOptions());
      for (const root of await this.#store!.pins()) {
        if ((await this.#store!.pinLabel(root))?.local) continue; // never leaves this node
        // One push per block: spread as arguments, a file of ~125,000 blocks (32 GB at 256 KiB)
        // overflowed the stack and failed every repair of all pins (as the audit round did).
        for (const block of await files.blocks(root)) targets.push(storageKey(block));
      }
    }
    return await replicated.repair(targets); // the record of what it gave is flushed by it
  }

  /** One audit round (the `audit_round` message), or the one running. */
  #auditRound(): Promise<AuditRoundReport> {
    if (this.#auditing === null) {
      const round = this.#runAuditRound().finally(() => this.#auditing = null);
      // A timed round's handle goes to no one (a `tell`): its failure is logged here, never
      // left unhandled, which would end the process. A node without storage peers has nothing
      // to audit: quiet. An asker still gets the rejection through `done`.
      round.catch((error) => {
        if (error instanceof StorageError && error.code === "not_replicated") return;
        this.#options.log?.(`storage: audit round failed: ${String(error)}`);
      });
      this.#auditing = round;
    }
    return this.#auditing;
  }

  async #runAuditRound(): Promise<AuditRoundReport> {
    const replicated = this.#replicated;
    const store = this.#store!;
    if (!replicated || !this.#options.identity) {
      throw new StorageError("not_replicated", "audits need storage peers and the node identity");
    }
    const roots: string[] = [];
    for (const root of await store.pins()) {
      if (!(await store.pinLabel(root))?.local) roots.push(root); // never leaves this node
    }
    // No read repair in the round's reads (the file's blocks, the reference copies): a holder
    // audited later must not be handed, by them, a block it lost before it is challenged on it.
    // The round repairs what failed.
    const reads: BlockStore = {
      put: (bytes, options) => replicated.put(bytes, options),
      get: (cid, options) => replicated.get(cid, { ...options, readRepair: false }),
      has: (cid, options) => replicated.has(cid, options),
      isLegacyManifest: (cid) => store.isLegacyManifest(cid),
    };
    const files = new FileStore(reads, this.#fileOptions());
    const report = await runAuditRound({
      roots,
      blocksOf: async (root) => (await files.blocks(root)).map(storageKey),
      holders: (cid) => replicated.holders(cid),
      standIns: (cid) => replicated.standIns(cid),
      wasGiven: (peerId, cid) => this.#given!.has(peerId, cid),
      selfId: this.#self?.id,
      audit: (peer, cids) => this.#audit(peer, cids),
      repair: (cids) => replicated.repair(cids),
      signal: this.#stopping.signal,
    });
    if (report.holders > 0 || report.errors > 0) {
      this.#options.log?.(
        `storage: audited ${report.holders} holder(s) on ${report.chunks} chunk(s) of ` +
          `${report.files} file(s): ${report.failedHolders} failed` +
          (report.failedChunks.length > 0
            ? `; ${report.failedChunks.length} chunk(s) restored (${report.repaired} by repair)`
            : "") +
          (report.unplaced > 0
            ? `; ${report.unplaced} chunk(s) checked on holders never given them`
            : "") +
          (report.errors > 0 ? `, ${report.errors} not reached (next round)` : ""),
      );
    }
    return report;
  }

  async #audit(holder: StoragePeer, cids: string[]): Promise<AuditResult> {
    const identity = this.#options.identity;
    if (!identity) throw new StorageError("no_identity", "audits need the node identity");
    const blocks = this.#blocks();
    const given = this.#given!;
    const auditor = new StorageAuditor({
      identity,
      // No read repair: see the round's reads (#runAuditRound).
      reference: (cid, signal) => blocks.get(cid, { signal, readRepair: false }),
      // Only a chunk this node knows it gave the holder (or saw it prove) is its fault to lack:
      // one written while it was down or before it joined is not. The record outlives restarts.
      wasGiven: (holderId, cid) => given.has(holderId, cid),
      onVerdict: this.#options.onVerdict,
    });
    const result = await auditor.audit(holder, cids);
    // What it proved it holds, it was given (however it got it): losing it later is its fault.
    const open = new Set([...result.failures, ...result.unjudged].map((c) => c.cid));
    for (const cid of result.sampled) if (!open.has(cid)) given.add(holder.id, cid);
    await given.flush();
    return result;
  }
}
