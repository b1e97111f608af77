/**
 * Review s51: ledger durability. An entry the ledger acknowledges must be one its own reader
 * takes back at the next open: `ledger.log` frames longer than `MAX_ENTRY_BYTES` read as damage
 * (an impossible length), so an acknowledged entry that large left a ledger that refused to
 * open, and `ledger repair` set it aside with every entry after it. And the history index is
 * derived data: a position it keeps that does not parse is a damaged index, rebuilt from the log,
 * not a reason to refuse to start.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { MAX_ENTRY_BYTES } from "../../proof/ledger_entry.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { assigned, receipt, withLedgerDir, withoutFsync } from "./_ledger_fixtures.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("review s51: a steering conviction over more paid receipts than one entry can list is settled, and the ledger still opens with the cut", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const options = { now: () => clock.t };
    // Paid receipts whose verdicts passed over an end: one id is 66 bytes of CBOR, so this many
    // take more than MAX_ENTRY_BYTES in the `steering` entry's list.
    const count = Math.ceil(MAX_ENTRY_BYTES / 66) + 100;
    let ledger = await Ledger.open(dir, me, options);
    const ids: string[] = [];
    let credit = 0;
    await withoutFsync(async () => {
      await ledger.deposit(steerer.publicKey, 1e12);
      for (let n = 0; n < count; n++) {
        const r = receipt(10_000 + n, 1, steerer);
        ids.push((await ledger.recordReceipt(r, assigned(r))).receiptId);
      }
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      assert.equal((await ledger.finalizeDue()).length, count);
    });
    for (const id of ids) credit += ledger.receipt(id)!.credit;
    const before = ledger.account(steerer.publicKey);
    assert.equal(before.balance, credit);
    const cut = await ledger.settleSteering(steerer.publicKey, ids);
    assert.equal(cut, (1 + M) * credit);
    await ledger.close();

    // The next start: the conviction and its cut are there, and nothing was refused as damage.
    ledger = await Ledger.open(dir, me, options);
    try {
      assert.deepEqual(ledger.account(steerer.publicKey), {
        balance: credit,
        stake: before.stake - cut,
        locked: 0,
      });
      assert.equal(ledger.steeringSettled(steerer.publicKey), true);
      assert.equal(ledger.receipt(ids[0])!.status, "final");
      // Settled once: the same conviction again is refused, the stake cut once.
      await assert.rejects(() => ledger.settleSteering(steerer.publicKey, ids), {
        code: "already_settled",
      });
    } finally {
      await ledger.close();
    }
    const report = await verifyLedger(dir, { owner: me.publicKey });
    assert.equal(report.ok, true, JSON.stringify(report.damage));
    assert.equal(report.entries, 2 * count + 3); // genesis, deposit, receipts, finals, steering
  }));

Deno.test("review s51: an entry too large to read back is refused before it is written, never acknowledged; the ledger opens with everything it acknowledged", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const worker = Identity.generate();
    const second = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(worker.publicKey, 1_000_000);
    await ledger.deposit(second.publicKey, 1_000_000);
    const first = receipt(1, 10, worker);
    await ledger.recordReceipt(first, assigned(first));
    const length = ledger.length;
    // The job's requester assigns it again, to another worker; its assignment carries a field
    // no schema knows (a caller that passes on what it was given whole): the
    // `double_assignment` entry, which keeps the assignment as given, is over MAX_ENTRY_BYTES.
    const again = receipt(1, 10, second);
    const padded = {
      assignment: {
        ...(assigned(again).assignment as Record<string, unknown>),
        padding: "x".repeat(MAX_ENTRY_BYTES),
      },
    };
    await assert.rejects(
      () => ledger.recordReceipt(again, padded),
      (error) => error instanceof LedgerRejectedError && error.code === "entry_too_large",
    );
    // Nothing happened: no entry, the first receipt still credited, the ledger still writable.
    assert.equal(ledger.length, length);
    assert.equal(
      ledger.receipt(receiptId(first))!.credit,
      10 * DEFAULT_ECONOMICS.defaultTokenPrice,
    );
    await ledger.deposit(worker.publicKey, 5);
    await ledger.close();

    ledger = await Ledger.open(dir, me, options);
    try {
      assert.equal(ledger.length, length + 1);
      assert.deepEqual(ledger.account(worker.publicKey), {
        balance: 0,
        stake: 1_000_005,
        locked: 10 * DEFAULT_ECONOMICS.defaultTokenPrice * M,
      });
      assert.equal(ledger.receipt(receiptId(again)), undefined);
    } finally {
      await ledger.close();
    }
  }));

Deno.test("review s51: an index whose kept position does not parse (a damaged row SQLite reads without complaint) is rebuilt from the log on open", async () => {
  for (const damaged of ['{"seq":12,"he', "null", "7"]) {
    await withLedgerDir(async (dir, clock) => {
      const me = Identity.generate();
      const worker = Identity.generate();
      const options = { now: () => clock.t };
      let ledger = await Ledger.open(dir, me, options);
      await ledger.deposit(worker.publicKey, 1_000_000);
      const paid = receipt(1, 10, worker);
      const open = receipt(2, 4, worker);
      await ledger.recordReceipt(paid, assigned(paid));
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ledger.finalizeDue();
      await ledger.recordReceipt(open, assigned(open));
      const expected = ledger.account(worker.publicKey);
      await ledger.close();
      const db = new DatabaseSync(`${dir}/index.sqlite`);
      db.prepare("UPDATE meta SET v = ? WHERE k = 'position'").run(damaged);
      db.close();

      ledger = await Ledger.open(dir, me, options);
      try {
        assert.deepEqual(ledger.account(worker.publicKey), expected, damaged);
        // The closed receipt is answered from the rebuilt index: not recorded, nor paid, again.
        assert.equal(ledger.receipt(receiptId(paid))!.status, "final");
        await assert.rejects(() => ledger.recordReceipt(paid, assigned(paid)), {
          code: "duplicate_receipt",
        });
        assert.equal(ledger.receiptOfJob(open.jobId), receiptId(open));
      } finally {
        await ledger.close();
      }
    });
  }
});
