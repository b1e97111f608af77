/**
 * Pinning a file whose blocks come from the peers (another node put it) records each block this
 * node fetches in a `pending/<id>` file before it stores it (`storage/pending_put.ts`), as a put
 * does, so a `gc --grace-ms 0` beside the node (`cli.ts gc`, another process's store on the same
 * directory) between the fetch and the pin takes nothing. Before, the pin stored the file's root
 * and inner nodes unrooted, one network read after another, and only then pinned: a collector
 * running in between took them, and the pin failed `chunk_not_found` (or, with only an inner node
 * taken, pinned a root over a hole that stopped every later GC). The race is driven, not hoped for:
 * a peer runs the collector before it answers each read.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { isDagNode } from "../../storage/dag_links.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

/** Small chunks: a file of {@link CHUNKS} of them has a root over inner nodes (174 links each). */
const CHUNK = 1024;
const CHUNKS = 200;

/** A holder that, once armed, runs a collector over the pinning node's store before each read. */
class CollectingPeer extends MemoryPeer {
  collector: ChunkStore | undefined;
  passes = 0;

  override async getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    if (this.collector) {
      await this.collector.gc({ graceMs: 0 }); // `cli.ts gc --grace-ms 0`, between two fetches
      this.passes++;
    }
    return await super.getChunk(cid, options);
  }
}

Deno.test("pinning a file fetched from the peers while gc --grace-ms 0 runs between the fetches keeps every block it fetched, and the pin succeeds", async () => {
  const dir = await Deno.makeTempDir();
  const peers = [new CollectingPeer(), new CollectingPeer()];
  const replication = { replicas: 2, writeQuorum: 2 };
  const actor = new StorageActor({
    dir,
    chunkSize: CHUNK,
    store: { durable: false },
    peers,
    replication,
  });
  try {
    await actor.preStart();
    // Another node put the file on these peers: this node holds none of it.
    const elsewhere = new ReplicatedStore(peers, replication);
    const data = pseudoRandomBytes(CHUNKS * CHUNK, 3);
    const { cid } = await new FileStore(elsewhere, { chunkSize: CHUNK }).put(streamOf(data));
    await elsewhere.flush();
    const nodes = (await new FileStore(elsewhere).blocks(cid)).filter(isDagNode).map(storageKey);
    assert.ok(nodes.length >= 3, "a root over inner nodes");

    const collector = await ChunkStore.open(dir, { durable: false });
    for (const peer of peers) peer.collector = collector;
    const reply = await actor.receive({ type: "pin", cid });
    assert.equal(unwrapReply<boolean>(reply), true);
    assert.ok(
      peers[0].passes + peers[1].passes >= nodes.length,
      "the collector ran between fetches",
    );
    for (const peer of peers) peer.collector = undefined;

    // Pinned whole: a collector after it takes none of the root and inner nodes, and reads them.
    const after = await collector.gc({ graceMs: 0 });
    assert.deepEqual(after.unreadableRoots, [], "a pin over a hole");
    const reader = await ChunkStore.open(dir, { durable: false });
    for (const node of nodes) assert.ok(await reader.has(node), `${node} was taken`);
    assert.deepEqual(await reader.pins(), [cid]);
    assert.deepEqual(
      unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid })),
      data,
    );
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});
