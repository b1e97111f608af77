/**
 * Moving a store of the first layout (`chunks/<shard>/<cid>`) into packs when it is opened
 * (`storage/legacy_chunks.ts`), where an operator changed `chunks/` since (review s72 ops,
 * findings 3 and 6): a shard folder or a chunk file that is a symbolic link (part of the store
 * moved to another volume) was skipped and then deleted with the folder, its objects gone from the
 * store without a word; a stray file went the same way; and a store larger than the quota moved
 * part of itself at each start and then stopped it with a bare `quota_exceeded`. The plain case
 * (good, bad and temp files) is `chunk_store_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import {
  LegacyChunksUnreadableError,
  LegacyMigrationOverQuotaError,
} from "../../storage/legacy_chunks.ts";
import { filesUnder, pseudoRandomBytes } from "./_helpers.ts";

/** Write `bytes` as the first layout did, under `shardDir/<cid>`; returns the CID. */
async function writeLegacy(shardDir: string, bytes: Uint8Array): Promise<string> {
  const cid = cidOf(bytes);
  await Deno.mkdir(shardDir, { recursive: true });
  await Deno.writeFile(join(shardDir, cid), bytes);
  return cid;
}

/** Whether `path` exists (a link is judged itself, not what it points at). */
const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

/** A store folder and an "other volume" beside it, removed after `fn`. */
async function withDirs(fn: (dir: string, other: string) => Promise<void>): Promise<void> {
  const base = await Deno.makeTempDir();
  try {
    await fn(join(base, "store"), join(base, "other_volume"));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

Deno.test({
  name:
    "a shard folder that is a link to another volume is read through: its objects are moved, the link removed, the files it points at left there",
  ignore: Deno.build.os === "windows", // symbolic links need privileges there
  fn: () =>
    withDirs(async (dir, other) => {
      const plain = await writeLegacy(join(dir, "chunks", "aa"), pseudoRandomBytes(900, 1));
      const linked = [
        await writeLegacy(join(other, "bb"), pseudoRandomBytes(900, 2)),
        await writeLegacy(join(other, "bb"), pseudoRandomBytes(900, 3)),
      ];
      await Deno.symlink(join(other, "bb"), join(dir, "chunks", "bb"));
      const lines: string[] = [];
      const store = await ChunkStore.open(dir, { log: (line) => lines.push(line) });
      // Failed before the fix: the two linked objects were not in the store, and the link was gone.
      for (const cid of [plain, ...linked]) assert.ok(await store.has(cid), cid);
      assert.equal(await exists(join(dir, "chunks")), false, "all moved: chunks/ goes");
      assert.equal((await filesUnder(join(other, "bb"))).length, 2, "the other volume is kept");
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /moved 3 objects of the old store layout/);
      assert.match(lines[0], /2 of them were read through symbolic links/);
    }),
});

Deno.test({
  name:
    "a chunk file that is a link is read through: its object moved, the link removed, its target left",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withDirs(async (dir, other) => {
      const bytes = pseudoRandomBytes(700, 4);
      const cid = await writeLegacy(other, bytes);
      await Deno.mkdir(join(dir, "chunks", cid.slice(-2)), { recursive: true });
      await Deno.symlink(join(other, cid), join(dir, "chunks", cid.slice(-2), cid));
      const store = await ChunkStore.open(dir, { log: () => {} });
      assert.deepEqual(await store.get(cid), bytes);
      assert.equal(await exists(join(dir, "chunks")), false);
      assert.equal(await exists(join(other, cid)), true);
    }),
});

Deno.test("a file directly under chunks/ is moved when it is an object, and otherwise left there with chunks/, and logged", () =>
  withDirs(async (dir) => {
    const chunk = pseudoRandomBytes(500, 5);
    const loose = await writeLegacy(join(dir, "chunks"), chunk);
    const inShard = await writeLegacy(join(dir, "chunks", "cc"), pseudoRandomBytes(500, 6));
    const notes = join(dir, "chunks", "NOTES.txt");
    await Deno.writeTextFile(notes, "moved shard dd to the big disk, 2024-03");
    const nested = join(dir, "chunks", "cc", "old");
    await Deno.mkdir(nested);
    const lines: string[] = [];
    const store = await ChunkStore.open(dir, { log: (line) => lines.push(line) });
    assert.deepEqual(await store.get(loose), chunk);
    assert.ok(await store.has(inShard));
    // Failed before the fix: chunks/ was removed recursively, NOTES.txt and the folder with it.
    assert.equal(await Deno.readTextFile(notes), "moved shard dd to the big disk, 2024-03");
    assert.equal(await exists(nested), true);
    assert.equal(await exists(join(dir, "chunks", "cc", inShard)), false, "a moved file goes");
    const log = lines.join("\n");
    assert.match(log, /moved 2 objects/);
    assert.match(log, /2 entries of the old store layout were not moved/);
    assert.ok(log.includes(`${notes} (its name is not the CID of its bytes`), log);
    assert.ok(log.includes(`${nested} (not a file`), log);
    // The next open finds nothing more to move and says again what stays.
    lines.length = 0;
    await ChunkStore.open(dir, { log: (line) => lines.push(line) });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], /2 entries of the old store layout were not moved/);
  }));

