import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf, DAG_PB_CODEC } from "../../protocols/cid.ts";
import { GIVEN_CHUNKS_FILE, GivenChunks } from "../../storage/given_chunks.ts";

const HOLDER_A = "aa".repeat(32);
const HOLDER_B = "bb".repeat(32);
const encoder = new TextEncoder();

/** `n` distinct chunk CIDs. */
function chunkCids(n: number, seed: string): string[] {
  return Array.from({ length: n }, (_, i) => cidOf(encoder.encode(`${seed} chunk ${i}`)));
}

async function tempLog(): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir();
  return { dir, path: join(dir, GIVEN_CHUNKS_FILE) };
}

Deno.test("what was given is there after reopening the file, by storage key whatever codec names the chunk", async () => {
  const { dir, path } = await tempLog();
  const [c0, c1, c2] = chunkCids(3, "reopen");
  const given = await GivenChunks.open(path);
  given.add(HOLDER_A, c0);
  given.add(HOLDER_A, c1);
  given.add(HOLDER_B, c2);
  await given.close();

  const reopened = await GivenChunks.open(path);
  assert.equal(reopened.has(HOLDER_A, c0), true);
  assert.equal(reopened.has(HOLDER_A, c1), true);
  assert.equal(reopened.has(HOLDER_B, c2), true);
  assert.equal(reopened.has(HOLDER_B, c0), false, "given to A, not to B");
  // The same digest under the dag-pb codec is the same stored object.
  const pb = cidOf(encoder.encode("reopen chunk 0"), DAG_PB_CODEC);
  assert.notEqual(pb, c0);
  assert.equal(reopened.has(HOLDER_A, pb), true);
  await reopened.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a torn last record is ignored and logged, and records added after it survive the next reopen", async () => {
  for (const tear of ["cut the last line", "zeros after it"] as const) {
    const { dir, path } = await tempLog();
    const [kept, torn, later] = chunkCids(3, tear);
    const given = await GivenChunks.open(path);
    given.add(HOLDER_A, kept);
    await given.flush();
    const before = (await Deno.stat(path)).size;
    given.add(HOLDER_A, torn);
    await given.close();
    // What a crash in the middle of the last append leaves.
    const size = (await Deno.stat(path)).size;
    if (tear === "cut the last line") {
      await Deno.truncate(path, before + Math.floor((size - before) / 2));
    } else {
      await Deno.truncate(path, before);
      const file = await Deno.open(path, { append: true });
      await file.write(new Uint8Array(4096)); // allocated, never written
      file.close();
    }

    const logs: string[] = [];
    const reopened = await GivenChunks.open(path, { log: (line) => logs.push(line) });
    assert.equal(reopened.has(HOLDER_A, kept), true, tear);
    assert.equal(reopened.has(HOLDER_A, torn), false, tear);
    assert.equal(logs.length, 1, tear);
    assert.match(logs[0], /torn/);
    reopened.add(HOLDER_A, later);
    await reopened.close();

    // The tail was cut, so what came after it is a whole record, and nothing is torn any more.
    const again: string[] = [];
    const third = await GivenChunks.open(path, { log: (line) => again.push(line) });
    assert.equal(third.has(HOLDER_A, kept), true, tear);
    assert.equal(third.has(HOLDER_A, later), true, tear);
    assert.deepEqual(again, [], tear);
    await third.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a forgotten chunk is forgotten for every holder, on disk once forget resolves", async () => {
  const { dir, path } = await tempLog();
  const [dropped, kept] = chunkCids(2, "forget");
  const given = await GivenChunks.open(path);
  given.add(HOLDER_A, dropped);
  given.add(HOLDER_B, dropped);
  given.add(HOLDER_A, kept);
  await given.forget([dropped]);
  assert.equal(given.has(HOLDER_A, dropped), false);
  // Read by a second instance without closing the first: what forget wrote is on disk.
  const reopened = await GivenChunks.open(path);
  assert.equal(reopened.has(HOLDER_A, dropped), false);
  assert.equal(reopened.has(HOLDER_B, dropped), false);
  assert.equal(reopened.has(HOLDER_A, kept), true);
  await reopened.close();
  await given.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a holder out of the peer set longer than the retention is forgotten, also across a reopen; one back in time keeps its record", async () => {
  const { dir, path } = await tempLog();
  const [a, b] = chunkCids(2, "retention");
  let now = 1_000_000;
  const options = { now: () => now, departedRetentionMs: 1_000 };
  const given = await GivenChunks.open(path, options);
  given.add(HOLDER_A, a);
  given.add(HOLDER_B, b);
  given.setPeers([HOLDER_A, HOLDER_B]);
  await given.flush(); // the file exists: what follows is appended to it

  given.setPeers([HOLDER_B]); // A flaps out
  now += 999;
  given.setPeers([HOLDER_A, HOLDER_B]); // and back in time
  now += 5_000;
  given.setPeers([HOLDER_A, HOLDER_B]);
  assert.equal(given.has(HOLDER_A, a), true, "a flap within the retention keeps the record");

  given.setPeers([HOLDER_B]); // A leaves for good
  now += 999;
  given.setPeers([HOLDER_B]);
  assert.equal(given.has(HOLDER_A, a), true, "still within the retention");
  await given.close();

  // The node is down when the retention runs out: the departure time was kept on disk.
  now += 1;
  const reopened = await GivenChunks.open(path, options);
  assert.equal(reopened.has(HOLDER_A, a), false);
  assert.equal(reopened.has(HOLDER_B, b), true);
  await reopened.close();
  const third = await GivenChunks.open(path, options);
  assert.equal(third.has(HOLDER_A, a), false, "forgotten on disk too");

  // Expiry while running: any later peer-set change forgets a holder away too long.
  third.setPeers([]);
  now += 1_000;
  third.setPeers([]);
  assert.equal(third.has(HOLDER_B, b), false);
  await third.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("adding and forgetting over and over does not grow the log: it is compacted, and what is live survives", async () => {
  const { dir, path } = await tempLog();
  const [live] = chunkCids(1, "live");
  const given = await GivenChunks.open(path, { compactMinRecords: 64, durable: false });
  given.add(HOLDER_B, live);
  const sizes: number[] = [];
  for (let round = 0; round < 30; round++) {
    const cids = chunkCids(50, `round ${round}`);
    for (const cid of cids) given.add(HOLDER_A, cid);
    await given.flush();
    await given.forget(cids);
    sizes.push((await Deno.stat(path)).size);
  }
  const early = Math.max(...sizes.slice(0, 5));
  const late = Math.max(...sizes.slice(10));
  assert.ok(late <= early, `the log grew from ${early} to ${late} bytes`);
  await given.close();
  const reopened = await GivenChunks.open(path);
  assert.equal(reopened.has(HOLDER_B, live), true);
  assert.equal(reopened.has(HOLDER_A, chunkCids(1, "round 29")[0]), false);
  await reopened.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a write that fails is logged, and the next flush writes the whole record; its leftovers are swept on open", async () => {
  const { dir, path } = await tempLog();
  const [first, second, third] = chunkCids(3, "failure");
  const logs: string[] = [];
  const given = await GivenChunks.open(path, { log: (line) => logs.push(line) });
  const check = async (cids: string[]) => {
    const reopened = await GivenChunks.open(path);
    for (const cid of cids) assert.equal(reopened.has(HOLDER_A, cid), true);
    await reopened.close();
  };

  // Creating the file fails: a directory is in its place.
  await Deno.mkdir(path);
  given.add(HOLDER_A, first);
  await given.flush(); // never rejects
  assert.equal(logs.length, 1);
  assert.equal(given.has(HOLDER_A, first), true, "memory still holds it");
  await Deno.remove(path);
  given.add(HOLDER_A, second);
  await given.close();
  await check([first, second]);

  // Appending fails (the file was replaced): the next flush rewrites the whole record.
  await Deno.remove(path);
  await Deno.mkdir(path);
  given.add(HOLDER_A, third);
  await given.flush();
  assert.equal(logs.length, 2);
  await Deno.remove(path);
  await given.close();
  await check([first, second, third]);

  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  assert.deepEqual(names, [GIVEN_CHUNKS_FILE], "the failed rewrite's temporary file is gone");
  await Deno.remove(dir, { recursive: true });
});
