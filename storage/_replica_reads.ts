/**
 * A `ReplicatedStore`'s reads: `readParallelism` replicas asked at once, the first copy that
 * verifies against the CID wins and the others are cancelled, a failed or corrupt replica makes the
 * read fall back to the next one, and read repair writes the good bytes back to a holder whose
 * answer proved its copy bad. The store owns one {@link ReplicaReads} over its {@link ReplicaCore};
 * `ReplicatedStore.get` and its repairs (`_replica_repair.ts`, for a copy to re-send) read through
 * it. Not part of the public API.
 *
 * A replica's `chunk_not_found` is reported to the store's observer (the node's
 * `veriflow_storage_replica_failures_total{reason="missing"}` and its log line naming the peer)
 * only where that peer was expected to hold the chunk: the store's record says it was given it
 * (`GivenChunks`), or it is one of the chunk's r holders and another replica served the chunk, so
 * the chunk exists and this holder lacks it. This node's own store (`ReplicaCore.selfId`) is never
 * reported missing. Before (review s72, docs F2), every miss was reported, the node's own store
 * included: any client drove the counter and the log with GETs of CIDs nobody stores. The record
 * that has a peer asked last for a chunk it answered without its bytes
 * (`ReplicaRecords.readOrder`) takes a `chunk_not_found` on the same terms (this node's own store
 * included), and so does an answer whose bytes do not match the CID: before (review s80 F2, and
 * vgw F3 for garbage) every peer asked was recorded for every CID nobody holds, so keyless reads of
 * random CIDs flushed that bounded record, and a holder that keeps a chunk for its audits but
 * refuses reads (review s62) was asked first again and sent another read-repair copy.
 *
 * A read walks the whole ranking, as a put's and a repair's hand-on do (a copy handed past full
 * peers, or placed under a smaller membership, ranks anywhere below the holders): the r holders,
 * the chunk's known stand-ins, the next in rank. Past the first r + {@link READ_PEERS_PAST_HOLDERS}
 * peers the walk is deep, and a read whose caller passed `deepWalk` (the HTTP gateway's) asks it
 * first: refused, the read rejects with its error, never `chunk_not_found` for a chunk that may
 * exist further down. The walk's end tells the caller whether the read found the chunk (the
 * gateway's budget charges only the walks that miss).
 *
 * @module
 */
import type { BlockStoreCallOptions } from "./block_store.ts";
import { verifyCid } from "./_hash.ts";
import type { ReplicaCore } from "./_replica_core.ts";
import { ChunkNotFoundError, CorruptChunkError, ReplicationError } from "./errors.ts";
import type { StoragePeer } from "./storage_peer.ts";

/**
 * Peers past a chunk's r holders that a read asks before its walk is deep: the chunk's known
 * stand-ins first (`ReplicatedStore.standIns`: peers this node gave the chunk, or saw prove it,
 * that rank past its holders now), then the next peers in rank. A read goes on past them, through
 * the whole ranking (a copy handed on past full peers, or placed under an older, smaller
 * membership, may rank anywhere: review s80 vgw F1, F2, where a bound here made such chunks
 * `chunk_not_found`, and repair count them lost, on every node but their writer), but a caller
 * that passed `BlockStoreCallOptions.deepWalk` is asked first: the HTTP gateway's spends the
 * client's budget (`server/deep_reads.ts`), since a keyless `GET /ipfs/{cid}` of a CID nobody
 * holds otherwise asks every storage peer (40 with 40 peers: review s80 F1).
 */
export const READ_PEERS_PAST_HOLDERS: number = 3;

/** A store's reads and read repairs (see the module doc). */
export class ReplicaReads {
  readonly #core: ReplicaCore;
  readonly #readParallelism: number;
  readonly #readRepair: boolean;
  /** Read repairs in flight, as `<peer id> <cid>`: one at a time per holder and chunk. */
  readonly #readRepairs = new Set<string>();

  /**
   * Reads over `core`, asking `readParallelism` replicas at once, with read repair when
   * `readRepair`.
   */
  constructor(core: ReplicaCore, readParallelism: number, readRepair: boolean) {
    this.#core = core;
    this.#readParallelism = readParallelism;
    this.#readRepair = readRepair;
  }

