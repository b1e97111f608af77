/**
 * The ledger's money: balances a sequence of settlements leaves, and amounts kept to a millionth
 * of a credit so that fractional prices never drift or end otherwise in another order.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { readCheckpoint, signCheckpoint, writeCheckpoint } from "../../proof/ledger_checkpoint.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { toHex } from "../../protocols/hash.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

// Fractional prices: amounts are `tokens × price` (× `slashMultiplier`), and with a price like 0.1
// binary floating point made them, and the balances summed from them, drift by an ulp: a lock of 3
// tokens at 0.1 × 20 was 6.000000000000001, so a worker with exactly 6 free was refused it;
// `locked` ended at ±1.8e-15 instead of 0 once every receipt was final; and two ledgers that met
// the same receipts in another order ended with other balances (0.6 here, 0.6000000000000001
// there). Amounts and balances are now kept to a millionth of a credit.

const PRICE = 0.1;
const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a worker whose free stake is exactly a receipt's lock at a fractional price can take it", async () => {
  await withLedgerDir(async (dir, clock) => {
    const worker = Identity.generate();
    const ledger = await Ledger.open(dir, Identity.generate(), {
      now: () => clock.t,
      tokenPrice: () => PRICE,
    });
    await ledger.deposit(worker.publicKey, 6); // 3 tokens × 0.1 × m (20)
    const r = receipt(5711, 3, worker);
    const rec = await ledger.recordReceipt(r, assigned(r));
    assert.equal(rec.locked, 6);
    assert.equal(rec.credit, 0.3);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 6, locked: 6 });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0.3, stake: 6, locked: 0 });
    await ledger.close();
  });
});

/** A ledger of its own that records `receipts` in that order and lets every one become final. */
async function settleAll(worker: Identity, receipts: Receipt[]) {
  let result;
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), {
      now: () => clock.t,
      tokenPrice: () => PRICE,
    });
    await ledger.deposit(worker.publicKey, 1000);
    for (const r of receipts) await ledger.recordReceipt(r, assigned(r));
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const finalized = await ledger.finalizeDue();
    assert.deepEqual(finalized, receipts.map(receiptId), "final in the order recorded");
    result = ledger.account(worker.publicKey);
    await ledger.close();
  });
  return result!;
}

Deno.test("two ledgers that record and pay the same fractionally priced receipts in other orders agree on every balance, and nothing stays locked", async () => {
  const worker = Identity.generate();
  const receipts = [1, 2, 3].map((tokens, i) => receipt(5720 + i, tokens, worker));
  const forward = await settleAll(worker, receipts);
  const backward = await settleAll(worker, [...receipts].reverse());
  assert.deepEqual(backward, forward, "both ledgers settle the same evidence the same way");
  assert.deepEqual(forward, { balance: 0.6, stake: 1000, locked: 0 });
});

Deno.test("a replay from genesis and a checkpoint give the same fractional balances", async () => {
  await withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const options = { now: () => clock.t, tokenPrice: () => PRICE, checkpointEvery: 2 };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 100.7);
    for (const tokens of [1, 2, 5, 7]) {
      const r = receipt(5730 + tokens, tokens, worker);
      await ledger.recordReceipt(r, assigned(r));
      clock.t += 1;
    }
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    const expected = { balance: 1.5, stake: 100.7, locked: 0 };
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options); // from the checkpoint
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    await ledger.close();
    await Deno.remove(`${dir}/checkpoint.cbor`);
    ledger = await Ledger.open(dir, owner, { ...options, checkpointEvery: 0 }); // from genesis
    assert.deepEqual(ledger.account(worker.publicKey), expected);
    await ledger.close();
  });
});

Deno.test("roundCredits keeps amounts to a millionth of a credit, canonical whatever the order of the sums", () => {
  assert.equal(roundCredits(3 * PRICE * M), 6);
  assert.equal(roundCredits(0.1 + 0.2), 0.3);
  assert.equal(roundCredits(1.0000004), 1);
  assert.equal(roundCredits(-1.7763568394002505e-15), 0);
  assert.ok(Object.is(roundCredits(-1e-9), 0), "never -0");
  assert.equal(roundCredits(1_000_000.5), 1_000_000.5);
  assert.equal(roundCredits(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
});

Deno.test("ledger verify: a checkpoint written before amounts were kept to the quantum (a balance an ulp off) matches the replay; one a credit off does not", async () => {
  await withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t, tokenPrice: () => PRICE });
    await ledger.deposit(worker.publicKey, 1000);
    for (const n of [1, 2, 3]) {
      const r = receipt(5800 + n, n, worker);
      await ledger.recordReceipt(r, assigned(r));
    }
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    await ledger.close(); // writes the checkpoint
    const written = await readCheckpoint(dir);
    assert.ok(typeof written === "object");
    assert.equal((await verifyLedger(dir)).checkpoint.check, "matches");
    const key = worker.publicKey;
    /** The checkpoint again, signed by its owner, with the worker's balance moved by `delta`. */
    const rewrite = async (delta: number) => {
      const { v: _v, sig: _sig, signer: _signer, ...unsigned } = written;
      const accounts = written.state.accounts.map((row) =>
        row[0] === toHex(key) ? [row[0], row[1] + delta, ...row.slice(2)] : row
      ) as typeof written.state.accounts;
      await writeCheckpoint(
        dir,
        signCheckpoint({ ...unsigned, state: { ...written.state, accounts } }, owner),
      );
    };
    // As the code before the quantum summed 0.1 + 0.2 + 0.3: 0.6000000000000001.
    await rewrite(0.1 + 0.2 + 0.3 - 0.6);
    assert.equal((await verifyLedger(dir)).checkpoint.check, "matches", "an ulp is no damage");
    await rewrite(1);
    assert.equal((await verifyLedger(dir)).checkpoint.check, "does_not_match");
  });
});

// The ledger's money: each test asserts the balances a sequence of settlements leaves, not only
// what the calls return.

const owner = Identity.generate();
const trainer = Identity.generate();
const accuser = Identity.generate();
const WINDOW = 100;
const PER_STEP = 10;
const MULTIPLIER = 20;

const terms = (round: number): TrainingRoundTerms => ({ round, startModel: START, steps: 4 });

Deno.test("a trainer's equivocation on a paid round after a slash took its stake never drives the stake below zero, live or reopened", () =>
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
