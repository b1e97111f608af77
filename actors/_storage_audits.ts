/**
 * The StorageActor's audits (`storage_actor.ts`, the `audit` and `audit_round` messages and the
 * timed rounds of its `auditIntervalMs`): a holder challenged on chunks and judged with a signed
 * verdict ({@link StorageAudits.audit}, `storage/audit.ts`), and one round over this node's
 * replicated files at a time ({@link StorageAudits.auditRound}, `storage/audit_round.ts`), ended
 * by the node's stop (`StorageCore.stopping`). Owned by the actor, built in its constructor on its
 * {@link StorageCore}.
 * Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { type AuditResult, StorageAuditor } from "../storage/audit.ts";
import { type AuditRoundReport, runAuditRound } from "../storage/audit_round.ts";
import { AuditSweeps } from "../storage/audit_sweeps.ts";
import type { BlockStore } from "../storage/block_store.ts";
import { StorageError } from "../storage/errors.ts";
import { FileStore } from "../storage/file_store.ts";
import type { StoragePeer } from "../storage/storage_peer.ts";
import type { StorageCore } from "./_storage_core.ts";

/** The StorageActor's audit rounds and audits of single holders. */
export class StorageAudits {
  readonly #core: StorageCore;
  /** The audit round running, if one is. */
  #auditing: Promise<AuditRoundReport> | null = null;
  /** The holders that failed an audit, checked on all they were given over the next rounds. */
  readonly #sweeps = new AuditSweeps();

  /** @param core The actor's state and calls (its options, stores, peers). */
  constructor(core: StorageCore) {
    this.#core = core;
  }

  /**
   * Wait for the round running, if one is (the actor's stop, once it has aborted
   * `StorageCore.stopping`, which calls off its audit under way and the holders after it).
   */
  async settled(): Promise<void> {
    await this.#auditing?.catch(() => {});
  }

  /** One audit round (the `audit_round` message), or the one running. */
  auditRound(): Promise<AuditRoundReport> {
    if (this.#auditing === null) {
      const round = this.#runAuditRound().finally(() => this.#auditing = null);
      // A timed round's handle goes to no one (a `tell`): its failure is logged here, never
      // left unhandled, which would end the process. A node without storage peers has nothing
      // to audit: quiet. An asker still gets the rejection through `done`.
      round.catch((error) => {
        if (error instanceof StorageError && error.code === "not_replicated") return;
        this.#core.options.log?.(`storage: audit round failed: ${String(error)}`);
      });
      this.#auditing = round;
    }
    return this.#auditing;
  }

