/**
 * A `ReplicatedStore`'s repair: every holder of the given CIDs is checked with a possession
 * proof (cheap: 32 bytes per chunk back, not the chunk) and re-sent the chunk when it is missing
 * it or holds a bad copy; a holder that holds no more for peers hands its place to the next peer
 * in rank order ({@link handOnWhenFull}); a holder that times out is asked nothing more by that
 * repair. `ReplicatedStore.repair` (where the whole rule and its options are documented) runs
 * {@link ReplicaRepair.run}; a copy to re-send is read through the store's {@link ReplicaReads}.
 * Not part of the public API.
 *
 * @module
 */
import { equalBytes, verifyCid } from "./_hash.ts";
import type { ReplicaCore } from "./_replica_core.ts";
import { isTimeout } from "./_replica_failures.ts";
import type { ReplicaReads } from "./_replica_reads.ts";
import { ChunkNotFoundError, CorruptChunkError, ReplicationError } from "./errors.ts";
import type { RepairOptions, RepairReport } from "./replicated_store.ts";
import { possessionProof, type StoragePeer } from "./storage_peer.ts";

/** Per peer id, how a peer timed out in one repair (see `ReplicaRepair.#ask`). */
type Silent = Map<string, unknown>;

/** A peer's refusal because it holds no more for peers (`replica_quota_exceeded`). */
function isFullRefusal(error: unknown): boolean {
  return (error as { code?: unknown })?.code === "replica_quota_exceeded";
}

/** A holder's answer to one chunk's challenge (`ReplicaRepair.#prove`). */
interface Proven {
  /** Its proof, or null where it has none. */
  proof: Uint8Array | null;
  /** It named the chunk unkept (`ProveChunksOptions.onUnkept`); never set next to a null proof. */
  unkept: boolean;
}

/**
 * What a holder's answer, checked against a verified copy, says it holds (`ReplicaRepair.#judge`).
 */
type Judged = "copy" | "unkept" | "none";

/**
 * A holder proved the chunk and keeps it for no one on this node's behalf: it has no room for this
 * node (it tried to keep the chunk for it while proving), so its place goes to the next peer as on
 * a refused copy ({@link handOnWhenFull}), without sending the copy it would refuse.
 */
class KeptForNoOne extends Error {
  /** As a holder's refusal of a copy when full. */
  readonly code = "replica_quota_exceeded";
  constructor(peerId: string, cid: string) {
    super(`peer ${peerId} proved ${cid} but keeps it for no one on this node's behalf`);
  }
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

/**
 * `check` each of `cids`, `lanes` at a time (each lane takes the next CID when its last is done),
 * until `signal` aborts; the first failure stops the lanes taking more and is thrown once every
 * check under way ended. A chunk waits only for its own holders, so a holder that answers just
 * under the peer timeout slows the checks that ask it, not every chunk after them.
 */
async function inLanes(
  cids: Iterable<string>,
  lanes: number,
  signal: AbortSignal | undefined,
  check: (cid: string) => Promise<void>,
): Promise<void> {
  const next = cids[Symbol.iterator]();
  let failed = false;
  const lane = async (): Promise<void> => {
    for (;;) {
      if (failed) return;
      signal?.throwIfAborted();
      const item = next.next();
      if (item.done) return;
      await check(item.value).catch((error) => {
        failed = true;
        throw error;
      });
    }
  };
  const ends = await Promise.allSettled(
    Array.from({ length: Math.max(1, Math.floor(lanes)) }, lane),
  );
  for (const end of ends) if (end.status === "rejected") throw end.reason;
}

/** A store's repair passes (see the module doc). */
export class ReplicaRepair {
  readonly #core: ReplicaCore;
  readonly #reads: ReplicaReads;

  /** Repairs over `core`, reading copies through `reads`. */
  constructor(core: ReplicaCore, reads: ReplicaReads) {
    this.#core = core;
    this.#reads = reads;
  }

