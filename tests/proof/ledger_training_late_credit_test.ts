/**
 * A round's credit that comes after its receipt's window closed (review s79 trainnet, F1): a
 * training receipt recorded uncredited (the coordinator records each report before its challenge;
 * gossip records it in every other ledger) closes unpaid when its window ends, and a round that
 * waited longer for another trainer's challenge, or an outcome audited late, credited it too late:
 * the trainer whose delta is in the model was paid nothing. The credit of a receipt that closed
 * unpaid and was never convicted now pays it (`training_late_credit`), once, up to one more window
 * after its own (`LATE_TRAINING_CREDIT_WINDOWS`); a convicted one, one left unpaid by an undecided
 * challenge, or a credit past that bound earns nothing as before. Balances are the same after
 * a reopen, with the index rebuilt from the log, and replayed from genesis.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

const WINDOW = 100;
const STAKE = 1_000_000;
const STEPS = 3;
/** A reference step earns `trainingCreditPerStep` (`_training_receipt.ts`). */
const CREDIT = STEPS * DEFAULT_ECONOMICS.trainingCreditPerStep;
const terms = (round: number) => ({ round, startModel: START, steps: STEPS });
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW },
});

/** The balances of `keys` in `ledger`, as the tests compare them. */
function accounts(ledger: Ledger, keys: Identity[]): Account[] {
  return keys.map((k) => ({ ...ledger.account(k.publicKey) }));
}

Deno.test("a round's credit after its receipt's window closed unpaid pays it, once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), options(clock));
    const trainer = Identity.generate();
    await ledger.deposit(trainer.publicKey, STAKE);
    const r = trainingReceipt(trainer, 1, STEPS);
    const id = trainingReceiptId(r);
    await ledger.recordTrainingReceipt(r, terms(1), { credited: false });
    // The round still waits for another trainer's challenge: the window closes, unpaid.
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.receipt(id)?.status, "final");
    assert.equal(ledger.account(trainer.publicKey).balance, 0, "closed unpaid");
    assert.equal(ledger.account(trainer.publicKey).locked, 0, "its lock released");
    // The round's credit comes: the delta is in the model, the receipt was never convicted.
    assert.equal(await ledger.creditTrainingReceipt(id), true);
    assert.deepEqual(accounts(ledger, [trainer]), [{ balance: CREDIT, stake: STAKE, locked: 0 }]);
    // Paid once: the same credit again (an audit after the coordinator's) changes nothing.
    assert.equal(await ledger.creditTrainingReceipt(id), false);
    assert.equal(ledger.account(trainer.publicKey).balance, CREDIT);
    await ledger.close();
  });
});

Deno.test("a late credit pays neither a receipt convicted after it closed nor one an undecided challenge left unpaid", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), options(clock));
    const equivocator = Identity.generate();
    const undecided = Identity.generate();
    for (const k of [equivocator, undecided]) await ledger.deposit(k.publicKey, STAKE);
    const first = trainingReceipt(equivocator, 1, STEPS, "d1");
    const left = trainingReceipt(undecided, 1, STEPS, "d3");
    await ledger.recordTrainingReceipt(first, terms(1), { credited: false });
    await ledger.recordTrainingReceipt(left, terms(1), { credited: false });
    await ledger.openChallenge(trainingReceiptId(left));
    await ledger.leaveUnresolved(trainingReceiptId(left), "undecided");
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    // Its second, different receipt for the round comes after the first closed: convicted.
    await assert.rejects(
      () =>
        ledger.recordTrainingReceipt(trainingReceipt(equivocator, 1, STEPS, "d2"), terms(1), {
          credited: false,
        }),
      (error: unknown) => (error as { code?: string }).code === "equivocation",
    );
    const before = accounts(ledger, [equivocator, undecided]);
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(first)), false);
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(left)), false);
    assert.deepEqual(accounts(ledger, [equivocator, undecided]), before);
    assert.equal(before[0].balance, 0);
    assert.equal(before[1].balance, 0);
    await ledger.close();
  });
});

