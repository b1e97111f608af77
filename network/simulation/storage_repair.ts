/**
 * Repair traffic after storage nodes leave: one node spreads `chunks` chunks over the storage
 * nodes with the replicated store (rendezvous placement, r copies), a fraction of the storage
 * nodes leaves, and the store restores r copies of every chunk. Every call crosses a
 * `Connection` over a metered in-memory link (`storage/connection_storage_peer.ts`), so the
 * bytes counted are the storage protocol's own.
 *
 * Two repair passes are measured. The **targeted** pass is what the nodes do: each surviving
 * node runs its own `HolderRepair` (`storage/holder_repair.ts`) on a store where it is a local
 * peer and the others are over the wire, so it plans, defers to better-ranked survivors, asks
 * holders for a possession proof and sends its own copy to those without, exactly as a node
 * does — its later hand-off checks included (run on a clock moved past their wait). The
 * **full** pass then
 * asks the holders of every chunk the same question, as a node that does not track placement
 * would; it should find nothing left to restore, so its traffic is the price of not knowing.
 * The ideal is the lost copies × the chunk size: each lost copy sent once.
 *
 * @module
 */
import { join } from "node:path";
import { Connection } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { HANDOFF_WAIT_MS, HolderRepair, type RepairClock } from "../../storage/holder_repair.ts";
import { type RepairReport, ReplicatedStore } from "../../storage/replicated_store.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { sampleIndices, seededRandom } from "./_random.ts";
import { SIMULATED_CONNECTION } from "./sim_node.ts";
import { type Traffic, TrafficMeter } from "./traffic_meter.ts";

/** Options of {@link simulateStorageRepair}. */
export interface StorageRepairOptions {
  /** The storage nodes' keys. */
  nodes: readonly Identity[];
  /** Chunks stored. */
  chunks: number;
  /** Bytes per chunk. */
  chunkBytes: number;
  /** Copies per chunk (r). */
  replicas: number;
  /** Share of the storage nodes that leave (rounded, at least one). */
  leaveFraction: number;
  /** Seed of the chunk bytes and of who leaves. */
  seed: number;
  /** Directory for the nodes' chunk stores (removed by the caller). */
  dir: string;
}

/** One repair pass and what it cost on the wire. */
export interface RepairPass extends Traffic {
  /** Chunks checked. */
  checked: number;
  /** Copies written. */
  repaired: number;
  /** Chunks with no valid copy left. */
  lost: number;
  /** Wall time, ms. */
  ms: number;
}

/** What {@link simulateStorageRepair} measured. */
export interface StorageRepairReport {
  /** Storage nodes before the departure. */
  storageNodes: number;
  /** Nodes that left. */
  departed: number;
  /** Chunks stored. */
  chunks: number;
  /** Bytes per chunk. */
  chunkBytes: number;
  /** Copies per chunk. */
  replicas: number;
  /** Copies held by departed nodes. */
  lostCopies: number;
  /** Chunks that had a departed holder. */
  affectedChunks: number;
  /**
   * The copies the survivors' placement lacks × chunk size: the least any repair must send. A
   * chunk whose every holder left cannot be restored, so its copies are not counted; nor are
   * copies with no survivor left to hold them (fewer survivors than r).
   */
  idealBytes: number;
  /** Repairing only the affected chunks. */
  targeted: RepairPass;
  /** Then checking every chunk. */
  full: RepairPass;
  /** Chunks that, after repair, are not held by each of their r holders. */
  underReplicated: number;
  /** Wall time to store the chunks, ms. */
  storeMs: number;
}

interface StorageNode {
  local: LocalStoragePeer;
  remote: ConnectionStoragePeer;
  connections: Connection[];
}

/** Chunks stored at once: enough to overlap the holders' writes, few enough to bound memory. */
const PUT_CONCURRENCY = 32;

