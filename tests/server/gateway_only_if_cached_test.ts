/**
 * `Cache-Control: only-if-cached` on the gateway's routes (Path Gateway spec): a gateway asked so
 * answers from what it holds and never fetches from the network; data it does not hold is `412
 * Precondition Failed`, and a `HEAD` so asked is the cheap "do you have it?" probe.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore, type PutFileResult } from "../../storage/file_store.ts";
import { CountingPeer } from "./_counting_peer.ts";
import { blockMaker, readCar } from "./_gateway_node.ts";
import { onlyIfCached } from "../../server/gateway_request.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareStore } from "../../storage/share_links.ts";

// The `/ipfs` routes under `only-if-cached`. The node here has one storage peer, every block read
// from it counted: before the fix the node read from that peer whatever the header said.

const text = (s: string) => new TextEncoder().encode(s);
const ONLY_IF_CACHED = { "cache-control": "only-if-cached" };

/**
 * A node (its StorageActor holding copies here too, one storage peer) behind the HTTP edge, with:
 * `far`, a 3-chunk file only the peer holds; `dir`, a directory held here that links `near.txt`
 * (held here) and `far.txt` (a leaf only the peer holds).
 */
async function nodeWithPeer() {
  const dir = await Deno.makeTempDir();
  const peerDir = await Deno.makeTempDir();
  const peerStore = await ChunkStore.open(peerDir);
  const peer = new CountingPeer(peerStore, Identity.generate().publicKey);
  const far = await new FileStore(peerStore, { chunkSize: 1024 })
    .put(ReadableStream.from([new Uint8Array(3000).fill(7)]));
  const farLeaf = await blockMaker(peerStore).putRaw(text("only the peer has this"));
  // What this node holds, written before it starts (as `cli.ts put` into its store does).
  const local = blockMaker(await ChunkStore.open(dir));
  const nearLeaf = await local.putRaw(text("held here"));
  const directory = await local.directory([
    { name: "far.txt", cid: farLeaf },
    { name: "near.txt", cid: nearLeaf },
  ]);
  const system = new ActorSystem({ name: "only-if-cached" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        peers: [peer],
        holdHere: true,
        identity: Identity.generate(),
      }) as never,
  });
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(() => storageGateway(storage)));
  const server = serve({ app });
  return {
    far: far.cid,
    farLeaf,
    directory,
    peer,
    /** Store `bytes` through the node (its copies here and on the peer). */
    put: async (bytes: Uint8Array) =>
      unwrapReply<PutFileResult>(
        await storage.ask<StorageReply<PutFileResult>>({ type: "put_bytes", bytes }),
      ),
    /** `path` with `headers`: the response and its whole body. */
    get: async (path: string, init?: RequestInit) => {
      const response = await fetch(`${server.url}${path}`, { redirect: "manual", ...init });
      return { response, body: new Uint8Array(await response.arrayBuffer()) };
    },
    close: async () => {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(peerDir, { recursive: true });
    },
  };
}

Deno.test("only-if-cached: content only a storage peer holds is 412, GET and HEAD, and the peer is never asked", async () => {
  const node = await nodeWithPeer();
  try {
    for (const method of ["GET", "HEAD"]) {
      for (
        const path of [
          `/ipfs/${node.far}`,
          `/ipfs/${node.far}?format=raw`,
          `/ipfs/${node.far}?format=car`,
          `/ipfs/${node.far}?format=car&dag-scope=entity&entity-bytes=0:10`,
          `/ipfs/${node.directory}/far.txt`,
          `/ipfs/${node.directory}/far.txt?format=raw`,
        ]
      ) {
        const { response, body } = await node.get(path, { method, headers: ONLY_IF_CACHED });
        assert.equal(response.status, 412, `${method} ${path}`);
        if (method === "GET") {
          const error = JSON.parse(new TextDecoder().decode(body)).error;
          assert.equal(error.code, "not_cached", `${method} ${path}`);
          assert.equal(error.param, "cache-control");
          assert.match(error.message, /only-if-cached/);
        }
      }
    }
    assert.deepEqual(node.peer.asked, [], "no read went to the storage peer");
    // Without the header the node fetches it from its peer: the 412 was the header's doing.
    const fetched = await node.get(`/ipfs/${node.far}`);
    assert.equal(fetched.response.status, 200);
    assert.deepEqual(fetched.body, new Uint8Array(3000).fill(7));
    assert.ok(node.peer.asked.length > 0);
  } finally {
    await node.close();
  }
});

