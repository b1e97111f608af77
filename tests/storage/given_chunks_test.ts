import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf, DAG_PB_CODEC } from "../../protocols/cid.ts";
import { sha256Hex } from "../../protocols/hash.ts";
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

Deno.test("a holder back after more than the retention, with no peer-set change while it was away, is forgotten as it comes back, also across a reopen", async () => {
  const { dir, path } = await tempLog();
  const [a, b] = chunkCids(2, "back after a day");
  let now = 1_700_000_000_000;
  const options = { now: () => now, departedRetentionMs: 1_000 };
  const given = await GivenChunks.open(path, options);
  given.add(HOLDER_A, a);
  given.add(HOLDER_B, b);
  given.setPeers([HOLDER_B]); // A leaves
  await given.flush();
  now += 1_000; // the retention runs out with nothing else changing
  assert.equal(given.has(HOLDER_A, a), false, "past the retention before any peer-set change");
  given.setPeers([HOLDER_A, HOLDER_B]); // and A comes back
  assert.equal(
    given.has(HOLDER_A, a),
    false,
    "checked like a newcomer, not held to the old record",
  );
  assert.equal(given.has(HOLDER_B, b), true);
  await given.close();

  const reopened = await GivenChunks.open(path, options);
  assert.equal(reopened.has(HOLDER_A, a), false, "forgotten on disk too");
  assert.equal(reopened.has(HOLDER_B, b), true);
  await reopened.close();
  await Deno.remove(dir, { recursive: true });
});

/** A log line in the format of version 1: the first 8 hex digits of SHA-256 of the JSON. */
function versionOneLine(record: unknown): string {
  const json = JSON.stringify(record);
  return `${sha256Hex(encoder.encode(json)).slice(0, 8)} ${json}\n`;
}

Deno.test("a version-1 log (lines checked by SHA-256) is read whole, and rewritten in the current version on open", async () => {
  const { dir, path } = await tempLog();
  const [a, b, dropped] = chunkCids(3, "version 1");
  await Deno.writeTextFile(
    path,
    [
      ["given-chunks", 1],
      ["+", HOLDER_A, a],
      ["+", HOLDER_B, b],
      ["+", HOLDER_A, dropped],
      ["-", dropped],
      ["gone", HOLDER_B, 5],
    ].map(versionOneLine).join(""),
  );
  const logs: string[] = [];
  const given = await GivenChunks.open(path, { log: (line) => logs.push(line), now: () => 10 });
  assert.equal(given.has(HOLDER_A, a), true);
  assert.equal(given.has(HOLDER_B, b), true);
  assert.equal(given.has(HOLDER_A, dropped), false);
  assert.equal(logs.length, 1);
  assert.match(logs[0], /version 1 .*rewritten in version 2/);
  const text = await Deno.readTextFile(path);
  assert.match(text.split("\n")[0], /^[0-9a-f]{8} \["given-chunks",2\]$/);
  assert.ok(!text.includes(versionOneLine(["+", HOLDER_A, a])), "no line left in version 1");
  given.add(HOLDER_B, dropped);
  await given.close();

  const again: string[] = [];
  const reopened = await GivenChunks.open(path, { log: (line) => again.push(line), now: () => 10 });
  assert.deepEqual(again, [], "read as a whole log of the current version");
  for (const [holder, cid] of [[HOLDER_A, a], [HOLDER_B, b], [HOLDER_B, dropped]]) {
    assert.equal(reopened.has(holder, cid), true);
  }
  // B's departure (at 5) was kept through the rewrite: its retention still runs out.
  reopened.setPeers([HOLDER_A]);
  assert.equal(reopened.has(HOLDER_B, b), true);
  await reopened.close();
  const later = await GivenChunks.open(path, { departedRetentionMs: 100, now: () => 105 });
  assert.equal(later.has(HOLDER_B, b), false);
  await later.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a log whose header this node cannot read is moved aside untouched and logged as such, never overwritten; the record starts empty", async () => {
  const cases = [
    // A newer node's log, before a downgrade: nothing in it can be checked here.
    {
      version: 3,
      header: versionOneLine(["given-chunks", 3]),
      why: /which this node does not read/,
    },
    // A version this node knows, but a check that is not its own: another format, or damage.
    { version: 2, header: versionOneLine(["given-chunks", 2]), why: /check does not match/ },
  ];
  for (const { version, header, why } of cases) {
    const { dir, path } = await tempLog();
    const [a] = chunkCids(1, "newer");
    const newer = header + `0000 ["+","${HOLDER_A}","${a}",{"at":1}]\n`;
    await Deno.writeTextFile(path, newer);
    const logs: string[] = [];
    const given = await GivenChunks.open(path, { log: (line) => logs.push(line), now: () => 42 });
    assert.equal(given.has(HOLDER_A, a), false, "fails safe: nothing judged from it");
    assert.equal(logs.length, 1);
    assert.match(logs[0], new RegExp(`version ${version} of the given-chunks format`));
    assert.match(logs[0], why);
    assert.doesNotMatch(logs[0], /torn/);
    const aside = `${path}.v${version}-42`;
    assert.ok(logs[0].includes(aside), logs[0]);
    assert.equal(await Deno.readTextFile(aside), newer, "moved aside byte for byte");

    given.add(HOLDER_B, a); // the record goes on in a file of its own
    await given.close();
    assert.equal(await Deno.readTextFile(aside), newer, "never overwritten");
    const reopened = await GivenChunks.open(path);
    assert.equal(reopened.has(HOLDER_B, a), true);
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a log of many read blocks loads whole, records across block boundaries included, and a torn tail after them is measured in bytes of the file", async () => {
  const { dir, path } = await tempLog();
  const cids = chunkCids(20_000, "blocks"); // about 2.8 MB: three blocks of 1 MiB
  const given = await GivenChunks.open(path, { durable: false });
  for (const cid of cids) given.add(HOLDER_A, cid);
  // A pair longer than any holder id and chunk key is not recorded (its line could outgrow a block).
  given.add("f".repeat(5_000), cids[0]);
  await given.close();
  const size = (await Deno.stat(path)).size;
  assert.ok(size > 2 * (1 << 20), `${size} bytes`);
  const file = await Deno.open(path, { append: true });
  await file.write(encoder.encode('0123abcd ["+","torn')); // a crash mid-append
  file.close();

  const logs: string[] = [];
  const reopened = await GivenChunks.open(path, { log: (line) => logs.push(line) });
  assert.ok(cids.every((cid) => reopened.has(HOLDER_A, cid)), "every record read");
  assert.equal(reopened.has("f".repeat(5_000), cids[0]), false);
  assert.deepEqual(logs.length, 1);
  assert.match(logs[0], /ignored the last 19 bytes .* after 20001 whole records/);
  await reopened.close();
  assert.equal((await Deno.stat(path)).size, size, "cut back to the whole records");
  await Deno.remove(dir, { recursive: true });
});
