/**
 * The history index rebuilt on a ledger whose damage a signed checkpoint vouches past (review s72
 * follow-up): the node opens such a ledger from its checkpoint, and `ledger repair` refuses it
 * (`ledger_damage_vouched`), but with the index lost the index's catch-up to the checkpoint
 * stopped at the damaged entry ("ledger entry 6 fails verification"), so the node would not open
 * and nothing could mend it. Now the catch-up does what the open does: the entries before the
 * damage verify from genesis, the ones after it verify and link to the checkpoint, and the index
 * is built from those; the damaged entry is left out, and the open says so in its log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { assigned, jobIdOf, receipt, withLedgerDir, withoutFsync } from "./_ledger_fixtures.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { MAX_ENTRY_BYTES } from "../../proof/ledger_entry.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import {
  checkpointedLedger,
  flipSignatureBit,
  VOUCHED_DEPOSITS,
  VOUCHED_STAKE,
} from "./_vouched_damage.ts";

const owner = Identity.generate();
const staker = Identity.generate();

/** Delete the history index's files, as a lost disk or an operator would. */
async function removeIndex(dir: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(join(dir, `${INDEX_FILE}${suffix}`)).catch(() => {});
  }
}

Deno.test("the index lost on a ledger whose damaged entry a signed checkpoint vouches past: the open rebuilds it from the entries that verify, leaves the damaged one out and says so in its log, and opens with every entry and all the stake; the next open needs no rebuild", () =>
  withLedgerDir(async (dir) => {
    await checkpointedLedger(dir, owner, staker);
    await flipSignatureBit(dir, 5);
    await removeIndex(dir);

    const lines: string[] = [];
    const ledger = await Ledger.open(dir, owner, {
      checkpointEvery: 0,
      log: (line: string) => lines.push(line),
    });
    try {
      assert.equal(ledger.length, VOUCHED_DEPOSITS + 1);
      assert.equal(ledger.account(staker.publicKey).stake, VOUCHED_STAKE);
      const said = lines.join("\n");
      assert.match(said, /entry 5 \(bytes \d+ to \d+ of ledger\.log\) is damaged/);
      assert.match(said, /signed checkpoint at entry 13 vouches past it/);
      assert.match(
        said,
        /history index was built from the entries that verify and holds no record of entry 5/,
      );
      // Later writes go on from the checkpoint's state.
      await ledger.deposit(staker.publicKey, 1);
      assert.equal(ledger.account(staker.publicKey).stake, VOUCHED_STAKE + 1);
    } finally {
      await ledger.close();
    }

    const again: string[] = [];
    const reopened = await Ledger.open(dir, owner, {
      checkpointEvery: 0,
      log: (line: string) => again.push(line),
    });
    try {
      assert.equal(reopened.length, VOUCHED_DEPOSITS + 2);
      assert.deepEqual(again.filter((l) => /damaged|rebuil/.test(l)), [], again.join("\n"));
    } finally {
      await reopened.close();
    }
  }));

Deno.test("the index lost on a ledger whose damage the entries after it do not link past to the checkpoint: the open is still refused ledger_tampered naming the damage", () =>
  withLedgerDir(async (dir) => {
    await checkpointedLedger(dir, owner, staker);
    await flipSignatureBit(dir, 5);
    await flipSignatureBit(dir, 9);
    await removeIndex(dir);

    const refused = await Ledger.open(dir, owner, { checkpointEvery: 0 }).then(
      (l) => l.close().then(() => null),
      (e) => e,
    );
    assert.ok(refused instanceof LedgerError, `the open answered ${refused}`);
    assert.equal(refused.code, "ledger_tampered");
  }));

Deno.test("the index rebuilt past a vouched damaged entry holds the receipts of the entries before and after it, and none for the damaged one (as the open's log says)", () =>
  withLedgerDir(async (dir) => {
    const worker = Identity.generate();
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    await ledger.deposit(worker.publicKey, 10_000); // entry 1
    for (let n = 1; n <= 4; n++) {
      const r = receipt(n, 8, worker);
      await ledger.recordReceipt(r, assigned(r)); // entries 2 to 5: job n at entry n + 1
    }
    await ledger.checkpoint();
    await ledger.close();
    await flipSignatureBit(dir, 3); // job 2's receipt
    await removeIndex(dir);

    const lines: string[] = [];
    const reopened = await Ledger.open(dir, owner, {
      checkpointEvery: 0,
      log: (line: string) => lines.push(line),
    });
    try {
      assert.equal(reopened.length, 6);
      assert.match(lines.join("\n"), /holds no record of entry 3/);
      assert.ok(reopened.receiptOfJob(jobIdOf(1)) !== undefined, "the entry before the damage");
      assert.equal(reopened.receiptOfJob(jobIdOf(2)), undefined, "the damaged entry was indexed");
      assert.ok(reopened.receiptOfJob(jobIdOf(3)) !== undefined, "the entry after the damage");
      assert.ok(reopened.receiptOfJob(jobIdOf(4)) !== undefined, "the last entry");
    } finally {
      await reopened.close();
    }
  }));

Deno.test("more than a megabyte after the damaged entry (some 550 jobs): verify still finds the checkpoint vouches past it, and the open with the index lost rebuilds it (the next entry was searched for only within one append's bytes)", () =>
  withLedgerDir(async (dir) => {
    // Deposits of about 300 bytes each, until the log holds more than one append's bytes.
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    let deposits = 0;
    await withoutFsync(async () => {
      while ((await Deno.stat(join(dir, LOG_FILE))).size < MAX_ENTRY_BYTES + 4096) {
        for (let i = 0; i < 256; i++, deposits++) await ledger.deposit(staker.publicKey, 1);
      }
      await ledger.checkpoint();
      await ledger.close();
    });
    await flipSignatureBit(dir, 5);

    const found = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(found.checkpoint.check, "matches_past_damage");
    assert.deepEqual([found.vouched?.from, found.vouched?.to], [5, 6]);

    await removeIndex(dir);
    const lines: string[] = [];
    const reopened = await Ledger.open(dir, owner, {
      checkpointEvery: 0,
      log: (line: string) => lines.push(line),
    });
    try {
      assert.equal(reopened.length, deposits + 1);
      assert.equal(reopened.account(staker.publicKey).stake, deposits);
      assert.match(lines.join("\n"), /holds no record of entry 5/);
    } finally {
      await reopened.close();
    }
  }));
