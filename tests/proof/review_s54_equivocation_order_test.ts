/**
 * Review s54 (ledger): two contradicting receipts a worker signed for one job (or a trainer for
 * one round) are the same evidence whichever reaches a ledger first, so every ledger must book
 * the same cut. It used to be the lock of the receipt recorded first: a worker that claimed 10
 * tokens in one receipt and 1,000 in the other lost 200 where the small one came first and 20,000
 * where the big one did, and after a fraud proof against the small one the big one cost nothing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

const owner = Identity.generate();
const accuser = Identity.generate();
const M = 20;
const WINDOW = 100;
const STAKE = 100_000;
/** The worker's stake in the inference test: its other receipt's lock and the larger claim's. */
const WORKER_STAKE = 200 + 20_000;

/** What each ledger does with the evidence, in its own order. */
type Step = "small" | "big" | "proof_small";

/**
 * A fresh ledger where `worker` has another receipt open (10 tokens, its lock 200), fed `steps`
 * in order (the small and the big receipt of one job by `worker`, each with its assignment; a
 * confirmed fraud proof against the small one), then its windows closed and reopened from disk
 * (replayed from genesis): the worker's account, live and replayed.
 */
async function settle(
  steps: Step[],
  worker: Identity,
  small: Receipt,
  big: Receipt,
): Promise<unknown> {
  let outcome: unknown;
  await withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
      checkpointEvery: 0,
    };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, WORKER_STAKE);
    await ledger.deposit(accuser.publicKey, 1_000);
    const other = receipt(5402, 10, worker);
    await ledger.recordReceipt(other, assigned(other));
    for (const step of steps) {
      if (step === "proof_small") {
        await ledger.settleFraud({
          receiptId: receiptId(small),
          receipt: small,
          fraudProofHash: "ab".repeat(32),
          validator: accuser.publicKey,
          confirmed: true,
          reason: "fingerprint",
        }).catch((error) => assert.equal(error.code, "not_pending"));
        continue;
      }
      const r = step === "small" ? small : big;
      await ledger.recordReceipt(r, assigned(r)).catch((error) =>
        assert.ok(["equivocation", "job_already_recorded"].includes(error.code), error.code)
      );
    }
    // Whatever the order, the other receipt's slash is still backed by its lock.
    const before = ledger.account(worker.publicKey);
    assert.ok(before.stake >= before.locked, `${steps.join(" → ")}: ${JSON.stringify(before)}`);
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const live = { worker: ledger.account(worker.publicKey) };
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual({ worker: ledger.account(worker.publicKey) }, live, "replayed alike");
    await ledger.close();
    outcome = live;
  });
  return outcome;
}

Deno.test("review s54: a worker's two contradicting receipts for one job cost it the same on every ledger, whichever arrives first, and whether a fraud proof convicted the first", async () => {
  const worker = Identity.generate();
  const small = receipt(5401, 10, worker);
  const big = resigned(small, { tokenCount: 1_000, outputHash: "77".repeat(32) }, worker);
  // m × the larger claim (1,000 tokens at price 1): what a ledger that saw only that one would
  // have locked, and paid 1,000 for. The other receipt is paid.
  const expected = { worker: { balance: 10, stake: WORKER_STAKE - M * 1_000, locked: 0 } };
  for (
    const order of [
      ["big", "small"],
      ["small", "big"],
      ["small", "proof_small", "big"],
      ["big", "small", "proof_small"],
    ] as Step[][]
  ) {
    assert.deepEqual(await settle(order, worker, small, big), expected, order.join(" → "));
  }
});

const PER_STEP = 10;
const terms: TrainingRoundTerms = { round: 1, startModel: START, steps: 8 };

Deno.test("review s54: a trainer's two receipts for one round cost it the same on every ledger, whichever arrives first, and whether a fraud proof convicted the first", async () => {
  const trainer = Identity.generate();
  const small = trainingReceipt(trainer, 1, 1, "d1");
  const big = trainingReceipt(trainer, 1, 8, "d2");
  const expected = { balance: 0, stake: STAKE - M * 8 * PER_STEP, locked: 0 };
  for (
    const order of [
      ["big", "small"],
      ["small", "big"],
      ["small", "proof_small", "big"],
    ] as Step[][]
  ) {
    await withLedgerDir(async (dir, clock) => {
      const options = {
        now: () => clock.t,
        economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
      };
      let ledger = await Ledger.open(dir, owner, options);
      await ledger.deposit(trainer.publicKey, STAKE);
      await ledger.deposit(accuser.publicKey, 1_000);
      for (const step of order) {
        if (step === "proof_small") {
          await ledger.settleTrainingFraud({
            receiptId: trainingReceiptId(small),
            fraudProofHash: "cd".repeat(32),
            validator: accuser.publicKey,
            confirmed: true,
            reason: "step_mismatch",
          });
          continue;
        }
        const r = step === "small" ? small : big;
        await ledger.recordTrainingReceipt(r, terms).catch((error) =>
          assert.ok(
            ["equivocation", "round_already_recorded"].includes(error.code),
            error.code,
          )
        );
      }
      clock.t += WINDOW + 1;
      await ledger.finalizeDue();
      assert.deepEqual(ledger.account(trainer.publicKey), expected, order.join(" → "));
      await ledger.close();
      ledger = await Ledger.open(dir, owner, options);
      assert.deepEqual(ledger.account(trainer.publicKey), expected, "replayed alike");
      await ledger.close();
    });
  }
});

Deno.test("review s54: a confirmed fraud proof about the worker's other, larger claim for a job costs it and rewards its accuser as where that claim was recorded; the claim arriving later adds nothing", async () => {
  const worker = Identity.generate();
  const small = receipt(5403, 10, worker);
  const big = resigned(small, { tokenCount: 1_000, outputHash: "88".repeat(32) }, worker);
  const outcomes: unknown[] = [];
  // Each ledger recorded one of the two claims; the proof (about the big one, and carrying it)
  // reaches both; then the other claim comes to each.
  for (const [recorded, later] of [[big, small], [small, big]]) {
    await withLedgerDir(async (dir, clock) => {
      const options = {
        now: () => clock.t,
        economics: { challengeWindowMs: WINDOW },
        checkpointEvery: 0,
      };
      let ledger = await Ledger.open(dir, owner, options);
      await ledger.deposit(worker.publicKey, STAKE);
      await ledger.deposit(accuser.publicKey, 1_000);
      await ledger.recordReceipt(recorded, assigned(recorded));
      await ledger.settleFraud({
        receiptId: receiptId(big),
        receipt: big,
        fraudProofHash: "ef".repeat(32),
        validator: accuser.publicKey,
        confirmed: true,
        reason: "fingerprint",
      });
      await ledger.recordReceipt(later, assigned(later)).catch((error) =>
        assert.equal(error.code, "job_already_recorded")
      );
      clock.t += WINDOW + 1;
      await ledger.finalizeDue();
      const live = {
        worker: ledger.account(worker.publicKey),
        accuser: ledger.account(accuser.publicKey),
      };
      await ledger.close();
      ledger = await Ledger.open(dir, owner, options);
      assert.deepEqual(
        {
          worker: ledger.account(worker.publicKey),
          accuser: ledger.account(accuser.publicKey),
        },
        live,
        "replayed alike",
      );
      await ledger.close();
      outcomes.push(live);
    });
  }
  const expected = {
    worker: { balance: 0, stake: STAKE - M * 1_000, locked: 0 },
    accuser: { balance: (M * 1_000) / 2, stake: 1_000, locked: 0 },
  };
  assert.deepEqual(outcomes, [expected, expected]);
});
