import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ChunkNotFoundError, CorruptChunkError } from "../../storage/errors.ts";
import { collect, flipObjectBit, pseudoRandomBytes, streamOf } from "./_helpers.ts";

async function setup(chunkSize = 4096) {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  return { dir, store, files: new FileStore(store, { chunkSize }) };
}

Deno.test("a streamed put and get round-trip the bytes; a public file id is its UnixFS root over its chunks", async () => {
  const { dir, store, files } = await setup();
  const data = pseudoRandomBytes(50_000);
  const put = await files.put(streamOf(data), { name: "x.bin", mime: "application/x" });
  assert.equal(put.size, 50_000);
  assert.equal(put.chunkCount, 13);
  assert.ok(put.cid.startsWith("bafybei"), "a dag-pb root");
  assert.deepEqual(await collect(await files.get(put.cid)), data);
  const info = await files.stat(put.cid);
  assert.equal(info.tier, "public");
  assert.equal(info.chunks.length, 13);
  for (const chunk of info.chunks) assert.equal(await store.has(chunk), true);
  assert.equal(info.name, undefined, "a UnixFS id has no name (the pin records it)");
  assert.equal(info.size, 50_000);
  // Same bytes, same chunk CIDs: content addressing deduplicates.
  const again = await files.put(streamOf(data, 333), { name: "x.bin", mime: "application/x" });
  assert.equal(again.cid, put.cid);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("empty files and files of exactly one chunk work", async () => {
  const { dir, files } = await setup();
  const empty = await files.put(streamOf(new Uint8Array()));
  assert.equal(empty.chunkCount, 0);
  assert.deepEqual(await files.bytes(empty.cid), new Uint8Array());
  const one = pseudoRandomBytes(4096);
  const put = await files.put(streamOf(one, 4096));
  assert.equal(put.chunkCount, 1);
  assert.deepEqual(await files.bytes(put.cid), one);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("byte-range gets return exactly the asked bytes across chunk boundaries", async () => {
  const { dir, files } = await setup(1000);
  const data = pseudoRandomBytes(10_500);
  const { cid } = await files.put(streamOf(data));
  for (
    const [start, end] of [[0, 10_500], [0, 1], [999, 1001], [1000, 2000], [2500, 7777], [
      10_499,
      10_500,
    ], [5000, 5000]]
  ) {
    assert.deepEqual(
      await files.bytes(cid, { start, end }),
      data.slice(start, end),
      `${start}-${end}`,
    );
  }
  await assert.rejects(
    files.get(cid, { start: 0, end: 10_501 }),
    (e: { code: string }) => e.code === "range_not_satisfiable",
  );
  await assert.rejects(
    files.get(cid, { start: 20, end: 10 }),
    (e: { code: string }) => e.code === "range_not_satisfiable",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupted chunk makes the get stream error with corrupt_chunk instead of serving it", async () => {
  const { dir, files } = await setup();
  const { cid } = await files.put(streamOf(pseudoRandomBytes(20_000)));
  const { chunks } = await files.stat(cid);
  await flipObjectBit(dir, chunks[2], 17);
  const stream = await files.get(cid);
  const reader = stream.getReader();
  const served: Uint8Array[] = [];
  await assert.rejects(async () => {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      served.push(value);
    }
  }, CorruptChunkError);
  assert.ok(served.length <= 2, "nothing at or after the bad chunk was served");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unknown file id rejects with chunk_not_found before any stream exists", async () => {
  const { dir, files } = await setup();
  await assert.rejects(
    files.get("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    ChunkNotFoundError,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("content() resolves both file ids and raw object CIDs", async () => {
  const { dir, store, files } = await setup();
  const raw = new TextEncoder().encode("a prompt stored as one raw object");
  const rawCid = await store.put(raw);
  assert.deepEqual(await files.content(rawCid), raw);
  const { cid } = await files.put(streamOf(pseudoRandomBytes(9000)));
  assert.deepEqual(await files.content(cid), pseudoRandomBytes(9000));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing source aborts the put with the source's error", async () => {
  const { dir, files } = await setup();
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ > 3) controller.error(new Error("source broke"));
      else controller.enqueue(pseudoRandomBytes(5000, sent));
    },
  });
  await assert.rejects(files.put(source), /source broke/);
  await Deno.remove(dir, { recursive: true });
});
