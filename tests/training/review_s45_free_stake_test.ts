/**
 * Review s45, training side of free stake. A false accusation's penalty comes out of the
 * accuser's free stake only (`freeStake` in `proof/ledger.ts`: its stake less what its own
 * pending receipts lock), and the inference intake counts an accuser as backed only by free
 * stake. The training intake still counted the whole stake: a key whose stake its own training
 * receipt locked entirely was taken as backed, so its false training proofs skipped the unbacked
 * budget (`actors/_unbacked_checks.ts`: 3 per receipt, 16 in flight) while each refuted one cost
 * it nothing — free, unbounded re-runs. Backed by free stake, such a key's proofs are unbacked:
 * bounded per receipt, and still costing it nothing out of its locks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { signTrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, onLedgerNode } from "./_gated_ledger_node.ts";
import { lossFraud } from "./_loss_fraud.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** What a one-step training receipt locks of its trainer's stake (its slash). */
const LOCK = DEFAULT_ECONOMICS.trainingCreditPerStep * DEFAULT_ECONOMICS.slashMultiplier;

/**
 * A false accusation of `lazy`'s receipt by `accuser`: "no answer" claimed before the challenge's
 * deadline, refuted by every checker (`before_deadline`) without a re-run.
 */
function falseProof(lazy: TrainingFraudProof, accuser: Identity): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser),
    issuedAt: Date.now(),
  }, accuser);
}

/**
 * `key` deposits exactly {@link LOCK} and its own one-step training receipt is recorded in
 * `node`'s ledger: all its stake is locked as a trainer. @returns the receipt's id.
 */
async function lockAllStake(node: LedgerNode, key: Identity): Promise<string> {
  const { sig: _sig, trainer: _trainer, ...unsigned } = lossFraud(node.model.cid).receipt;
  const receipt = signTrainingReceipt(unsigned, key);
  await node.ledger.ask({ type: "deposit", key: key.publicKey, amount: LOCK });
  const recorded = await node.training().ask<{ recorded: boolean }>({
    type: "receipt",
    body: { receipt, terms: { round: 0, startModel: node.model.cid, steps: receipt.steps } },
    origin: "stranger",
  });
  assert.equal(recorded.recorded, true, "its own receipt recorded");
  return trainingReceiptId(receipt);
}

Deno.test("s45 free stake: training proofs from keys whose stake their own receipts lock are unbacked: three false ones about a receipt are checked, a fourth skipped, and their locks stay whole", () =>
  onLedgerNode("s45-free-stake", async (node) => {
    const lazy = lossFraud(node.model.cid);
    const id = trainingReceiptId(lazy.receipt);
    await node.recordLazy(lazy);
    // Each accuser's stake would back a penalty were it free; its own receipt locks all of it.
    assert.ok(LOCK >= PENALTY);
    const accusers = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    const own: string[] = [];
    for (const key of accusers) {
      own.push(await lockAllStake(node, key));
      assert.deepEqual(await node.account(key.publicKey), {
        balance: 0,
        stake: LOCK,
        locked: LOCK,
      });
    }

    const intakes = [];
    for (const key of accusers) intakes.push(await node.send(falseProof(lazy, key)));
    await eventually(
      async () => (await node.checked()) >= MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the unbacked checks",
    );
    // The false proofs settled (a false accusation is recorded for each one checked).
    await eventually(async () => {
      for (const key of accusers.slice(0, -1)) {
        const accused = await node.ledger.ask<boolean>({
          type: "has_accused",
          validator: key.publicKey,
          receiptId: id,
        });
        if (!accused) return false;
      }
      return true;
    }, "the checked proofs to settle");

    assert.equal(
      await node.checked(),
      MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "no more proofs checked than the receipt's unbacked budget",
    );
    assert.deepEqual(intakes.slice(0, -1), accusers.slice(0, -1).map(() => ({ queued: true })));
    assert.deepEqual(
      intakes.at(-1),
      { queued: false, skipped: "unstaked_accuser" },
      "locked stake backs no check: the fourth is past the budget",
    );
    assert.equal(
      await node.ledger.ask<boolean>({
        type: "has_accused",
        validator: accusers.at(-1)!.publicKey,
        receiptId: id,
      }),
      false,
      "the fourth unchecked",
    );
    for (const key of accusers) {
      assert.deepEqual(
        await node.account(key.publicKey),
        { balance: 0, stake: LOCK, locked: LOCK },
        "no penalty out of what its own receipt locks",
      );
    }
    assert.equal(await node.status(id), "pending", "false proofs convict nobody");
    for (const receipt of own) assert.equal(await node.status(receipt), "pending");
  }));
