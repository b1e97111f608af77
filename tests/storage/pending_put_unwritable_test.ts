/**
 * A put's record (`pending/<id>`, `storage/pending_put.ts`) that the OS refuses to create or
 * write — the store opened writable, then its directory could no longer be written (review s71,
 * finding 3: `chattr +i store/pending` under a running node) — is `storage_unwritable` (503 at the
 * edge), as every other write of the store is, not a raw `PermissionDenied` (a 500
 * `internal_error`). The OS's refusal is injected (`_refused_opens.ts`), so this holds as root.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { PENDING_DIR } from "../../storage/gc_roots.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { StorageError } from "../../storage/errors.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { refuseOpensUnder } from "./_refused_opens.ts";

/** Asserts that `promise` rejects with the typed storage error `storage_unwritable`. */
async function rejectsUnwritable(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StorageError, `not a typed storage error: ${String(error)}`);
    assert.equal(error.code, "storage_unwritable", String(error));
    assert.equal(httpStatusOf(error), 503);
    return true;
  });
}

Deno.test("a put whose record the OS refuses to create (EPERM on pending/) is storage_unwritable, and leaves no record", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const opens = refuseOpensUnder(join(dir, PENDING_DIR));
    try {
      // Failed before the fix: a raw PermissionDenied, answered 500 internal_error.
      await rejectsUnwritable(PendingPut.begin(store));
    } finally {
      opens.restore();
    }
    assert.equal(opens.refused, 1);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dir, PENDING_DIR))), []);
    // Writable again: a put records, and commits.
    const pending = await PendingPut.begin(store);
    try {
      const cid = await pending.put(pseudoRandomBytes(100, 1));
      await pending.commit(cid);
    } finally {
      await pending.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a put whose record the OS stops taking (EIO on its append) is storage_unwritable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    // The record's file, as the put opened it: its next write fails as a failing device's does.
    const open = Deno.open;
    const opened: Deno.FsFile[] = [];
    Deno.open = (async (path: string | URL, options?: Deno.OpenOptions) => {
      const file = await open(path, options);
      if (String(path).startsWith(join(dir, PENDING_DIR))) opened.push(file);
      return file;
    }) as typeof Deno.open;
    let pending: PendingPut;
    try {
      pending = await PendingPut.begin(store);
    } finally {
      Deno.open = open;
    }
    assert.equal(opened.length, 1);
    Object.assign(opened[0], {
      write: () =>
        Promise.reject(
          Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" }),
        ),
    });
    try {
      // Failed before the fix: the raw EIO error, answered 500 internal_error.
      await rejectsUnwritable(pending.put(pseudoRandomBytes(100, 2)));
    } finally {
      await pending.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
