/**
 * A {@link BlockStore} spread over storage peers.
 *
 * - **Placement**: rendezvous hashing ranks the peers for each CID; the first r hold it.
 * - **Writes**: sent to the r holders at once; `put` resolves as soon as w of them acknowledged
 *   (the rest finish in the background, even if the caller's signal aborts after that —
 *   {@link ReplicatedStore.flush} waits for them) and the copies still in the background hold at
 *   most `maxBackgroundBytes`. A holder that fails is replaced by the next peer in rank order, so
 *   one dead peer does not fail writes while enough others live.
 * - **Reads**: `readParallelism` replicas are asked at once; the first copy that verifies
 *   against the CID wins and the others are cancelled. A failed or corrupt replica makes the
 *   read fall back to the next one, and (read repair) the good bytes are written back to one that
 *   answered `chunk_not_found` or a corrupt copy (not to one that timed out: it may hold a good
 *   one), one copy at a time per holder and chunk, within `maxBackgroundBytes`. A peer that
 *   should hold a chunk (given it, or a holder once another replica served it) and answered a
 *   read of it with bytes that do not match it is asked for that chunk after every other, until
 *   it serves it right. A read asks the r holders, then known stand-ins, then every
 *   other peer in rank; past the first {@link READ_PEERS_PAST_HOLDERS} peers past the holders
 *   the walk is deep, and a caller's `deepWalk` (the HTTP gateway's budget) may refuse it.
 * - **Repair**: {@link ReplicatedStore.repair} checks every holder of the given CIDs with a
 *   possession proof (cheap: 32 bytes per chunk back, not the chunk) and re-sends the chunk to
 *   any holder that is missing it or holds a bad copy, restoring r copies after a peer was
 *   lost (remove it from the peer set: the next-ranked peer becomes a holder) or a copy rotted.
 *   A holder that times out in a repair is asked nothing more by it (its checks fail at once, for
 *   a later try), so one silent holder costs a repair one peer timeout, not one per chunk.
 *
 * The parts live beside it, in private modules over a shared `ReplicaCore` (`_replica_core.ts`):
 * the reads and read repair (`_replica_reads.ts`), the repair (`_replica_repair.ts`), what each
 * peer was given, missed and served (`_replica_records.ts`), the background work and its bound
 * (`_background_work.ts`), and replica failures and their reports (`_replica_failures.ts`).
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import { BackgroundWork } from "./_background_work.ts";
import type { BlockStore, BlockStoreCallOptions } from "./block_store.ts";
import { cidOfAsync } from "./_hash.ts";
import type { ReplicaCore } from "./_replica_core.ts";
import { FailureReports, type ReplicaFailure } from "./_replica_failures.ts";
import { DEFAULT_MAX_MISSED_WRITES, ReplicaRecords } from "./_replica_records.ts";
import { ReplicaReads } from "./_replica_reads.ts";
import { ReplicaRepair } from "./_replica_repair.ts";
import { ReplicationError } from "./errors.ts";
import { GivenChunks } from "./given_chunks.ts";
import type { AuditPenalties } from "./audit_penalties.ts";
import { rankPeers } from "./rendezvous.ts";
import type { PeerCallOptions, StoragePeer } from "./storage_peer.ts";

export { GivenChunks, type GivenChunksOptions } from "./given_chunks.ts";
export { READ_PEERS_PAST_HOLDERS } from "./_replica_reads.ts";
export {
  AuditPenalties,
  type AuditPenaltiesOptions,
  type DepartureClock,
} from "./audit_penalties.ts";
export {
  REPLICA_FAILURE_REASONS,
  type ReplicaFailure,
  type ReplicaFailureReason,
  replicaFailureReason,
} from "./_replica_failures.ts";
export {
  DEFAULT_MAX_MISSED_WRITES,
  DEMOTION_ROUNDS,
  DEMOTION_STRIKES,
  STRIKE_WINDOW_ROUNDS,
} from "./_replica_records.ts";

/** Options of {@link ReplicatedStore}. */
export interface ReplicatedStoreOptions {
  /** Copies of each chunk (r). Default 3: survives two lost holders. */
  replicas?: number;
  /** Acknowledgements a put waits for (w). Default 2: a majority of the default r. */
  writeQuorum?: number;
  /** Replicas asked at once on a read. Default 2: hides one slow or dead peer. */
  readParallelism?: number;
  /** Per-peer-call timeout in ms. Default 10 000: several 256 KiB transfers on a slow link. */
  peerTimeoutMs?: number;
  /**
   * Most bytes of chunks whose puts resolved (w holders acknowledged) while copies past the
   * quorum are still being written, and of read repairs in flight; a put past it waits for room
   * before it resolves, a read repair that would pass it is not sent. Default
   * {@link DEFAULT_MAX_BACKGROUND_BYTES}.
   */
  maxBackgroundBytes?: number;
  /** Write good bytes back to a replica that failed a read. Default `true`. */
  readRepair?: boolean;
  /**
   * Observer of replica failures (for logs and metrics; the StorageActor counts them by reason
   * and logs the peer): each failure once, and none of a call its caller cut off (see
   * `FailureReports.report`).
   */
  onReplicaFailure?(event: ReplicaFailure): void;
  /**
   * The id of the peer that is this node's own store (the StorageActor's `holdHere` copy), if it
   * is one of the peers: a read it misses is no storage peer's failure, so it is never reported
   * `missing` (see `_replica_reads.ts`). Unset: every peer is another node.
   */
  selfId?: string;
  /**
   * Where this store records which chunks each peer was given (see
   * {@link ReplicatedStore.wasGiven}); the store tells it the peer set too, so a holder gone for
   * good is forgotten. Pass one that outlives the store when the owner may rebuild it (its peer
   * set went empty and came back), and one opened from a file ({@link GivenChunks.open}) to keep
   * it across restarts; default: a new one, in memory.
   */
  given?: GivenChunks;
  /**
   * Where this store records what this node's audits found against its peers (see
   * {@link ReplicatedStore.failedAudit}): failed chunks, strikes, demotions. Pass one that outlives
   * the store, as `given`, and one opened from a file ({@link AuditPenalties.open}) to keep it
   * across restarts; default: a new one, in memory.
   */
  penalties?: AuditPenalties;
  /**
   * Most (holder, chunk) pairs {@link ReplicatedStore.missedWrite} remembers; past it the oldest
   * miss is forgotten. Default {@link DEFAULT_MAX_MISSED_WRITES}.
   */
  maxMissedWrites?: number;
}

