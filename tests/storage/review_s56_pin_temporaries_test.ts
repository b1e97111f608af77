/**
 * Review s56: a pin's label is written to a temporary file and renamed into `pins/`; a process
 * killed in between left that file for good (one per crash). Opening the store removes them, as
 * it sweeps the packs' temp files, but never one a live pin in another process is writing.
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

/** What a process killed between writing a label's temporary file and renaming it leaves. */
function leftover(dir: string, cid: string): string {
  return `${dir}/pins/${cid}.${crypto.randomUUID()}.tmp`;
}

async function namesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

Deno.test("opening a store removes the pin labels' temporary files a crash left in pins/", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const cid = await store.put(pseudoRandomBytes(1000));
  await store.pin(cid, { name: "a.txt", local: true });
  // Killed mid-relabel: the label's temporary file stays beside the pin.
  await Deno.writeFile(leftover(dir, cid), new TextEncoder().encode('{"name":"b.txt"}'));
  await ChunkStore.open(dir);
  assert.deepEqual(await namesIn(`${dir}/pins`), [cid]);
  assert.deepEqual(await store.pinLabel(cid), { name: "a.txt", local: true });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a store opened while another process holds the store lock leaves pins/ temporaries to a later open", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const cid = await store.put(pseudoRandomBytes(1000));
  const path = leftover(dir, cid);
  await Deno.writeFile(path, new Uint8Array([0x7b]));
  // Another process pinning (or collecting) holds the lock: its label may be this very file.
  const lock = await Deno.open(`${dir}/store.lock`, { read: true, write: true, create: true });
  await lock.lock(true);
  try {
    await ChunkStore.open(dir);
    assert.ok((await namesIn(`${dir}/pins`)).includes(path.slice(path.lastIndexOf("/") + 1)));
  } finally {
    lock.close();
  }
  await ChunkStore.open(dir);
  assert.deepEqual(await namesIn(`${dir}/pins`), []);
  await Deno.remove(dir, { recursive: true });
});
