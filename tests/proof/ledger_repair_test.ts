/**
 * The ledger's integrity tools: a torn tail cut on open, damage refused on open and reported by
 * `ledger verify`, `ledger repair`, and checkpoints checked against the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger, LedgerOwnerMismatchError, LedgerTamperedError } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { assigned, copyDir, frameOffsets, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const noCheckpoints = { checkpointEvery: 0 };

Deno.test("two writers on one ledger break its chain; repair keeps every entry that verifies and sets the rest aside", () =>
  withLedgerDir(async (dir) => {
    // What two nodes on one data directory did before the directory lock: each appends at the
    // end it knows, over the other's entries.
    const a = await Ledger.open(dir, owner, noCheckpoints);
    const b = await Ledger.open(dir, owner, noCheckpoints);
    for (const amount of [1, 2, 3]) await a.deposit(worker.publicKey, amount);
    await b.deposit(worker.publicKey, 10);
    await a.close();
    await b.close();
    const torn = await Deno.readFile(`${dir}/ledger.log`);
    const offsets = frameOffsets(torn);
    assert.equal(offsets.length, 4, "genesis, b's deposit over a's first, a's second and third");

    const refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(refused instanceof LedgerTamperedError);
    assert.equal(refused.seq, 2);
    const found = await verifyLedger(dir);
    assert.equal(found.ok, false);
    assert.deepEqual(
      { entries: found.entries, seq: found.damage?.seq, after: found.framesAfterDamage },
      { entries: 2, seq: 2, after: 1 },
    );

    const repaired = await repairLedger(dir, owner);
    assert.equal(repaired.kept, 2);
    assert.equal(repaired.setAsideBytes, torn.length - offsets[2]);
    assert.deepEqual(await Deno.readFile(repaired.setAsidePath!), torn.subarray(offsets[2]));
    assert.deepEqual(await Deno.readFile(`${dir}/ledger.log`), torn.subarray(0, offsets[2]));
    assert.equal((await verifyLedger(dir)).ok, true);
    const ledger = await Ledger.open(dir, owner);
    assert.equal(ledger.length, 2);
    assert.equal(ledger.account(worker.publicKey).stake, 10);
    await ledger.deposit(worker.publicKey, 5); // and it takes new entries
    await ledger.close();
    assert.equal((await verifyLedger(dir)).ok, true);
  }));

Deno.test("repair of a ledger cut short of its checkpoint keeps what is there and drops the checkpoint; a ledger that verifies is left alone", () =>
  withLedgerDir(async (dir) => {
    let ledger = await Ledger.open(dir, owner);
    for (let i = 1; i <= 4; i++) await ledger.deposit(worker.publicKey, i);
    await ledger.close();
    const intact = await Deno.readFile(`${dir}/ledger.log`);
    const untouched = await repairLedger(dir, owner);
    assert.deepEqual(
      { kept: untouched.kept, aside: untouched.setAsideBytes, cp: untouched.checkpointRemoved },
      { kept: 5, aside: 0, cp: false },
    );
    assert.deepEqual(await Deno.readFile(`${dir}/ledger.log`), intact);

    const offsets = frameOffsets(intact);
    await Deno.writeFile(`${dir}/ledger.log`, intact.subarray(0, offsets[3] + 7)); // lost blocks
    const repaired = await repairLedger(dir, owner);
    assert.equal(repaired.before.checkpoint.check, "beyond_log");
    assert.equal(repaired.checkpointRemoved, true);
    assert.equal(repaired.kept, 3);
    ledger = await Ledger.open(dir, owner);
    assert.equal(ledger.account(worker.publicKey).stake, 1 + 2);
    await ledger.close();
    await assert.rejects(() => repairLedger(dir, Identity.generate()), LedgerOwnerMismatchError);
  }));

// What the bytes after the last entry that verifies are: a torn tail (one append cut short by a
// crash, never acknowledged: cut, and copied aside first) or damage that may hide acknowledged
// entries (refused on open, reported by `ledger verify`, set aside by `ledger repair`).

/** Files next to the log whose name starts `ledger.log.torn-`. */
async function tornFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith("ledger.log.torn-")) names.push(entry.name);
  }
  return names.sort();
}