/** Options of {@link ReplicatedStore.put}. */
export interface ReplicatedPutOptions extends BlockStoreCallOptions {
  /**
   * How the copy for one holder is written; default its `putChunk`. A node putting its own file
   * writes the copy it holds itself into that put (rooted by the put, then by the file's pin)
   * rather than as a chunk held for another node, which nothing ever releases.
   */
  write?(
    peer: StoragePeer,
    cid: string,
    bytes: Uint8Array,
    options: PeerCallOptions,
  ): Promise<void>;
}

/**
 * Default of {@link ReplicatedStoreOptions.maxBackgroundBytes}: 64 MiB, 256 chunks of 256 KiB.
 * Each copy past the quorum holds its chunk until its holder answers or the peer timeout ends it,
 * so without a bound a file put behind a holder that answers slowly, or never, held everything it
 * read in the last `peerTimeoutMs` (gigabytes at disk speed). With it a holder that lags hides
 * behind the quorum for 64 MiB; one that lags further slows the put to its pace.
 */
export const DEFAULT_MAX_BACKGROUND_BYTES: number = 64 * 1024 * 1024;

/** Options of {@link ReplicatedStore.repair}. */
export interface RepairOptions extends BlockStoreCallOptions {
  /**
   * Ask each holder for a one-chunk possession proof (a few bytes; checked against `local` when
   * that gives a verified copy, else against the copy read for a holder that lacks it, else any
   * proof counts) instead of a full check against a fetched copy, and read the chunk only when
   * some holder lacks it. Finds missing copies (rotten ones only against a verified copy): what a
   * repair after a holder left needs (the survivors' copies were audited and read-verified as
   * usual). Default `false`.
   */
  presence?: boolean;
  /** A verified local copy, tried before any replica is read (the repairer's own store). */
  local?: (cid: string) => Promise<Uint8Array | undefined>;
  /**
   * With `presence`: the ids of the holders of `cid` to ask (and repair); `undefined` asks every
   * holder (the default). Holder repair asks only newcomers about a chunk whose holders were
   * all still there.
   */
  only?: (cid: string) => ReadonlySet<string> | undefined;
  /**
   * With `presence`: the ids of peers to ask first for a one-chunk proof of `cid`; when one of
   * them proves it (against `local` when that gives a verified copy), the chunk is theirs to
   * repair and nothing more is done here. Holder repair defers so to the better-ranked surviving
   * holders, which may lack the chunk (they missed its write).
   */
  defer?: (cid: string) => ReadonlySet<string> | undefined;
  /**
   * Called for each holder check of `cid` that failed for a reason other than the chunk being
   * lost (the peer did not answer, refused the copy): what `failedChecks` counts, by chunk, so
   * the caller can try those chunks again later.
   */
  onFailedCheck?: (cid: string) => void;
  /**
   * Chunks checked at once (each asks each of its holders at most one proof at a time, so no
   * holder has more than this many of the repair's proofs in flight). One at a time, a holder
   * that answers just under the peer timeout held the whole repair for that long per chunk
   * (review s82 repair, F3). Default 1.
   */
  inFlight?: number;
}

