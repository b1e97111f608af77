/**
 * A fraud proof about a trainer's receipt the ledger did not record (another receipt of the
 * trainer for the round was) settles against the recorded one, once, and replays alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type FraudSettlement, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { Identity } from "../../protocols/identity.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { trainingReceipt } from "./_training_receipt.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { seeded, WINDOW } from "./_convergence_world.ts";
import { PER_STEP, proofHash, roundTerms, trainingParties } from "./_training_convergence_world.ts";

const { t1, v1, v2 } = trainingParties;

// A fraud proof about a trainer's receipt this ledger did not record — another receipt of the
// trainer for the round was recorded first — settles against the recorded one
// (`Ledger.trainingFraudSubject`, the settlement carrying the signed receipt as `trainingReceipt`),
// adversarially: it settles once (the slot marked, so the contradicting receipt coming later is not
// slashed again, and a second proof is refused), a receipt no stake backs is no subject (no re-runs
// bought with made-up receipts), and the log replays to the same balances and the same refusals,
// index rebuilt or not (no new index rows: no format bump).

/** t1's two contradicting receipts for round 9: 4 steps (lock 80) and 7 steps (lock 140). */
const small = trainingReceipt(t1, 9, 4, "d1");
const big = trainingReceipt(t1, 9, 7, "d2");
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
});

/** `by`'s confirmed proof about t1's smaller receipt (not recorded here), carrying it. */
const proofAboutSmall = (by = v1, n = 70): FraudSettlement => ({
  receiptId: trainingReceiptId(small),
  trainingReceipt: small,
  fraudProofHash: proofHash(n),
  validator: by.publicKey,
  confirmed: true,
  reason: "opening_mismatch",
});

/** The accounts of t1, v1 and v2. */
const accounts = (ledger: Ledger) => ({
  t1: ledger.account(t1.publicKey),
  v1: ledger.account(v1.publicKey),
  v2: ledger.account(v2.publicKey),
});

/** The larger lock slashed once; half the proved (smaller) claim's lock to v1. */
const settled = {
  t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
  v1: { balance: 40, stake: 1_000, locked: 0 },
  v2: { balance: 0, stake: 1_000, locked: 0 },
};

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

/** t1, v1 and v2 pledged; t1's larger receipt recorded. */
async function bigRecorded(ledger: Ledger): Promise<void> {
  await ledger.recordPledge(signStakePledge(t1, 10_000, 0));
  await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
  await ledger.recordPledge(signStakePledge(v2, 1_000, 0));
  await ledger.recordTrainingReceipt(big, roundTerms(9));
}

Deno.test("a proof about a trainer's receipt another of its receipts for the round kept out settles against that one, once: the receipt coming later is not slashed again, a second proof is refused", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(640), options(clock));
    await bigRecorded(ledger);
    assert.equal(ledger.trainingFraudSubject(small)?.receiptId, trainingReceiptId(big));
    // Without the receipt, the id alone names nothing here (as before).
    await assert.rejects(
      () => ledger.settleTrainingFraud({ ...proofAboutSmall(), trainingReceipt: undefined }),
      code("unknown_receipt"),
    );
    const entry = await ledger.settleTrainingFraud(proofAboutSmall());
    assert.equal(entry.kind, "fraud");
    assert.equal(entry.body.receiptId, trainingReceiptId(big));
    assert.equal(entry.body.variant, trainingReceiptId(small));
    assert.equal(entry.body.slashed, 140, "the larger claim's lock");
    assert.equal(ledger.receipt(trainingReceiptId(big))?.status, "fraud");
    assert.deepEqual(accounts(ledger), settled);
    // The same proof again, the accuser's next about the other receipt, another accuser's: none
    // settles again.
    await assert.rejects(() => ledger.settleTrainingFraud(proofAboutSmall()), code("not_pending"));
    await assert.rejects(
      () =>
        ledger.settleTrainingFraud({
          ...proofAboutSmall(v1, 71),
          receiptId: trainingReceiptId(big),
          trainingReceipt: big,
        }),
      code("not_pending"),
    );
    await assert.rejects(
      () => ledger.settleTrainingFraud(proofAboutSmall(v2, 72)),
      code("not_pending"),
    );
    // The smaller receipt itself, coming now: its round is settled for equivocation already.
    await assert.rejects(
      () => ledger.recordTrainingReceipt(small, roundTerms(9)),
      code("round_already_recorded"),
    );
    assert.deepEqual(accounts(ledger), settled);
    await ledger.close();
  });
});

Deno.test("a refuted proof about the receipt kept out charges its accuser once, and the trainer's equivocation is still slashed when that receipt comes", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(641), options(clock));
    await bigRecorded(ledger);
    const refuted = { ...proofAboutSmall(), confirmed: false, reason: "ok" };
    assert.equal((await ledger.settleTrainingFraud(refuted)).kind, "false_accusation");
    await assert.rejects(
      () => ledger.settleTrainingFraud({ ...refuted, fraudProofHash: proofHash(73) }),
      code("repeated_accusation"),
    );
    await assert.rejects(
      () => ledger.recordTrainingReceipt(small, roundTerms(9)),
      code("equivocation"),
    );
    assert.deepEqual(accounts(ledger), {
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 0, stake: 1_000 - 100, locked: 0 },
      v2: { balance: 0, stake: 1_000, locked: 0 },
    });
    await ledger.close();
  });
});