Deno.test({
  name:
    "a shard link that cannot be read (its volume not mounted) stops the open, naming it, before anything moves",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withDirs(async (dir, other) => {
      const plain = await writeLegacy(join(dir, "chunks", "aa"), pseudoRandomBytes(600, 7));
      const link = join(dir, "chunks", "bb");
      await Deno.symlink(join(other, "bb"), link); // other/bb does not exist: not mounted
      const error = await ChunkStore.open(dir, { log: () => {} }).then(
        () => assert.fail("opened without the linked shard"),
        (error) => error,
      );
      assert.ok(error instanceof LegacyChunksUnreadableError, String(error));
      assert.equal(error.code, "legacy_chunks_unreadable");
      assert.deepEqual(error.paths, [link]);
      assert.ok(error.message.includes(`${link} (a link to ${join(other, "bb")}`), error.message);
      assert.match(error.message, /Nothing was moved/);
      assert.equal(await exists(join(dir, "chunks", "aa", plain)), true, "nothing moved");
      assert.equal(await exists(link), true);
      // Mounted again, the next open moves it all.
      const linked = await writeLegacy(join(other, "bb"), pseudoRandomBytes(600, 8));
      const store = await ChunkStore.open(dir, { log: () => {} });
      assert.ok(await store.has(plain));
      assert.ok(await store.has(linked));
    }),
});

Deno.test("a first-layout store larger than the quota is refused before anything moves, naming the migration, the bytes it needs and storage.quotaBytes", () =>
  withDirs(async (dir) => {
    const size = 64 * 1024;
    const cids: string[] = [];
    for (let seed = 10; seed < 16; seed++) {
      const bytes = pseudoRandomBytes(size, seed);
      cids.push(await writeLegacy(join(dir, "chunks", cidOf(bytes).slice(-2)), bytes));
    }
    const legacyFiles = async () => (await filesUnder(join(dir, "chunks"))).length;
    const quotaBytes = 3 * size;
    let needed = 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await ChunkStore.open(dir, { quotaBytes, log: () => {} }).then(
        () => assert.fail("opened over its quota"),
        (error) => error,
      );
      // Failed before the fix: QuotaExceededError (`quota_exceeded`), after moving some objects.
      assert.ok(error instanceof LegacyMigrationOverQuotaError, String(error));
      assert.equal(error.code, "legacy_migration_over_quota");
      assert.match(error.message, /old layout .*6 objects, 393216 bytes/);
      assert.match(error.message, /storage\.quotaBytes/);
      assert.match(error.message, /Nothing was moved/);
      needed = error.needed;
      assert.ok(error.message.includes(`at least ${needed} bytes`), error.message);
      assert.equal(await legacyFiles(), 6, `attempt ${attempt + 1} moved nothing`);
    }
    // The figure the error names is enough: every object moves, none is refused on the way.
    const store = await ChunkStore.open(dir, { quotaBytes: needed, log: () => {} });
    for (const cid of cids) assert.ok(await store.has(cid), cid);
    assert.equal(await exists(join(dir, "chunks")), false);
    assert.ok((await store.stats()).usedBytes <= needed);
  }));
