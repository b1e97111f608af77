import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger, LedgerTamperedError } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import {
  assigned,
  copyDir,
  frameOffsets,
  receipt,
  resigned,
  withLedgerDir,
} from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const other = Identity.generate();
const validator = Identity.generate();
const pledger = Identity.generate();
const WINDOW = 100;

/** Everything the ledger answers about the keys, receipts and jobs the scenario touched. */
function describe(ledger: Ledger, receipts: Receipt[]): unknown {
  const keys = [owner, worker, other, validator, pledger].map((i) => i.publicKey);
  return {
    head: ledger.head,
    length: ledger.length,
    accounts: keys.map((k) => ledger.account(k)),
    staked: keys.map((k) => ledger.hasStaked(k)),
    receipts: receipts.map((r) => ledger.receipt(receiptId(r)) ?? null),
    jobs: receipts.map((r) => ledger.receiptOfJob(r.jobId) ?? null),
    accused: receipts.map((r) => ledger.hasAccused(validator.publicKey, receiptId(r))),
    challenged: ledger.challenged(),
    verdicts: ledger.verdicts(),
    workingSet: ledger.workingSet(),
  };
}

/**
 * Every kind of entry, with receipts opened before one checkpoint and settled after it, and a
 * receipt cleared after its window: a log whose checkpoints cut through every transition.
 */
async function scenario(ledger: Ledger, clock: { t: number }): Promise<Receipt[]> {
  const rs = Array.from({ length: 12 }, (_, i) => receipt(100 + i, 2 + i, worker));
  await ledger.deposit(worker.publicKey, 100_000);
  await ledger.deposit(validator.publicKey, 500);
  await ledger.recordPledge(signStakePledge(pledger, 700, 5));
  for (const r of rs.slice(0, 8)) await ledger.recordReceipt(r, r === rs[6] ? {} : assigned(r));
  await ledger.openChallenge(receiptId(rs[0]));
  await ledger.openChallenge(receiptId(rs[1]));
  await ledger.openChallenge(receiptId(rs[2]));
  await ledger.settleFault(receiptId(rs[1]), owner.publicKey, "proof_unavailable");
  await ledger.leaveUnresolved(receiptId(rs[2]), "model_unavailable");
  const settle = (r: Receipt, hash: string, confirmed: boolean) =>
    ledger.settleFraud({
      receiptId: receiptId(r),
      fraudProofHash: hash,
      validator: validator.publicKey,
      confirmed,
      reason: confirmed ? "confirmed" : "not_reproduced",
    });
  await settle(rs[3], "a1".repeat(32), true);
  await settle(rs[4], "a2".repeat(32), false);
  await assert.rejects(
    () => ledger.recordReceipt(resigned(rs[5], { tokenCount: 1 }, worker)),
    { code: "equivocation" },
  );
  await ledger.recordReceipt(rs[6], assigned(rs[6])); // the late assignment attaches
  await ledger.recordVerdict(signVerdict({
    v: 1,
    subject: "storage",
    subjectId: "round-1",
    target: worker.publicKey,
    outcome: "invalid",
    reason: "missing_chunk",
    issuedAt: 5,
  }, validator));
  clock.t += WINDOW; // rs[4], rs[6], rs[7] are due; rs[0] is held by its challenge
  await ledger.finalizeDue();
  await ledger.clearChallenge(receiptId(rs[0])); // cleared after its window: due at once
  // Equivocation on a receipt already paid: its stake is cut as much.
  await assert.rejects(
    () => ledger.recordReceipt(resigned(rs[7], { outputHash: "66".repeat(32) }, worker)),
    { code: "equivocation" },
  );
  await ledger.deposit(other.publicKey, 1_000);
  for (const r of rs.slice(8)) await ledger.recordReceipt(r, assigned(r));
  await ledger.openChallenge(receiptId(rs[8])); // left open: a challenge across the crash
  clock.t += 1;
  return rs;
}

