/**
 * A round draws each holder's chunks by position from its record, without copying it (review s81
 * vaudit, F4): the work of planning grows with the peers, not with what they were given. And the
 * record read by position (`GivenChunks.recordOf`) stays the record as chunks are added and
 * forgotten.
 */
import assert from "node:assert/strict";
import {
  AUDIT_CHUNKS_PER_HOLDER,
  AUDIT_DRAWS_PER_HOLDER,
  planFromGiven,
} from "../../storage/audit_round.ts";
import { GivenChunks } from "../../storage/given_chunks.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import type { IndexedChunks } from "../../storage/_indexed_keys.ts";

const peerOf = (id: string) => ({ id }) as StoragePeer;

/** A record of `size` chunks that counts its reads and refuses to be copied whole. */
function countedRecord(id: string, size: number) {
  const record = {
    reads: 0,
    length: size,
    at(index: number): string | undefined {
      record.reads++;
      return index >= 0 && index < size ? `${id}-chunk-${index}` : undefined;
    },
    [Symbol.iterator](): Iterator<string> {
      throw new Error("the whole record was copied");
    },
  };
  return record;
}

Deno.test("planning a round reads at most the draws' worth of each holder's record, however large", () => {
  const ids = ["p0", "p1", "p2", "p3"];
  const records = new Map(ids.map((id) => [id, countedRecord(id, 1_000_000)]));
  const plan = planFromGiven(
    ids.map(peerOf),
    (id): IndexedChunks => records.get(id)!,
    // Only every 50th chunk still counts: the draws run out before the chunks asked do.
    {
      holders: (cid) => Number(cid.split("-")[2]) % 50 === 0 ? ids.map(peerOf) : [],
      wasGiven: () => true,
    },
  );
  const bound = 2 * AUDIT_CHUNKS_PER_HOLDER * AUDIT_DRAWS_PER_HOLDER; // two reads a draw
  for (const [id, record] of records) {
    assert.ok(record.reads <= bound, `${id}: ${record.reads} reads, bound ${bound}`);
  }
  for (const { peer, cids } of plan) {
    assert.ok(cids.length <= AUDIT_CHUNKS_PER_HOLDER);
    assert.equal(new Set(cids).size, cids.length, "no chunk drawn twice");
    for (const cid of cids) {
      assert.ok(cid.startsWith(`${peer.id}-chunk-`) && Number(cid.split("-")[2]) % 50 === 0);
    }
  }
});

Deno.test("a draw over a small record takes every chunk that counts, once", () => {
  const record = ["k0", "k1", "k2", "k3", "k4", "k5"];
  for (let n = 0; n < 50; n++) {
    const [only] = planFromGiven([peerOf("a")], () => record, {
      holders: (cid) => cid === "k0" || cid === "k4" ? [peerOf("a")] : [],
      wasGiven: () => true,
    });
    assert.deepEqual([...only.cids].sort(), ["k0", "k4"]);
  }
});

Deno.test("GivenChunks.recordOf reads the record by position as chunks are added and forgotten", async () => {
  const given = new GivenChunks();
  const keys = Array.from({ length: 20 }, (_, i) => `chunk-${i}`);
  for (const key of keys) given.add("a", key);
  await given.forget(["chunk-0", "chunk-7", "chunk-19"]);
  given.add("a", "chunk-20");
  const record = given.recordOf("a");
  const read = Array.from({ length: record.length }, (_, i) => record.at(i)!);
  const expected = [
    ...keys.filter((k) => !["chunk-0", "chunk-7", "chunk-19"].includes(k)),
    "chunk-20",
  ];
  assert.deepEqual([...read].sort(), [...expected].sort());
  assert.deepEqual([...given.chunksOf("a")].sort(), [...expected].sort());
  for (const key of expected) assert.ok(given.has("a", key));
  assert.ok(!given.has("a", "chunk-7"));
  assert.equal(given.recordOf("nobody").length, 0);
  await given.close();
});
