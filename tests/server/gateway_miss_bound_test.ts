/**
 * The gateway's reads of blocks no first storage peer holds (review s80 F1, vgw F1): a read walks
 * past a chunk's r holders and `READ_PEERS_PAST_HOLDERS` more through every peer in rank (a copy
 * handed on past full peers is served: it was a `404` on every node but its writer), and that deep
 * walk that misses spends the client's budget (`server/deep_reads.ts`): over it, a keyless `GET /ipfs/{cid}` is
 * `429 too_many_deep_reads` with `Retry-After` after r + 3 peer calls, never a `404` for a block
 * that may exist (one keyless GET of a CID nobody holds asked all 40 peers each time).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { cidOf } from "../../protocols/cid.ts";
import { createApp } from "../../server/app.ts";
import { DeepReads } from "../../server/deep_reads.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { READ_PEERS_PAST_HOLDERS, ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

const R = 3;

class CountingPeer extends MemoryPeer {
  reads = 0;
  full = false;
  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.reads++;
    return super.getChunk(cid, options);
  }
  override putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    if (this.full) return Promise.reject(new ReplicaQuotaExceededError(bytes.length, "the cap"));
    return super.putChunk(cid, bytes, options);
  }
}

/** A keyless client elsewhere (a documentation address: `app.request` sends nothing). */
const REMOTE = { remoteAddr: { transport: "tcp", hostname: "192.0.2.7", port: 1 } } as never;
/** Another keyless client. */
const OTHER = { remoteAddr: { transport: "tcp", hostname: "192.0.2.8", port: 1 } } as never;
/** This machine's tools: not budgeted. */
const LOCAL = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } } as never;

async function withGateway(
  peers: CountingPeer[],
  deepReads: DeepReads,
  body: (get: (cid: string, env: never) => Promise<Response>) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "gateway-miss-bound" });
  const dir = await Deno.makeTempDir();
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({ dir, peers, replication: { replicas: R, writeQuorum: R } }) as never,
  });
  try {
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(ref), { deepReads }));
    await body(async (cid, env) => await app.request(`/ipfs/${cid}`, undefined, env));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

function randomCid(): string {
  return cidOf(crypto.getRandomValues(new Uint8Array(32)));
}

Deno.test("a keyless GET /ipfs/{cid} nobody holds spends a deep walk; over the client's budget it is a 429 with Retry-After after r + READ_PEERS_PAST_HOLDERS peer calls", async () => {
  const peers = Array.from({ length: 40 }, () => new CountingPeer());
  const asked = () => peers.reduce((n, p) => n + p.reads, 0);
  const deepReads = new DeepReads({ burst: 1, perSecond: 0.1, now: () => 0 });
  await withGateway(peers, deepReads, async (get) => {
    let response = await get(randomCid(), REMOTE);
    await response.body?.cancel();
    assert.equal(response.status, 404);
    assert.equal(asked(), 40); // every peer, once
    for (const peer of peers) peer.reads = 0;
    response = await get(randomCid(), REMOTE);
    const body = await response.json();
    assert.equal(response.status, 429);
    assert.equal(body.error.code, "too_many_deep_reads");
    assert.equal(response.headers.get("retry-after"), "10");
    assert.equal(asked(), R + READ_PEERS_PAST_HOLDERS);
    // This machine's tools are not budgeted; no deep walk is left in flight.
    response = await get(randomCid(), LOCAL);
    await response.body?.cancel();
    assert.equal(response.status, 404);
    assert.equal(deepReads.inFlight, 0);
  });
});

Deno.test("GET /ipfs/{cid} of a block a put handed past full holders is served by a node that did not write it; over budget a 429, never a 404", async () => {
  // Review vgw F1: 40 peers, 20 full at write time; the 3 copies lie past the first r + 3 in rank.
  const peers = Array.from({ length: 40 }, () => new CountingPeer());
  for (const peer of peers.slice(0, 20)) peer.full = true;
  const writer = new ReplicatedStore(peers, { replicas: R, writeQuorum: R });
  let bytes: Uint8Array | undefined;
  let cid = "";
  for (let i = 0; i < 5000 && !bytes; i++) {
    const candidate = new TextEncoder().encode(`public block ${i}`);
    const placed = writer.placement(cidOf(candidate)).slice(0, R + READ_PEERS_PAST_HOLDERS);
    if (placed.every((p) => (p as CountingPeer).full)) {
      cid = await writer.put(candidate);
      bytes = candidate;
    }
  }
  assert.ok(bytes);
  await writer.flush();
  assert.equal(peers.filter((p) => p.chunks.has(cid)).length, R);
  const deepReads = new DeepReads({ burst: 1, perSecond: 0.1, now: () => 0 });
  await withGateway(peers, deepReads, async (get) => {
    // A client that spent its budget on a CID nobody holds: the block is a 429, not a 404 a
    // cache would keep.
    let response = await get(randomCid(), REMOTE);
    await response.body?.cancel();
    assert.equal(response.status, 404);
    response = await get(cid, REMOTE);
    await response.body?.cancel();
    assert.equal(response.status, 429);
    // Another client with budget left is served the block (it was a 404). A deep walk that finds
    // its block gives the token back (re-read s80 RR2: each spent one, and a file whose blocks lie
    // deep was cut after 32): its one token is still there for a miss, and only then spent.
    response = await get(cid, OTHER);
    assert.equal(response.status, 200);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);
    response = await get(randomCid(), OTHER);
    await response.body?.cancel();
    assert.equal(response.status, 404);
    response = await get(randomCid(), OTHER);
    await response.body?.cancel();
    assert.equal(response.status, 429);
    assert.equal(deepReads.inFlight, 0);
  });
});
