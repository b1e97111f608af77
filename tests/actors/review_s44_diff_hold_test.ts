/**
 * Review (stop 44, second look) of the fraud-check hold: a receipt is held out of the finalize
 * tick only for a peer's proof that can still settle it — one taken inside its window. A proof
 * taken after the window is refused by every ledger whatever its check says (its accuser risks
 * nothing), so holding the receipt for it only lets any staked key delay an honest worker's pay.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { signTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { onLedgerNode } from "../training/_gated_ledger_node.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { falseProof, START } from "./_validator_fixture.ts";
import { withHeldReceipt } from "./_held_receipt_fixture.ts";

Deno.test("review s44 diff: a peer's proof taken after the window closed does not hold an honest receipt out of the finalize tick", () =>
  withHeldReceipt("late-proof-holds-nothing", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    // The window has closed; before the finalize tick, a false proof comes (a slow check).
    clock.t = rec.pendingUntil + 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.deepEqual(
      await validator.ask({ type: "finalize" }),
      [id],
      "paid at the tick: a proof taken after the window cannot settle the receipt",
    );
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    slow.release();
    await taken.result?.catch(() => {});
  }));

Deno.test("review s44 diff: a peer's training proof taken after the window closed does not hold an honest training receipt out of the finalize tick", () =>
  onLedgerNode("review-s44-diff-late-training-proof", async (node) => {
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const accuser = Identity.generate();
    await node.pledge(accuser, 10 * penalty);
    await node.recordLazy(lazy);
    const { receipt } = lazy;
    await node.training().ask({
      type: "credit",
      receipts: [receipt],
      terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
    });
    const id = trainingReceiptId(receipt);
    const rec = (await node.ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: id,
    }))!;
    // The window has closed; before the finalize tick, a false proof comes (a slow re-run).
    node.advance(rec.pendingUntil + 1 - START);
    const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
    const accusation = signTrainingFraudProof({
      ...unsigned,
      reason: "opening_missing",
      challenge: drawTrainingChallenge(receipt, accuser),
      issuedAt: START,
    }, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(accusation), { queued: true });
    await gate.entered;
    assert.deepEqual(
      await node.ledger.ask({ type: "finalize" }),
      [id],
      "paid at the tick: a proof taken after the window cannot settle the receipt",
    );
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the check", { timeoutMs: 10_000 });
  }, START));
