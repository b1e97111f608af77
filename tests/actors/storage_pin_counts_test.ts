/**
 * The StorageActor's `file_counts` (`actors/_storage_pin_counts.ts`): the dashboard's storage
 * figures, kept by pin so an answer reads no manifest while the pins have not changed (review s74
 * F1: the dashboard's `list` read all 2000 manifests once a second).
 */
import assert from "node:assert/strict";
import { PinCounts, type PinnedFigures } from "../../actors/_storage_pin_counts.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import type { StorageAnswers } from "../../actors/storage_actor_messages.ts";
import { OwnerKey } from "../../storage/private_tier.ts";

/** A pins directory in memory whose manifest reads are counted. */
function countedSource() {
  const pins = new Map<string, PinnedFigures>();
  const source = {
    stampValue: 1,
    reads: 0,
    pins,
    stamp: () => Promise.resolve(source.stampValue),
    list: () => Promise.resolve([...pins.keys()]),
  };
  const counts = new PinCounts({
    stamp: source.stamp,
    pins: source.list,
    describe: (cid) => {
      source.reads++;
      return Promise.resolve(pins.get(cid)!);
    },
  });
  return { source, counts };
}

Deno.test("pin counts: an answer reads no manifest while the pins directory has not changed", async () => {
  const { source, counts } = countedSource();
  for (let i = 0; i < 50; i++) {
    source.pins.set(`cid${i}`, { tier: i % 2 === 0 ? "public" : "private", chunks: 3 });
  }
  assert.deepEqual(await counts.counts(), { files: 50, publicFiles: 25, chunks: 150 });
  assert.equal(source.reads, 50); // each pin read once, when first seen
  for (let i = 0; i < 10; i++) await counts.counts();
  assert.equal(source.reads, 50, "no manifest read while the stamp holds");
});

Deno.test("pin counts: a new pin reads its manifest only; an unpin reads none", async () => {
  const { source, counts } = countedSource();
  source.pins.set("a", { tier: "public", chunks: 2 });
  source.pins.set("b", { tier: "private", chunks: 4 });
  await counts.counts();
  source.pins.set("c", { tier: "public", chunks: 1 });
  source.stampValue++;
  assert.deepEqual(await counts.counts(), { files: 3, publicFiles: 2, chunks: 7 });
  assert.equal(source.reads, 3);
  source.pins.delete("b");
  source.stampValue++;
  assert.deepEqual(await counts.counts(), { files: 2, publicFiles: 2, chunks: 3 });
  assert.equal(source.reads, 3);
});

Deno.test("pin counts: stale() lists again a change the stamp missed (same millisecond)", async () => {
  const { source, counts } = countedSource();
  source.pins.set("a", { tier: "public", chunks: 2 });
  await counts.counts();
  source.pins.set("b", { tier: "public", chunks: 1 }); // the stamp did not move
  assert.equal((await counts.counts()).files, 1);
  counts.stale();
  assert.equal((await counts.counts()).files, 2);
  assert.equal(source.reads, 2);
});

Deno.test("StorageActor file_counts: follows puts and unpins as list does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const actor = new StorageActor({ dir });
    await actor.preStart();
    const put = async (text: string) => {
      const { done } = await actor.receive({
        type: "put",
        source: ReadableStream.from([new TextEncoder().encode(text)]),
      }) as PutHandle;
      return (await done).cid;
    };
    const fileCounts = async () =>
      unwrapReply<StorageAnswers["file_counts"]>(await actor.receive({ type: "file_counts" }));
    assert.deepEqual(await fileCounts(), { files: 0, publicFiles: 0, chunks: 0 });
    const first = await put("hello");
    await put("world, a second file");
    const listed = unwrapReply<StorageAnswers["list"]>(await actor.receive({ type: "list" }));
    assert.deepEqual(await fileCounts(), {
      files: listed.length,
      publicFiles: listed.filter((f) => f.tier === "public").length,
      chunks: listed.reduce((n, f) => n + f.chunks.length, 0),
    });
    assert.equal((await fileCounts()).files, 2);
    unwrapReply(await actor.receive({ type: "unpin", cid: first }));
    assert.equal((await fileCounts()).files, 1);
    await actor.postStop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pin counts: a pin that cannot be read is counted as a file, not public, and read again at the next answer (review verify4, F4)", async () => {
  const reads: string[] = [];
  let readable = false;
  const counts = new PinCounts({
    stamp: () => Promise.resolve(1),
    pins: () => Promise.resolve(["a"]),
    describe: (cid) => {
      reads.push(cid);
      return Promise.resolve(readable ? { tier: "private", chunks: 2 } : undefined);
    },
  });
  assert.deepEqual(await counts.counts(), { files: 1, publicFiles: 0, chunks: 0 });
  readable = true; // the passing reason passed; the stamp did not change
  assert.deepEqual(await counts.counts(), { files: 1, publicFiles: 0, chunks: 2 });
  assert.deepEqual(await counts.counts(), { files: 1, publicFiles: 0, chunks: 2 });
  assert.deepEqual(reads, ["a", "a"], "read again after a failure, then kept");
});

Deno.test("StorageActor: a private file sealed with another key is listed and counted as private with its manifest's chunks, as ls shows it (review verify4, F4)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sealer = new StorageActor({
      dir,
      ownerKey: await OwnerKey.fromSecret(new Uint8Array(32).fill(7)),
    });
    await sealer.preStart();
    const { done } = await sealer.receive({
      type: "put",
      source: ReadableStream.from([new Uint8Array(300_000).fill(1)]),
      private: true,
    }) as PutHandle;
    const { cid } = await done;
    await sealer.postStop();

    const actor = new StorageActor({
      dir,
      ownerKey: await OwnerKey.fromSecret(new Uint8Array(32).fill(9)),
    });
    await actor.preStart();
    const listed = unwrapReply<StorageAnswers["list"]>(await actor.receive({ type: "list" }));
    assert.deepEqual(listed.map((f) => [f.cid, f.tier]), [[cid, "private"]]);
    const chunks = listed[0].chunks.length;
    assert.ok(chunks > 0, "the sealed manifest's chunks were not listed");
    const counts = unwrapReply<StorageAnswers["file_counts"]>(
      await actor.receive({ type: "file_counts" }),
    );
    assert.deepEqual(counts, { files: 1, publicFiles: 0, chunks });
    await actor.postStop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