/** What a repair pass did. */
export interface RepairReport {
  /** CIDs checked. */
  checked: number;
  /** Copies written to holders that lacked a valid one. */
  repaired: number;
  /** CIDs of which no valid copy was found anywhere: lost. */
  lost: string[];
  /** Holder checks that failed for another reason (peer unreachable); retry later. */
  failedChecks: number;
}

/** Default of {@link ReplicatedStoreOptions.replicas}: copies of each chunk. */
export const DEFAULT_REPLICAS = 3;

/** Chunks replicated over storage peers by rendezvous hashing. */
export class ReplicatedStore implements BlockStore {
  #peers: StoragePeer[];
  readonly #r: number;
  readonly #w: number;
  readonly #timeoutMs: number;
  readonly #failures: FailureReports;
  readonly #background: BackgroundWork;
  /** What each peer was given (kept across {@link setPeers}), missed, and served. */
  readonly #records: ReplicaRecords;
  readonly #reads: ReplicaReads;
  readonly #repair: ReplicaRepair;

  /**
   * A store replicating over `peers`.
   *
   * @param peers The storage peers (one entry per id: a peer listed again is kept once).
   * @param options Replication factor, quorum, timeouts.
   *
   * @example
   * ```ts
   * import { ChunkStore } from "./chunk_store.ts";
   * import { LocalStoragePeer } from "./storage_peer.ts";
   * import { ReplicatedStore } from "./replicated_store.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const peers = await Promise.all([1, 2, 3].map(async () =>
   *   new LocalStoragePeer(
   *     await ChunkStore.open(await Deno.makeTempDir()),
   *     Identity.generate().publicKey,
   *   )
   * ));
   * const store = new ReplicatedStore(peers, { replicas: 2, writeQuorum: 1 });
   * const cid = await store.put(new Uint8Array([1, 2, 3]));
   * ```
   */
  constructor(peers: readonly StoragePeer[], options?: ReplicatedStoreOptions) {
    this.#peers = distinctById(peers);
    this.#r = options?.replicas ?? DEFAULT_REPLICAS;
    this.#w = options?.writeQuorum ?? Math.min(2, this.#r);
    if (this.#w < 1 || this.#w > this.#r) {
      throw new RangeError(`writeQuorum must be in [1, replicas], got ${this.#w}`);
    }
    this.#timeoutMs = options?.peerTimeoutMs ?? 10_000;
    this.#background = new BackgroundWork(
      options?.maxBackgroundBytes ?? DEFAULT_MAX_BACKGROUND_BYTES,
    );
    this.#failures = new FailureReports(options?.onReplicaFailure);
    this.#records = new ReplicaRecords(
      options?.given ?? new GivenChunks(),
      options?.maxMissedWrites ?? DEFAULT_MAX_MISSED_WRITES,
      (cid) => this.holders(cid),
      options?.penalties,
    );
    this.#records.given.setPeers(this.#peers.map((p) => p.id));
    this.#records.seeGroups(this.#peers);
    const core: ReplicaCore = {
      peers: () => this.#peers,
      replicas: this.#r,
      selfId: options?.selfId,
      holders: (cid) => this.holders(cid),
      placement: (cid) => this.placement(cid),
      call: (outer, fn) => this.#call(outer, fn),
      failures: this.#failures,
      records: this.#records,
      background: this.#background,
    };
    this.#reads = new ReplicaReads(
      core,
      Math.max(1, options?.readParallelism ?? 2),
      options?.readRepair ?? true,
    );
    this.#repair = new ReplicaRepair(core, this.#reads);
  }

  /** Copies of each chunk (r). */
  get replicas(): number {
    return this.#r;
  }

  /** The current peer set. */
  get peers(): readonly StoragePeer[] {
    return this.#peers;
  }

  /**
   * Replace the peer set (a peer joined or was declared lost); run {@link repair} after. A peer
   * listed twice (by id) is kept once, as in the constructor.
   */
  setPeers(peers: readonly StoragePeer[]): void {
    this.#peers = distinctById(peers);
    const ids = new Set(peers.map((p) => p.id));
    this.#records.seeGroups(this.#peers);
    this.#records.setPeers(ids);
  }

  /**
   * True when `peerId` was a holder of `cid` but missed its write (it was down; the next-ranked
   * peer took the copy) and no write to it has succeeded since — so an auditor does not blame it
   * for not holding the chunk. Kept in memory until {@link repair} (or a read repair) gives it
   * the chunk, or the peer leaves the peer set, or {@link ReplicatedStoreOptions.maxMissedWrites}
   * later misses pushed it out.
   */
  missedWrite(peerId: string, cid: string): boolean {
    return this.#records.missedWrite(peerId, cid);
  }

  /**
   * True when this store knows `peerId` was given `cid`: a write of it to that peer succeeded,
   * or the peer proved holding it in a repair. Only then is a missing copy the peer's fault; no
   * record (it joined or was re-added after the write, it was down, the record was kept in
   * memory and the node restarted) means unknown, never guilty. The record survives
   * {@link setPeers}; a peer out of the set past the record's retention is forgotten.
   */
  wasGiven(peerId: string, cid: string): boolean {
    return this.#records.given.has(peerId, cid);
  }

  /** The r peers that should hold `cid`, best first (the first r of {@link placement}). */
  holders(cid: string): StoragePeer[] {
    return this.placement(cid).slice(0, this.#r);
  }

  /**
   * Every peer in the order `cid` is placed on them: the rendezvous rank, except that a peer that
   * failed this node's audit of `cid`, or audits in several recent rounds, comes last (see
   * {@link failedAudit}). The first r are its holders; the rest, the fallback when one fails.
   */
  placement(cid: string): StoragePeer[] {
    return this.#records.placementOrder(cid, rankPeers(cid, this.#peers));
  }

  /**
   * The peers past the first r that this store knows were given `cid` ({@link wasGiven}), best
   * first: stand-ins that took a full holder's copy (it keeps its rank), or holders a join pushed
   * down. Each counts as one of the chunk's copies, so an audit asks them too; one that failed
   * this node's audit of `cid` holds no copy of it and is not one.
   */
  standIns(cid: string): StoragePeer[] {
    return this.placement(cid).slice(this.#r).filter((p) => this.#records.standsIn(p.id, cid));
  }

  /**
   * This node audited `peerId` and it failed on `cids` (storage keys; this node's own signed
   * verdict, never a peer's, which nobody can check): it is placed last for each of them, so the
   * repair that follows puts them on the next peer instead of sending it a fresh copy, and with
   * failures in {@link DEMOTION_STRIKES} of the last {@link STRIKE_WINDOW_ROUNDS} audit rounds it
   * is placed last for every chunk for {@link DEMOTION_ROUNDS} rounds. Kept in the store's
   * {@link ReplicatedStoreOptions.penalties} (across restarts when that is opened from a file,
   * written at the end of each round); kept while the peer is away, so a reconnect does not clear
   * it, and forgotten once it has been away for the departed-holder retention of the given record
   * (`DEPARTED_HOLDER_RETENTION_MS`, a day).
   */
  failedAudit(peerId: string, cids: readonly string[]): void {
    this.#records.failedAudit(peerId, cids);
  }

  /**
   * Whether `peerId` failed this node's audit of `cid` (or admitted or was found not to hold it:
   * {@link admittedLoss}, {@link unproven}) and holds no good copy of it since.
   */
  failedAuditOf(peerId: string, cid: string): boolean {
    return this.#records.failedAuditOf(peerId, cid);
  }

  /**
   * `peerId`, being swept after it failed an audit of this node's (`audit_round.ts`), went silent
   * on a sweep challenge: `cids` (storage keys), the rest of its slice, are not counted as its
   * copies. Placed last for each as by {@link admittedLoss}, without a strike or a verdict (its
   * silence is no proof of loss), so the repair that follows puts them on the next peer.
   */
  unproven(peerId: string, cids: readonly string[]): void {
    for (const cid of cids) this.#records.admittedLoss(peerId, cid);
  }

  /**
   * `peerId` asked this node for `cid` while it is one of the chunk's holders here
   * ({@link holdsCopy}): it holds no copy, by its own word. Placed last for `cid` as by a failed
   * audit ({@link failedAudit}), without a strike; a repair of `cid` then puts the copy on the next
   * peer. Kept as a failed audit is.
   */
  admittedLoss(peerId: string, cid: string): void {
    this.#records.admittedLoss(peerId, cid);
  }

  /**
   * Whether `peerId` counts as one of the copies of `cid` here: it was given it
   * ({@link wasGiven}) and is one of its holders ({@link holders}) or a stand-in ({@link standIns}).
   */
  holdsCopy(peerId: string, cid: string): boolean {
    if (!this.#records.given.has(peerId, cid)) return false;
    return this.holders(cid).some((p) => p.id === peerId) ||
      this.standIns(cid).some((p) => p.id === peerId);
  }

  /** An audit round of this node's ended: the clock of {@link failedAudit}'s strikes. */
  auditRoundEnded(): void {
    this.#records.auditRoundEnded();
  }

  /** Whether `peerId` is placed last for every chunk now (see {@link failedAudit}). */
  demoted(peerId: string): boolean {
    return this.#records.demoted(peerId);
  }

  /**
   * Resolves when background writes (beyond the quorum) and read repairs have finished, and
   * the record of what each peer was given ({@link GivenChunks.flush}) and the audits' penalties
   * ({@link AuditPenalties.flush}) are written.
   */
  async flush(): Promise<void> {
    await this.#background.settle();
    await this.#records.given.flush();
    await this.#records.penalties.flush();
  }

  /**
   * Store `bytes` on its holders; resolves with the CID once w holders acknowledged, and the
   * copies still being written past the quorum (this put's and earlier ones') hold at most
   * `maxBackgroundBytes`. The caller's signal cancels the put until then; the copies beyond the
   * quorum are written whatever it does after.
   * @throws {ReplicationError} fewer than w peers could store it.
   */
  async put(bytes: Uint8Array, options?: ReplicatedPutOptions): Promise<string> {
    const cid = await cidOfAsync(bytes);
    const write = options?.write ?? ((peer, cid, bytes, o) => peer.putChunk(cid, bytes, o));
    const ranked = this.placement(cid);
    if (ranked.length < this.#w) {
      throw new ReplicationError(`need ${this.#w} storage peers, have ${ranked.length}`);
    }
    // The caller's signal cancels this put while it waits for its quorum, not the copies after
    // it: those are the store's, and finish in the background whatever becomes of the signal
    // (an HTTP request's aborts as soon as its response is sent).
    const cancel = new AbortController();
    const follow = () => cancel.abort(options?.signal?.reason);
    if (options?.signal?.aborted) follow();
    else options?.signal?.addEventListener("abort", follow, { once: true });
    const errors: unknown[] = [];
    let next = 0;
    let acks = 0;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let pending = 0;
    let background = false; // this put's bytes count in `BackgroundWork.bytes`
    const launch = () => {
      const peer = ranked[next++];
      pending++;
      const written = this.#call(cancel.signal, (signal) => write(peer, cid, bytes, { signal }))
        .then(() => {
          this.#records.wrote(peer, cid, true);
          if (++acks === this.#w) resolve();
        }, (error) => {
          this.#records.wrote(peer, cid, false);
          errors.push(error);
          this.#failures.report("put", peer, cid, error, cancel.signal);
          // Keep r writes going: hand this one's place to the next peer in rank order (unless
          // the caller gave up, in which case every peer would fail the same way).
          if (next < ranked.length && !cancel.signal.aborted) launch();
        })
        .finally(() => {
          if (--pending > 0) return;
          if (background) {
            background = false;
            this.#background.bytes -= bytes.length;
          }
          if (acks < this.#w) {
            reject(
              new ReplicationError(
                `only ${acks} of the ${this.#w} required peers stored ${cid}`,
                new AggregateError(errors),
              ),
            );
          }
        });
      this.#background.track(written);
    };
    for (let i = 0; i < Math.min(this.#r, ranked.length); i++) launch();
    try {
      await promise;
    } catch (error) {
      options?.signal?.throwIfAborted(); // report the abort, not its consequence
      throw error;
    } finally {
      options?.signal?.removeEventListener("abort", follow);
    }
    // Its copies past the quorum hold `bytes` until they land: the caller reads no more (a file
    // put, its next chunk) while those of every put hold more than the bound.
    if (pending > 0) {
      background = true;
      this.#background.bytes += bytes.length;
    }
    if (this.#background.bytes > this.#background.max) await this.#background.room(options?.signal);
    return cid;
  }

  /**
   * The verified bytes of `cid` from the first replica that has a good copy: its holders are asked,
   * then its known stand-ins, then the other peers in rank (past {@link READ_PEERS_PAST_HOLDERS}
   * of them only if `options.deepWalk`, when given, lets the walk go on).
   * @throws {ChunkNotFoundError} no peer has it (every one said so).
   * @throws {unknown} what `options.deepWalk` threw, when it refused the deep walk and no peer
   *   asked before served the chunk.
   * @throws {CorruptChunkError} only bad copies exist.
   * @throws {ReplicationError} no good copy came back and some peer did not answer (timed out,
   *   unreachable): the chunk may exist, try again later.
   */
  get(cid: string, options?: BlockStoreCallOptions): Promise<Uint8Array> {
    return this.#reads.get(cid, options);
  }

  /** True when any holder claims `cid`. */
  async has(cid: string, options?: BlockStoreCallOptions): Promise<boolean> {
    const answers = await Promise.allSettled(
      this.holders(cid).map((p) =>
        this.#call(options?.signal, (s) => p.hasChunk(cid, { signal: s }))
      ),
    );
    return answers.some((a) => a.status === "fulfilled" && a.value);
  }

  /**
   * Restore r valid copies of each CID: every holder proves possession under a fresh nonce;
   * one that cannot (missing, corrupt, or a wrong proof) gets the chunk again.
   */
  async repair(cids: Iterable<string>, options?: RepairOptions): Promise<RepairReport> {
    return await this.#repair.run(cids, options);
  }

  #call<T>(outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
    try {
      signal.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    // A peer that ignores its signal still cannot hold us past the timeout.
    const aborted = new Promise<never>((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    aborted.catch(() => {});
    return Promise.race([fn(signal), aborted]);
  }
}

/**
 * `peers` with one entry per id, the first: each entry is counted as one copy (a quorum's
 * acknowledgement, one of r holders), so a peer listed twice by a caller (reached by two objects)
 * made one copy count as two, and a put whose only other holder refused met a quorum of two with
 * one.
 */
function distinctById(peers: readonly StoragePeer[]): StoragePeer[] {
  const byId = new Map<string, StoragePeer>();
  for (const peer of peers) if (!byId.has(peer.id)) byId.set(peer.id, peer);
  return [...byId.values()];
}

/** Hex id of a public key, the form {@link StoragePeer.id} uses. */
export function peerIdOf(publicKey: Uint8Array): string {
  return toHex(publicKey);
}
