/**
 * A peer's `put_chunk` reaches the StorageActor with the key its connection proved
 * (`StorageActorPeer`, as `network/peer_services.ts` builds it for each connection), and the
 * chunk is counted against that peer's fair share of what the node holds for peers: one peer
 * flooding the node no longer shuts out another's copies (`tests/storage/replica_fair_share_test.ts`
 * tests the rule itself).
 */
import * as assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { cidOf } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { REPLICA_OVERHEAD_BYTES } from "../../storage/chunk_store.ts";
import type { ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";

const CHUNK = 1000;
const ONE = CHUNK + REPLICA_OVERHEAD_BYTES;

Deno.test("storage actor: each peer's put_chunk counts against its own share of what the node holds for peers", async () => {
  const dir = await Deno.makeTempDir();
  const actor = new StorageActor({
    dir,
    identity: Identity.generate(),
    store: { replicaQuotaBytes: 10 * ONE, durable: false },
  });
  await actor.preStart();
  const asker = { ask: (m: never) => actor.receive(m) as never };
  const node = new StorageActorPeer(asker, Identity.generate().publicKey);
  const [a, b] = [toHex(Identity.generate().publicKey), toHex(Identity.generate().publicKey)];
  const send = async (from: string, seed: number, count: number) => {
    let taken = 0;
    for (let i = 0; i < count; i++) {
      const bytes = pseudoRandomBytes(CHUNK, seed + i);
      try {
        await node.putChunk(cidOf(bytes), bytes, { from });
        taken++;
      } catch (error) {
        const code = (error as ReplicaQuotaExceededError).code;
        if (code !== "replica_quota_exceeded") throw error;
      }
    }
    return taken;
  };
  try {
    assert.equal(await send(b, 1000, 1), 1);
    assert.equal(await send(a, 2000, 20), 5); // its half of ten; the rest is B's room
    assert.equal(await send(b, 3000, 6), 4);
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});
