/**
 * What a peer's `prove` makes a node keep. A chunk proven to a peer is one that peer counts as
 * given from then on (`storage_audit_test.ts`: a node that dropped it on unpinning its own file was
 * blamed), so the node keeps it for the network, as a replica. Before, it did so for every chunk
 * anyone asked about, counted for no peer: one `prove` naming a node's public chunks (their CIDs
 * are in share links, gateway URLs, CARs) made them permanent, and its owner's unpin and gc freed
 * nothing (review B of stop 70, finding 2). Now a proven chunk is kept only where this node ranks
 * among the chunk's holders, as a writer's placement puts copies, and charged to the asker, as a
 * `put_chunk` of that peer's would be.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor, type StorageActorOptions } from "../../actors/storage_actor.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import {
  type PutHandle,
  type StorageCapacity,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { STORAGE_PROTOCOL } from "../../protocols/storage_messages.ts";
import { ChunkStore, REPLICA_OVERHEAD_BYTES } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import type { FileInfo } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

const CHUNK = 1024;
const CHUNKS = 64;
const REPLICAS = 3;

/** A fixed identity per `n`: the rendezvous ranks below are the same on every run. */
const identityOf = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));

/** A StorageActor over a fresh directory, started. */
async function storageNode(options: Partial<StorageActorOptions> = {}) {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({
    dir,
    chunkSize: CHUNK,
    identity: identityOf(1),
    store: { durable: false },
    ...options,
  });
  await actor.preStart();
  return { dir, actor };
}

/** Put a public file of {@link CHUNKS} chunks; its root and chunks. */
async function putFile(actor: StorageActor, seed: number) {
  const source = streamOf(pseudoRandomBytes(CHUNKS * CHUNK, seed));
  const { cid } = await (await actor.receive({ type: "put", source }) as PutHandle).done;
  const info = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
  assert.equal(info.chunks.length, CHUNKS);
  return { cid, chunks: info.chunks };
}

/** Ask `actor` to prove `cids`, as the peer `from`; the count of chunks proven. */
async function proveAs(actor: StorageActor, cids: string[], from?: string): Promise<number> {
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const proofs = unwrapReply<(Uint8Array | null)[]>(
    await actor.receive({ type: "prove", nonce, cids, from }),
  );
  return proofs.filter((p) => p !== null).length;
}

async function unpinAndCollect(actor: StorageActor, cid: string): Promise<StorageCapacity> {
  assert.equal(unwrapReply(await actor.receive({ type: "unpin", cid })), true);
  unwrapReply(await actor.receive({ type: "gc", graceMs: 0 }));
  return unwrapReply<StorageCapacity>(await actor.receive({ type: "capacity" }));
}

Deno.test("a stranger's prove of a node's own public chunks keeps none of them past the owner's unpin and gc", async () => {
  const { dir, actor } = await storageNode();
  try {
    const file = await putFile(actor, 5);
    const stranger = toHex(identityOf(9).publicKey);
    assert.equal(await proveAs(actor, file.chunks, stranger), CHUNKS, "the proofs still stand");
    const after = await unpinAndCollect(actor, file.cid);
    assert.equal(after.replicaCount, 0, "none became a replica");
    assert.equal(after.objectCount, 0, "the owner's unpinned file is freed");
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a chunk a peer gave stays through a prove, the unpin of the node's own file and gc", async () => {
  const { dir, actor } = await storageNode();
  const giver = toHex(identityOf(7).publicKey);
  try {
    const file = await putFile(actor, 6);
    const bytes = pseudoRandomBytes(CHUNK, 99);
    const foreign = cidOf(bytes);
    unwrapReply(await actor.receive({ type: "put_chunk", cid: foreign, bytes, from: giver }));
    assert.equal(await proveAs(actor, [foreign, ...file.chunks], giver), CHUNKS + 1);
    const after = await unpinAndCollect(actor, file.cid);
    assert.equal(after.replicaCount, 1);
    assert.equal(after.objectCount, 1, "the peer's chunk, and nothing of the unpinned file");
    assert.deepEqual(unwrapReply(await actor.receive({ type: "get_chunk", cid: foreign })), bytes);
  } finally {
    await actor.postStop();
  }
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    assert.equal(store.heldFor(giver), CHUNK + REPLICA_OVERHEAD_BYTES, "still its giver's");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a chunk proven over a connection is kept where the node ranks among its holders, charged to the asker's key; the rest of the unpinned file goes", async () => {
  const dirs: string[] = [];
  const self = identityOf(1);
  const peers = await Promise.all([2, 3, 4].map(async (n) => {
    const dir = await Deno.makeTempDir();
    dirs.push(dir);
    return new LocalStoragePeer(
      await ChunkStore.open(dir, { durable: false }),
      identityOf(n).publicKey,
    );
  }));
  const { dir, actor } = await storageNode({
    holdHere: true,
    replication: { replicas: REPLICAS, writeQuorum: 2 },
  });
  dirs.push(dir);
  // The asker reaches the node over a connection its handshake authenticates, as on a network.
  const asker = identityOf(8);
  const [a, b] = memoryDuplexPair();
  const [client, server] = await Promise.all([
    Connection.open(a, { identity: asker, protocols: [STORAGE_PROTOCOL] }),
    Connection.open(b, { identity: self, protocols: [STORAGE_PROTOCOL] }),
  ]);
  const ref = { ask: (m: never) => actor.receive(m) as never };
  serveStoragePeer(server, new StorageActorPeer(ref, asker.publicKey));
  const node = new ConnectionStoragePeer(client, self.publicKey);
  let ranked: string[] = [];
  try {
    // Put while the node has no peers: every chunk is here. Then its peers come.
    const file = await putFile(actor, 7);
    unwrapReply(await actor.receive({ type: "set_peers", peers }));
    const selfId = toHex(self.publicKey);
    const everyone = [{ id: selfId }, ...peers];
    ranked = file.chunks.filter((c) =>
      rankPeers(c, everyone).slice(0, REPLICAS).some((p) => p.id === selfId)
    );
    assert.ok(ranked.length > 0 && ranked.length < CHUNKS, "some chunks are the node's to hold");
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const proofs = await node.proveChunks(nonce, file.chunks);
    assert.equal(proofs.filter((p) => p !== null).length, CHUNKS, "every chunk is proven");
    const after = await unpinAndCollect(actor, file.cid);
    assert.equal(after.replicaCount, ranked.length, "the chunks it holds for the asker");
    assert.equal(after.objectCount, ranked.length, "and nothing else of the unpinned file");
    await actor.repairIdle();
  } finally {
    await client.close();
    await server.close();
    await actor.postStop();
    for (const peer of peers) await peer.settled();
  }
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    for (const cid of ranked) assert.ok(await store.isReplica(storageKey(cid)), cid);
    assert.equal(
      store.heldFor(toHex(asker.publicKey)),
      ranked.length * (CHUNK + REPLICA_OVERHEAD_BYTES),
      "counted against the asker's share, as its put_chunk would be",
    );
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
