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
 * soon as the manifest is read; `put_bytes`, `get_bytes`, `repair`, `audit`, `pin` and `gc` are
 * answered later ({@link LATER_REPLIES}), their work outside the mailbox, so a storage peer's
 * `prove` never waits behind them (a pin's fetch from the peers commits by a message back,
 * `pin_held`: `_storage_pin.ts`). Peers' `prove` and `get_chunk` (whole chunks read) are answered
 * later too, at most a few at once per asking key (`_peer_request_budget.ts`), so one peer's flood
 * of them neither holds the mailbox nor queues in front of another peer's challenge: it runs
 * beside it, and past its budget is refused `busy`. A `prove` still waits to be taken behind the
 * messages answered inside the mailbox (a pin's commit, `unpin`, `set_peers`, a peer's
 * `put_chunk`), none of which waits on the network. The chunk store is safe under concurrent
 * transfers (per-CID write joining, atomic renames), so the actor stays responsive while gigabytes
 * move.
 *
 * Its parts are private modules beside it, over one shared {@link StorageCore}
 * (`_storage_core.ts`): whose each block is, this node's own or held for the network
 * (`_storage_scope.ts`), this node as one of its own holders (`_storage_self_peer.ts`), the put
 * (`_storage_put.ts`), what storage peers ask of this node (`_storage_peer_requests.ts`), the
 * audits (`_storage_audits.ts`), the catch-up of copies never sent when a holder joins or another
 * process pins a file here (`_storage_catch_up.ts`) and storage peers' failures counted and logged
 * (`_storage_peer_failures.ts`).
 *
 * @module
 */
import { join } from "node:path";
import { VeriflowError } from "../protocols/errors.ts";
import type { Identity } from "../protocols/identity.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { BlockStore, DeepWalkGate } from "../storage/block_store.ts";
import { ChunkStore, type ChunkStoreOptions, type GcResult } from "../storage/chunk_store.ts";
import { ChunkNotFoundError, CorruptChunkError, StorageError } from "../storage/errors.ts";
import { type FileInfo, FileStore, type FileStoreOptions } from "../storage/file_store.ts";
import { exportCar } from "../storage/car.ts";
import { ShareStore } from "../storage/share_links.ts";
import { storageKey } from "../protocols/cid.ts";
import type { OwnerKey } from "../storage/private_tier.ts";
import { statPin } from "./_storage_pin_stat.ts";
import {
  type RepairReport,
  ReplicatedStore,
  type ReplicatedStoreOptions,
} from "../storage/replicated_store.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../storage/given_chunks.ts";
import { AUDIT_PENALTIES_FILE, AuditPenalties } from "../storage/audit_penalties.ts";
import type { StoragePeer } from "../storage/storage_peer.ts";
import { LaterReply } from "./actor.ts";
import type { ActorSystem } from "./actor_system.ts";
import type { AskOptions } from "./actor_ref.ts";
import type { PendingPut } from "../storage/pending_put.ts";
import { HolderRepair } from "../storage/holder_repair.ts";
import { JUDGED_PEERS_FILE, JudgedPeers } from "../storage/judged_peers.ts";
import {
  type PutHandle,
  type StorageCapacity,
  type StorageMessage,
  type StoragePinHeldMessage,
  type StoragePinMessage,
  type StorageReply,
  unwrapReply,
} from "./storage_actor_messages.ts";
import { ChallengedChunks } from "./_challenged_chunks.ts";
import { StorageAudits } from "./_storage_audits.ts";
import { PINS_CHECK_MS, StorageCatchUp } from "./_storage_catch_up.ts";
import type { StorageCore } from "./_storage_core.ts";
import { NetworkRestarts } from "./_storage_network_restarts.ts";
import { PeerFailures } from "./_storage_peer_failures.ts";
import { answerPeer } from "./_storage_peer_requests.ts";
import { PeerRequestBudget } from "./_peer_request_budget.ts";
import { startPut } from "./_storage_put.ts";
import { fetchPin, holdPinned } from "./_storage_pin.ts";
import { StorageScope } from "./_storage_scope.ts";
import { leavesReadable } from "./_storage_may_read.ts";
import { SelfPeer } from "./_storage_self_peer.ts";
import { StorageWriteFaults } from "./_storage_write_faults.ts";
import { PinCounts } from "./_storage_pin_counts.ts";

