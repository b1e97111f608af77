/**
 * Repair traffic after storage nodes leave: one node spreads `chunks` chunks over the storage
 * nodes with the replicated store (rendezvous placement, r copies), a fraction of the storage
 * nodes leaves, and the store restores r copies of every chunk. Every call crosses a
 * `Connection` over a metered in-memory link (`storage/connection_storage_peer.ts`), so the
 * bytes counted are the storage protocol's own.
 *
 * Two repair passes are measured. The **targeted** pass is what the nodes do
 * (`storage/holder_repair.ts`): each surviving node takes the chunks it holds that a departed
 * node was a holder of and for which it is the best-ranked survivor, asks their holders whether
 * they have them (`has_chunk`) and sends its own copy to those without. The **full** pass then
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
import { chunksToRepair } from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
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
   * The restorable lost copies × chunk size: the least any repair must send (a chunk whose
   * every holder left cannot be restored, so its copies are not counted).
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
    for (const cid of cids) {
      const gone = store.holders(cid).filter((p) => departedIds.has(p.id)).length;
      lostCopies += gone;
      if (gone > 0) affected.push(cid);
      if (gone === replicas) lostEverywhere++; // every copy left: nobody can repair it
    }
    const departed = nodes.filter((n) => departedIds.has(n.remote.id));
    await Promise.all(departed.flatMap((n) => n.connections.map((c) => c.close())));
    const staying = nodes.filter((n) => !departedIds.has(n.remote.id));
    store.setPeers(staying.map((n) => n.remote));

    const everyone = nodes.map((n) => n.remote);
    const pass = async (
      work: { cids: string[]; local?: LocalStoragePeer }[],
    ): Promise<RepairPass> => {
      const before = meter.snapshot();
      const t = performance.now();
      const report = { checked: 0, repaired: 0, lost: [] as string[] };
      for (const { cids: which, local } of work) {
        const r = await store.repair(which, {
          presence: true,
          local: local && ((cid) => local.getChunk(cid)),
        });
        report.checked += r.checked;
        report.repaired += r.repaired;
        report.lost.push(...r.lost);
      }
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
    // Each survivor repairs what it holds and is the best-ranked surviving holder of.
    const work: { cids: string[]; local?: LocalStoragePeer }[] = [];
    for (const n of staying) {
      const held: string[] = [];
      for await (const cid of n.local.store.list()) held.push(cid);
      const mine = chunksToRepair(held, everyone, store.peers, n.remote.id, replicas);
      if (mine.length > 0) work.push({ cids: mine, local: n.local });
    }
    // A chunk no survivor holds is lost: the check below counts it.
    const targeted = await pass(work);
    // A chunk whose holders all left has no repairer (nobody holds it): lost, not attempted.
    targeted.lost += lostEverywhere;
    const full = await pass([{ cids }]);

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
      idealBytes: (lostCopies - replicas * lostEverywhere) * chunkBytes,
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
