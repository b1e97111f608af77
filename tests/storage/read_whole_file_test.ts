import assert from "node:assert/strict";
import { join } from "node:path";
import { readWholeFile } from "../../storage/read_whole_file.ts";

function pattern(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 131 + (i >> 8)) & 0xff;
  return bytes;
}

Deno.test("readWholeFile returns a file's exact bytes in a buffer of their own", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const length of [0, 1, 4096, (3 << 20) + 7]) {
      const path = join(dir, `f${length}`);
      const written = pattern(length);
      await Deno.writeFile(path, written);
      const read = await readWholeFile(path);
      assert.deepEqual(read, written, `length ${length}`);
      assert.equal(read.byteOffset, 0);
      assert.equal(read.buffer.byteLength, length, "owns exactly its bytes (transferable)");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readWholeFile reads past the size stat reported when the file has more (a /proc file)", async () => {
  if (Deno.build.os !== "linux") return;
  // /proc files report size 0 and have content: what a file that grew while read looks like.
  assert.equal((await Deno.stat("/proc/self/status")).size, 0);
  const text = new TextDecoder().decode(await readWholeFile("/proc/self/status"));
  assert.match(text, /^Name:\s/);
  assert.match(text, new RegExp(`\\nPid:\\s+${Deno.pid}\\n`));
});

Deno.test("readWholeFile throws what Deno.readFile throws for a missing file or a directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(readWholeFile(join(dir, "absent")), Deno.errors.NotFound);
    const expected = await Deno.readFile(dir).then(() => undefined, (error) => error);
    assert.ok(expected instanceof Error);
    await assert.rejects(readWholeFile(dir), expected.constructor as new () => Error);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
