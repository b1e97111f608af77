/**
 * A pack of a version this build does not read (a newer node's, on a directory an older `cli.ts`
 * opens too) is left where it is: not indexed, logged once, its bytes counted in the stats. Before,
 * an unknown version read as damage and the whole pack went to `quarantine/`: the newer node lost
 * every object in it, pinned ones included (review B of stop 70, finding 5). A bad magic, a header
 * that fails its checksum, or a version older than any written still goes to quarantine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkStore, PACK_OVERHEAD_BYTES } from "../../storage/chunk_store.ts";
import { packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

/**
 * Set the version byte of the pack at `path` to `version`; with `checksum` the header checksum
 * is recomputed, as a writer of that version would have made it (else it no longer matches).
 */
async function setPackVersion(path: string, version: number, checksum: boolean): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[4] = version;
  if (checksum) {
    const headerLength = new DataView(bytes.buffer).getUint32(8, true);
    const body = bytes.subarray(0, headerLength - 16);
    const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    bytes.set(sum.subarray(0, 16), headerLength - 16);
  }
  await Deno.writeFile(path, bytes);
}

/** The names in `<dir>/quarantine`. */
async function quarantined(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(join(dir, "quarantine")))).map((e) => e.name);
}

/** Run `fn` with `console.warn` collected instead of printed. */
async function collectingWarnings<T>(fn: (lines: string[]) => Promise<T>): Promise<T> {
  const warn = console.warn;
  const lines: string[] = [];
  console.warn = (...args: unknown[]) => void lines.push(args.join(" "));
  try {
    return await fn(lines);
  } finally {
    console.warn = warn;
  }
}

/** A store holding one pinned object in one pack; the pack's path. */
async function onePinnedPack(dir: string) {
  const store = await ChunkStore.open(dir, { durable: false });
  const cid = await store.put(pseudoRandomBytes(1000, 3));
  await store.pin(cid);
  const [pack] = await packFilesUnder(dir);
  return { cid, pack };
}

Deno.test("a pack of a newer version stays in place, unread: not quarantined, logged once, its bytes counted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cid, pack } = await onePinnedPack(dir);
    const size = (await Deno.stat(pack)).size;
    await setPackVersion(pack, 2, true); // well formed, of a version this build does not read
    await collectingWarnings(async (warnings) => {
      const older = await ChunkStore.open(dir, { durable: false }); // an older cli.ts beside it
      assert.deepEqual(await packFilesUnder(dir), [pack], "the newer pack stays where it is");
      assert.deepEqual(await quarantined(dir), []);
      assert.equal(await older.has(cid), false, "its objects are not read by this build");
      const stats = await older.stats();
      assert.equal(stats.objectCount, 0);
      assert.equal(stats.usedBytes, size + PACK_OVERHEAD_BYTES, "its bytes count as used");
      // GC cannot read the pinned root (it is in that pack), so it removes nothing.
      const gc = await older.gc({ graceMs: 0 });
      assert.deepEqual(gc.unreadableRoots, [cid]);
      assert.deepEqual(await packFilesUnder(dir), [pack]);
      // Another object, then a miss: the packs directory is read again, the newer pack not again.
      const other = await older.put(pseudoRandomBytes(500, 4));
      assert.equal(await older.has(cidOf(pseudoRandomBytes(10, 99))), false);
      assert.equal(await older.has(other), true);
      const named = warnings.filter((line) => line.includes(basename(pack)));
      assert.equal(named.length, 1, `logged once: ${warnings.join(" | ")}`);
      assert.match(named[0], /version 2/);
    });
    // The newer node removes it (its GC): the older process no longer counts it.
    const older = await collectingWarnings(() => ChunkStore.open(dir, { durable: false }));
    await Deno.remove(pack);
    const other = await older.put(pseudoRandomBytes(700, 5)); // a change of the directory
    const stats = await older.stats();
    assert.equal(stats.objectCount, 2, "the two objects written beside it");
    assert.equal(await older.has(other), true);
    const fresh = await ChunkStore.open(dir, { durable: false });
    assert.equal(
      stats.usedBytes,
      (await fresh.stats()).usedBytes,
      "the removed pack is not counted",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a newer pack's objects are read again by a build that reads its version (left intact)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cid, pack } = await onePinnedPack(dir);
    await setPackVersion(pack, 2, true);
    await collectingWarnings(() => ChunkStore.open(dir, { durable: false }));
    // What the newer node reads is still there, byte for byte: put its version back.
    await setPackVersion(pack, 1, true);
    const store = await ChunkStore.open(dir, { durable: false });
    assert.deepEqual(await store.get(cid), pseudoRandomBytes(1000, 3));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (
  const [what, damage] of [
    ["a version byte that fails the header checksum", (p: string) => setPackVersion(p, 2, false)],
    ["version 0 (older than any pack written)", (p: string) => setPackVersion(p, 0, true)],
    ["a bad magic", async (p: string) => {
      const bytes = await Deno.readFile(p);
      bytes[0] ^= 0xff;
      await Deno.writeFile(p, bytes);
    }],
  ] as const
) {
  Deno.test(`a pack with ${what} is still damage: moved to quarantine`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { cid, pack } = await onePinnedPack(dir);
      await damage(pack);
      const store = await collectingWarnings(() => ChunkStore.open(dir, { durable: false }));
      assert.deepEqual(await packFilesUnder(dir), []);
      assert.deepEqual(await quarantined(dir), [basename(pack)]);
      assert.equal(await store.has(cid), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
