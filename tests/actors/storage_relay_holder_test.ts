/**
 * A holder that keeps nothing and relays (review s71, finding 1): it acknowledged the owner's
 * `put_chunk`, threw the bytes away, and answered every audit by fetching the chunk from the owner,
 * its auditor, over `get_chunk` — and passed, while the chunk's r copies were the owner's one. Now
 * the owner answers a holder it gave the chunk `chunk_not_found`, places it last for that chunk, and
 * repairs the copy onto the next peer; anyone else is still served.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import type { FileInfo } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { eventually } from "../_helpers/wait.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { CHUNK, identityOf, putFile, reach } from "../storage/_audit_owner.ts";

const CHUNKS = 16;
const REPLICAS = 3;

Deno.test("a holder the owner gave a chunk is refused it, placed last for it, and the copy goes to the next peer; a stranger is still served", async () => {
  const owner = identityOf(1);
  const stores = await Promise.all(
    [2, 3, 4, 5, 6].map(async () =>
      await ChunkStore.open(await Deno.makeTempDir(), { durable: false })
    ),
  );
  const peers = stores.map((store, i) => new LocalStoragePeer(store, identityOf(i + 2).publicKey));
  const actor = new StorageActor({
    dir: await Deno.makeTempDir(),
    chunkSize: CHUNK,
    identity: owner,
    store: { durable: false },
    holdHere: true,
    replication: { replicas: REPLICAS, writeQuorum: REPLICAS },
  });
  await actor.preStart();
  const links: { close(): Promise<void> }[] = [];
  try {
    unwrapReply(await actor.receive({ type: "set_peers", peers }));
    const cid = await putFile(actor, pseudoRandomBytes(CHUNKS * CHUNK, 71));
    const { chunks } = unwrapReply<FileInfo>(await actor.receive({ type: "stat", cid }));
    // A chunk the owner holds too (what the relay fetches), with a remote holder (the relay) and
    // a remote peer past its holders (the next).
    const everyone = [{ id: toHex(owner.publicKey) }, ...peers];
    let pick: { chunk: string; relay: number; next: number } | undefined;
    for (const chunk of chunks) {
      const ranked = rankPeers(chunk, everyone).map((p) => peers.findIndex((q) => q.id === p.id));
      const relay = ranked.slice(0, REPLICAS).find((i) => i >= 0);
      const next = ranked.slice(REPLICAS).find((i) => i >= 0);
      const ownerHolds = ranked.slice(0, REPLICAS).includes(-1);
      if (ownerHolds && relay !== undefined && next !== undefined) pick = { chunk, relay, next };
      if (pick) break;
    }
    assert.ok(pick, "some chunk has the owner and a remote peer among its holders, and one past");
    const { chunk, relay, next } = pick;
    const key = storageKey(chunk);
    assert.ok(await stores[relay].has(key), "the relay was given it");
    assert.equal(await stores[next].has(key), false, "the next peer was not");
    // The relay drops its copy, then asks the owner for it to answer an audit.
    const relayLink = await reach(actor, owner, identityOf(relay + 2));
    links.push(relayLink);
    await assert.rejects(
      relayLink.peer.getChunk(chunk),
      (e: { code?: string }) => e.code === "chunk_not_found",
    );
    // The copy it said it lost is put on the next peer.
    await eventually(() => stores[next].has(key), "the chunk repaired onto the next peer");
    // A peer that is not its holder reads it as before.
    const strangerLink = await reach(actor, owner, identityOf(9));
    links.push(strangerLink);
    assert.equal((await strangerLink.peer.getChunk(chunk)).length, CHUNK);
    assert.equal(await strangerLink.peer.hasChunk(chunk), true);
  } finally {
    for (const link of links) await link.close();
    await actor.repairIdle();
    await actor.postStop();
    for (const peer of peers) await peer.settled();
  }
});

Deno.test("a node reading a chunk it holds for another node reads its own copy, asking no peer: an honest holder never asks the owner for a chunk it was given", async () => {
  const stores = await Promise.all(
    [2, 3, 4].map(async () => await ChunkStore.open(await Deno.makeTempDir(), { durable: false })),
  );
  const asked: string[] = [];
  const peers = stores.map((store, i) => {
    const peer = new LocalStoragePeer(store, identityOf(i + 2).publicKey);
    const getChunk = peer.getChunk.bind(peer);
    peer.getChunk = (cid, options) => {
      asked.push(cid);
      return getChunk(cid, options);
    };
    return peer;
  });
  const actor = new StorageActor({
    dir: await Deno.makeTempDir(),
    chunkSize: CHUNK,
    identity: identityOf(1),
    store: { durable: false },
    holdHere: true,
    replication: { replicas: 4, writeQuorum: 4 },
  });
  await actor.preStart();
  try {
    unwrapReply(await actor.receive({ type: "set_peers", peers }));
    // Chunks the first peer (their owner) gave this node, and also holds itself: each read could
    // ask the owner, as a replicated read asks two replicas at once in rank order.
    const owner = toHex(identityOf(2).publicKey);
    for (let n = 0; n < CHUNKS; n++) {
      const bytes = pseudoRandomBytes(CHUNK, 100 + n);
      const cid = await stores[0].put(bytes);
      for (const store of stores) await store.put(bytes);
      unwrapReply(await actor.receive({ type: "put_chunk", cid, bytes, from: owner }));
      assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), bytes);
    }
    assert.deepEqual(asked, [], "a peer was asked for a chunk this node holds for another");
  } finally {
    await actor.repairIdle();
    await actor.postStop();
    for (const peer of peers) await peer.settled();
  }
});
