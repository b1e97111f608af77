/**
 * Review s59: a peer's fraud proof whose intake asks a ledger that does not answer.
 *
 * The intake (`training/_training_proof_intake.ts`, `admit`) asks the ledger where the proof's
 * receipt stands; an ask that went unanswered (the ValidatorActor crashed on a failed read and
 * restarts) read as "receipt unknown here", and the proof was held for its receipt: released only
 * when the ledger records that receipt again, which, recorded already, it never does. The lazy
 * trainer, slashed in every other ledger, is paid in this one. The test reads the ledger outcome:
 * the lazy receipt's status and the trainer's stake here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { MAX_END_ATTEMPTS } from "../../training/_challenge_endings.ts";
import { type LazyReceiptRun, onLazyReceiptLedger } from "./_training_ledger.ts";

/**
 * A ledger and a training validator on a test clock (retries 5 ms, doubling), a lazy receipt
 * credited there (paid when final) and a staked accuser's confirmed proof against it
 * ({@link onLazyReceiptLedger}, its own proofs kept in memory only); `down(true)` makes the
 * ledger look stopped to the training validator (its lookup finds none, as after `system.stop`)
 * while the test still reads it. `send` hands the proof over as a peer's; `assert` reads the
 * ledger outcome after the window: the lazy trainer slashed here.
 */
async function withLazyReceipt(
  name: string,
  test: (
    context: Omit<LazyReceiptRun, "assertSlashed"> & {
      assertSlashed: (taken: unknown) => Promise<void>;
    },
  ) => Promise<void>,
): Promise<void> {
  await onLazyReceiptLedger(`s59-intake-${name}`, { resumeOwnProofs: false }, async (lazy) => {
    // The round's outcome credited the lazy receipt here: paid when its window closes.
    await lazy.credit();
    await test({
      ...lazy,
      assertSlashed: (taken) =>
        lazy.slashed(
          `the lazy trainer was paid here (the intake answered ${JSON.stringify(taken)})`,
        ),
    });
  });
}

Deno.test("review s59: a peer's confirmed fraud proof whose intake found the ledger restarting (a failed read of where its receipt stands) still slashes the lazy trainer here", () =>
  withLazyReceipt("restarting", async ({ id, send, assertSlashed }) => {
    const receipt = Ledger.prototype.receipt;
    let failures = 0;
    try {
      // The intake's read of where the receipt stands fails once, as a disk does: the
      // ValidatorActor crashes, and its supervisor restarts it.
      Ledger.prototype.receipt = function (receiptId: string) {
        if (receiptId === id) {
          Ledger.prototype.receipt = receipt;
          failures++;
          throw Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" });
        }
        return receipt.call(this, receiptId);
      };
      const taken = await send();
      assert.equal(failures, 1, "the read failed once");
      await assertSlashed(taken);
    } finally {
      Ledger.prototype.receipt = receipt;
    }
  }));

Deno.test("review s59: a peer's confirmed fraud proof handed over while this node's ledger is stopped is taken again once the ledger is back: the lazy trainer is slashed here too", () =>
  withLazyReceipt("stopped", async ({ down, send, assertSlashed }) => {
    down(true);
    const taken = await send();
    down(false);
    await assertSlashed(taken);
  }));

Deno.test("review s59: a peer's fraud proof kept for a ledger that stays stopped is dropped after a bounded number of tries: the lazy trainer goes unslashed here (the written cost)", () =>
  withLazyReceipt("gives-up", async (c) => {
    c.down(true);
    await c.send();
    await eventually(
      () => c.log.some((l) => l.includes("dropped") && l.includes(`(${MAX_END_ATTEMPTS} tries)`)),
      "the tries to run out",
    );
    const kept = c.log.filter((l) => l.includes("kept, the ledger did not answer its intake"));
    assert.equal(kept.length, MAX_END_ATTEMPTS - 1, "kept after each try but the last");
    c.down(false);
    await c.closeWindow();
    const record = await c.record();
    assert.equal(record.status, "final", "never checked here: paid, as before the fix");
    assert.equal((await c.trainer()).balance, record.credit);
  }));
