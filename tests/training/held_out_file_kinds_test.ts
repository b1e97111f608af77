/**
 * The held-out file is looked at before it is read (review s75 vtrain F4, F5): a FIFO hung the
 * node's start for good (no writer, and start-up cannot be cut short there), and a file past V8's
 * string limit was read whole and refused as "not UTF-8". Anything but a regular file, and a file
 * over `HELD_OUT_FILE_MAX_BYTES`, is refused at once with its own code; a symlink to a regular
 * file is still read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  HELD_OUT_FILE_MAX_BYTES,
  heldOutBytesNeeded,
  readHeldOutFile,
} from "../../training/held_out_text.ts";
import { TEST_HYPER } from "./_fixtures.ts";

/** Enough ASCII text for the evaluation's samples. */
const TEXT = "the held-out text. ".repeat(
  Math.ceil(heldOutBytesNeeded(TEST_HYPER.sampleBytes) / 19) + 10,
);

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-held-out-kinds-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a held-out path at a FIFO is refused as not a regular file, without waiting for a writer", async () => {
  await inTempDir(async (dir) => {
    const fifo = join(dir, "fifo");
    const source = join(dir, "text.txt");
    await Deno.writeTextFile(source, TEXT);
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(made.success, "mkfifo");
    // A writer that gives the FIFO whole, valid text once a reader opens it: a reader that opens
    // the FIFO gets a good file, so only a refusal before opening it passes.
    const writer = new Deno.Command("sh", {
      args: ["-c", 'cat "$1" > "$2"', "sh", source, fifo],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await assert.rejects(readHeldOutFile(fifo, TEST_HYPER.sampleBytes), (error: Error) => {
        assert.equal((error as { code?: string }).code, "held_out_file_unreadable");
        assert.match(error.message, /not a regular file/);
        return true;
      });
    } finally {
      try {
        writer.kill();
      } catch {
        // Already ended (it wrote to a reader).
      }
      await writer.status;
    }
  });
});

Deno.test("a held-out file over the size limit is refused as too large, not as not UTF-8", async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, "big.txt");
    // Sparse: NUL bytes are valid UTF-8, so only the size can refuse it; nothing is written.
    await Deno.writeTextFile(path, "");
    await Deno.truncate(path, HELD_OUT_FILE_MAX_BYTES + 1);
    await assert.rejects(readHeldOutFile(path, TEST_HYPER.sampleBytes), (error: Error) => {
      assert.equal((error as { code?: string }).code, "held_out_file_too_large");
      assert.match(error.message, new RegExp(`${HELD_OUT_FILE_MAX_BYTES + 1} bytes`));
      return true;
    });
  });
});

Deno.test("a held-out path that is a symlink to a regular file is read", async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, "text.txt");
    const link = join(dir, "link.txt");
    await Deno.writeTextFile(path, TEXT);
    await Deno.symlink(path, link);
    const { source } = await readHeldOutFile(link, TEST_HYPER.sampleBytes);
    assert.deepEqual(source, { kind: "private_file", bytes: TEXT.length });
  });
});
