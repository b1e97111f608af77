/** `writeOutput` and `reportErrors`: what a storage command leaves behind when stopped or failing. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  failedPut,
  InterruptedError,
  reportErrors,
  writeOutput,
} from "../../cli/_command_support.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";

/** Run `fn` with console.error captured; its lines and result. */
async function capturingErrors<T>(fn: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    return { result: await fn(), lines };
  } finally {
    console.error = error;
  }
}

Deno.test("writeOutput: a stop signal midway through the file removes its temporary file and rejects with InterruptedError", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const output = join(dir, "f.bin");
    let stop!: () => void;
    let listening = 0;
    let pulls = 0;
    // One chunk goes out; when the writer asks for the next, Ctrl-C.
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulls === 1) controller.enqueue(new Uint8Array(64 * 1024).fill(1));
        else stop();
      },
    }, { highWaterMark: 0 });
    const error = await writeOutput(source, output, {
      onStopSignal: (listener) => {
        stop = listener;
        listening++;
        return () => listening--;
      },
    }).then(() => undefined, (error) => error);
    assert.ok(error instanceof InterruptedError, String(error));
    assert.ok(pulls >= 2, "the signal came after the first chunk");
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no partial or temporary file is left");
    assert.equal(listening, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reportErrors: InterruptedError exits 130, BrokenPipe 0 quietly, other Deno errors 1 with one line", async () => {
  const lines: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    assert.equal(
      await reportErrors(() => Promise.reject(new InterruptedError("x not written"))),
      130,
    );
    assert.deepEqual(lines.splice(0), ["interrupted: x not written"]);
    assert.equal(await reportErrors(() => Promise.reject(new Deno.errors.BrokenPipe("pipe"))), 0);
    assert.deepEqual(lines.splice(0), []);
    const notDir = new Deno.errors.NotADirectory("Not a directory (os error 20): open 'a/b'");
    assert.equal(await reportErrors(() => Promise.reject(notDir)), 1);
    assert.deepEqual(lines.splice(0), ["error: Not a directory (os error 20): open 'a/b'"]);
  } finally {
    console.error = error;
  }
});

Deno.test("reportErrors: an OS error Deno has no class for (EROFS) is one line with a hint and exit 1, not a stack trace", async () => {
  const readOnly = Object.assign(
    new Error("Read-only file system (os error 30): open 'd/store/store.lock'"),
    { code: "EROFS" },
  );
  const { result, lines } = await capturingErrors(() =>
    reportErrors(() => Promise.reject(readOnly))
  );
  assert.equal(result, 1);
  assert.deepEqual(lines, [
    "error: Read-only file system (os error 30): open 'd/store/store.lock'; give a --data DIR " +
    "(or -o FILE) on a writable file system, or remount it read-write",
  ]);
  // One with no known code still gets a line and a hint.
  const odd = new Error("Structure needs cleaning (os error 117): read 'd/store/packs/x'");
  const other = await capturingErrors(() => reportErrors(() => Promise.reject(odd)));
  assert.equal(other.result, 1);
  assert.equal(other.lines.length, 1);
  assert.match(other.lines[0], /^error: Structure needs cleaning \(os error 117\): .*; check that/);
  // Anything else is a bug: it still escapes, with its stack.
  await assert.rejects(
    reportErrors(() => Promise.reject(new TypeError("x is undefined"))),
    TypeError,
  );
});

Deno.test("a put the disk filled midway: the error says the write was removed, and how many objects the put left and how to free them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let packs = 0;
    const store = await ChunkStore.open(dir, {
      durable: false,
      faults: {
        beforeWrite() {
          if (++packs <= 3) return; // three chunks land, then the disk is full
          throw Object.assign(new Error("No space left on device (os error 28)"), {
            code: "ENOSPC",
          });
        },
      },
    });
    const pending = await PendingPut.begin(store);
    let error: unknown;
    try {
      await new FileStore(pending, { chunkSize: 1024, concurrency: 1 }).put(
        ReadableStream.from([pseudoRandomBytes(10 * 1024, 8)]),
      );
    } catch (e) {
      error = failedPut(e, pending.stored);
    } finally {
      await pending.release();
    }
    assert.ok(error instanceof Error);
    assert.equal((error as { code?: string }).code, "disk_full");
    assert.doesNotMatch(error.message, /rolled back/);
    assert.match(
      error.message,
      /^no space left on the storage device; the write that hit it was removed; the 3 objects \(3\.0 KiB\) this put stored before it stay on disk until a GC removes them: `cli\.ts gc --grace-ms 0` now if no other put is running, or `cli\.ts gc` once they are older than its grace period/,
    );
    assert.equal((await store.stats()).objectCount, 3, "the message counts what is on disk");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