/** Run the scenario of the module doc. */
export async function simulateStorageRepair(
  options: StorageRepairOptions,
): Promise<StorageRepairReport> {
  const { replicas, chunkBytes } = options;
  const random = seededRandom(options.seed);
  const meter = new TrafficMeter();
  const nodes: StorageNode[] = [];
  try {
    for (const [i, identity] of options.nodes.entries()) {
      nodes.push(await storageNode(identity, join(options.dir, `storage-${i}`), meter));
    }
    const store = new ReplicatedStore(nodes.map((n) => n.remote), { replicas });
    const started = performance.now();
    const cids: string[] = [];
    for (let first = 0; first < options.chunks; first += PUT_CONCURRENCY) {
      const batch = Array.from(
        { length: Math.min(PUT_CONCURRENCY, options.chunks - first) },
        () => store.put(randomBytes(random, chunkBytes)),
      );
      cids.push(...await Promise.all(batch));
    }
    await store.flush();
    const storeMs = performance.now() - started;

    const leaving = Math.max(1, Math.round(nodes.length * options.leaveFraction));
    const departedIds = new Set(
      sampleIndices(random, nodes.length, leaving).map((i) => nodes[i].remote.id),
    );
    let lostCopies = 0;
    let lostEverywhere = 0;
    const affected: string[] = [];
    const heldBefore = new Map<string, Set<string>>();
    for (const cid of cids) {
      const holders = store.holders(cid);
      const gone = holders.filter((p) => departedIds.has(p.id)).length;
      lostCopies += gone;
      if (gone > 0) affected.push(cid);
      if (gone === holders.length) lostEverywhere++; // every copy left: nobody can repair it
      else if (gone > 0) heldBefore.set(cid, new Set(holders.map((p) => p.id)));
    }
    const departed = nodes.filter((n) => departedIds.has(n.remote.id));
    await Promise.all(departed.flatMap((n) => n.connections.map((c) => c.close())));
    const staying = nodes.filter((n) => !departedIds.has(n.remote.id));
    store.setPeers(staying.map((n) => n.remote));
    // The ideal: each copy the new placement lacks sent once. A holder that stayed keeps its
    // copy; with fewer survivors than r, a lost copy has nowhere to go and costs nothing.
    let missingCopies = 0;
    for (const [cid, before] of heldBefore) {
      missingCopies += store.holders(cid).filter((p) => !before.has(p.id)).length;
    }

    /** Run `work` (it resolves to what it repaired) and measure it on the wire. */
    const pass = async (work: () => Promise<RepairReport>): Promise<RepairPass> => {
      const before = meter.snapshot();
      const t = performance.now();
      const report = await work();
      await store.flush();
      const traffic = TrafficMeter.between(before, meter.snapshot());
      return {
        ...traffic,
        checked: report.checked,
        repaired: report.repaired,
        lost: report.lost.length,
        ms: performance.now() - t,
      };
    };
    // Each survivor runs the nodes' own HolderRepair on a store of its own (itself a local peer,
    // the others over the wire) whose peer set has just lost the departed: what it plans,
    // defers, checks and sends is what a node does. Its hand-off checks (a survivor that left a
    // chunk to a better-ranked one checks every holder again later) run on a clock moved past
    // their wait, so they are counted too.
    const clock = new SteppedClock();
    const targeted = await pass(async () => {
      const total: RepairReport = { checked: 0, repaired: 0, lost: [], failedChecks: 0 };
      const errors: unknown[] = [];
      const repairs: { repair: HolderRepair; own: ReplicatedStore }[] = [];
      for (const n of staying) {
        const before = nodes.map((m) => m === n ? n.local : m.remote);
        const own = new ReplicatedStore(before, { replicas });
        own.setPeers(before.filter((p) => !departedIds.has(p.id)));
        const repair = new HolderRepair({
          selfId: n.local.id,
          held: () => n.local.store.list(),
          read: (cid) => n.local.store.get(cid),
          clock,
          onPass: (done) => {
            total.checked += done.checked;
            total.repaired += done.repaired;
            total.lost.push(...done.lost);
            total.failedChecks += done.failedChecks;
          },
          onError: (error) => errors.push(error),
        });
        await repair.peersChanged(own, before);
        await own.flush();
        repairs.push({ repair, own });
      }
      clock.advance(HANDOFF_WAIT_MS);
      for (const { repair, own } of repairs) {
        await repair.idle();
        await own.flush();
        repair.stop();
      }
      if (errors.length > 0) throw new AggregateError(errors, "a survivor's repair failed");
      return total;
    });
    // A chunk whose holders all left has no repairer (nobody holds it): lost, not attempted.
    targeted.lost += lostEverywhere;
    const full = await pass(() => store.repair(cids, { presence: true }));

    // Checked on the nodes' own stores, not over the wire: every holder has its copy.
    const byId = new Map(staying.map((n) => [n.remote.id, n.local]));
    let underReplicated = 0;
    for (const cid of cids) {
      const holders = store.holders(cid);
      const held = await Promise.all(holders.map((p) => byId.get(p.id)!.hasChunk(cid)));
      if (holders.length < replicas || held.includes(false)) underReplicated++;
    }
    return {
      storageNodes: nodes.length,
      departed: departed.length,
      chunks: cids.length,
      chunkBytes,
      replicas,
      lostCopies,
      affectedChunks: affected.length,
      idealBytes: missingCopies * chunkBytes,
      targeted,
      full,
      underReplicated,
      storeMs,
    };
  } finally {
    await Promise.all(nodes.flatMap((n) => n.connections.map((c) => c.close())));
  }
}

async function storageNode(
  identity: Identity,
  dir: string,
  meter: TrafficMeter,
): Promise<StorageNode> {
  // Not durable: the simulation measures the wire, and a thousand fsyncs would only add noise.
  const local = new LocalStoragePeer(
    await ChunkStore.open(dir, { durable: false }),
    identity.publicKey,
  );
  const [client, server] = meter.duplexPair();
  const served = serveStoragePeer(new Connection(server, SIMULATED_CONNECTION), local);
  const connection = new Connection(client, SIMULATED_CONNECTION);
  meter.track(served);
  meter.track(connection);
  return {
    local,
    remote: new ConnectionStoragePeer(connection, identity.publicKey),
    connections: [connection, served],
  };
}

function randomBytes(random: () => number, n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const word = (random() * 2 ** 32) >>> 0;
    for (let j = 0; j < 4 && i + j < n; j++) bytes[i + j] = (word >>> (8 * j)) & 0xff;
  }
  return bytes;
}

/** Timers that fire only when {@link SteppedClock.advance} moves the clock past them. */
class SteppedClock implements RepairClock {
  #now = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  }

  clearTimeout(id: number): void {
    this.#timers.delete(id);
  }

  /** Move on by `ms` and fire the timers then due (those they set wait for the next move). */
  advance(ms: number): void {
    this.#now += ms;
    const due = [...this.#timers].filter(([, t]) => t.at <= this.#now);
    for (const [id, { fn }] of due) {
      this.#timers.delete(id);
      fn();
    }
  }
}
