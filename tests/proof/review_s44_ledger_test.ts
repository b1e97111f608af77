/**
 * Review (stop 44) of the ledger's money: each test asserts the balances a sequence of
 * settlements leaves, not only what the calls return.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

const owner = Identity.generate();
const trainer = Identity.generate();
const accuser = Identity.generate();
const WINDOW = 100;
const PER_STEP = 10;
const MULTIPLIER = 20;

const terms = (round: number): TrainingRoundTerms => ({ round, startModel: START, steps: 4 });

Deno.test("review s44: a trainer's equivocation on a paid round after a slash took its stake never drives the stake below zero, live or reopened", () =>
  withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
    };
    let ledger = await Ledger.open(dir, owner, options);
    const lock = 4 * PER_STEP * MULTIPLIER; // 800
    await ledger.deposit(trainer.publicKey, lock);
    await ledger.deposit(accuser.publicKey, 1_000);
    // Round 1: recorded and paid; its lock released.
    await ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 4), terms(1));
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.account(trainer.publicKey).balance, 4 * PER_STEP);
    // Round 2: caught, the whole stake slashed.
    const cheat = trainingReceipt(trainer, 2, 4);
    await ledger.recordTrainingReceipt(cheat, terms(2));
    await ledger.settleTrainingFraud({
      receiptId: trainingReceiptId(cheat),
      fraudProofHash: "77".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "step_mismatch",
    });
    assert.equal(ledger.account(trainer.publicKey).stake, 0);
    // A second, different receipt for the paid round 1: equivocation, slashed on arrival. Its
    // stake has nothing left to take: it stays at zero (as an inference worker's does).
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 4, "d2"), terms(1)),
      { code: "equivocation" },
    );
    assert.equal(ledger.account(trainer.publicKey).stake, 0, "never below zero");
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.equal(ledger.account(trainer.publicKey).stake, 0, "never below zero, reopened");
    await ledger.close();
  }));