  /** `ReplicatedStore.get`, its late answers and read repairs also tracked in `tasks`. */
  async get(
    cid: string,
    options: BlockStoreCallOptions | undefined,
    tasks?: Set<Promise<unknown>>,
  ): Promise<Uint8Array> {
    const records = this.#core.records;
    const placed = this.#core.placement(cid);
    const holders = new Set(placed.slice(0, this.#core.replicas));
    const ranked = records.readOrder(cid, this.#readPeers(cid, placed));
    /** Where the walk becomes deep (`READ_PEERS_PAST_HOLDERS`), and its end once it did. */
    const shallow = this.#core.replicas + READ_PEERS_PAST_HOLDERS;
    let endDeepWalk: ((found: boolean) => void) | undefined;
    /** The caller's refusal of the deep walk: the read's error unless a replica serves. */
    let refused: unknown;
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
    /**
     * Holders' misses with no record of a copy given: recorded and reported once another replica
     * serves (the chunk exists, so they lack it); forgotten when none does.
     */
    const unconfirmed: [StoragePeer, ChunkNotFoundError | CorruptChunkError][] = [];
    /**
     * `peer`, expected to hold the chunk, answered `chunk_not_found` or bytes that do not match it:
     * read last for it from now on (one that keeps it for its audits but answers reads
     * `chunk_not_found` was asked first on every read and sent a read-repair copy each time:
     * review s62), and a miss reported, unless it is this node's own store (a read of what it does
     * not hold goes on to the peers: no peer's failure).
     */
    const missed = (peer: StoragePeer, error: ChunkNotFoundError | CorruptChunkError) => {
      records.failedToServe(peer, cid);
      if (error instanceof ChunkNotFoundError && peer.id !== this.#core.selfId) {
        this.#core.failures.report("get", peer, cid, error);
      }
    };
    /**
     * Report `peer`'s `error`, a miss only where it was expected to hold the chunk, and record a
     * miss or garbage on the same terms (module doc): garbage from any peer asked was recorded, and
     * ~77,000 random-CID reads answered with garbage flushed the record (review s80 vgw F3).
     */
    const report = (peer: StoragePeer, error: unknown) => {
      if (!(error instanceof ChunkNotFoundError)) {
        this.#core.failures.report("get", peer, cid, error);
      }
      if (!(error instanceof ChunkNotFoundError || error instanceof CorruptChunkError)) return;
      if (records.given.has(peer.id, cid) || (good && holders.has(peer))) {
        missed(peer, error);
      } else if (holders.has(peer)) unconfirmed.push([peer, error]);
    };
    let good: Uint8Array | undefined;
    let next = 0;
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    let pending = 0;
    let settled = false;
    const launch = () => {
      if (next === shallow && options?.deepWalk !== undefined) {
        try {
          endDeepWalk = options.deepWalk();
        } catch (error) {
          refused = error;
          next = ranked.length; // no further peer is asked
          return;
        }
      }
      const peer = ranked[next++];
      pending++;
      const read = this.#core.call(
        options?.signal,
        (s) => peer.getChunk(cid, { signal: AbortSignal.any([s, done.signal]) }),
      )
        .then(async (bytes) => {
          if (!(await verifyCid(cid, bytes))) throw new CorruptChunkError(cid, `peer ${peer.id}`);
          records.servedRight(peer, cid);
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
              report(peer, error);
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
          report(peer, error);
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
              refused !== undefined ? refused : unanswered.length > 0
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
      // flush() waits for late answers and the repairs they start
      this.#core.background.track(read, tasks);
    };
    if (ranked.length === 0) throw new ChunkNotFoundError(cid, "any storage peer (none known)");
    for (let i = 0; i < this.#readParallelism && next < ranked.length; i++) launch();
    try {
      const bytes = await promise;
      // The chunk exists: a holder that said it lacks it does lack it.
      for (const [peer, error] of unconfirmed) missed(peer, error);
      if (readRepair) {
        for (const peer of failed) {
          if (holders.has(peer)) this.#repairReplica(peer, cid, bytes, tasks);
        }
      }
      return bytes;
    } finally {
      done.abort(); // cancel the slower replicas
      endDeepWalk?.(good !== undefined); // a walk that found the chunk costs its client nothing
    }
  }

  /**
   * The peers a read of `cid` asks, in turn (`placed`: its placement order): its holders, its known
   * stand-ins, then every other peer in rank.
   */
  #readPeers(cid: string, placed: StoragePeer[]): StoragePeer[] {
    const r = this.#core.replicas;
    const past = placed.slice(r);
    const standIns = past.filter((peer) => this.#core.records.standsIn(peer.id, cid));
    const known = new Set(standIns);
    return [...placed.slice(0, r), ...standIns, ...past.filter((peer) => !known.has(peer))];
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
    if (this.#core.background.bytes + bytes.length > this.#core.background.max) return;
    this.#readRepairs.add(key);
    this.#core.background.bytes += bytes.length;
    this.#core.background.track(
      this.#core.call(undefined, (s) => peer.putChunk(cid, bytes, { signal: s, repair: true }))
        .then(() => this.#core.records.wrote(peer, cid, true))
        .catch((error) => this.#core.failures.report("repair", peer, cid, error))
        .finally(() => {
          this.#readRepairs.delete(key);
          this.#core.background.bytes -= bytes.length;
        }),
      tasks,
    );
  }
}