/**
 * A crash image (no close, so no checkpoint after the second entry) of a ledger with a deposit
 * and `receipts` acknowledged receipts: 2 + `receipts` entries.
 */
async function crashImage(dir: string, clock: { t: number }, receipts: number): Promise<string> {
  let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, 1e9);
  await ledger.close(); // a checkpoint at 2 entries
  ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  for (let i = 1; i <= receipts; i++) {
    const r = receipt(i, 10, worker);
    await ledger.recordReceipt(r, assigned(r));
  }
  const image = await copyDir(dir); // kill -9 here
  await ledger.close();
  return image;
}

Deno.test("ledger: a damaged length prefix mid-log is damage, not a torn tail — open refuses, verify says so, repair sets the acknowledged entries after it aside", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 20);
    try {
      const log = `${image}/ledger.log`;
      const bytes = await Deno.readFile(log);
      const offsets = frameOffsets(bytes);
      assert.equal(offsets.length, 22);
      // One flipped bit in entry 5's length: it now runs 64 KiB past the end of the log.
      bytes[offsets[5] + 1] ^= 0x01;
      await Deno.writeFile(log, bytes);

      const refused = await Ledger.open(image, owner, { now: () => clock.t }).then(
        () => null,
        (e) => e,
      );
      assert.ok(refused instanceof LedgerTamperedError, String(refused));
      assert.equal(refused.seq, 5);
      assert.match(refused.reason, /whole entry signed by the owner \(seq 6\)/);
      assert.deepEqual(await Deno.readFile(log), bytes, "the refused open cut nothing");
      assert.deepEqual(await tornFiles(image), []);

      const report = await verifyLedger(image, { owner: owner.publicKey });
      assert.deepEqual(
        {
          ok: report.ok,
          entries: report.entries,
          seq: report.damage?.seq,
          offset: report.damage?.offset,
          after: report.framesAfterDamage,
          torn: report.tornBytes,
        },
        { ok: false, entries: 5, seq: 5, offset: offsets[5], after: 16, torn: 0 },
      );

      // Repair keeps the 5 entries before it and sets the 17 after it aside, byte for byte.
      const repaired = await repairLedger(image, owner, { now: () => clock.t });
      assert.equal(repaired.kept, 5);
      assert.deepEqual(await Deno.readFile(repaired.setAsidePath!), bytes.subarray(offsets[5]));
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

Deno.test("ledger: the last entry's length prefix damaged (running past the end) is damage, not a torn tail", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 3);
    try {
      const log = `${image}/ledger.log`;
      const bytes = await Deno.readFile(log);
      const offsets = frameOffsets(bytes);
      bytes[offsets.at(-1)! + 1] ^= 0x01; // the last acknowledged entry: nothing follows it
      await Deno.writeFile(log, bytes);
      const refused = await Ledger.open(image, owner).then(() => null, (e) => e);
      assert.ok(refused instanceof LedgerTamperedError, String(refused));
      assert.equal(refused.seq, 4);
      assert.match(refused.reason, /length prefix is damaged/);
      assert.equal((await verifyLedger(image)).ok, false);
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

Deno.test("ledger: the last entry's length prefix zeroed is damage, not a torn tail", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 3);
    try {
      const log = `${image}/ledger.log`;
      const bytes = await Deno.readFile(log);
      new DataView(bytes.buffer).setUint32(frameOffsets(bytes).at(-1)!, 0);
      await Deno.writeFile(log, bytes);
      const refused = await Ledger.open(image, owner).then(() => null, (e) => e);
      assert.ok(refused instanceof LedgerTamperedError, String(refused));
      assert.equal(refused.seq, 4);
      assert.match(refused.reason, /declares 0 bytes.*length prefix is damaged/);
      assert.deepEqual(await Deno.readFile(log), bytes, "nothing cut");
      assert.deepEqual(await tornFiles(image), []);
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

Deno.test("ledger: a torn last append is cut on open as before, and its bytes are kept in ledger.log.torn-<time>", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 3);
    try {
      const log = `${image}/ledger.log`;
      const intact = await Deno.readFile(log);
      const offsets = frameOffsets(intact);
      // A crash mid-append: half of a frame (a copy of the last one) at the end.
      const half = intact.subarray(offsets.at(-1)!, offsets.at(-1)! + 40);
      await Deno.writeFile(log, new Uint8Array([...intact, ...half]));

      const before = await verifyLedger(image, { owner: owner.publicKey });
      assert.deepEqual({ ok: before.ok, torn: before.tornBytes }, { ok: true, torn: 40 });
      clock.t = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
      const ledger = await Ledger.open(image, owner, { now: () => clock.t });
      assert.equal(ledger.length, 5);
      await ledger.close();
      assert.deepEqual((await Deno.readFile(log)).subarray(0, intact.length), intact);
      assert.deepEqual(await tornFiles(image), ["ledger.log.torn-2026-01-02T03-04-05.006Z"]);
      assert.deepEqual(
        await Deno.readFile(`${image}/ledger.log.torn-2026-01-02T03-04-05.006Z`),
        half,
      );
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

Deno.test("ledger: a crash that left zeros (space allocated, never written) is a torn tail: cut on open and kept aside, not refused", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 3);
    try {
      const log = `${image}/ledger.log`;
      const intact = await Deno.readFile(log);
      const offsets = frameOffsets(intact);
      const last = intact.subarray(offsets.at(-1)!);
      const header = (length: number) => {
        const h = new Uint8Array(4);
        new DataView(h.buffer).setUint32(0, length);
        return h;
      };
      const tails = {
        "zeros": new Uint8Array(200),
        "a length, then zeros": new Uint8Array([...header(150), ...new Uint8Array(196)]),
        "a frame written in part, the rest zeros": new Uint8Array([
          ...last.subarray(0, 60),
          ...new Uint8Array(last.length - 60 + 100),
        ]),
        "a frame written in part, zeros to its end, nothing after": new Uint8Array([
          ...last.subarray(0, 60),
          ...new Uint8Array(last.length - 60),
        ]).subarray(0, last.length),
        // Its first page's new bytes (the length among them) never reached the disk, a later
        // page did: the file system persisted the size and that page first.
        "a frame whose first bytes are still zeros": new Uint8Array([
          ...new Uint8Array(60),
          ...last.subarray(60),
        ]),
      };
      for (const [what, tail] of Object.entries(tails)) {
        await Deno.writeFile(log, new Uint8Array([...intact, ...tail]));
        const before = await verifyLedger(image, { owner: owner.publicKey });
        assert.deepEqual(
          { ok: before.ok, torn: before.tornBytes },
          { ok: true, torn: tail.length },
          what,
        );
        clock.t += 1;
        const ledger = await Ledger.open(image, owner, { now: () => clock.t });
        assert.equal(ledger.length, 5, what);
        await ledger.close();
        assert.deepEqual((await Deno.readFile(log)).subarray(0, intact.length), intact, what);
        const kept = (await tornFiles(image)).at(-1)!;
        assert.deepEqual(await Deno.readFile(`${image}/${kept}`), tail, what);
        await Deno.remove(`${image}/${kept}`);
      }
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

Deno.test("ledger: zeros do not excuse damage — a bad frame mid-log stays damage with zeros at the end", () =>
  withLedgerDir(async (dir, clock) => {
    const image = await crashImage(dir, clock, 6);
    try {
      const log = `${image}/ledger.log`;
      const intact = await Deno.readFile(log);
      const offsets = frameOffsets(intact);
      const damaged = (edit: (bytes: Uint8Array, view: DataView) => void) => {
        const bytes = new Uint8Array([...intact, ...new Uint8Array(300)]);
        edit(bytes, new DataView(bytes.buffer));
        return bytes;
      };
      const cases = {
        "a length running past the end": damaged((b) => b[offsets[4] + 1] ^= 0x01),
        "a zeroed length": damaged((_, v) => v.setUint32(offsets[4], 0)),
        "a length 10 short (a frame that does not decode)": damaged((_, v) =>
          v.setUint32(offsets[4], v.getUint32(offsets[4]) - 10)
        ),
        "a zeroed entry": damaged((b) => b.fill(0, offsets[4] + 4, offsets[5])),
      };
      for (const [what, bytes] of Object.entries(cases)) {
        await Deno.writeFile(log, bytes);
        const refused = await Ledger.open(image, owner).then(() => null, (e) => e);
        assert.ok(refused instanceof LedgerTamperedError, `${what}: ${refused}`);
        assert.equal(refused.seq, 4, what);
        assert.deepEqual(await Deno.readFile(log), bytes, what);
        const report = await verifyLedger(image, { owner: owner.publicKey });
        assert.deepEqual({ ok: report.ok, seq: report.damage?.seq }, { ok: false, seq: 4 }, what);
      }
      assert.deepEqual(await tornFiles(image), []);
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

// The ledger's integrity checks (verify, repair, checkpoints) and the commitments.

Deno.test("a checkpoint file damaged into CBOR null is reported unreadable by ledger verify, and repair removes it", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.close();
    // One byte of the file left: 0xf6, CBOR `null` (typeof "object" in JavaScript).
    await Deno.writeFile(`${dir}/${CHECKPOINT_FILE}`, new Uint8Array([0xf6]));
    const report = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(report.ok, false);
    assert.equal(report.entries, 2);
    assert.deepEqual(report.checkpoint, { seq: 0, check: "unreadable" });
    const repaired = await repairLedger(dir, owner, { now: () => clock.t });
    assert.equal(repaired.checkpointRemoved, true);
    assert.equal(repaired.length, 2);
    assert.equal((await verifyLedger(dir, { owner: owner.publicKey })).ok, true);
  }));

/** Every file of `dir` whose name starts with `prefix`, with its bytes. */
async function filesStartingWith(dir: string, prefix: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(prefix)) out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

/** Append `bytes` to the log in `dir` (bytes that are not a next entry: damage). */
async function appendToLog(dir: string, bytes: Uint8Array): Promise<void> {
  const log = await Deno.readFile(`${dir}/ledger.log`);
  const out = new Uint8Array(log.length + bytes.length);
  out.set(log);
  out.set(bytes, log.length);
  await Deno.writeFile(`${dir}/ledger.log`, out);
}

Deno.test("two repairs at the same clock reading keep both sets of rejected bytes: the second never overwrites the first", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.close();
    const log = await Deno.readFile(`${dir}/ledger.log`);
    // A whole entry of the owner's copied to the end (a replay: wrong sequence), then garbage:
    // damage, not a torn tail, so repair sets it aside.
    const first = new Uint8Array([...log.subarray(0, log.length), 1, 2, 3]);
    const second = new Uint8Array([...log.subarray(0, log.length), 4, 5, 6, 7]);
    // The clock repeats (stepped back, a machine without a real-time clock): `new Date()` and the
    // ledger's clock read the same millisecond at both repairs.
    const RealDate = Date;
    const fixed = RealDate.UTC(2030, 0, 1);
    globalThis.Date = class extends RealDate {
      constructor(...args: unknown[]) {
        super(...((args.length === 0 ? [fixed] : args) as [number]));
      }
      static override now(): number {
        return fixed;
      }
    } as DateConstructor;
    try {
      await appendToLog(dir, first);
      const a = await repairLedger(dir, owner, { now: () => fixed });
      assert.equal(a.setAsideBytes, first.length);
      await appendToLog(dir, second);
      const b = await repairLedger(dir, owner, { now: () => fixed });
      assert.equal(b.setAsideBytes, second.length);
      assert.notEqual(a.setAsidePath, b.setAsidePath);
    } finally {
      globalThis.Date = RealDate;
    }
    const rejected = [...(await filesStartingWith(dir, "ledger.log.rejected-")).values()];
    assert.equal(rejected.length, 2);
    assert.deepEqual(
      rejected.map((bytes) => bytes.length).sort((x, y) => x - y),
      [first.length, second.length],
    );
  }));