  /** `ReplicatedStore.repair` (documented there). */
  async run(cids: Iterable<string>, options?: RepairOptions): Promise<RepairReport> {
    const report: RepairReport = { checked: 0, repaired: 0, lost: [], failedChecks: 0 };
    // Holders that timed out in this repair: asked nothing more by it (see `#ask`).
    const silent: Silent = new Map();
    /** Check (and repair) one chunk. */
    const check = async (cid: string): Promise<void> => {
      report.checked++;
      if (options?.presence) return await this.#repairPresence(cid, options, report, silent);
      const read = new Set<Promise<unknown>>();
      const bytes = await this.#copyOf(cid, options, report, read);
      if (bytes === undefined) return;
      // Let the read repairs of that get land before the holders are judged — those alone: the
      // whole background (other puts' copies to a slow holder, other reads' repairs) held each
      // chunk's repair for up to the peer timeout, and never let it go while uploads went on.
      await this.#core.background.settle(read);
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const holders = this.#core.holders(cid);
      const substitutes = this.#substitutes(cid, holders);
      /** Whether `peer` holds a good copy now: proven, or given one. Throws its failure. */
      const ensure = async (peer: StoragePeer): Promise<void> => {
        const expected = await possessionProof(nonce, peer.publicKey, bytes);
        let proven: Proven;
        try {
          proven = await this.#prove(peer, silent, options?.signal, nonce, cid);
        } catch (error) {
          this.#core.failures.report("prove", peer, cid, error, options?.signal);
          throw error;
        }
        const judged = this.#judge(peer, cid, proven, expected);
        if (judged === "copy") return; // it holds a good copy, however it got it
        if (judged === "unkept") throw new KeptForNoOne(peer.id, cid);
        try {
          await this.#ask(
            peer,
            silent,
            options?.signal,
            (s) => peer.putChunk(cid, bytes, { signal: s, repair: true }),
          );
        } catch (error) {
          this.#core.failures.report("repair", peer, cid, error, options?.signal);
          throw error;
        }
        this.#core.records.wrote(peer, cid, true);
        report.repaired++;
      };
      const failed = () => this.#failedCheck(cid, options, report);
      await Promise.all(
        holders.map((holder) => handOnWhenFull(() => ensure(holder), substitutes, ensure, failed)),
      );
    };
    await inLanes(cids, options?.inFlight ?? 1, options?.signal, check);
    // what the holders proved or were sent is on disk when this returns
    await this.#core.records.given.flush();
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
      return await this.#reads.get(cid, options, tasks);
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
    const all = this.#core.holders(cid);
    const holders = all.filter((peer) => !only || only.has(peer.id));
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const local = await options.local?.(cid).catch(() => undefined);
    const verified = local !== undefined && await verifyCid(cid, local) ? local : undefined;
    const defer = options.defer?.(cid);
    if (defer !== undefined && defer.size > 0) {
      // A better-ranked holder that proves it repairs it; one without it (it missed the write)
      // or that does not answer leaves it to this node.
      const above = this.#core.peers().filter((peer) => defer.has(peer.id));
      const proven = await Promise.all(above.map(async (peer) => {
        try {
          const answer = await this.#prove(peer, silent, options.signal, nonce, cid);
          if (answer.proof === null) return false;
          if (!verified) return !answer.unkept;
          const expected = await possessionProof(nonce, peer.publicKey, verified);
          return this.#judge(peer, cid, answer, expected) === "copy";
        } catch (error) {
          this.#core.failures.report("prove", peer, cid, error, options.signal);
          return false;
        }
      }));
      if (proven.some((ok) => ok)) return;
    }
    const proofs = await Promise.all(
      holders.map((peer) =>
        this.#prove(peer, silent, options.signal, nonce, cid).catch((error): undefined => {
          this.#core.failures.report("prove", peer, cid, error, options.signal);
          this.#failedCheck(cid, options, report);
          return undefined;
        })
      ),
    );
    const lacking: StoragePeer[] = [];
    // Holders that proved it but keep it for no one here: handed on, never sent a copy.
    const unkept = new Set<StoragePeer>();
    for (const [i, peer] of holders.entries()) {
      const proven = proofs[i];
      if (proven === undefined) continue; // no answer: retried on a later pass
      if (!verified) {
        // Taken as presence until a copy is read; one named unkept is no copy either way.
        if (proven.proof === null || proven.unkept) lacking.push(peer);
        continue;
      }
      const judged = this.#judge(
        peer,
        cid,
        proven,
        await possessionProof(nonce, peer.publicKey, verified),
      );
      if (judged === "unkept") unkept.add(peer);
      if (judged !== "copy") lacking.push(peer);
    }
    if (lacking.length === 0) return;
    const bytes = verified ?? await this.#copyOf(cid, options, report);
    if (bytes === undefined) return;
    if (!verified) {
      // A verified copy is here now: the proofs taken as presence without one, and those named
      // unkept, are checked against it, so a holder claiming a chunk it lacks is not counted as a
      // copy, and the word unkept counts only next to a proof of the bytes.
      for (const [i, peer] of holders.entries()) {
        const proven = proofs[i];
        // No answer, or lacking already.
        if (proven === undefined || proven.proof === null) continue;
        const judged = this.#judge(
          peer,
          cid,
          proven,
          await possessionProof(nonce, peer.publicKey, bytes),
        );
        if (judged === "unkept") unkept.add(peer);
        if (judged !== "copy" && !lacking.includes(peer)) lacking.push(peer);
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
        this.#core.failures.report("repair", peer, cid, error, options.signal);
        throw error;
      }
      this.#core.records.wrote(peer, cid, true);
      report.repaired++;
    };
    /** A peer past the holders: its proof (the put that placed the chunk may have given it a copy), else a copy. */
    const provesOrGets = async (peer: StoragePeer): Promise<void> => {
      let judged: Judged = "none";
      try {
        const proven = await this.#prove(peer, silent, options.signal, nonce, cid);
        judged = this.#judge(
          peer,
          cid,
          proven,
          await possessionProof(nonce, peer.publicKey, bytes),
        );
      } catch (error) {
        // given a copy below, which may still land
        this.#core.failures.report("prove", peer, cid, error, options.signal);
      }
      if (judged === "copy") return;
      if (judged === "unkept") throw new KeptForNoOne(peer.id, cid);
      await give(peer);
    };
    const substitutes = this.#substitutes(cid, all);
    const failed = () => this.#failedCheck(cid, options, report);
    await Promise.all(
      lacking.map((holder) =>
        handOnWhenFull(
          () =>
            unkept.has(holder) ? Promise.reject(new KeptForNoOne(holder.id, cid)) : give(holder),
          substitutes,
          provesOrGets,
          failed,
        )
      ),
    );
  }

  /** A holder check of `cid` failed (no answer, copy refused): counted, and told the caller. */
  #failedCheck(cid: string, options: RepairOptions | undefined, report: RepairReport): void {
    report.failedChecks++;
    options?.onFailedCheck?.(cid);
  }

  /**
   * `peer`'s proof of `cid` under `nonce` (asked through {@link #ask}), null where it has none, and
   * whether it named the chunk unkept: held, but kept for no one on this node's behalf
   * (`ProveChunksOptions.onUnkept`: its own file's chunk, and no replica room left for this node).
   * What that means is decided against a verified copy ({@link #judge}).
   */
  async #prove(
    peer: StoragePeer,
    silent: Silent,
    outer: AbortSignal | undefined,
    nonce: Uint8Array,
    cid: string,
  ): Promise<Proven> {
    let named = false;
    const onUnkept = (cids: readonly string[]) => void (named ||= cids.includes(cid));
    const answer: unknown = await this.#ask(
      peer,
      silent,
      outer,
      (signal) => peer.proveChunks(nonce, [cid], { signal, onUnkept }),
    );
    const proof = Array.isArray(answer) && answer[0] instanceof Uint8Array ? answer[0] : null;
    return { proof, unkept: named && proof !== null };
  }

  /**
   * `peer`'s answer `proven` for `cid`, checked against `expected` (the proof of a verified copy):
   * - `"copy"`: the proof checks and names no unkept copy. Recorded as given, however the peer got
   *   the chunk, so a holder that proves during a repair is audited for it later.
   * - `"unkept"`: the proof checks, and the peer keeps the chunk for no one on this node's behalf.
   *   Such a copy goes with the peer's own file, so it is not recorded (an audit would blame its
   *   loss: review s81 vaudit2, F1) and its place goes to the next peer ({@link KeptForNoOne}).
   *   Where the record counts the pair as given already (older code recorded such a proof; or the
   *   peer took a copy and lies), the pair is forgotten as the holder's admitted loss: placed last
   *   for the chunk, without a strike (`ReplicatedStore.admittedLoss`), as an audit does.
   * - `"none"`: no proof, or a wrong one, whatever the peer named: the word counts only next to a
   *   proof of the bytes, else a holder that dropped what it was given erased the record with it
   *   and escaped every audit of it (review s82 vstore, F2).
   */
  #judge(peer: StoragePeer, cid: string, proven: Proven, expected: Uint8Array): Judged {
    if (proven.proof === null || !equalBytes(proven.proof, expected)) return "none";
    if (!proven.unkept) {
      this.#core.records.wrote(peer, cid, true);
      return "copy";
    }
    if (this.#core.records.given.has(peer.id, cid)) {
      this.#core.records.given.remove(peer.id, cid);
      this.#core.records.admittedLoss(peer.id, cid);
    }
    return "unkept";
  }

  /**
   * {@link ReplicaCore.call} for a repair, unless `peer` already timed out in it (`silent`): then
   * it fails at once, as it did. A repair checks its chunks one (or `inFlight`) at a time, so a
   * holder that never answers (gone quiet, hostile) held each chunk it holds for the peer timeout
   * (10 s): a pass over a departed peer's chunks sat for hours behind one such new holder, the
   * chunks after them short meanwhile. Now it costs one timeout per repair, and its chunks are
   * failed checks (holder repair tries them again after a backoff; an audit round's, at a later
   * round).
   */
  #ask<T>(
    peer: StoragePeer,
    silent: Silent,
    outer: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (silent.has(peer.id)) return Promise.reject(silent.get(peer.id));
    return this.#core.call(outer, fn).catch((error) => {
      if (isTimeout(error) && !outer?.aborted) silent.set(peer.id, error);
      throw error;
    });
  }

  /**
   * The peers past `cid`'s r holders, in placement order, one at a time: each takes the place of a
   * holder that holds no more for peers (see {@link handOnWhenFull}), shared by its holders.
   */
  #substitutes(cid: string, holders: readonly StoragePeer[]): () => StoragePeer | undefined {
    let ranked: StoragePeer[] | undefined; // ranked only when a holder is full
    let next = 0;
    // Past `holders` (the pass's, taken before it asked them): a holder placed last meanwhile (an
    // admitted loss, {@link #judge}) is not handed its own place.
    const past = (peer: StoragePeer) => !holders.some((holder) => holder.id === peer.id);
    return () => (ranked ??= this.#core.placement(cid).filter(past))[next++];
  }
}
