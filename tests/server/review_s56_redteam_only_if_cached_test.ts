/**
 * Review s56 (red team) of `Cache-Control: only-if-cached` (6064499): every gateway route that
 * reads content keeps to the node's own store under it, the share links' `/share/{id}/{cid}`
 * included (it read the manifest and the chunk from the storage peers whatever the header said),
 * and the directive is read as RFC 9111 writes a `Cache-Control` list, not inside another
 * directive's quoted argument (`no-cache="a, only-if-cached"` names a header field, and was taken
 * for the directive: a request that asked for a fetch got a 412).
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
import { onlyIfCached } from "../../server/gateway_request.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore, type PutFileResult } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareStore } from "../../storage/share_links.ts";
import { CountingPeer } from "./_counting_peer.ts";

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
