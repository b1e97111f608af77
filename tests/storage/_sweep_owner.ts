/**
 * A storage owner over in-memory peers whose audit rounds are wired as `actors/_storage_audits.ts`
 * wires the real one (sweeps, the given record, failed-audit marks, unproven slices), with an
 * injected clock on the given record and a count of the auditor's reference reads: what the sweep
 * tests of review s75 (verify) measure.
 */
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { type AuditRoundReport, runAuditRound } from "../../storage/audit_round.ts";
import { AuditSweeps } from "../../storage/audit_sweeps.ts";
import { GivenChunks } from "../../storage/given_chunks.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";

/** Acknowledges every put and stores nothing. */
export class Liar extends MemoryPeer {
  override putChunk(_cid: string, _bytes: Uint8Array, _o?: PeerCallOptions): Promise<void> {
    return Promise.resolve();
  }
}

/** What {@link sweepOwner} gives a test. */
export interface SweepOwner {
  /** The owner's store over the peers (r = 3, write quorum 2). */
  store: ReplicatedStore;
  /** Its record of given chunks, on the test's clock. */
  given: GivenChunks;
  /** The sweeps kept from one round to the next. */
  sweeps: AuditSweeps;
  /** Every verdict the owner signed. */
  verdicts: Verdict[];
  /** Every chunk written (storage keys). */
  all: string[];
  /** One audit round: its report and the reference copies it read. */
  round(): Promise<{ report: AuditRoundReport; reads: number }>;
  /** Move the given record's clock on by `ms`. */
  advance(ms: number): void;
}

/** An owner over `peers` that wrote `fileCount` files of `chunksPerFile` small chunks. */
export async function sweepOwner(
  peers: MemoryPeer[],
  fileCount: number,
  chunksPerFile: number,
): Promise<SweepOwner> {
  let now = 1_000_000;
  const given = new GivenChunks({ now: () => now });
  const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 2, given });
  const verdicts: Verdict[] = [];
  let referenceReads = 0;
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (cid, signal) => {
      referenceReads++;
      return store.get(cid, { signal, readRepair: false });
    },
    wasGiven: (h, cid) => store.wasGiven(h, cid),
    onVerdict: (v) => void verdicts.push(v),
  });
  const files = new Map<string, string[]>();
  for (let f = 0; f < fileCount; f++) {
    const keys: string[] = [];
    for (let c = 0; c < chunksPerFile; c++) {
      keys.push(storageKey(await store.put(new TextEncoder().encode(`file ${f} chunk ${c}`))));
    }
    files.set(`root${f}`, keys);
  }
  await store.flush();
  const sweeps = new AuditSweeps();
  const round = async () => {
    const before = referenceReads;
    const report = await runAuditRound({
      roots: [...files.keys()],
      blocksOf: (root) => Promise.resolve(files.get(root)!),
      holders: (cid) => store.holders(cid),
      standIns: (cid) => store.standIns(cid),
      wasGiven: (id, cid) => store.wasGiven(id, cid),
      peer: (id) => store.peers.find((p) => p.id === id),
      audit: async (peer, cids, sampleSize) => {
        const result = await auditor.audit(peer, cids, { sampleSize });
        if (result.failures.length > 0) {
          store.failedAudit(peer.id, result.failures.map((f) => storageKey(f.cid)));
        }
        return result;
      },
      repair: (cids) => store.repair(cids),
      sweeps,
      givenTo: (id) => given.chunksOf(id),
      retained: (id) => given.retained(id),
      failedAuditOf: (id, cid) => store.failedAuditOf(id, cid),
      unproven: (id, cids) => store.unproven(id, cids),
    });
    store.auditRoundEnded();
    return { report, reads: referenceReads - before };
  };
  return {
    store,
    given,
    sweeps,
    verdicts,
    all: [...files.values()].flat(),
    round,
    advance: (ms) => void (now += ms),
  };
}