Deno.test("ledger checkpoint: the state from a checkpoint and the entries after it equals the state replayed from genesis, whichever derived file is lost", () =>
  withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
      checkpointEvery: 5, // checkpoints land between every kind of transition
    };
    const live = await Ledger.open(dir, owner, options);
    const rs = await scenario(live, clock);
    // A kill -9 now: the log is durable, the checkpoint is some entries behind.
    const images = {
      asIs: await copyDir(dir),
      noCheckpoint: await copyDir(dir),
      noIndex: await copyDir(dir),
      neither: await copyDir(dir),
    };
    const drop = async (at: string, files: string[]) => {
      for (const f of files) await Deno.remove(`${at}/${f}`).catch(() => {});
    };
    const index = ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"];
    await drop(images.noCheckpoint, ["checkpoint.cbor"]);
    await drop(images.noIndex, index);
    await drop(images.neither, ["checkpoint.cbor", ...index]);
    try {
      const expected = describe(live, rs);
      const reopened: Ledger[] = [];
      for (const at of Object.values(images)) reopened.push(await Ledger.open(at, owner, options));
      for (const ledger of reopened) assert.deepEqual(describe(ledger, rs), expected);
      // And they go on alike: the same receipts come due, in the same order.
      clock.t += WINDOW;
      const due = await live.finalizeDue();
      assert.ok(due.length > 0);
      for (const ledger of reopened) assert.deepEqual(await ledger.finalizeDue(), due);
      // The working state each signs is the same, byte for byte.
      await live.checkpoint();
      const signed = await Deno.readFile(`${dir}/checkpoint.cbor`);
      for (const [i, at] of Object.values(images).entries()) {
        await reopened[i].checkpoint();
        assert.deepEqual(await Deno.readFile(`${at}/checkpoint.cbor`), signed);
        await reopened[i].close();
      }
      await live.close();
    } finally {
      for (const at of Object.values(images)) await Deno.remove(at, { recursive: true });
    }
  }));

Deno.test("ledger checkpoint: open verifies only the entries after the checkpoint; ledger verify still finds an edit before it", () =>
  withLedgerDir(async (dir) => {
    let ledger = await Ledger.open(dir, owner, { checkpointEvery: 4 });
    for (let i = 1; i <= 10; i++) await ledger.deposit(worker.publicKey, i);
    await ledger.close(); // a checkpoint covers all 11 entries
    const bytes = await Deno.readFile(`${dir}/ledger.log`);
    const offsets = frameOffsets(bytes);
    // Break entry 2's signature (its last byte) in place.
    bytes[offsets[3] - 1] ^= 0xff;
    await Deno.writeFile(`${dir}/ledger.log`, bytes);
    ledger = await Ledger.open(dir, owner);
    assert.equal(ledger.length, 11);
    assert.equal(ledger.account(worker.publicKey).stake, 55);
    await ledger.close();
    const report = await verifyLedger(dir);
    assert.equal(report.ok, false);
    assert.equal(report.damage?.seq, 2);
    assert.match(report.damage!.reason, /signature does not verify/);
    assert.equal(report.entries, 2);
    assert.equal(report.framesAfterDamage, 8);
  }));

Deno.test("ledger checkpoint: a log cut short of its signed checkpoint is refused, naming the commands that recover", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    for (let i = 1; i <= 5; i++) await ledger.deposit(worker.publicKey, i);
    await ledger.close();
    const bytes = await Deno.readFile(`${dir}/ledger.log`);
    const offsets = frameOffsets(bytes);
    await Deno.writeFile(`${dir}/ledger.log`, bytes.subarray(0, offsets[4]));
    const error = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(error instanceof LedgerTamperedError);
    assert.equal(error.seq, 5);
    assert.match(error.message, /acknowledged entries are missing/);
    assert.match(error.message, /ledger repair --data/);
  }));

Deno.test("ledger memory: receipts leave the working set when they close, and are still answered from the history index", () =>
  withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: WINDOW } };
    const ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000_000);
    const rs = Array.from({ length: 40 }, (_, i) => receipt(1_000 + i, 3, worker));
    for (const r of rs) await ledger.recordReceipt(r, assigned(r));
    assert.deepEqual(ledger.workingSet(), { accounts: 1, openReceipts: 40 });
    // A receipt from a key with no stake is refused and leaves nothing behind in memory.
    await assert.rejects(() => ledger.recordReceipt(receipt(5, 3, Identity.generate())), {
      code: "insufficient_stake",
    });
    assert.deepEqual(ledger.workingSet(), { accounts: 1, openReceipts: 40 });
    clock.t += WINDOW;
    assert.equal((await ledger.finalizeDue()).length, 40);
    assert.deepEqual(ledger.workingSet(), { accounts: 1, openReceipts: 0 });
    for (const r of rs) {
      assert.equal(ledger.receipt(receiptId(r))?.status, "final");
      assert.equal(ledger.receiptOfJob(r.jobId), receiptId(r));
    }
    await assert.rejects(() => ledger.recordReceipt(rs[7]), { code: "duplicate_receipt" });
    await assert.rejects(
      () => ledger.recordReceipt(resigned(rs[9], {}, other)),
      { code: "job_already_recorded" },
    );
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 40 * 3,
      stake: 1_000_000,
      locked: 0,
    });
    await ledger.close();
  }));
