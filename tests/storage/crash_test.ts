import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { generatedFile } from "./_generated_file.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { packFilesUnder, tempFilesUnder } from "./_helpers.ts";

const WORKER = fileURLToPath(new URL("./_crash_put_worker.ts", import.meta.url));
const SIZE_MIB = 96;
/** Kill once this many bytes are acknowledged: well inside the put, well before its end. */
const KILL_AFTER_BYTES = 8 * 1024 * 1024;

Deno.test("kill -9 during a put leaves a consistent store and the put can be redone", async () => {
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER, dir, String(SIZE_MIB)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let acknowledged = 0;
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (acknowledged < KILL_AFTER_BYTES) {
    const { done, value } = await lines.read();
    if (done) break;
    buffered += value;
    for (const m of buffered.matchAll(/stored (\d+)\n/g)) acknowledged = Number(m[1]);
    buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    assert.ok(!buffered.startsWith("done"), "the put finished before it could be killed");
  }
  child.kill("SIGKILL");
  const status = await child.status;
  await lines.cancel().catch(() => {});
  assert.equal(status.signal, "SIGKILL");
  assert.ok(acknowledged >= KILL_AFTER_BYTES, "the worker made progress before the kill");

  // Before opening: every pack renamed into place must have a whole, valid index (temp files
  // may exist), and together they hold at least the acknowledged chunks.
  let packed = 0;
  for (const pack of await packFilesUnder(dir)) packed += (await readPackIndex(pack)).length;
  assert.ok(packed >= KILL_AFTER_BYTES / (256 * 1024), "acknowledged chunks survive");
  // The killed writer's lock died with it; a leftover temp file is swept once it is not brand
  // new (a writer may sit between creating and locking it for microseconds).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(await tempFilesUnder(dir), [], "temp files are swept on open");
  let verified = 0;
  for await (const cid of store.list()) {
    await store.get(cid); // throws corrupt_chunk if a torn write became visible
    verified++;
  }
  const stats = await store.stats();
  assert.equal(stats.objectCount, verified, "only complete objects are counted");
  assert.ok(verified >= KILL_AFTER_BYTES / (256 * 1024), "every acknowledged chunk reads back");
  assert.equal(stats.pinCount, 0, "the killed put never pinned a file");

  // The same put again succeeds (reusing the chunks that made it) and reads back intact.
  const files = new FileStore(store);
  const { cid, size } = await files.put(generatedFile(SIZE_MIB * 1024 * 1024));
  assert.equal(size, SIZE_MIB * 1024 * 1024);
  const expected = generatedFile(SIZE_MIB * 1024 * 1024).getReader();
  let pending: Uint8Array = new Uint8Array();
  for await (const part of await files.get(cid)) {
    let offset = 0;
    while (offset < part.length) {
      if (pending.length === 0) pending = (await expected.read()).value!;
      const n = Math.min(pending.length, part.length - offset);
      assert.deepEqual(part.subarray(offset, offset + n), pending.subarray(0, n));
      pending = pending.subarray(n);
      offset += n;
    }
  }
  await Deno.remove(dir, { recursive: true });
});
