/**
 * A node whose replica quota was nearly full under the old charge of 512 B a copy is over it under
 * `REPLICA_OVERHEAD_BYTES` (8,704 B) after the upgrade (review s75 verify, finding 6): it keeps and
 * serves what it holds, and refuses new replicas while over, with a message that names the chunk's
 * size and the charge apart (it called a 256 KiB chunk "a chunk of 270848 bytes").
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { REPLICA_OVERHEAD_BYTES } from "../../storage/_chunk_costs.ts";
import { ChunkStore, OBJECT_OVERHEAD_BYTES } from "../../storage/chunk_store.ts";
import { StorageError } from "../../storage/errors.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";

const CHUNK = 256 * 1024;
/** Replicas written before the upgrade: enough that 8 KiB more each passes the old quota. */
const HELD = 4;
const GIVER_A = "aa".repeat(32);
const GIVER_B = "bb".repeat(32);

/** A distinct 256 KiB chunk per seed. */
function chunk(seed: number): Uint8Array {
  const bytes = new Uint8Array(CHUNK);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = seed;
  return bytes;
}

Deno.test("after the upgrade a node full under the old 512 B charge keeps its replicas and refuses new ones, naming the chunk and its charge apart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "replica-upgrade-" });
  try {
    {
      // The disk holds the same whatever the charge: written with room to spare.
      const store = await ChunkStore.open(dir, { replicaQuotaBytes: 64 << 20, durable: false });
      const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
      for (let i = 0; i < HELD; i++) {
        await peer.putChunk(cidOf(chunk(i)), chunk(i), { from: GIVER_A });
      }
      await peer.settled();
    }
    // Exactly full under the old charge.
    const oldQuota = HELD * (CHUNK + OBJECT_OVERHEAD_BYTES);
    const store = await ChunkStore.open(dir, { replicaQuotaBytes: oldQuota, durable: false });
    const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
    try {
      assert.equal((await store.stats()).replicaBytes, HELD * (CHUNK + REPLICA_OVERHEAD_BYTES));
      assert.deepEqual(await store.get(cidOf(chunk(1))), chunk(1));
      await peer.putChunk(cidOf(chunk(1)), chunk(1), { from: GIVER_A }); // a repair re-put: held
      const refused = await peer.putChunk(cidOf(chunk(100)), chunk(100), { from: GIVER_B })
        .then(() => null, (e: unknown) => e);
      assert.ok(refused instanceof StorageError, String(refused));
      assert.equal(refused.code, "replica_quota_exceeded");
      assert.match(
        refused.message,
        new RegExp(
          `a chunk of ${CHUNK} bytes, charged ${CHUNK + REPLICA_OVERHEAD_BYTES} ` +
            `\\(its bytes and ${REPLICA_OVERHEAD_BYTES} per copy held for a peer\\)`,
        ),
      );
    } finally {
      await peer.settled();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
