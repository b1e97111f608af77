/**
 * A peer pushing tiny chunks nobody asked for fills at most about the replica quota on disk
 * (review s75, finding 3): each copy's `replicas/` record takes a whole disk block, and a push at a
 * time a pack file of its own, which the charge of 512 bytes per copy left out (10x the quota).
 * Measured with what the files really occupy (`Deno.stat`'s `blocks`), not their lengths.
 */
import * as assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ReplicaQuotaExceededError } from "../../storage/errors.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";

/** The replica quota of the flood: small, so it fills in a few hundred pushes at most. */
const QUOTA = 256 * 1024;
/** What the disk may hold past the quota: directories and the last pack's unused block. */
const SLACK = 1.25;
/** Pushes that could not all fit under the quota at the old charge of ~520 bytes each. */
const MAX_PUSHES = 2 * QUOTA / 512;

/** Bytes the files under `dir` occupy on disk: their blocks of 512 bytes (Linux `st_blocks`). */
async function diskBytes(dir: string): Promise<number> {
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) bytes += await diskBytes(path);
    else if (entry.isFile) bytes += ((await Deno.stat(path)).blocks ?? 0) * 512;
  }
  return bytes;
}

for (const inFlight of [1, 8]) {
  Deno.test(`a flood of tiny put_chunks, ${inFlight} at a time, stays within the replica quota on disk`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "tiny-flood-" });
    try {
      const store = await ChunkStore.open(dir, { replicaQuotaBytes: QUOTA, durable: false });
      const peer = new LocalStoragePeer(store, Identity.generate().publicKey);
      const giver = "ab".repeat(32);
      const before = await diskBytes(dir);
      let refused = false;
      for (let i = 0; i < MAX_PUSHES / inFlight && !refused; i++) {
        try {
          await Promise.all(Array.from({ length: inFlight }, (_, j) => {
            const bytes = new TextEncoder().encode(`${i}.${j}`);
            return peer.putChunk(cidOf(bytes), bytes, { from: giver });
          }));
        } catch (error) {
          if (!(error instanceof ReplicaQuotaExceededError)) throw error;
          refused = true;
        }
      }
      await peer.settled();
      assert.equal(refused, true, "the quota never refused a push");
      const taken = await diskBytes(dir) - before;
      assert.ok(
        taken <= SLACK * QUOTA,
        `${taken} bytes on disk for a ${QUOTA}-byte replica quota (${(taken / QUOTA).toFixed(2)}x)`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
