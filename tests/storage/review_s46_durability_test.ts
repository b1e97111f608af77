/**
 * Review at stop 46 (the chunk store's durability and garbage collection).
 *
 * A pack rewrite (a rotten neighbour quarantined, a delete) dropped every copy in the pack whose
 * object this process indexed in another pack, without looking at that other copy: when it was
 * the rotten one (two copies of one object, after a crash mid-rewrite or a put from another
 * process on the directory), the only good copy went, and the object was lost. Fixed in
 * `chunk_store.ts`: a rewrite keeps one verified copy of every object it does not drop.
 *
 * And a fresh store fsynced none of the directories `ChunkStore.open` made (`packs/`, the store
 * itself, `<data>/`) into their parents: a put acknowledged as durable (its pack and `packs/`
 * fsynced) could vanish with the directory entry holding them at a power cut. Fixed there too.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkStore, type ChunkStoreFaults } from "../../storage/chunk_store.ts";
import { readPackIndex } from "../../storage/pack_format.ts";
import { flipBit, packFilesUnder, pseudoRandomBytes } from "./_helpers.ts";

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