  async #runAuditRound(): Promise<AuditRoundReport> {
    const replicated = this.#core.replicated();
    const store = this.#core.store();
    if (!replicated || !this.#core.options.identity) {
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
    const files = new FileStore(reads, this.#core.fileOptions());
    const stopping = this.#core.stopping;
    const report = await runAuditRound({
      roots,
      blocksOf: async (root) => (await files.blocks(root)).map(storageKey),
      holders: (cid) => replicated.holders(cid),
      standIns: (cid) => replicated.standIns(cid),
      wasGiven: (peerId, cid) => this.#core.given().has(peerId, cid),
      selfId: this.#core.self()?.id,
      // At its turn: a holder that left since the round began is not reached, not judged.
      peer: (peerId) => this.#core.replicated()?.peers.find((p) => p.id === peerId),
      // The stop calls off the audit running, not only the holders after it: waited out, it held
      // the stop for its timeout (30 s, and as long for the references, past the actor system's
      // stop bound) and then blamed the holder for an answer this node's stop cut off (review s62).
      // The node's stop too, which closes the holders' connections before this actor stops: each
      // holder after the one cut off failed at once on its closed connection, and was blamed, and
      // the repair after counted each copy it could not send against its holder (stop 63).
      audit: (peer, cids, sampleSize) => this.audit(peer, cids, undefined, sampleSize),
      sweeps: this.#sweeps,
      // Each peer audited on chunks drawn from what it was given, uniformly: its chances of
      // escaping do not depend on which files they came from (review s81 store, F2).
      peers: replicated.peers,
      givenTo: (peerId) => this.#core.given().chunksOf(peerId),
      givenRecord: (peerId) => this.#core.given().recordOf(peerId),
      retained: (peerId) => this.#core.given().retained(peerId),
      failedAuditOf: (peerId, cid) => replicated.failedAuditOf(peerId, cid),
      unproven: (peerId, cids) => replicated.unproven(peerId, cids),
      repair: (cids) => replicated.repair(cids, { signal: stopping }),
      signal: stopping,
    });
    replicated.auditRoundEnded(); // the holders' strikes age by rounds (`failedAudit`)
    if (report.holders > 0 || report.errors > 0) {
      this.#core.options.log?.(
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

  /**
   * Audit `holder` on `cids` (the `audit` message, and each holder of a round), signing a verdict
   * on failure. `signal`, or the node's stop (`StorageCore.stopping`), calls it off: then nobody
   * is judged, and it rejects with its reason. An answer lost on a connection this node's network
   * closed since `holder` came from it (`StorageCore.network`) judges no one either: it rejects with
   * `HolderNotReachedError`, which a round counts as not reached. `sampleSize`: how many of
   * `cids` to ask (default 4; a round's sweep of a failed holder asks a whole challenge).
   */
  async audit(
    holder: StoragePeer,
    cids: string[],
    signal?: AbortSignal,
    sampleSize?: number,
  ): Promise<AuditResult> {
    const identity = this.#core.options.identity;
    if (!identity) throw new StorageError("no_identity", "audits need the node identity");
    const blocks = this.#core.blocks();
    const given = this.#core.given();
    // The network the challenge goes out on: the one `holder` came from.
    const network = this.#core.network;
    const generation = network.generationOf(holder);
    const auditor = new StorageAuditor({
      identity,
      // No read repair: see the round's reads (#runAuditRound).
      reference: (cid, signal) => blocks.get(cid, { signal, readRepair: false }),
      // Only a chunk this node knows it gave the holder (or saw it prove) is its fault to lack:
      // one written while it was down or before it joined is not. The record outlives restarts.
      wasGiven: (holderId, cid) => given.has(holderId, cid),
      // The holder's answer failed once the node was stopping: its network had closed the
      // connection (it stops before this actor), which the holder did nothing to (stop 63).
      stopping: () => this.#core.stopped(),
      // Nor did it do anything to the connection this node's network closed when it went down (a
      // crash, a restart): not reached, audited again next round (stop 64).
      closedHere: () => network.downSince(generation),
      // The chunks asked are served to no peer until the answer is in (or its deadline passed):
      // else a holder that keeps nothing fetched them from this node under a second key (review
      // s81 store, F1).
      challenging: (cids) => this.#core.challenged.hold(cids),
      deadline: this.#core.options.auditDeadline,
      onVerdict: this.#core.options.onVerdict,
    });
    const stopping = this.#core.stopping;
    const result = await auditor.audit(holder, cids, {
      signal: signal === undefined ? stopping : AbortSignal.any([signal, stopping]),
      sampleSize,
    });
    // What it proved it holds, it was given (however it got it): losing it later is its fault.
    // Not what it proved but named kept for no one on this node's behalf (its own file's chunk,
    // no replica room left for this node): that goes with its file. Where the record counts it
    // as given already (older code recorded such a proof), the holder says it keeps no copy for
    // this node: the pair is forgotten, so its unpinning the file later is blamed on no one
    // (review s81 vaudit2, F1), and it is placed last for the chunk without a strike, as by
    // `admittedLoss`, and the chunk repaired onto the next peer.
    const open = new Set([...result.failures, ...result.unjudged].map((c) => c.cid));
    const unkept = new Set(result.unkept);
    const replicated = this.#core.replicated();
    for (const cid of result.sampled) {
      if (open.has(cid)) continue;
      if (!unkept.has(cid)) {
        given.add(holder.id, cid);
        continue;
      }
      if (!given.has(holder.id, cid)) continue;
      given.remove(holder.id, cid);
      if (replicated === null) continue;
      replicated.admittedLoss(holder.id, storageKey(cid));
      this.#core.holderRepair()?.repairSoon(replicated, storageKey(cid));
    }
    await given.flush();
    // This node's own verdict has a consequence here, where it alone decides: the holder is placed
    // last for what it failed (the repair after puts it on the next peer, not back on it), and
    // for everything while it fails round after round (`ReplicatedStore.failedAudit`). Before
    // review s62 it kept its rank, and each round's repair sent it a fresh copy, paid by this node.
    if (result.failures.length > 0) {
      this.#core.replicated()?.failedAudit(
        holder.id,
        result.failures.map((f) => storageKey(f.cid)),
      );
    }
    return result;
  }
}
