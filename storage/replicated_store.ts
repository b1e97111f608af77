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
 *   answered a read of a chunk with bytes that do not match it is asked for that chunk after every
 *   other, until it serves it right.
 * - **Repair**: {@link ReplicatedStore.repair} checks every holder of the given CIDs with a
 *   possession proof (cheap: 32 bytes per chunk back, not the chunk) and re-sends the chunk to
 *   any holder that is missing it or holds a bad copy, restoring r copies after a peer was
 *   lost (remove it from the peer set: the next-ranked peer becomes a holder) or a copy rotted.
 *   A holder that times out in a repair is asked nothing more by it (its checks fail at once, for
 *   a later try), so one silent holder costs a repair one peer timeout, not one per chunk.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { BlockStore, BlockStoreCallOptions } from "./block_store.ts";
import { cidOfAsync, equalBytes, verifyCid } from "./_hash.ts";
import { ChunkNotFoundError, CorruptChunkError, ReplicationError } from "./errors.ts";
import { GivenChunks } from "./given_chunks.ts";
import { rankPeers } from "./rendezvous.ts";
import { type PeerCallOptions, possessionProof, type StoragePeer } from "./storage_peer.ts";

export { GivenChunks, type GivenChunksOptions } from "./given_chunks.ts";

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
   * `ReplicatedStore.#report`).
   */
  onReplicaFailure?(event: ReplicaFailure): void;
  /**
   * Where this store records which chunks each peer was given (see
   * {@link ReplicatedStore.wasGiven}); the store tells it the peer set too, so a holder gone for
   * good is forgotten. Pass one that outlives the store when the owner may rebuild it (its peer
   * set went empty and came back), and one opened from a file ({@link GivenChunks.open}) to keep
   * it across restarts; default: a new one, in memory.
   */
  given?: GivenChunks;
  /**
   * Most (holder, chunk) pairs {@link ReplicatedStore.missedWrite} remembers; past it the oldest
   * miss is forgotten. Default {@link DEFAULT_MAX_MISSED_WRITES}.
   */
  maxMissedWrites?: number;
}

/**
 * Default of {@link ReplicatedStoreOptions.maxMissedWrites}: 65 536 pairs, a few MiB of memory.
 * A holder that stays in the peer set but refuses every write (full, or hostile) misses the write
 * of every chunk it ranks for, and unbounded that record grew with everything the node ever wrote
 * (a review found it at stop 56). Forgetting an old miss blames no one: an auditor holds a holder
 * to what {@link ReplicatedStore.wasGiven} records, and a missed write is never given.
 */
export const DEFAULT_MAX_MISSED_WRITES: number = 65_536;

/**
 * Most (holder, chunk) pairs remembered as having served garbage (see
 * `ReplicatedStore.#readOrder`); past it the oldest is forgotten, and that holder is asked in its
 * rank again. The bound of the missed writes, for the same reason: a few MiB however many reads
 * the node serves.
 */
const MAX_SERVED_GARBAGE = DEFAULT_MAX_MISSED_WRITES;

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

/**
 * Why a replica failed, in a few classes an operator can count (the node's
 * `veriflow_storage_replica_failures_total`):
 * - `corrupt`: it answered a read with bytes that do not match the CID (garbage), or said so of
 *   its own copy;
 * - `missing`: it does not hold the chunk (`chunk_not_found`);
 * - `timeout`: it did not answer within the peer timeout (or the connection's);
 * - `full`: it holds no more (`replica_quota_exceeded`, `quota_exceeded`, `disk_full`);
 * - `error`: anything else (unreachable, refused, an error of its own).
 */
export type ReplicaFailureReason = "corrupt" | "missing" | "timeout" | "full" | "error";

/** Every {@link ReplicaFailureReason}, in a fixed order (metrics list each from the start). */
export const REPLICA_FAILURE_REASONS: readonly ReplicaFailureReason[] = [
  "corrupt",
  "missing",
  "timeout",
  "full",
  "error",
];

