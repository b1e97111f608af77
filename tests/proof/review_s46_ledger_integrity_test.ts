/**
 * Review s46: the ledger's integrity checks (verify, repair, checkpoints) and the commitments.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();

Deno.test("review s46: a checkpoint file damaged into CBOR null is reported unreadable by ledger verify, and repair removes it", () =>
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

Deno.test("review s46: two repairs at the same clock reading keep both sets of rejected bytes: the second never overwrites the first", () =>
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
