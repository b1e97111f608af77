/**
 * What the chunk store creates is its owner's only, whatever the umask: each file 0600, each
 * directory 0700 (review s72, docs F1). Its packs hold the bytes of every public file clients
 * uploaded, in clear, and its records name what the node holds and for whom; they were created
 * with the umask (0644, directories 0755), while README says the files the node writes durably are
 * 0600. The node's data directory is 0700, but a copy or backup of it (tar to a shared volume,
 * `cp -r`) keeps only each file's own mode. Modes do not exist on Windows: skipped there.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { ShareStore } from "../../storage/share_links.ts";
import { flipObjectBit, pseudoRandomBytes } from "./_helpers.ts";

const ignore = Deno.build.os === "windows";

/** `mode path` of every file and directory under `dir` whose mode lets others in. */
async function openToOthers(dir: string, root = dir): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    const mode = (await Deno.lstat(path)).mode! & 0o777;
    if (mode & 0o077) out.push(`${mode.toString(8)} ${relative(root, path)}`);
    if (entry.isDirectory) out.push(...await openToOthers(path, root));
  }
  return out;
}

Deno.test({
  name:
    "a chunk store's packs, records, quarantine, pending puts and shares are 0600, its directories 0700, under umask 022",
  ignore,
  fn: async () => {
    const parent = await Deno.makeTempDir();
    const before = Deno.umask(0o022);
    try {
      const dir = join(parent, "store"); // made by the store
      const store = await ChunkStore.open(dir, { durable: true });
      const cid = await store.put(pseudoRandomBytes(3000, 1));
      await store.pin(cid);
      await store.put(pseudoRandomBytes(100, 2), { replica: true, giver: "ab".repeat(32) });
      const pending = await PendingPut.begin(store);
      // A chunk that reads corrupt is kept in quarantine/ for forensics.
      await flipObjectBit(dir, cid);
      await assert.rejects(store.get(cid));
      const shares = await ShareStore.open(dir);
      await shares.create(cid, { expiresAt: null, now: Date.now() });
      const listed = await openToOthers(parent);
      await pending.release();
      assert.deepEqual(listed, []);
    } finally {
      Deno.umask(before);
      await Deno.remove(parent, { recursive: true });
    }
  },
});
