/**
 * A keyless `GET /ipfs/{cid}` of a CID nobody holds, on a node with many storage peers: a `404`
 * after the chunk's r holders and at most `READ_PEERS_PAST_HOLDERS` more were asked, not one call
 * to every storage peer (review s80 F1: 40 peers, 40 calls per anonymous request).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { cidOf } from "../../protocols/cid.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { READ_PEERS_PAST_HOLDERS } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

class CountingPeer extends MemoryPeer {
  reads = 0;
  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.reads++;
    return super.getChunk(cid, options);
  }
}

Deno.test("a keyless GET /ipfs/{cid} nobody holds is a 404 after r + READ_PEERS_PAST_HOLDERS peer calls, of 40 peers", async () => {
  const replicas = 3;
  const peers = Array.from({ length: 40 }, () => new CountingPeer());
  const system = new ActorSystem({ name: "gateway-miss-bound" });
  const dir = await Deno.makeTempDir();
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({ dir, peers, replication: { replicas, writeQuorum: replicas } }) as never,
  });
  try {
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(ref)));
    const unheld = cidOf(crypto.getRandomValues(new Uint8Array(32)));
    const response = await app.request(`/ipfs/${unheld}`, undefined, {
      remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    } as never);
    await response.body?.cancel();
    assert.equal(response.status, 404);
    // Every peer that was asked, and no other (was all 40).
    const asked = peers.filter((p) => p.reads > 0);
    assert.equal(asked.length, replicas + READ_PEERS_PAST_HOLDERS);
    assert.ok(asked.every((p) => p.reads === 1));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