Deno.test("a training receipt no stake backs is no proof's subject: a key that never staked, or a claim larger than its trainer's stake while its round is not slashed", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(642), options(clock));
    await bigRecorded(ledger);
    // A key that never staked, whatever it signed: nothing recorded for it, no subject.
    const stranger = Identity.generate();
    const made = trainingReceipt(stranger, 9, 4, "d3");
    assert.equal(ledger.trainingFraudSubject(made), undefined);
    await assert.rejects(
      () =>
        ledger.settleTrainingFraud({
          ...proofAboutSmall(),
          receiptId: trainingReceiptId(made),
          trainingReceipt: made,
        }),
      code("unknown_receipt"),
    );
    // t1's claim of 600 steps (lock 12,000) is more than its whole stake (10,000) backs.
    const huge = trainingReceipt(t1, 9, 600, "d4");
    assert.equal(ledger.trainingFraudSubject(huge), undefined);
    // A receipt whose signature does not check, or a proof naming another id: no subject.
    const forged = { ...small, deltaHash: "ff".repeat(32) };
    assert.equal(ledger.trainingFraudSubject(forged), undefined);
    await assert.rejects(
      () => ledger.settleTrainingFraud({ ...proofAboutSmall(), receiptId: proofHash(5) }),
      code("unknown_receipt"),
    );
    assert.deepEqual(accounts(ledger), {
      t1: { balance: 0, stake: 10_000, locked: 140 },
      v1: { balance: 0, stake: 1_000, locked: 0 },
      v2: { balance: 0, stake: 1_000, locked: 0 },
    });
    await ledger.close();
  });
});

Deno.test("a log with a proof about the receipt kept out replays to the same balances, index kept or rebuilt, and the round stays settled", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, seeded(643), options(clock));
    await bigRecorded(ledger);
    await ledger.settleTrainingFraud(proofAboutSmall());
    const live = accounts(ledger);
    assert.deepEqual(live, settled);
    await ledger.close();
    for (const rebuild of [false, true]) {
      if (rebuild) {
        const db = new DatabaseSync(join(dir, INDEX_FILE));
        db.exec("UPDATE meta SET v = 5 WHERE k = 'format';");
        db.close();
      }
      ledger = await Ledger.open(dir, seeded(643), options(clock));
      assert.deepEqual(accounts(ledger), live, rebuild ? "rebuilt" : "kept");
      assert.equal(ledger.receipt(trainingReceiptId(big))?.status, "fraud");
      await assert.rejects(
        () => ledger.recordTrainingReceipt(small, roundTerms(9)),
        code("round_already_recorded"),
      );
      await assert.rejects(
        () => ledger.settleTrainingFraud(proofAboutSmall()),
        code("not_pending"),
      );
      await ledger.close();
    }
  });
});

Deno.test("a proof about a claim larger than its trainer's stake settles once its round was slashed for it, as where it came after: the accuser paid in both orders", async () => {
  for (const proofFirst of [true, false]) {
    await withLedgerDir(async (dir, clock) => {
      const ledger = await Ledger.open(dir, seeded(644), options(clock));
      // 100 backs the smaller lock (80), not the larger (140).
      await ledger.recordPledge(signStakePledge(t1, 100, 0));
      await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
      await ledger.recordTrainingReceipt(small, roundTerms(9));
      const aboutBig = {
        ...proofAboutSmall(),
        receiptId: trainingReceiptId(big),
        trainingReceipt: big,
      };
      if (proofFirst) {
        // Not a subject yet (as the node holds it: `receipt_unknown`).
        assert.equal(ledger.trainingFraudSubject(big), undefined);
        await assert.rejects(() => ledger.settleTrainingFraud(aboutBig), code("unknown_receipt"));
      }
      await assert.rejects(
        () => ledger.recordTrainingReceipt(big, roundTerms(9)),
        code("equivocation"),
      );
      // Its round slashed for it: the proof's subject is the recorded receipt now.
      assert.equal(ledger.trainingFraudSubject(big)?.receiptId, trainingReceiptId(small));
      await ledger.settleTrainingFraud(aboutBig);
      assert.deepEqual(accounts(ledger), {
        // Its whole stake (the larger lock, what there was of it); half of that to the accuser.
        t1: { balance: 0, stake: 0, locked: 0 },
        v1: { balance: 50, stake: 1_000, locked: 0 },
        v2: { balance: 0, stake: 0, locked: 0 },
      }, proofFirst ? "the proof first" : "the receipt first");
      await ledger.close();
    });
  }
});