/** A replica that failed an operation. */
export interface ReplicaFailure {
  /** Which operation. */
  op: "put" | "get" | "prove" | "repair";
  /** The peer. */
  peerId: string;
  /** The chunk. */
  cid: string;
  /** What went wrong. */
  error: unknown;
  /** `error`'s class (see {@link ReplicaFailureReason}). */
  reason: ReplicaFailureReason;
}

/** The {@link ReplicaFailureReason} of a replica's failure `error`. */
export function replicaFailureReason(error: unknown): ReplicaFailureReason {
  if (isTimeout(error)) return "timeout";
  switch ((error as { code?: unknown } | null)?.code) {
    case "corrupt_chunk":
      return "corrupt";
    case "chunk_not_found":
      return "missing";
    case "replica_quota_exceeded":
    case "quota_exceeded":
    case "disk_full":
      return "full";
    default:
      return "error";
  }
}

/** Per peer id, how a peer timed out in one repair (see `ReplicatedStore.#ask`). */
type Silent = Map<string, unknown>;

/** A call that ran out of time: the store's peer timeout, or the connection's request timeout. */
function isTimeout(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "TimeoutError" || e?.code === "request_timeout";
}

/** A peer's refusal because it holds no more for peers (`replica_quota_exceeded`). */
function isFullRefusal(error: unknown): boolean {
  return (error as { code?: unknown })?.code === "replica_quota_exceeded";
}

/**
 * Repair one holder's copy: `attempt`, and while what was tried fails because that peer holds no
 * more for peers (it keeps its rank), `substitute` on the next peer past the holders, as a put
 * hands a full holder's place on. A failure that ends it is a failed check (`failed`).
 */
