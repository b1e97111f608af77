/**
 * Review s63 (ledger, training): a trainer's receipt slashed for equivocation while it still took
 * fraud proofs keeps what was slashed for a confirmed proof coming later, as an inference receipt
 * does (`LedgerIndex.unrewardedSlash`): the accuser earns its share whether the contradicting
 * receipt came before the proof or after. An index built before (format 5) kept nothing for a
 * training equivocation: it is rebuilt from the log once (format 6), and a log written before
 * replays to the same balances.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { trainingReceipt } from "./_training_receipt.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seeded, WINDOW } from "./review_s62_convergence_world.ts";
import {
  PER_STEP,
  proofHash,
  roundTerms,
  trainingParties,
} from "./review_s63_training_convergence_world.ts";

const { t1, v1 } = trainingParties;
/** t1's two contradicting receipts for round 9: 4 steps (lock 80) and 7 steps (lock 140). */
const small = trainingReceipt(t1, 9, 4, "d1");
const big = trainingReceipt(t1, 9, 7, "d2");
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
});

/** t1 and v1 pledged; t1's smaller receipt recorded, then its larger answered `equivocation`. */
async function equivocated(ledger: Ledger): Promise<void> {
  await ledger.recordPledge(signStakePledge(t1, 10_000, 0));
  await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
  await ledger.recordTrainingReceipt(small, roundTerms(9));
  await assert.rejects(
    () => ledger.recordTrainingReceipt(big, roundTerms(9)),
    (e: Error & { code?: string }) => e.code === "equivocation",
  );
}

/** v1's confirmed proof about t1's smaller (recorded) receipt. */
const proof = {
  receiptId: trainingReceiptId(small),
  fraudProofHash: proofHash(63),
  validator: v1.publicKey,
  confirmed: true,
  reason: "opening_mismatch",
};

/** The accounts of t1 and v1. */
const accounts = (ledger: Ledger) => ({
  t1: ledger.account(t1.publicKey),
  v1: ledger.account(v1.publicKey),
});

/** Slashed the larger lock once; half the proved (smaller) claim's lock to the accuser. */
const settled = {
  t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
  v1: { balance: 40, stake: 1_000, locked: 0 },
};

Deno.test("review s63: a confirmed proof about a trainer's receipt slashed for equivocation before it pays its accuser its share, once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(630), options(clock));
    await equivocated(ledger);
    assert.deepEqual(accounts(ledger), {
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 0, stake: 1_000, locked: 0 },
    });
    const entry = await ledger.settleTrainingFraud(proof);
    assert.equal(entry.kind, "fraud");
    assert.equal(ledger.receipt(trainingReceiptId(small))?.status, "fraud");
    assert.deepEqual(accounts(ledger), settled);
    // A second accuser's proof finds the slash rewarded already: nothing more to earn.
    await assert.rejects(
      () =>
        ledger.settleTrainingFraud({
          ...proof,
          fraudProofHash: proofHash(64),
          validator: trainingParties.v2.publicKey,
        }),
      (e: Error & { code?: string }) => e.code === "not_pending",
    );
    assert.deepEqual(accounts(ledger), settled);
    await ledger.close();
  });
});

Deno.test("review s63: an index of format 5 (no unrewarded slash for a training equivocation) is rebuilt from the log", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, seeded(631), options(clock));
    await equivocated(ledger);
    await ledger.close();
    // As an index of format 5 would have it: no unrewarded slash for the training equivocation.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("DELETE FROM unrewarded; UPDATE meta SET v = 5 WHERE k = 'format';");
    db.close();
    ledger = await Ledger.open(dir, seeded(631), options(clock));
    await ledger.settleTrainingFraud(proof);
    assert.deepEqual(accounts(ledger), settled);
    await ledger.close();
  });
});

Deno.test("review s63: a log written before (the proof settled first) replays to the same balances under format 6", async () => {
  await withLedgerDir(async (dir, clock) => {
    // The proof first, then the contradicting receipt: the order format 5 settled too.
    let ledger = await Ledger.open(dir, seeded(632), options(clock));
    await ledger.recordPledge(signStakePledge(t1, 10_000, 0));
    await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
    await ledger.recordTrainingReceipt(small, roundTerms(9));
    await ledger.settleTrainingFraud(proof);
    await assert.rejects(
      () => ledger.recordTrainingReceipt(big, roundTerms(9)),
      (e: Error & { code?: string }) => e.code === "equivocation",
    );
    const live = accounts(ledger);
    assert.deepEqual(live, settled);
    await ledger.close();
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("UPDATE meta SET v = 5 WHERE k = 'format';");
    db.close();
    ledger = await Ledger.open(dir, seeded(632), options(clock));
    assert.deepEqual(accounts(ledger), live);
    assert.equal(ledger.receipt(trainingReceiptId(small))?.status, "fraud");
    await ledger.close();
  });
});
