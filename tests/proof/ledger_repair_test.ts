import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger, LedgerOwnerMismatchError, LedgerTamperedError } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { frameOffsets, withLedgerDir } from "./_ledger_fixtures.ts";

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