Deno.test("only-if-cached: content held here is served as usual (file, block, CAR, directory; GET and HEAD) without asking the peer", async () => {
  const node = await nodeWithPeer();
  try {
    const bytes = new Uint8Array(2500).map((_, i) => i % 251);
    const { cid } = await node.put(bytes); // its copies: here (holdHere) and on the peer
    node.peer.asked.length = 0;

    const file = await node.get(`/ipfs/${cid}`, { headers: ONLY_IF_CACHED });
    assert.equal(file.response.status, 200);
    assert.deepEqual(file.body, bytes);
    const range = await node.get(`/ipfs/${cid}`, {
      headers: { ...ONLY_IF_CACHED, range: "bytes=1000-1099" },
    });
    assert.equal(range.response.status, 206);
    assert.deepEqual(range.body, bytes.subarray(1000, 1100));
    const block = await node.get(`/ipfs/${cid}?format=raw`, { headers: ONLY_IF_CACHED });
    assert.equal(block.response.status, 200);
    const car = await node.get(`/ipfs/${cid}?format=car`, { headers: ONLY_IF_CACHED });
    assert.equal(car.response.status, 200);
    assert.equal((await readCar(car.body)).blocks.length, 4); // the root and its 3 leaves
    for (const path of [`/ipfs/${cid}`, `/ipfs/${cid}?format=raw`, `/ipfs/${cid}?format=car`]) {
      const head = await node.get(path, { method: "HEAD", headers: ONLY_IF_CACHED });
      assert.equal(head.response.status, 200, `HEAD ${path}`);
    }
    const head = await node.get(`/ipfs/${cid}`, { method: "HEAD", headers: ONLY_IF_CACHED });
    assert.equal(head.response.headers.get("content-length"), "2500");

    const listing = await node.get(`/ipfs/${node.directory}/`, { headers: ONLY_IF_CACHED });
    assert.equal(listing.response.status, 200);
    assert.match(new TextDecoder().decode(listing.body), /near\.txt/);
    const near = await node.get(`/ipfs/${node.directory}/near.txt`, { headers: ONLY_IF_CACHED });
    assert.equal(near.response.status, 200);
    assert.equal(new TextDecoder().decode(near.body), "held here");
    const nearHead = await node.get(`/ipfs/${node.directory}/near.txt`, {
      method: "HEAD",
      headers: ONLY_IF_CACHED,
    });
    assert.equal(nearHead.response.status, 200);
    // A name the held directory does not link is still a 404, not a 412: nothing to fetch.
    const missing = await node.get(`/ipfs/${node.directory}/nothing`, { headers: ONLY_IF_CACHED });
    assert.equal(missing.response.status, 404);

    assert.deepEqual(node.peer.asked, [], "no read went to the storage peer");
  } finally {
    await node.close();
  }
});

Deno.test("only-if-cached is read from a Cache-Control list, in any case", async () => {
  const node = await nodeWithPeer();
  try {
    for (const value of ["max-age=0, Only-If-Cached", "no-transform,only-if-cached"]) {
      const { response } = await node.get(`/ipfs/${node.far}?format=raw`, {
        method: "HEAD",
        headers: { "cache-control": value },
      });
      assert.equal(response.status, 412, value);
    }
    assert.deepEqual(node.peer.asked, []);
  } finally {
    await node.close();
  }
});

// The attacker's side of `only-if-cached`: every gateway route that reads content keeps to the
// node's own store under it, the share links' `/share/{id}/{cid}` included (it read the manifest
// and the chunk from the storage peers whatever the header said), and the directive is read as RFC
// 9111 writes a `Cache-Control` list, not inside another directive's quoted argument (`no-cache="a,
// only-if-cached"` names a header field, and was taken for the directive: a request that asked for
// a fetch got a 412).

Deno.test("red team s56: a share link's read under only-if-cached keeps to the node's own store (412 not_cached, the peer never asked)", async () => {
  const dir = await Deno.makeTempDir();
  const peerDir = await Deno.makeTempDir();
  const peerStore = await ChunkStore.open(peerDir);
  const peer = new CountingPeer(peerStore, Identity.generate().publicKey);
  // A file only the peer holds, shared from this node (its share record is local).
  const far = await new FileStore(peerStore, { chunkSize: 1024 })
    .put(ReadableStream.from([new Uint8Array(3000).fill(7)]));
  const share = await new ShareStore(dir).create(far.cid, { expiresAt: null, now: Date.now() });
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));
  const system = new ActorSystem({ name: "redteam-only-if-cached" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: 1024,
        peers: [peer],
        holdHere: true,
        identity: Identity.generate(),
        ownerKey,
      }) as never,
  });
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(() => storageGateway(storage)));
  const server = serve({ app });
  try {
    const url = `${server.url}/share/${share.id}/${far.cid}`;
    for (const method of ["GET", "HEAD"]) {
      const response = await fetch(url, {
        method,
        headers: { "cache-control": "only-if-cached" },
      });
      const body = new Uint8Array(await response.arrayBuffer());
      assert.equal(response.status, 412, method);
      if (method === "GET") {
        assert.equal(JSON.parse(new TextDecoder().decode(body)).error.code, "not_cached");
      }
    }
    assert.deepEqual(peer.asked, [], "no read went to the storage peer");
    // Without the header the node fetches it from its peer.
    const fetched = await fetch(url);
    await fetched.body?.cancel();
    assert.equal(fetched.status, 200);
    // A chunk a share does not list is still its 404 under the header (the share's manifest
    // held here): the route's own refusal, not a block this node would have fetched.
    const held = unwrapReply<PutFileResult>(
      await storage.ask<StorageReply<PutFileResult>>({
        type: "put_bytes",
        bytes: new Uint8Array(2500).fill(3),
        private: true,
      }),
    );
    const heldShare = await new ShareStore(dir).create(held.cid, {
      expiresAt: null,
      now: Date.now(),
    });
    const stray = await fetch(`${server.url}/share/${heldShare.id}/${far.cid}`, {
      headers: { "cache-control": "only-if-cached" },
    });
    await stray.body?.cancel();
    assert.equal(stray.status, 404);
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(peerDir, { recursive: true });
  }
});

Deno.test("red team s56: only-if-cached is a directive of the list, not a word inside another directive's quoted argument", () => {
  for (
    const value of [
      "only-if-cached",
      "max-age=0, only-if-cached",
      "ONLY-IF-CACHED",
      'no-cache="set-cookie", only-if-cached',
      'private="a,b" ,Only-If-Cached',
    ]
  ) assert.equal(onlyIfCached(value), true, value);
  for (
    const value of [
      undefined,
      "",
      "max-age=0",
      'no-cache="x, only-if-cached"',
      'no-cache="only-if-cached"',
      'no-cache="set-cookie, only-if-cached, x-id"',
      'private="a,only-if-cached,b"',
      'private="only-if-cached,x", max-age=0',
      "only-if-cached-not",
    ]
  ) assert.equal(onlyIfCached(value), false, String(value));
});
