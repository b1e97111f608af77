/**
 * Review (stop 44) of a peer's training fraud proof taken inside its receipt's window whose check
 * (a re-run of training steps, slow) ends after the window closed: as for an inference proof
 * (`review_s44_ledger_test.ts`), the receipt is held out of the finalize tick while the proof is
 * checked, and the proof settles with the time it was taken — also when the training validator
 * restarts meanwhile. Each test asserts the balances, not only the verdicts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, onLedgerNode } from "../training/_gated_ledger_node.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "../training/_loss_fraud.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const START = 1_000_000;

/**
 * `proof`'s receipt recorded and credited (its delta went into a round's model: paid when final)
 * in `node`, its accuser pledged; the clock a moment before the window closes. Returns the record.
 */
async function creditedReceipt(node: LedgerNode, proof: TrainingFraudProof, accuser: Identity) {
  await node.pledge(accuser, 10 * PENALTY);
  await node.recordLazy(proof);
  const { receipt } = proof;
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
  assert.ok(rec.credit > 0, "credited: paid when final");
  node.advance(rec.pendingUntil - 1 - START);
  return rec;
}

/** A false accusation of `lazy`'s receipt by `accuser` (refuted by its check). */
function falseProof(lazy: TrainingFraudProof, accuser: Identity): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser),
    issuedAt: START,
  }, accuser);
}

Deno.test("review s44: a peer's training fraud proof taken inside the window slashes the lazy trainer even when its re-run ends after the window closed; the trainer is never paid meanwhile", () =>
  onLedgerNode("review-s44-training-hold", async (node) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, proof, accuser);
    // The re-run is slow (a queue of checks, a model to load): held until opened.
    const gate = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true }, "taken inside the window");
    await gate.entered;
    // The window closes while it is being checked: the finalize tick comes.
    node.advance(2);
    await node.ledger.ask({ type: "finalize" });
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the re-run", {
      timeoutMs: 10_000,
    });
    await node.closeWindow();
    const trainer = await node.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer is not paid");
    assert.equal(trainer.stake, LAZY_TRAINER_STAKE - rec.locked, "and loses its locked stake");
    assert.equal(await node.status(rec.receiptId), "fraud", "convicted here too");
    assert.equal(
      (await node.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
  }, START));

Deno.test("review s44: a training receipt held back while a false proof taken inside its window is checked is paid at the next tick, and the accuser pays", () =>
  onLedgerNode("review-s44-training-held-paid", async (node) => {
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const accuser = Identity.generate();
    const rec = await creditedReceipt(node, lazy, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(falseProof(lazy, accuser)), { queued: true });
    await gate.entered;
    node.advance(2);
    assert.deepEqual(await node.ledger.ask({ type: "finalize" }), [], "not paid while checked");
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the check", { timeoutMs: 10_000 });
    await eventually(
      async () => (await node.account(accuser.publicKey)).stake < 10 * PENALTY,
      "the refuted proof to settle",
    );
    assert.deepEqual(
      await node.ledger.ask({ type: "finalize" }),
      [rec.receiptId],
      "paid once refuted",
    );
    assert.equal((await node.account(lazy.receipt.trainer)).balance, rec.credit);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY - PENALTY);
  }, START));

Deno.test("review s44: a peer's training fraud proof taken inside the window and kept across a restart of the training validator after the window closed still slashes the lazy trainer, which is not paid meanwhile", () =>
  onLedgerNode("review-s44-training-restart", async (node) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, proof, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true });
    await gate.entered;
    // Restarted while checking (the check's answer is lost with it) after the window closed: the
    // proof, kept on disk as taken and not settled, is taken again and checked; the finalize
    // tick comes meanwhile.
    node.advance(2);
    await node.restartTraining();
    await node.ledger.ask({ type: "finalize" });
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the re-run after the restart", {
      timeoutMs: 10_000,
    });
    await node.closeWindow();
    const trainer = await node.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer is not paid");
    assert.equal(trainer.stake, LAZY_TRAINER_STAKE - rec.locked, "and loses its locked stake");
    assert.equal(await node.status(rec.receiptId), "fraud", "convicted here too");
    assert.equal(
      (await node.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  }, START));
