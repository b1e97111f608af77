import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { generatedFile } from "./_generated_file.ts";
import { filesUnder, tempFilesUnder } from "./_helpers.ts";

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

  // Before opening: whatever is in chunks/ must be complete objects; temp files may exist.
  const temps = new Set(await tempFilesUnder(dir));
  const objectFiles = (await filesUnder(`${dir}/chunks`)).filter((p) => !temps.has(p));
  assert.ok(objectFiles.length >= KILL_AFTER_BYTES / (256 * 1024), "acknowledged chunks survive");
  const store = await ChunkStore.open(dir);
  assert.deepEqual(await tempFilesUnder(dir), [], "temp files are swept on open");
  let verified = 0;
  for await (const cid of store.list()) {
    await store.get(cid); // throws corrupt_chunk if a torn write became visible
    verified++;
  }
  const stats = await store.stats();
  assert.equal(stats.objectCount, verified, "only complete objects are counted");
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
