/**
 * `storageGateway(ref).leavesReadable` (`actors/storage_actor_peer.ts`), what the file routes'
 * check before their `200` asks the StorageActor (review s76 vcar F1, F3): a node's leaves in one
 * ask, answered with the first no read can get; on a node with storage peers, which are not
 * asked, an answer that it checks nothing, so the route stops walking.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageAsker, storageGateway } from "../../actors/storage_actor_peer.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { removePeers, trackedPeer } from "../storage/_tracked_peer.ts";

/** A StorageActor in `dir` (with `peers`, replicas 2), its port, and a count of its asks. */
async function node(dir: string, peers?: StoragePeer[]) {
  const system = new ActorSystem({ name: "leaves-readable" });
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        ...(peers ? { replication: { replicas: 2, writeQuorum: 2 } } : {}),
      }),
  });
  if (peers) await ref.ask({ type: "set_peers", peers });
  const counted = { asks: 0 };
  const asker: StorageAsker = {
    ask: (message, options) => {
      counted.asks++;
      return ref.ask(message, options);
    },
  };
  return { system, port: storageGateway(asker), counted };
}

/** 5,000 bytes in 1 KiB leaves: the leaves' CIDs (the file is put through the port). */
function leavesOf(data: Uint8Array): string[] {
  const leaves: string[] = [];
  for (let at = 0; at < data.length; at += 1024) {
    leaves.push(cidOf(data.subarray(at, at + 1024), RAW_CODEC));
  }
  return leaves;
}

const NEVER_STORED = cidOf(new TextEncoder().encode("never stored"), RAW_CODEC);

Deno.test("leavesReadable answers a node's leaves in one ask: the first not held here is missing, without peers", async () => {
  const dir = await Deno.makeTempDir();
  const { system, port, counted } = await node(dir);
  try {
    const data = pseudoRandomBytes(5000, 11);
    await port.put(streamOf(data), {});
    const leaves = leavesOf(data);
    counted.asks = 0;
    assert.deepEqual(await port.leavesReadable!(leaves), { checks: true });
    const holed = [...leaves.slice(0, 2), NEVER_STORED, ...leaves.slice(2)];
    assert.deepEqual(await port.leavesReadable!(holed), { missing: NEVER_STORED, checks: true });
    assert.equal(counted.asks, 2);
    assert.equal(await port.mayRead!(NEVER_STORED), false);
    assert.equal(await port.mayRead!(leaves[0]), true);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with storage peers (not asked) leavesReadable says it checks nothing; only-if-cached still checks", async () => {
  const dir = await Deno.makeTempDir();
  const peers = [await trackedPeer(), await trackedPeer()];
  const { system, port } = await node(dir, peers);
  try {
    // No leaf here, none on the peers: a read would fail, but the peers are not asked per leaf.
    assert.deepEqual(await port.leavesReadable!([NEVER_STORED]), { checks: false });
    assert.deepEqual(
      await port.leavesReadable!([NEVER_STORED], { local: true }),
      { missing: NEVER_STORED, checks: true },
    );
  } finally {
    await system.shutdown();
    await removePeers(peers);
    await Deno.remove(dir, { recursive: true });
  }
});