async function handOnWhenFull(
  attempt: () => Promise<void>,
  next: () => StoragePeer | undefined,
  substitute: (peer: StoragePeer) => Promise<void>,
  failed: () => void,
): Promise<void> {
  let run = attempt;
  for (;;) {
    try {
      return await run();
    } catch (error) {
      const peer = isFullRefusal(error) ? next() : undefined;
      if (peer === undefined) {
        failed();
        return;
      }
      run = () => substitute(peer);
    }
  }
}

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
  readonly #readParallelism: number;
  readonly #timeoutMs: number;
  readonly #readRepair: boolean;
  readonly #onFailure: ((event: ReplicaFailure) => void) | undefined;
  /** Failures already told to {@link #onFailure} (see {@link #report}). */
  readonly #reported = new WeakSet<object>();
  readonly #background = new Set<Promise<unknown>>();
  /**
   * Bytes of the chunks whose puts resolved while copies past the quorum are in flight, and of
   * the read repairs in flight.
   */
  #backgroundBytes = 0;
  /** Read repairs in flight, as `<peer id> <cid>`: one at a time per holder and chunk. */
  readonly #readRepairs = new Set<string>();
  readonly #maxBackgroundBytes: number;
  /**
   * `<peer id> <cid>` of each chunk whose write a holder missed, until a write to it succeeds;
   * oldest first, at most {@link #maxMissed}.
   */
  readonly #missed = new Set<string>();
  readonly #maxMissed: number;
  /**
   * `<peer id> <cid>` of each read answer whose bytes did not match the CID, until that peer
   * serves the chunk right; oldest first, at most {@link MAX_SERVED_GARBAGE}.
   */
  readonly #servedGarbage = new Set<string>();
  /** Chunks each peer was given or proved; kept across {@link setPeers}. */
  readonly #given: GivenChunks;

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
    this.#readParallelism = Math.max(1, options?.readParallelism ?? 2);
    this.#timeoutMs = options?.peerTimeoutMs ?? 10_000;
    this.#readRepair = options?.readRepair ?? true;
    this.#maxBackgroundBytes = options?.maxBackgroundBytes ?? DEFAULT_MAX_BACKGROUND_BYTES;
    this.#onFailure = options?.onReplicaFailure;
    this.#given = options?.given ?? new GivenChunks();
    this.#maxMissed = options?.maxMissedWrites ?? DEFAULT_MAX_MISSED_WRITES;
    this.#given.setPeers(this.#peers.map((p) => p.id));
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
    for (const pairs of [this.#missed, this.#servedGarbage]) {
      for (const key of pairs) if (!ids.has(key.slice(0, key.indexOf(" ")))) pairs.delete(key);
    }
    this.#given.setPeers(ids);
  }

  /**
   * True when `peerId` was a holder of `cid` but missed its write (it was down; the next-ranked
   * peer took the copy) and no write to it has succeeded since — so an auditor does not blame it
   * for not holding the chunk. Kept in memory until {@link repair} (or a read repair) gives it
   * the chunk, or the peer leaves the peer set, or {@link ReplicatedStoreOptions.maxMissedWrites}
   * later misses pushed it out.
   */
  missedWrite(peerId: string, cid: string): boolean {
    return this.#missed.has(`${peerId} ${cid}`);
  }

  /**
   * True when this store knows `peerId` was given `cid`: a write of it to that peer succeeded,
   * or the peer proved holding it in a repair. Only then is a missing copy the peer's fault; no
   * record (it joined or was re-added after the write, it was down, the record was kept in
   * memory and the node restarted) means unknown, never guilty. The record survives
   * {@link setPeers}; a peer out of the set past the record's retention is forgotten.
   */
  wasGiven(peerId: string, cid: string): boolean {
    return this.#given.has(peerId, cid);
  }

  /** Record the outcome of a write of `cid` to `peer` for {@link missedWrite} and {@link wasGiven}. */
  #wrote(peer: StoragePeer, cid: string, ok: boolean): void {
    const key = `${peer.id} ${cid}`;
    if (ok) {
      this.#given.add(peer.id, cid);
      this.#missed.delete(key);
    } else if (this.holders(cid).includes(peer)) {
      remember(this.#missed, key, this.#maxMissed);
    }
  }

  /**
   * The peers to read `cid` from, in order: its rank order (`ranked`), except that a peer that
   * served garbage for it (bytes not matching the CID) comes after every other, until it serves it
   * right.
   * Kept in rank, that peer was asked first on every read and sent a read-repair copy each time:
   * one that keeps the chunk for audits (its possession proofs are right) but answers reads with
   * a few bytes of garbage served nothing and had every reader upload the chunk to it again, read
   * after read (a review found it at stop 56). Placement (writes, repairs, audits) keeps the rank.
   */
  #readOrder(cid: string, ranked: StoragePeer[]): StoragePeer[] {
    if (this.#servedGarbage.size === 0) return ranked;
    const last = (peer: StoragePeer) => this.#servedGarbage.has(`${peer.id} ${cid}`);
    return [...ranked.filter((p) => !last(p)), ...ranked.filter(last)];
  }

  /**
   * The peers past `cid`'s r holders, in rank order, one at a time: each takes the place of a
   * holder that holds no more for peers (see {@link handOnWhenFull}), shared by its holders.
   */
  #substitutes(cid: string): () => StoragePeer | undefined {
    let ranked: StoragePeer[] | undefined; // ranked only when a holder is full
    let next = this.#r;
    return () => (ranked ??= rankPeers(cid, this.#peers))[next++];
  }

  /** The r peers that should hold `cid`, best first. */
  holders(cid: string): StoragePeer[] {
    return rankPeers(cid, this.#peers).slice(0, this.#r);
  }

  /**
   * The peers past the first r that this store knows were given `cid` ({@link wasGiven}), best
   * first: stand-ins that took a full holder's copy (it keeps its rank), or holders a join pushed
   * down. Each counts as one of the chunk's copies, so an audit asks them too.
   */
  standIns(cid: string): StoragePeer[] {
    return rankPeers(cid, this.#peers).slice(this.#r).filter((p) => this.#given.has(p.id, cid));
  }

  /**
   * Resolves when background writes (beyond the quorum) and read repairs have finished, and
   * the record of what each peer was given is written ({@link GivenChunks.flush}).
   */
  async flush(): Promise<void> {
    await this.#settle();
    await this.#given.flush();
  }

  /**
   * Resolves when the background work in `tasks` has finished (default: all of it, put copies
   * and read repairs).
   */
  async #settle(tasks: Set<Promise<unknown>> = this.#background): Promise<void> {
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
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
    const ranked = rankPeers(cid, this.#peers);
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
    let background = false; // this put's bytes count in #backgroundBytes
    const launch = () => {
      const peer = ranked[next++];
      pending++;
      const written = this.#call(cancel.signal, (signal) => write(peer, cid, bytes, { signal }))
        .then(() => {
          this.#wrote(peer, cid, true);
          if (++acks === this.#w) resolve();
        }, (error) => {
          this.#wrote(peer, cid, false);
          errors.push(error);
          this.#report("put", peer, cid, error, cancel.signal);
          // Keep r writes going: hand this one's place to the next peer in rank order (unless
          // the caller gave up, in which case every peer would fail the same way).
          if (next < ranked.length && !cancel.signal.aborted) launch();
        })
        .finally(() => {
          if (--pending > 0) return;
          if (background) {
            background = false;
            this.#backgroundBytes -= bytes.length;
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
      this.#track(written);
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
      this.#backgroundBytes += bytes.length;
    }
    if (this.#backgroundBytes > this.#maxBackgroundBytes) await this.#room(options?.signal);
    return cid;
  }

  /**
   * Resolves once the copies past the quorum hold at most `maxBackgroundBytes` (each that lands or
   * fails gives back its put's bytes); rejects with `signal`'s reason if it aborts first.
   */
  async #room(signal: AbortSignal | undefined): Promise<void> {
    const { promise: abort, resolve } = Promise.withResolvers<void>();
    const onAbort = () => resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (this.#backgroundBytes > this.#maxBackgroundBytes && this.#background.size > 0) {
        signal?.throwIfAborted();
        const settled = [...this.#background].map((p) => p.then(() => {}, () => {}));
        await Promise.race([abort, ...settled]);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The verified bytes of `cid` from the first replica that has a good copy.
   * @throws {ChunkNotFoundError} no peer has it (every peer asked said so).
   * @throws {CorruptChunkError} only bad copies exist.
   * @throws {ReplicationError} no good copy came back and some peer did not answer (timed out,
   *   unreachable): the chunk may exist, try again later.
   */
  get(cid: string, options?: BlockStoreCallOptions): Promise<Uint8Array> {
    return this.#get(cid, options);
  }

  /** {@link get}, its late answers and read repairs also tracked in `tasks`. */
  async #get(
    cid: string,
    options: BlockStoreCallOptions | undefined,
    tasks?: Set<Promise<unknown>>,
  ): Promise<Uint8Array> {
    const placed = rankPeers(cid, this.#peers);
    const holders = new Set(placed.slice(0, this.#r));
    const ranked = this.#readOrder(cid, placed);
    const readRepair = this.#readRepair && options?.readRepair !== false;
    // Cancels the slower replicas once a good copy is in; unlike the caller's signal and the
    // timeout it does not cut their answers off: one that arrives anyway and proves its copy
    // bad is still reported and repaired.
    const done = new AbortController();
    /** Replicas whose answer proved their copy bad (missing or corrupt): read repair's. */
    const failed: StoragePeer[] = [];
    let sawCorrupt = false;
    /** Failures that say nothing of the replica's copy (a timeout, a peer unreachable). */
    const unanswered: unknown[] = [];
    let good: Uint8Array | undefined;
    let next = 0;
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    let pending = 0;
    let settled = false;
    const launch = () => {
      const peer = ranked[next++];
      pending++;
      const read = this.#call(
        options?.signal,
        (s) => peer.getChunk(cid, { signal: AbortSignal.any([s, done.signal]) }),
      )
        .then(async (bytes) => {
          const key = `${peer.id} ${cid}`;
          if (!(await verifyCid(cid, bytes))) {
            remember(this.#servedGarbage, key, MAX_SERVED_GARBAGE);
            throw new CorruptChunkError(cid, `peer ${peer.id}`);
          }
          this.#servedGarbage.delete(key);
          if (settled) return;
          settled = true;
          good = bytes;
          resolve(bytes);
        })
        .catch((error) => {
          if (settled) {
            // A late answer. Only one that proves the copy bad counts: a replica cancelled
            // because another was faster fails with our own abort, which says nothing.
            const bad = error instanceof CorruptChunkError || error instanceof ChunkNotFoundError;
            if (good && bad) {
              this.#report("get", peer, cid, error);
              if (readRepair && holders.has(peer)) this.#repairReplica(peer, cid, good, tasks);
            }
            return;
          }
          if (options?.signal?.aborted) {
            // The caller gave up: no replica failed, and every next one would fail the same way.
            // Its reason, not `chunk_not_found`, which a repair would count as a lost chunk.
            settled = true;
            reject(options.signal.reason);
            return;
          }
          if (error instanceof CorruptChunkError) sawCorrupt = true;
          // Read repair only for an answer that proves the copy bad: a holder that timed out or
          // could not be reached may well hold a good one, and one that is slow because it is
          // overloaded was sent a chunk to write for each it failed to serve.
          if (error instanceof CorruptChunkError || error instanceof ChunkNotFoundError) {
            failed.push(peer);
          } else unanswered.push(error);
          this.#report("get", peer, cid, error);
          if (next < ranked.length) launch();
        })
        .finally(() => {
          if (--pending === 0 && !settled) {
            settled = true;
            // `chunk_not_found` only when every replica asked said so (or gave bad bytes): a
            // replica that did not answer may hold it. Before, holders all unreachable made a
            // file that exists read as one that does not (a 404 a client may cache), and a
            // repair count the chunk lost and never try it again.
            reject(
              unanswered.length > 0
                ? new ReplicationError(
                  `no replica of ${cid} could be read: ${unanswered.length} of the storage ` +
                    `peers asked did not answer`,
                  new AggregateError(unanswered),
                )
                : sawCorrupt
                ? new CorruptChunkError(cid, "every replica")
                : new ChunkNotFoundError(cid, "any storage peer"),
            );
          }
        });
      this.#track(read, tasks); // flush() waits for late answers and the repairs they start
    };
    if (ranked.length === 0) throw new ChunkNotFoundError(cid, "any storage peer (none known)");
    for (let i = 0; i < Math.min(this.#readParallelism, ranked.length); i++) launch();
    try {
      const bytes = await promise;
      if (readRepair) {
        for (const peer of failed) {
          if (holders.has(peer)) this.#repairReplica(peer, cid, bytes, tasks);
        }
      }
      return bytes;
    } finally {
      done.abort(); // cancel the slower replicas
    }
  }

  /**
   * Write the good `bytes` back to a holder that failed a read (read repair), in the background.
   * Best effort, and bounded like the copies past a put's quorum: each holds its chunk until its
   * holder answers or the peer timeout ends it, so one is sent only while the background copies
   * hold at most `maxBackgroundBytes` with it, and only one at a time per holder and chunk.
   * Without that a holder that answers reads `chunk_not_found` at once and writes never held a
   * chunk per read for `peerTimeoutMs` (a file read at link speed: gigabytes), and concurrent
   * reads of one chunk each sent it a copy. One not sent is left to the audit rounds and repairs.
   */
  #repairReplica(
    peer: StoragePeer,
    cid: string,
    bytes: Uint8Array,
    tasks?: Set<Promise<unknown>>,
  ): void {
    const key = `${peer.id} ${cid}`;
    if (this.#readRepairs.has(key)) return; // a copy is on its way
    if (this.#backgroundBytes + bytes.length > this.#maxBackgroundBytes) return;
    this.#readRepairs.add(key);
    this.#backgroundBytes += bytes.length;
    this.#track(
      this.#call(undefined, (s) => peer.putChunk(cid, bytes, { signal: s, repair: true }))
        .then(() => this.#wrote(peer, cid, true))
        .catch((error) => this.#report("repair", peer, cid, error))
        .finally(() => {
          this.#readRepairs.delete(key);
          this.#backgroundBytes -= bytes.length;
        }),
      tasks,
    );
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
    const report: RepairReport = { checked: 0, repaired: 0, lost: [], failedChecks: 0 };
    // Holders that timed out in this repair: asked nothing more by it (see `#ask`).
    const silent: Silent = new Map();
    for (const cid of cids) {
      options?.signal?.throwIfAborted();
      report.checked++;
      if (options?.presence) {
        await this.#repairPresence(cid, options, report, silent);
        continue;
      }
      const read = new Set<Promise<unknown>>();
      const bytes = await this.#copyOf(cid, options, report, read);
      if (bytes === undefined) continue;
      // Let the read repairs of that get land before the holders are judged — those alone: the
      // whole background (other puts' copies to a slow holder, other reads' repairs) held each
      // chunk's repair for up to the peer timeout, and never let it go while uploads went on.
      await this.#settle(read);
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const substitutes = this.#substitutes(cid);
      /** Whether `peer` holds a good copy now: proven, or given one. Throws its failure. */
      const ensure = async (peer: StoragePeer): Promise<void> => {
        const expected = await possessionProof(nonce, peer.publicKey, bytes);
        let proof: Uint8Array | null;
        try {
          [proof] = await this.#ask(
            peer,
            silent,
            options?.signal,
            (s) => peer.proveChunks(nonce, [cid], { signal: s }),
          );
        } catch (error) {
          this.#report("prove", peer, cid, error, options?.signal);
          throw error;
        }
        if (proof && equalBytes(proof, expected)) {
          this.#wrote(peer, cid, true); // it holds a good copy, however it got it
          return;
        }
        try {
          await this.#ask(
            peer,
            silent,
            options?.signal,
            (s) => peer.putChunk(cid, bytes, { signal: s, repair: true }),
          );
        } catch (error) {
          this.#report("repair", peer, cid, error, options?.signal);
          throw error;
        }
        this.#wrote(peer, cid, true);
        report.repaired++;
      };
      const failed = () => this.#failedCheck(cid, options, report);
      await Promise.all(
        this.holders(cid).map((holder) =>
          handOnWhenFull(() => ensure(holder), substitutes, ensure, failed)
        ),
      );
    }
    await this.#given.flush(); // what the holders proved or were sent is on disk when this returns
    return report;
  }

  /**
   * A verified copy of `cid` (local first), or undefined when it is lost (noted in `report`) or no
   * replica answered (a failed check: tried again later).
   */
  async #copyOf(
    cid: string,
    options: RepairOptions | undefined,
    report: RepairReport,
    tasks?: Set<Promise<unknown>>,
  ): Promise<Uint8Array | undefined> {
    const local = await options?.local?.(cid).catch(() => undefined);
    if (local !== undefined && await verifyCid(cid, local)) return local;
    try {
      return await this.#get(cid, options, tasks);
    } catch (error) {
      if (error instanceof ChunkNotFoundError || error instanceof CorruptChunkError) {
        report.lost.push(cid);
        return undefined;
      }
      if (error instanceof ReplicationError && !options?.signal?.aborted) {
        this.#failedCheck(cid, options, report);
        return undefined;
      }
      throw error;
    }
  }

  /**
   * {@link RepairOptions.presence}: each holder proves the one chunk (one small message, as a
   * `has_chunk` would be) and those that cannot get it. A holder that keeps only the CID answers
   * `has_chunk` true but cannot prove; checked against a verified local copy, a wrong proof
   * counts as lacking too. Without a local copy a proof is taken as presence, so nothing is read
   * while every holder has its copy; once a copy is read for a holder that lacks it, every proof
   * is checked against it.
   */
  async #repairPresence(
    cid: string,
    options: RepairOptions,
    report: RepairReport,
    silent: Silent,
  ): Promise<void> {
    const only = options.only?.(cid);
    const holders = this.holders(cid).filter((peer) => !only || only.has(peer.id));
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const local = await options.local?.(cid).catch(() => undefined);
    const verified = local !== undefined && await verifyCid(cid, local) ? local : undefined;
    const defer = options.defer?.(cid);
    if (defer !== undefined && defer.size > 0) {
      // A better-ranked holder that proves it repairs it; one without it (it missed the write)
      // or that does not answer leaves it to this node.
      const above = this.#peers.filter((peer) => defer.has(peer.id));
      const proven = await Promise.all(above.map(async (peer) => {
        try {
          const [proof] = await this.#ask(
            peer,
            silent,
            options.signal,
            (s) => peer.proveChunks(nonce, [cid], { signal: s }),
          );
          if (!(proof instanceof Uint8Array)) return false;
          if (!verified) return true;
          if (!equalBytes(proof, await possessionProof(nonce, peer.publicKey, verified))) {
            return false;
          }
          this.#wrote(peer, cid, true); // proven against a good copy
          return true;
        } catch (error) {
          this.#report("prove", peer, cid, error, options.signal);
          return false;
        }
      }));
      if (proven.some((ok) => ok)) return;
    }
    const proofs = await Promise.all(
      holders.map((peer) =>
        this.#ask(
          peer,
          silent,
          options.signal,
          (s) => peer.proveChunks(nonce, [cid], { signal: s }),
        )
          .then(
            (answer): unknown => Array.isArray(answer) ? answer[0] ?? null : null,
            (error) => {
              this.#report("prove", peer, cid, error, options.signal);
              this.#failedCheck(cid, options, report);
              return undefined;
            },
          )
      ),
    );
    const lacking: StoragePeer[] = [];
    for (const [i, peer] of holders.entries()) {
      const proof = proofs[i];
      if (proof === undefined) continue; // no answer: retried on a later pass
      const expected = verified && await possessionProof(nonce, peer.publicKey, verified);
      if (!(proof instanceof Uint8Array) || (expected && !equalBytes(proof, expected))) {
        lacking.push(peer);
      } else if (expected) this.#wrote(peer, cid, true); // proven against a good copy
    }
    if (lacking.length === 0) return;
    const bytes = verified ?? await this.#copyOf(cid, options, report);
    if (bytes === undefined) return;
    if (!verified) {
      // A verified copy is here now: the proofs taken as presence without one are checked
      // against it, so a holder claiming a chunk it lacks is not counted as a copy.
      for (const [i, peer] of holders.entries()) {
        const proof = proofs[i];
        if (!(proof instanceof Uint8Array)) continue; // lacking already, or no answer
        if (equalBytes(proof, await possessionProof(nonce, peer.publicKey, bytes))) {
          this.#wrote(peer, cid, true); // proven against a good copy
        } else lacking.push(peer);
      }
    }
    /** Give `peer` a copy; throws its failure. */
    const give = async (peer: StoragePeer): Promise<void> => {
      try {
        // `repair`: a holder whose proof was wrong may hold a bad copy it must replace.
        await this.#ask(
          peer,
          silent,
          options.signal,
          (s) => peer.putChunk(cid, bytes, { signal: s, repair: true }),
        );
      } catch (error) {
        this.#report("repair", peer, cid, error, options.signal);
        throw error;
      }
      this.#wrote(peer, cid, true);
      report.repaired++;
    };
    /** A peer past the holders: its proof (the put that placed the chunk may have given it a copy), else a copy. */
    const provesOrGets = async (peer: StoragePeer): Promise<void> => {
      try {
        const [proof] = await this.#ask(
          peer,
          silent,
          options.signal,
          (s) => peer.proveChunks(nonce, [cid], { signal: s }),
        );
        if (
          proof instanceof Uint8Array &&
          equalBytes(proof, await possessionProof(nonce, peer.publicKey, bytes))
        ) return this.#wrote(peer, cid, true);
      } catch (error) {
        this.#report("prove", peer, cid, error, options.signal); // given a copy below, which may still land
      }
      await give(peer);
    };
    const substitutes = this.#substitutes(cid);
    const failed = () => this.#failedCheck(cid, options, report);
    await Promise.all(
      lacking.map((holder) =>
        handOnWhenFull(() => give(holder), substitutes, provesOrGets, failed)
      ),
    );
  }

  /** A holder check of `cid` failed (no answer, copy refused): counted, and told the caller. */
  #failedCheck(cid: string, options: RepairOptions | undefined, report: RepairReport): void {
    report.failedChecks++;
    options?.onFailedCheck?.(cid);
  }

  /**
   * {@link #call} for a repair, unless `peer` already timed out in it (`silent`): then it fails at
   * once, as it did. A repair checks its chunks one after another, so a holder that never answers
   * (gone quiet, hostile) held each chunk it holds for the peer timeout (10 s): a pass over a
   * departed peer's chunks sat for hours behind one such new holder, the chunks after them short
   * meanwhile. Now it costs one timeout per repair, and its chunks are failed checks (holder
   * repair tries them again after a backoff; an audit round's, at a later round).
   */
  #ask<T>(
    peer: StoragePeer,
    silent: Silent,
    outer: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (silent.has(peer.id)) return Promise.reject(silent.get(peer.id));
    return this.#call(outer, fn).catch((error) => {
      if (isTimeout(error) && !outer?.aborted) silent.set(peer.id, error);
      throw error;
    });
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

  /** Background work: {@link flush} waits for it, and `tasks` (a caller's own set) holds it too. */
  #track(p: Promise<unknown>, tasks?: Set<Promise<unknown>>): void {
    this.#background.add(p);
    tasks?.add(p);
    p.finally(() => {
      this.#background.delete(p);
      tasks?.delete(p);
    }).catch(() => {});
  }

  /**
   * Tell the observer that `peer` failed `op` on `cid`, unless the call was cut off by its caller
   * (`outer` aborted: a client gone, the node stopping): every holder in flight then fails the
   * same way, and none of them misbehaved.
   */
  #report(
    op: ReplicaFailure["op"],
    peer: StoragePeer,
    cid: string,
    error: unknown,
    outer?: AbortSignal,
  ): void {
    if (outer?.aborted) return;
    if (typeof error === "object" && error !== null) {
      // One failure told once: a holder that timed out in a repair fails its later checks with
      // that same timeout (`#ask`), which is not one more timeout per chunk.
      if (this.#reported.has(error)) return;
      this.#reported.add(error);
    }
    this.#onFailure?.({ op, peerId: peer.id, cid, error, reason: replicaFailureReason(error) });
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

/** Add `key` to `pairs` as its latest entry, forgetting the oldest past `max`. */
function remember(pairs: Set<string>, key: string, max: number): void {
  pairs.delete(key); // re-added as the latest
  pairs.add(key);
  for (const oldest of pairs) {
    if (pairs.size <= max) break;
    pairs.delete(oldest);
  }
}

/** Hex id of a public key, the form {@link StoragePeer.id} uses. */
export function peerIdOf(publicKey: Uint8Array): string {
  return toHex(publicKey);
}