/**
 * The asks the StorageActor answers later ({@link LaterReply}), their work outside its mailbox:
 * the long ones whose work touches only what a `put` and an audit round already touch from outside
 * it (the store's contents, the running puts' counts, the peers' records). Run inside it, one of them held every other
 * message back, and a storage peer's `prove` that waited behind a trainer's `put_bytes` of a
 * round model past the auditor's timeout was judged `no_response`: an honest, busy holder
 * signed off as failed (review s62). A `pin` of a file on the peers and a `gc` fetch the
 * pinned files' missing blocks from the peers: inside it, an honest node pinning a large file was
 * signed `no_response` by a writer that audited it meanwhile (review s76 vstore F2). A pin changes
 * the pins, so only its fetch runs outside: it is committed in the mailbox (`pin_held`). A GC pass
 * changes no state of the actor's: it is what `cli.ts gc` does beside the node.
 * A peer's `prove` and `get_chunk` read whole chunks (a `prove` of 64 CIDs, 16 MiB read and
 * hashed): inside it, one hostile peer's flood of proves made an honest holder miss another
 * auditor's deadline and be signed `no_response` (review s71, finding 3). They are answered
 * later, each asking key at most a few at once ({@link PeerRequestBudget}).
 */
export const LATER_REPLIES: ReadonlySet<StorageMessage["type"]> = new Set([
  "put_bytes",
  "get_bytes",
  "repair",
  "audit",
  "prove",
  "get_chunk",
  "pin",
  "gc",
  "pins_check",
]);

/** A message of {@link LATER_REPLIES}. */
type LaterReplyMessage =
  | Extract<
    StorageMessage,
    {
      type:
        | "put_bytes"
        | "get_bytes"
        | "repair"
        | "audit"
        | "prove"
        | "get_chunk"
        | "gc"
        | "pins_check";
    }
  >
  | StoragePinMessage & { type: "pin" };

function isLaterReply(message: StorageMessage): message is LaterReplyMessage {
  return LATER_REPLIES.has(message.type);
}

/**
 * The messages answered inside the mailbox whose success is always a write of the store (a pin
 * writes its record again): one clears a storage write fault held (`_storage_write_faults.ts`). A
 * peer's `put_chunk` is not among them: one for a chunk held already writes nothing. A file put
 * (`put`, `put_bytes`: its record, at least) reports its own, when it ends.
 */
const WRITES: ReadonlySet<StorageMessage["type"]> = new Set(["pin_held"]);

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
  /**
   * A signal that aborts after `ms`: the clock of an audit's deadlines (a holder's answer, at
   * most `AUDIT_ANSWER_TIMEOUT_MS`, and the reference copies). Default `AbortSignal.timeout`; a
   * test injects its own.
   */
  auditDeadline?(ms: number): AbortSignal;
  /**
   * Look for pins another process made (`cli.ts put` into this directory) this often, ms, and
   * send their chunks to their holders (`_storage_catch_up.ts`). Default {@link PINS_CHECK_MS};
   * 0: never (a test sends `pins_check` itself).
   */
  pinsCheckMs?: number;
  /**
   * How long after its start (with `holdHere`) the node waits for its peers to reconnect before
   * it repairs what holders that left while it was down held (`HolderRepair.started`). Default
   * `START_GRACE_MS` (a minute); 0: at the first peer set (a test sends every peer at once).
   */
  repairStartGraceMs?: number;
}