Deno.test("a late credit's balances are the same after a reopen, with the index rebuilt from the log, and replayed from genesis", async () => {
  await withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    let ledger = await Ledger.open(dir, owner, options(clock));
    const late = Identity.generate();
    const inTime = Identity.generate();
    const keys = [late, inTime];
    for (const k of keys) await ledger.deposit(k.publicKey, STAKE);
    const lateReceipt = trainingReceipt(late, 1, STEPS, "d1");
    await ledger.recordTrainingReceipt(lateReceipt, terms(1), { credited: false });
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const inTimeReceipt = trainingReceipt(inTime, 2, STEPS, "d2");
    await ledger.recordTrainingReceipt(inTimeReceipt, terms(2), { credited: false });
    // One credited after its window closed, one inside it (paid when final): the same pay.
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(lateReceipt)), true);
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(inTimeReceipt)), true);
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const live = accounts(ledger, keys);
    assert.deepEqual(live, [
      { balance: CREDIT, stake: STAKE, locked: 0 },
      { balance: CREDIT, stake: STAKE, locked: 0 },
    ]);
    await ledger.close();
    for (const how of ["reopened", "index rebuilt", "replayed from genesis"]) {
      if (how === "index rebuilt") {
        const db = new DatabaseSync(join(dir, INDEX_FILE));
        db.exec("UPDATE meta SET v = 5 WHERE k = 'format';");
        db.close();
      }
      if (how === "replayed from genesis") await Deno.remove(join(dir, CHECKPOINT_FILE));
      ledger = await Ledger.open(dir, owner, options(clock));
      assert.deepEqual(accounts(ledger, keys), live, how);
      // Still paid once: the credit again finds it paid.
      assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(lateReceipt)), false, how);
      assert.deepEqual(accounts(ledger, keys), live, how);
      await ledger.close();
    }
  });
});

Deno.test("the coordinator's ledger and auditing ledgers end with the same balances whether the round's credit came before or after each one's window closed, up to one more window", async () => {
  const trainer = Identity.generate();
  const r = trainingReceipt(trainer, 1, STEPS);
  const id = trainingReceiptId(r);
  /** A ledger that records `r` uncredited at `recordAt` and is credited at `creditAt`. */
  const ledgerWith = async (recordAt: number, creditAt: number): Promise<Account> => {
    let end: Account | undefined;
    await withLedgerDir(async (dir, clock) => {
      const ledger = await Ledger.open(dir, Identity.generate(), options(clock));
      await ledger.deposit(trainer.publicKey, STAKE);
      clock.t = recordAt;
      await ledger.recordTrainingReceipt(r, terms(1), { credited: false });
      // Its timer finalizes what is due every tick up to the credit.
      for (; clock.t < creditAt; clock.t += 10) await ledger.finalizeDue();
      await ledger.creditTrainingReceipt(id);
      clock.t += 10 * WINDOW;
      await ledger.finalizeDue();
      end = { ...ledger.account(trainer.publicKey) };
      await ledger.close();
    });
    return end!;
  };
  // Recorded at 1,000 (the coordinator's, before the challenges; gossip a little later): its
  // window closes at 1,100, and a credit is taken until one more window after that.
  const coordinator = await ledgerWith(1_000, 1_000 + 1.5 * WINDOW);
  const auditorInTime = await ledgerWith(1_000 + WINDOW / 2, 1_000 + WINDOW);
  const auditorLate = await ledgerWith(1_010, 1_010 + 2 * WINDOW);
  const paid = { balance: CREDIT, stake: STAKE, locked: 0 };
  assert.deepEqual({ coordinator, auditorInTime, auditorLate }, {
    coordinator: paid,
    auditorInTime: paid,
    auditorLate: paid,
  });
  // Bounded: an outcome held back past that earns nothing (no auditor could have challenged it).
  const pastBound = await ledgerWith(1_000, 1_000 + 2 * WINDOW + 10);
  assert.deepEqual(pastBound, { balance: 0, stake: STAKE, locked: 0 });
});
