/**
 * What the chunk store keeps across a crash or a power cut: a put killed midway, a pack rewrite
 * beside a second copy of an object, directories fsynced into their parents, and the temporary
 * files a killed process leaves behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChunkStore, type ChunkStoreFaults } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { generatedFile } from "./_generated_file.ts";
import { flipBit, packFilesUnder, pseudoRandomBytes, tempFilesUnder } from "./_helpers.ts";

// ---- a put killed midway ------------------------------------------------------------------------

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

  // Before opening: every pack renamed into place must have a whole, valid index (temp files
  // may exist), and together they hold at least the acknowledged chunks.
  let packed = 0;
  for (const pack of await packFilesUnder(dir)) packed += (await readPackIndex(pack)).length;
  assert.ok(packed >= KILL_AFTER_BYTES / (256 * 1024), "acknowledged chunks survive");
  // The killed writer's lock died with it; a leftover temp file is swept once it is not brand
  // new (a writer may sit between creating and locking it for microseconds).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(await tempFilesUnder(dir), [], "temp files are swept on open");
  let verified = 0;
  for await (const cid of store.list()) {
    await store.get(cid); // throws corrupt_chunk if a torn write became visible
    verified++;
  }
  const stats = await store.stats();
  assert.equal(stats.objectCount, verified, "only complete objects are counted");
  assert.ok(verified >= KILL_AFTER_BYTES / (256 * 1024), "every acknowledged chunk reads back");
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

// ---- pack rewrites and fsynced directories ------------------------------------------------------
//
// The chunk store's durability and garbage collection.
//
// A pack rewrite (a rotten neighbour quarantined, a delete) dropped every copy in the pack whose
// object this process indexed in another pack, without looking at that other copy: when it was the
// rotten one (two copies of one object, after a crash mid-rewrite or a put from another process on
// the directory), the only good copy went, and the object was lost. Fixed in `chunk_store.ts`: a
// rewrite keeps one verified copy of every object it does not drop.
//
// And a fresh store fsynced none of the directories `ChunkStore.open` made (`packs/`, the store
// itself, `<data>/`) into their parents: a put acknowledged as durable (its pack and `packs/`
// fsynced) could vanish with the directory entry holding them at a power cut. Fixed there too.

/**
 * Fault hooks that stall one pack's write until `count` more objects queued behind it, so a test
 * decides which objects share a pack without racing a clock.
 */
function packSharing() {
  let stall: { stalled: PromiseWithResolvers<void>; release: PromiseWithResolvers<void> } | null =
    null;
  let waiting: { count: number; reached: PromiseWithResolvers<void> } | null = null;
  const faults: ChunkStoreFaults = {
    async beforeWrite() {
      const s = stall;
      stall = null;
      if (!s) return;
      s.stalled.resolve();
      await s.release.promise;
    },
    queued() {
      if (waiting && --waiting.count === 0) waiting.reached.resolve();
    },
  };
  /** Put `filler` into a stalled pack, run `fn` (which puts `count` objects), release it. */
  const together = async (store: ChunkStore, filler: Uint8Array, count: number, fn: () => void) => {
    stall = { stalled: Promise.withResolvers(), release: Promise.withResolvers() };
    waiting = { count: count + 1, reached: Promise.withResolvers() };
    const { stalled, release } = stall;
    const first = store.put(filler);
    await stalled.promise;
    fn();
    await waiting.reached.promise;
    release.resolve();
    await first;
  };
  return { faults, together };
}

/** Flip a bit of `cid`'s copy in the pack at `path`. */
async function rot(path: string, cid: string): Promise<void> {
  const entry = (await readPackIndex(path)).find((e) => e.cid === cid);
  if (!entry) throw new Error(`${cid} is not in ${path}`);
  await flipBit(path, entry.offset);
}

Deno.test("a pack rewrite keeps a good extra copy whose object is indexed at a rotten copy elsewhere: the pinned object stays readable", async () => {
  const dir = await Deno.makeTempDir();
  let now = 1_700_000_000_000;
  const clock = () => now;
  const { faults, together } = packSharing();
  const a = await ChunkStore.open(dir, { durable: false, clock, faults });
  const x = pseudoRandomBytes(1000, 1);
  const y = pseudoRandomBytes(1000, 2);
  const xCid = await a.put(x);
  await a.pin(xCid);
  const [old] = await packFilesUnder(dir);
  // Another store on the directory (the node beside `cli.ts`) indexes X at its first copy.
  const b = await ChunkStore.open(dir, { durable: false, clock });
  now += 6 * 60_000; // past half the grace period: a put of X writes a fresh copy
  let puts: Promise<string>[] = [];
  await together(a, pseudoRandomBytes(10, 3), 2, () => puts = [a.put(x), a.put(y)]);
  const [, yCid] = await Promise.all(puts);
  assert.deepEqual(await b.get(yCid), y, "b reads the new pack");
  const shared = [];
  for (const path of await packFilesUnder(dir)) {
    const cids = (await readPackIndex(path)).map((e) => e.cid);
    if (cids.includes(xCid) && cids.includes(yCid)) shared.push(path);
  }
  assert.equal(shared.length, 1, "X's fresh copy and Y share one pack");
  // The disk rots X's old copy (the one b indexes) and Y beside X's good copy.
  await rot(old, xCid);
  await rot(shared[0], yCid);
  await assert.rejects(b.get(yCid), { code: "corrupt_chunk" }); // quarantines Y: its pack is rewritten
  assert.deepEqual(await b.get(xCid), x, "the good copy of a pinned object was dropped");
  assert.deepEqual(await (await ChunkStore.open(dir)).get(xCid), x, "and after reopening");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a put acknowledged by a fresh store survives a power cut: the directories open created are fsynced into their parents", async () => {
  const tmp = await Deno.makeTempDir();
  const dir = join(tmp, "data", "store");
  // What the file system is asked: directories created, and fsyncs of what was opened.
  const events: string[] = [];
  const { open, mkdir } = Deno;
  Deno.mkdir = async (path, options) => {
    await mkdir(path, options);
    events.push(`mkdir ${path}`);
  };
  Deno.open = async (path, options) => {
    const file = await open(path, options);
    const sync = file.sync.bind(file);
    file.sync = async () => {
      events.push(`sync ${path}`);
      await sync();
    };
    return file;
  };
  try {
    const store = await ChunkStore.open(dir);
    await store.put(new TextEncoder().encode("acknowledged"));
  } finally {
    Deno.open = open;
    Deno.mkdir = mkdir;
  }
  const made = events.indexOf(`mkdir ${join(dir, "packs")}`);
  assert.ok(made >= 0, events.join("; "));
  // packs/ (and the store, and data/) are new entries: each lives in its parent directory.
  for (const parent of [dir, join(tmp, "data"), tmp]) {
    assert.ok(
      events.slice(made + 1).includes(`sync ${parent}`),
      `${parent} never fsynced after its new entry: ${events.join("; ")}`,
    );
  }
  await Deno.remove(tmp, { recursive: true });
});

// ---- a pin's temporary files --------------------------------------------------------------------
//
// A pin's label is written to a temporary file and renamed into `pins/`; a process killed in
// between left that file for good (one per crash). Opening the store removes them, as it sweeps the
// packs' temp files, but never one a live pin in another process is writing.

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