/** The part of the runtime's `ActorContext` the actor uses (declared structurally). */
export interface StorageActorContext {
  /** Aborted when this actor instance stops. */
  signal?: AbortSignal;
  /** The actor system (to find the NetworkActor on start). */
  system?: ActorSystem;
  /** This actor (its audit timer tells it to run a round; a pin's fetch commits through it). */
  self?: {
    tell(message: StorageMessage): Promise<void>;
    ask<R>(message: StorageMessage, options?: AskOptions): Promise<R>;
  };
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
  /** The peer set holder repair judges a start against, on disk (none: read-only store). */
  #judged: JudgedPeers | null = null;
  /**
   * Which chunks each peer was given or proved (`<dir>/given-chunks.log`, loaded in `preStart`),
   * kept when the replicated store is rebuilt and across restarts.
   */
  #given: GivenChunks | null = null;
  /**
   * What this node's audits found against its peers (`<dir>/audit-penalties.json`, loaded in
   * `preStart`), kept as {@link #given} is: a restart does not put a demoted holder back in rank.
   */
  #penalties: AuditPenalties | null = null;
  /** What the pins here reach, and the blocks running puts hold (`_storage_scope.ts`). */
  readonly #scope: StorageScope;
  /** What the actor's parts share (`_storage_core.ts`). */
  readonly #core: StorageCore;
  /** The audits and audit rounds (`_storage_audits.ts`). */
  readonly #audits: StorageAudits;
  /** The catch-ups of copies never sent, and what starts them (`_storage_catch_up.ts`). */
  readonly #catchUp: StorageCatchUp;
  /** Storage peers' failures, counted and logged (`_storage_peer_failures.ts`). */
  readonly #failures: PeerFailures;
  /**
   * The puts holding what running pins fetched, until their `pin_held` is taken: one not here
   * (its pin given up, or taken by another instance after a restart) is never committed.
   */
  readonly #pinsHeld = new Set<PendingPut>();
  /** The answers of asks answered later ({@link LATER_REPLIES}) still running. */
  readonly #running = new Set<Promise<unknown>>();
  /** Peers' `prove` and `get_chunk` running, per asking key (`_peer_request_budget.ts`). */
  readonly #peerBudget = new PeerRequestBudget();
  /** Aborted once this node is stopping (`StorageCore.stopping`, `#stopped`). */
  readonly #stopping = new AbortController();
  /** The actor system this actor runs in (from its start), whose shutdown is the node's stop. */
  #system: ActorSystem | undefined;
  /** Which network each storage peer came from, and its restarts (`_storage_network_restarts.ts`). */
  readonly #network = new NetworkRestarts();
  /** The pinned files' counts (`file_counts`), kept by pin (`_storage_pin_counts.ts`). */
  readonly #pinCounts = new PinCounts({
    stamp: () => this.#store!.pinsStamp(),
    pins: () => this.#store!.pins(),
    describe: async (cid) => {
      // The rule `list` follows (`_storage_pin_stat.ts`); unreadable: counted, not kept.
      const info = await statPin(this.#local!, cid, this.#options.ownerKey);
      return info && { tier: info.tier, chunks: info.chunks.length };
    },
  });

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
    this.#failures = new PeerFailures((line) => this.#options.log?.(line));
    this.#scope = new StorageScope(() => this.#store!, () => this.#given!);
    this.#core = {
      options,
      store: () => this.#store!,
      given: () => this.#given!,
      replicated: () => this.#replicated,
      self: () => this.#self,
      holderRepair: () => this.#holderRepair,
      files: () => this.#files!,
      blocks: () => this.#blocks(),
      fileOptions: () => this.#fileOptions(),
      scope: this.#scope,
      stopping: this.#stopping.signal,
      stopped: () => this.#stopped(),
      writeFaults: new StorageWriteFaults((line) => this.#options.log?.(line)),
      network: this.#network,
      challenged: new ChallengedChunks(),
    };
    this.#audits = new StorageAudits(this.#core);
    this.#catchUp = new StorageCatchUp(this.#core);
  }

  /** Open the store (the runtime calls this before the first message). */
  preStart(ctx?: StorageActorContext): Promise<void> {
    this.#opening ??= this.#open(ctx);
    return this.#opening;
  }

  async #open(ctx: StorageActorContext | undefined): Promise<void> {
    this.#system = ctx?.system;
    const store = await ChunkStore.open(this.#options.dir, {
      log: this.#options.log,
      ...this.#options.store,
    });
    this.#store = store;
    if (store.readOnly) {
      this.#options.log?.(
        `storage: ${this.#options.dir} cannot be written (a read-only filesystem, no ` +
          "permission or a failing disk): the store is open read-only; stored files are served, " +
          "puts, pins, peers' chunks and GC are refused with storage_unwritable until a restart " +
          "finds it writable",
      );
    }
    this.#given = await GivenChunks.open(join(this.#options.dir, GIVEN_CHUNKS_FILE), {
      durable: this.#options.store?.durable,
      log: this.#options.log,
    });
    this.#penalties = await AuditPenalties.open(join(this.#options.dir, AUDIT_PENALTIES_FILE), {
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
        ownedHere: async (key) =>
          this.#scope.ownPuts.has(key) || (await this.#scope.read()).network.has(key),
      });
      // The peers a departure is judged against at the start: what the last run knew (F1).
      const judged = await JudgedPeers.open(
        join(this.#options.dir, JUDGED_PEERS_FILE),
        this.#options.log,
      );
      this.#judged = store.readOnly ? null : judged;
      this.#holderRepair = new HolderRepair({
        selfId: this.#self.id,
        judged: judged.ids,
        onJudged: (ids) => this.#judged?.save(ids),
        startGraceMs: this.#options.repairStartGraceMs,
        held: () => this.#scope.heldForNetwork(),
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
        catchUp: this.#catchUp.sources,
        onCatchUp: (progress) => this.#catchUp.report(progress),
      });
    }
    // What is pinned now: a pin that appears after this is another process's (or a put's).
    await this.#catchUp.pinsCheck(ctx?.signal);
    // Its network going down closes the connection to every storage peer it told of (stop 64).
    if (this.#options.network && ctx?.system && ctx.self) {
      this.#network.listen(ctx.system.events, this.#options.network, ctx.self, ctx.signal);
    }
    this.#setPeers(this.#options.peers ?? [], ctx?.signal);
    const every = this.#options.auditIntervalMs ?? 0;
    if (every > 0 && ctx?.self !== undefined) {
      const self = ctx.self;
      const timer = setInterval(() => self.tell({ type: "audit_round" }).catch(() => {}), every);
      ctx.signal?.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
    const pinsEvery = this.#options.pinsCheckMs ?? PINS_CHECK_MS;
    if (pinsEvery > 0 && ctx?.self !== undefined && this.#holderRepair !== null) {
      const self = ctx.self;
      const timer = setInterval(() => self.tell({ type: "pins_check" }).catch(() => {}), pinsEvery);
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
    this.#network.took(remote);
    const peers = remote.length === 0 || this.#self === null ? remote : [this.#self, ...remote];
    const before = this.#replicated?.peers ?? [];
    if (peers.length === 0) {
      // No holders at all: their retention starts (a store built again says who is back).
      if (this.#replicated) this.#given!.setPeers([]);
      this.#replicated = null;
    } else if (this.#replicated) {
      this.#replicated.setPeers(peers);
      this.#holderRepair?.peersChanged(this.#replicated, before, signal);
      this.#catchUp.peersSet(before, false, signal); // a holder back or new lacks copies
    } else {
      const replicated = this.#replicated = new ReplicatedStore(peers, {
        ...this.#options.replication,
        given: this.#given!,
        penalties: this.#penalties!,
        // This node's own store misses no chunk as a peer does (review s72, docs F2).
        selfId: this.#self?.id,
        onReplicaFailure: (event) => {
          // A peer's call cut off by this node's stop (its network closed the connection first)
          // is no failure of that peer's: counted, it showed in the log and `/metrics` (stop 63).
          if (this.#stopped()) return;
          this.#failures.failed(event);
          this.#options.replication?.onReplicaFailure?.(event);
        },
      });
      // Built at the start, or after every peer left: departures it did not see are judged.
      this.#holderRepair?.started(replicated, signal);
    }
    this.#files = new FileStore(this.#blocks(), this.#fileOptions());
    if (before.length === 0) this.#catchUp.peersSet(before, true, signal);
  }

  /**
   * A block read for a caller with `signal`: the replicas' fetch is cancelled with it, and a
   * read its caller gave up on (its client went away) is answered `read_aborted`: its reason, an
   * AbortError, is no failure of this actor, which a plain error thrown here would crash. With
   * `local`, from this node's own store only (a block not here is `chunk_not_found`); with
   * `deepWalk`, a walk deep into the peers' ranking is asked of it (the gateway's budget).
   */
  async #readBlock(
    cid: string,
    signal: AbortSignal | undefined,
    local = false,
    deepWalk?: DeepWalkGate,
  ): Promise<Uint8Array> {
    const blocks = local ? this.#store! : this.#blocks();
    return await blocks.get(storageKey(cid), { signal, deepWalk }).catch((error) => {
      if (!signal?.aborted || error instanceof VeriflowError) throw error;
      throw new StorageError("read_aborted", `the read of ${cid} was aborted`, {
        cause: signal.reason,
      });
    });
  }

  /**
   * The files a `get` or `stat` reads: this node's own store for `local` (the gateway's
   * `only-if-cached`); with `deepWalk`, the node's files whose every block read asks it before a
   * walk deep into the peers' ranking (the gateway's budget); else the node's files.
   */
  #filesFor(message: { local?: boolean; deepWalk?: DeepWalkGate }, edge = false): FileStore {
    const deepWalk = message.deepWalk;
    if (edge) {
      // A read for the gateway (`get`): its chunks held while this node audits a holder on them.
      const blocks = this.#edgeReads(message.local ? this.#store! : this.#blocks());
      return new FileStore({
        ...blocks,
        get: (cid, options) => blocks.get(cid, deepWalk ? { ...options, deepWalk } : options),
      }, this.#fileOptions());
    }
    if (message.local) return this.#local!;
    // Without storage peers every read is this node's own store's: no walk to bound.
    if (deepWalk === undefined || this.#replicated === null) return this.#files!;
    const blocks = this.#blocks(); // an object of arrow functions (peers configured)
    return new FileStore({
      ...blocks,
      get: (cid, options) => blocks.get(cid, { ...options, deepWalk }),
    }, this.#fileOptions());
  }

  /**
   * `blocks` as the gateway streams them (`export_car`, `get`): a chunk this node is challenging a
   * holder on is served only once the answer is in or its deadline passed (`_challenged_chunks.ts`,
   * 5 s at most): the stream waits at it. Served meanwhile, a holder that keeps nothing answered
   * each challenge from this node's gateway (review s81 vaudit, F1); refused, a download already
   * past its headers broke mid-stream (review s81 vaudit2, F3). A raw block (`get_block`) and the
   * root of a CAR, read before any header, are refused instead (`chunk_under_audit`, a 503 with
   * `Retry-After`). The node's own reads (the audit's reference copies, repair) go round it.
   */
  #edgeReads(blocks: BlockStore): BlockStore {
    const challenged = this.#core.challenged;
    return {
      put: (bytes, options) => blocks.put(bytes, options),
      get: async (cid, options) => {
        await challenged.whenReleased(cid, options?.signal);
        return await blocks.get(cid, options);
      },
      has: (cid, options) => blocks.has(cid, options),
      isLegacyManifest: (cid) => blocks.isLegacyManifest?.(cid) ?? Promise.resolve(false),
    };
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
      get: async (cid, options) => {
        if (await this.#scope.localOnly(cid)) return await store.get(cid, options);
        // A chunk held here for another node is read here first: a holder asking the node that
        // gave it the chunk is taken for one that lost its copy (`_storage_peer_requests.ts`), so
        // an honest holder never asks for a copy it has. Only a copy that is gone or damaged here
        // goes to the replicas. This node's own chunks are read through them as ever (its holders
        // answer, and a read repairs those that lost a copy).
        if (await store.isReplica(cid)) {
          try {
            return await store.get(cid, options);
          } catch (error) {
            if (!(error instanceof ChunkNotFoundError || error instanceof CorruptChunkError)) {
              throw error;
            }
          }
        }
        return await replicated.get(cid, options);
      },
      has: async (cid, options) =>
        await (await this.#scope.localOnly(cid) ? store : replicated).has(cid, options),
      // This store's record of raw manifests written before UnixFS (`legacy_manifests.ts`).
      isLegacyManifest: (cid) => store.isLegacyManifest(cid),
    };
  }

  /** See {@link StorageCore.stopped}. */
  #stopped(): boolean {
    if (!this.#stopping.signal.aborted && this.#system?.stopping === true) {
      this.#stopping.abort(new DOMException("the node is stopping", "AbortError"));
    }
    return this.#stopping.signal.aborted;
  }

  /** Resolves when repair passes started by departed holders are done (tests, shutdown). */
  repairIdle(): Promise<void> {
    return this.#holderRepair?.idle() ?? Promise.resolve();
  }

  #fileOptions(): FileStoreOptions {
    return { chunkSize: this.#options.chunkSize, maxInMemoryBytes: this.#options.maxInMemoryBytes };
  }

  /**
   * Let in-flight background replication finish, and the calls still running on this node's own
   * copy (`SelfPeer.settled`: a read its caller gave up on goes on in the store), so nothing of
   * this instance still uses the store's directory once it returns (the runtime calls this on
   * stop, and on a restart before the next instance opens the same directory).
   */
  async postStop(): Promise<void> {
    await Promise.allSettled(this.#running); // asks answered later: cut off by the actor's signal
    // The audits under way are called off (`StorageCore.stopping`), and waited for: they write to
    // the record closed below.
    this.#stopping.abort(new DOMException("the storage actor is stopping", "AbortError"));
    await this.#audits.settled();
    await this.#holderRepair?.idle();
    this.#holderRepair?.stop(); // its retry timer (queued retries wait for the next change)
    await this.#judged?.flush();
    await this.#replicated?.flush();
    await this.#self?.settled(); // what flush cannot see: calls whose race was already settled
    await this.#given?.close();
    await this.#penalties?.close();
    this.#failures.flush(); // the count of the peers' lines left out, and their timers stopped
  }

  /**
   * Handle one message. `put` is answered with a {@link PutHandle}; every other message with a
   * {@link StorageReply} of the value named in its message type's documentation. The long asks
   * of {@link LATER_REPLIES} are answered with a {@link LaterReply}: their work runs outside the
   * mailbox, as a `put`'s does.
   */
  receive(
    message: StorageMessage,
    ctx?: StorageActorContext,
  ): Promise<StorageReply<unknown> | PutHandle> {
    if (isLaterReply(message)) {
      let release = () => {};
      if (message.type === "prove" || message.type === "get_chunk") {
        // Taken here, in the mailbox's order; past the asker's budget refused at once, so a
        // flood costs its sender a round trip and this node nothing.
        try {
          // A key that gave this node chunks (its owner's, the one with a reason to audit
          // them) is not in the strangers' shared lane of proves.
          const gave = message.from !== undefined && (this.#store?.heldFor(message.from) ?? 0) > 0;
          release = this.#peerBudget.take(message.type, message.from, gave);
        } catch (error) {
          if (error instanceof VeriflowError) return Promise.resolve({ ok: false, error });
          throw error;
        }
      }
      const answer = this.#later(message, ctx).finally(release).then(
        (value): StorageReply<unknown> => ({ ok: true, value }),
        (error): StorageReply<unknown> => {
          if (error instanceof VeriflowError) return { ok: false, error };
          throw error; // the caller's to see; nothing of the actor's state is in doubt
        },
      );
      this.#running.add(answer);
      answer.then(() => this.#running.delete(answer), () => this.#running.delete(answer));
      return new LaterReply(answer);
    }
    return this.#receive(message, ctx);
  }

  async #receive(
    message: StorageMessage,
    ctx?: StorageActorContext,
  ): Promise<StorageReply<unknown> | PutHandle> {
    await this.preStart(ctx);
    if (message.type === "put") {
      const handle = startPut(this.#core, message, ctx);
      const stale = () => this.#pinCounts.stale();
      handle.done.then(stale, stale);
      return handle;
    }
    try {
      if (message.type === "pin_held" || message.type === "unpin") this.#pinCounts.stale();
      const value = await this.#handle(message, ctx);
      if (WRITES.has(message.type)) this.#core.writeFaults.succeeded();
      return { ok: true, value };
    } catch (error) {
      this.#core.writeFaults.failed(error); // the store's condition too, when the OS refused it
      if (error instanceof VeriflowError) return { ok: false, error };
      throw error; // not a failure we understand: crash, and let the supervisor restart us
    }
  }

  /**
   * The work of a message answered later ({@link LATER_REPLIES}): it reads the stores and peers
   * as they are when it is taken, and changes nothing the actor's other messages read but the
   * store's contents and the peers' records, which are safe under concurrent use (the put's and
   * the audit round's work runs so already).
   */
  async #later(message: LaterReplyMessage, ctx?: StorageActorContext): Promise<unknown> {
    await this.preStart(ctx);
    switch (message.type) {
      case "put_bytes": {
        const { done } = startPut(this.#core, {
          type: "put",
          source: ReadableStream.from([message.bytes]),
          name: message.name,
          mime: message.mime,
          private: message.private,
          local: message.local,
          pin: message.pin,
        }, ctx);
        const stale = () => this.#pinCounts.stale();
        done.then(stale, stale);
        return await done;
      }
      // `local` (the gateway's `only-if-cached`): this node's own store only.
      case "get_bytes":
        return await (message.local ? this.#local! : this.#files!).content(message.cid, {
          key: this.#options.ownerKey,
          signal: ctx?.signal,
        });
      case "repair":
        return await this.#repair(message.cids, ctx?.signal);
      case "audit":
        return await this.#audits.audit(message.holder, message.cids, ctx?.signal);
      // What a storage peer asks of this node that reads whole chunks (`_storage_peer_requests.ts`).
      case "prove":
      case "get_chunk":
        return await answerPeer(this.#core, message);
      case "pin":
        return await this.#pin(message.cid, ctx);
      case "gc":
        return await this.#gc(message.graceMs, ctx?.signal);
      // A listing of `pins/` when it changed: a second with 100,000 pins (review s79 F4).
      case "pins_check":
        return await this.#catchUp.pinsCheck(ctx?.signal);
    }
  }

  /**
   * A pin: its blocks fetched outside the mailbox (`_storage_pin.ts`), then committed inside it by
   * `pin_held`, through this actor's ref when it runs under an actor system (else directly: there
   * is no mailbox to keep in order).
   */
  async #pin(cid: string, ctx: StorageActorContext | undefined): Promise<boolean> {
    storageKey(cid); // invalid_cid before it names a file
    const label = await this.#store!.pinLabel(cid);
    const held = await fetchPin(this.#core, cid, label, ctx?.signal).catch((error) => {
      this.#core.writeFaults.failed(error); // the store's condition, when the OS refused a block
      if (error instanceof VeriflowError && error.code === "dag_too_deep") {
        // The peers' replica is at fault, not this store: said once per refused pin.
        this.#options.log?.(`storage: pin of ${cid} refused: ${error.message}`);
      }
      throw error;
    });
    if (held !== null) this.#pinsHeld.add(held);
    try {
      const commit: StoragePinHeldMessage = { type: "pin_held", cid, held };
      // No timeout: the commit waits only for the messages ahead of it, none of which waits on
      // the network; this instance's stop rejects it (the signal, and its mailbox cleared).
      const reply = ctx?.self
        ? await ctx.self.ask(commit, { timeoutMs: Infinity, signal: ctx.signal })
        : await this.#receive(commit, ctx);
      return unwrapReply<boolean>(reply);
    } finally {
      if (held !== null) {
        this.#pinsHeld.delete(held);
        await held.release(); // after its commit: nothing; else what it fetched is garbage
      }
    }
  }

  /**
   * A GC pass: the pinned files' missing root and inner nodes fetched from the peers first, so GC
   * can walk them. Outside the mailbox: a pass changes nothing of the actor's state (the store is
   * safe under it, as under `cli.ts gc` beside the node), and a fetch inside held every message
   * back.
   */
  async #gc(graceMs: number | undefined, signal: AbortSignal | undefined): Promise<GcResult> {
    const store = this.#store!;
    try {
      for (const root of await store.pins()) {
        if ((await store.pinLabel(root).catch(() => undefined))?.local) continue;
        await holdPinned(this.#core, root, signal).catch(() => {});
      }
      signal?.throwIfAborted();
      return await store.gc({ graceMs });
    } catch (error) {
      this.#core.writeFaults.failed(error); // the store's condition too, when the OS refused it
      throw error;
    }
  }

  async #handle(message: StorageMessage, ctx?: StorageActorContext): Promise<unknown> {
    const store = this.#store!;
    switch (message.type) {
      case "put":
        return startPut(this.#core, message, ctx);
      case "put_bytes":
      case "get_bytes":
      case "repair":
      case "audit":
      case "prove":
      case "get_chunk":
      case "gc":
      case "pins_check":
        return await this.#later(message, ctx);
      // `local` (the gateway's `only-if-cached`): this node's own store only, as `get_bytes`.
      // `receive` answers these later
      case "get":
        return await this.#filesFor(message, true).get(message.cid, {
          key: this.#options.ownerKey,
          start: message.start,
          end: message.end,
          signal: message.signal,
        });
      case "stat": {
        const info = await this.#filesFor(message).stat(message.cid, {
          key: this.#options.ownerKey,
        });
        // A public UnixFS id has no name or type: the pin here may have recorded them.
        return info.tier === "public" ? { ...info, ...await store.pinLabel(message.cid) } : info;
      }
      case "pin":
        return await this.#later({ ...message, type: "pin" }, ctx);
      case "pin_held": {
        // Pinning again keeps what the pin recorded: a `local` file stays this node's own.
        const label = await store.pinLabel(message.cid);
        const held = message.held;
        if (held === null) {
          await this.#scope.pinWrite(message.cid, true, () => store.pin(message.cid, label));
        } else if (this.#pinsHeld.has(held)) {
          await this.#scope.pinWrite(message.cid, true, () => held.commit(message.cid, label));
        } else {
          throw new StorageError(
            "pin_abandoned",
            `the fetch of ${message.cid} for its pin was given up before it was committed`,
          );
        }
        await this.#scope.add(message.cid, label?.local === true);
        return true;
      }
      case "unpin": {
        // What the file reaches, read while its pin still keeps its root and inner nodes here.
        const reached = await this.#scope.reached(message.cid);
        const unpinned = await this.#scope.pinWrite(
          message.cid,
          false,
          () => store.unpin(message.cid),
        );
        if (unpinned) {
          this.#scope.clear(); // its blocks may be shared: read the pins again
          await this.#scope.forgetGiven(reached);
        }
        return unpinned;
      }
      case "capacity": {
        const capacity: StorageCapacity = {
          ...await store.stats(),
          replicaFailures: { ...this.#failures.counts },
          readOnly: store.readOnly,
          writeFault: this.#core.writeFaults.fault,
          diskFull: this.#core.writeFaults.diskFull,
          // One statfs: what the figures and the condition read (review s74 F2).
          diskFreeBytes: await store.diskFree().catch(() => null),
          minFreeBytes: store.minFreeBytes,
          chunksShort: this.#catchUp.short,
        };
        return capacity;
      }
      case "list":
        return await this.#list();
      case "file_counts":
        return await this.#pinCounts.counts();
      // What a storage peer asks of this node (`_storage_peer_requests.ts`).
      case "put_chunk":
      case "has_chunk":
        return await answerPeer(this.#core, message);
      case "audit_round":
        return { done: this.#audits.auditRound() };
      case "network_down":
        this.#network.tookDown(message.generation);
        return undefined;
      case "set_peers":
        this.#peerUpdates++;
        this.#setPeers(message.peers, ctx?.signal);
        await this.#given!.flush(); // who left and who came back
        return undefined;
      case "get_block":
        this.#core.challenged.refuseHeld(message.cid); // the gateway's: held as from peers
        return await this.#readBlock(message.cid, message.signal, message.local, message.deepWalk);
      case "may_read":
        // Index lookups here; the holders are not asked (a round trip per leaf of a file).
        return await leavesReadable(
          store,
          this.#scope,
          this.#replicated !== null,
          message.cids,
          message.local === true,
        );
      case "export_car": {
        const blocks = this.#edgeReads(message.local ? store : this.#blocks());
        const deepWalk = message.deepWalk;
        // Read the root now, so an unknown CID is answered as an error, not a broken stream.
        this.#core.challenged.refuseHeld(message.cid);
        await this.#readBlock(message.cid, message.signal, message.local, deepWalk);
        return exportCar(message.cid, (cid, signal) => blocks.get(cid, { signal, deepWalk }), {
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

  async #list(): Promise<FileInfo[]> {
    const out: FileInfo[] = [];
    for (const cid of await this.#store!.pins()) {
      // Sealed with another key: private, as ls shows it (`_storage_pin_stat.ts`).
      const info = await statPin(this.#local!, cid, this.#options.ownerKey);
      if (info !== undefined) out.push({ ...info, ...await this.#store!.pinLabel(cid) });
      // A root that cannot be read: listed without metadata.
      else out.push({ cid, tier: "public", size: null, chunkSize: null, chunks: [] });
    }
    return out;
  }

  async #repair(cids: string[] | undefined, signal?: AbortSignal): Promise<RepairReport> {
    const replicated = this.#replicated;
    if (!replicated) {
      throw new StorageError("not_replicated", "this node has no storage peers to repair across");
    }
    let targets = cids;
    if (targets) {
      // A local-only object is never sent out, whoever asks.
      const shared: string[] = [];
      for (const cid of targets) if (!await this.#scope.localOnly(cid)) shared.push(cid);
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
    // The record of what it gave is flushed by it; the actor's stop cuts it off.
    return await replicated.repair(targets, { signal });
  }
}
