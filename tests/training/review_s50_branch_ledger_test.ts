/**
 * Review s50: the training rows of docs/TRAINING.md's "Who pays" list and docs/PROOF.md's
 * training table that were pinned only at the ledger (`tests/proof/ledger_training_test.ts`),
 * driven here through the training validator and the ValidatorActor on one test clock, asserting
 * every account the branch touches:
 *
 * - a peer's genuine `opening_missing` proof (issued after its challenge's deadline), which this
 *   ledger cannot take over (no connection to the trainer): since stop 51 it is a claim, not a
 *   proof, and does not settle on its accuser's word — the trainer is paid when its window closes,
 *   and nobody is charged (the takeover's branches, each with its accounts, are in
 *   `review_s51_claim_takeover_test.ts`; until stop 51 this slashed the trainer, burned);
 * - a peer's `opening_missing` proof issued before its challenge's deadline: refuted, the accuser
 *   pays the penalty and the trainer is paid when its window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
} from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, onLedgerNode } from "./_gated_ledger_node.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const ACCUSER_STAKE = 10 * PENALTY;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const START = 1_000_000;

/**
 * `accuser`'s `opening_missing` proof against `lazy`'s receipt, on a challenge with the full answer
 * window issued `challengedAgo` ms before START, the proof itself issued at START.
 */
function missingProof(
  lazy: TrainingFraudProof,
  accuser: Identity,
  challengedAgo: number,
): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser, { now: () => START - challengedAgo }),
    issuedAt: START,
  }, accuser);
}

/** `proof`'s receipt recorded and credited in `node` (paid when final), its accuser pledged. */
async function creditedReceipt(
  node: LedgerNode,
  proof: TrainingFraudProof,
  accuser: Identity,
): Promise<ReceiptRecord> {
  await node.pledge(accuser, ACCUSER_STAKE);
  await node.recordLazy(proof);
  const { receipt } = proof;
  await node.training().ask({
    type: "credit",
    receipts: [receipt],
    terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
  });
  const rec = (await node.ledger.ask<ReceiptRecord | undefined>({
    type: "receipt_status",
    receiptId: trainingReceiptId(receipt),
  }))!;
  assert.ok(rec.credit > 0 && rec.locked > 0, "credited and locked: paid when final");
  return rec;
}

Deno.test("review s50 (stop 51): a peer's genuine opening_missing proof this ledger cannot take over is a claim: the trainer is paid at its window, nobody is charged", () =>
  onLedgerNode("review-s50-opening-missing", async (node) => {
    const accuser = Identity.generate();
    const lazy = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, lazy, accuser);
    // Challenged with the full window, which passed before the proof was signed.
    const proof = missingProof(lazy, accuser, DEFAULT_OPENING_DEADLINE_MS + 1);
    assert.deepEqual(await node.send(proof), { queued: true });
    await eventually(async () => (await node.checked()) === 1, "the claim's check");
    await node.closeWindow();
    assert.equal(await node.status(rec.receiptId), "final");
    assert.deepEqual(await node.account(lazy.receipt.trainer), {
      balance: rec.credit,
      stake: LAZY_TRAINER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await node.account(accuser.publicKey), {
      balance: 0,
      stake: ACCUSER_STAKE,
      locked: 0,
    }, "a claim not taken over costs its author nothing");
  }, START));

Deno.test("review s50: a peer's opening_missing proof signed before its challenge's deadline is refuted: the accuser pays the penalty, the trainer is paid at its window", () =>
  onLedgerNode("review-s50-opening-early", async (node) => {
    const accuser = Identity.generate();
    const lazy = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, lazy, accuser);
    // The deadline is still a second away when the proof is signed.
    const proof = missingProof(lazy, accuser, DEFAULT_OPENING_DEADLINE_MS - 1_000);
    assert.deepEqual(await node.send(proof), { queued: true });
    await eventually(
      async () => (await node.account(accuser.publicKey)).stake < ACCUSER_STAKE,
      "the refuted proof to settle",
    );
    await node.closeWindow();
    assert.equal(await node.status(rec.receiptId), "final");
    assert.deepEqual(await node.account(lazy.receipt.trainer), {
      balance: rec.credit,
      stake: LAZY_TRAINER_STAKE,
      locked: 0,
    });
    assert.deepEqual(await node.account(accuser.publicKey), {
      balance: 0,
      stake: ACCUSER_STAKE - PENALTY,
      locked: 0,
    });
  }, START));
