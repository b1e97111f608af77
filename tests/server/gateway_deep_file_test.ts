/**
 * A file whose blocks lie past their first r + `READ_PEERS_PAST_HOLDERS` peers (written when
 * the network had 10 storage peers, read after 30 more joined), read whole through the gateway by a
 * keyless client elsewhere (re-read s80 RR2): many blocks are deep walks, and the client's budget
 * (`server/deep_reads.ts`) is spent only by the walks that miss. Before, each walk spent a token:
 * `200`, then the body cut after 32 blocks, 0 of the file's bytes. And one request's walks hold
 * one of the node's places, however many blocks its read-ahead reads at once (review s80 vdeep: a
 * single `GET` held all 16).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { cidOf } from "../../protocols/cid.ts";
import { createApp } from "../../server/app.ts";
import type { ClientIdentity } from "../../server/client_identity.ts";
import { DeepReads } from "../../server/deep_reads.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import type { DeepWalkGate } from "../../storage/block_store.ts";
import { DEFAULT_FILE_CONCURRENCY, FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

const R = 3;
const CHUNK = 64;
const CHUNKS = 200;
/** A keyless client elsewhere (a documentation address: `app.request` sends nothing). */
const REMOTE = { remoteAddr: { transport: "tcp", hostname: "192.0.2.7", port: 1 } } as never;

/** A budget that records the most places it had taken at once. */
class WatchedDeepReads extends DeepReads {
  mostInFlight = 0;
  walks = 0;
  override gate(client: ClientIdentity): DeepWalkGate {
    const gate = super.gate(client);
    return () => {
      const end = gate();
      this.walks++;
      this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
      return end;
    };
  }
}

Deno.test("a keyless client reads a file whose blocks walk deep, whole, as a file and a CAR; only misses spend its budget, and one request holds one node place", async () => {
  const old = Array.from({ length: 10 }, () => new MemoryPeer());
  const all = [...old, ...Array.from({ length: 30 }, () => new MemoryPeer())];
  const writer = new ReplicatedStore(old, { replicas: R, writeQuorum: R });
  const data = crypto.getRandomValues(new Uint8Array(CHUNK * CHUNKS));
  const { cid } = await new FileStore(writer, { chunkSize: CHUNK }).put(
    new Blob([data]).stream(),
  );
  await writer.flush();
  const system = new ActorSystem({ name: "gateway-deep-file" });
  const dir = await Deno.makeTempDir();
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({ dir, peers: all, replication: { replicas: R, writeQuorum: R } }) as never,
  });
  // The clock does not move: no token comes back with time, only from walks that found a block.
  // A walk holds its token while it runs: the file read's read-ahead needs that many at once.
  const burst = DEFAULT_FILE_CONCURRENCY;
  const deepReads = new WatchedDeepReads({ burst, now: () => 0 });
  try {
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(ref), { deepReads }));
    const get = (path: string) => app.request(path, undefined, REMOTE);

    let response = await get(`/ipfs/${cid}`);
    assert.equal(response.status, 200);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), data);
    // More blocks walked deep than the client has tokens (56 of 200 when measured).
    assert.ok(deepReads.walks > burst, `${deepReads.walks} deep walks`);
    // The file read's read-ahead walks many blocks at once, on one of the node's places.
    assert.equal(deepReads.mostInFlight, 1);
    assert.equal(deepReads.inFlight, 0);

    response = await get(`/ipfs/${cid}?format=car`);
    assert.equal(response.status, 200);
    assert.ok((await response.arrayBuffer()).byteLength > data.length);

    // The client's whole budget is left: `burst` reads of CIDs nobody holds, then a 429.
    for (let i = 0; i < burst; i++) {
      response = await get(`/ipfs/${cidOf(crypto.getRandomValues(new Uint8Array(32)))}`);
      await response.body?.cancel();
      assert.equal(response.status, 404);
    }
    response = await get(`/ipfs/${cidOf(crypto.getRandomValues(new Uint8Array(32)))}`);
    await response.body?.cancel();
    assert.equal(response.status, 429);
    assert.equal(deepReads.inFlight, 0);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
