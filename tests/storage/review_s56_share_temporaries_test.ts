/**
 * Review s56: the temporary files a share create writes (`shares/<id>.<uuid>.tmp`, by
 * `writeFileDurably`) are swept when they are old. A process killed between writing one and
 * renaming it (`cli.ts share create`, the node) left it for good, one per crash: nothing ever
 * removed them. No lock covers share writes (`share create` writes while the node runs), so the
 * sweep goes by age: a temporary younger than {@link SHARE_TEMPORARY_MAX_AGE_MS} may be a write in
 * progress and is left alone.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StorageActor } from "../../actors/storage_actor.ts";
import { cidOf } from "../../protocols/cid.ts";
import {
  newShareId,
  SHARE_TEMPORARY_MAX_AGE_MS,
  SHARES_DIR,
  ShareStore,
} from "../../storage/share_links.ts";

/** Names in `dir`, sorted. */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/**
 * A store directory with one share, and the leftovers of crashed creates in `shares/`: `old`
 * temporaries (their mtime set back past the age limit) and a `young` one (written now).
 */
async function storeWithLeftovers() {
  const storeDir = await Deno.makeTempDir();
  const cid = cidOf(new TextEncoder().encode("a shared file"));
  const record = await new ShareStore(storeDir).create(cid, { expiresAt: null, now: Date.now() });
  const shares = join(storeDir, SHARES_DIR);
  const tmp = () => `${newShareId()}.${crypto.randomUUID()}.tmp`;
  const old = [tmp(), tmp()];
  const young = tmp();
  for (const name of [...old, young]) await Deno.writeTextFile(join(shares, name), "{");
  const past = new Date(Date.now() - SHARE_TEMPORARY_MAX_AGE_MS - 60_000);
  for (const name of old) await Deno.utime(join(shares, name), past, past);
  // Not a temporary of a share record, however old: an operator's file is not ours to remove.
  await Deno.writeTextFile(join(shares, "notes.txt"), "mine");
  await Deno.utime(join(shares, "notes.txt"), past, past);
  return { storeDir, shares, record, old, young };
}

Deno.test("s56: opening the shares removes the temporaries crashed creates left, when old", async () => {
  const { storeDir, shares, record, young } = await storeWithLeftovers();
  try {
    const store = await ShareStore.open(storeDir);
    assert.deepEqual(await names(shares), [record.id, young, "notes.txt"].sort());
    assert.deepEqual(await store.get(record.id), record, "the share itself still opens");
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});

Deno.test("s56: a node's storage start sweeps the old share temporaries", async () => {
  const { storeDir, shares, record, young } = await storeWithLeftovers();
  const actor = new StorageActor({ dir: storeDir });
  try {
    await actor.preStart();
    assert.deepEqual(await names(shares), [record.id, young, "notes.txt"].sort());
  } finally {
    await actor.postStop();
    await Deno.remove(storeDir, { recursive: true });
  }
});

Deno.test("s56: a store without shares/ opens without creating it", async () => {
  const storeDir = await Deno.makeTempDir();
  try {
    await ShareStore.open(storeDir);
    assert.deepEqual(await names(storeDir), []);
  } finally {
    await Deno.remove(storeDir, { recursive: true });
  }
});
