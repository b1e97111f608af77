/**
 * Review s63 (training ledger convergence, the node in front of the ledger): a peer's fraud proof
 * about a trainer's receipt this ledger did not record, because another receipt of the same
 * trainer for the round came first (its equivocation: slashed, answered `equivocation`), settles
 * against the receipt recorded for the round, as where the proved receipt came first: the
 * trainer slashed once, the accuser rewarded. It was held for its receipt, which never comes
 * (`_receipt_held_training_proofs.ts`), until it lapsed: the accuser unpaid there, where every
 * ledger that heard the lazy receipt first paid it (`Ledger.trainingFraudSubject`, the intake's
 * `receipt_status`, `settleTrainingFraud` in `actors/_validator_training.ts`, and the proofs held
 * for a receipt released on an `equivocation` answer in `_receipt_credits.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account } from "../../proof/ledger.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import { inStakeHoldLedger } from "./_stake_hold_ledger.ts";

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);

/**
 * What reaches the node: the trainer's other receipt for the round, its lazy one (the proof's),
 * the trainer's stake, and the proof (carrying the lazy receipt).
 */
type Arrival = "other" | "lazy" | "trainer stake" | "proof";

/** What a ledger made of the evidence, once the window closed. */
interface Outcome {
  trainer: Account;
  accuser: Account;
  /** The training convictions the validator keeps for the peers that connect later. */
  caughtUp: number;
}

/** The trainer's other receipt for the proof's round: the same claim, another delta (`delta`). */
function otherReceipt(lazy: TrainingReceipt, trainer: Identity, delta = "ef"): TrainingReceipt {
  const { sig: _sig, trainer: _key, ...unsigned } = lazy;
  return signTrainingReceipt({ ...unsigned, deltaHash: delta.repeat(32) }, trainer);
}

/** `proof` about `receipt` in its place (its challenge drawn for it), signed by `accuser`. */
function proofAbout(
  proof: TrainingFraudProof,
  receipt: TrainingReceipt,
  accuser: Identity,
): TrainingFraudProof {
  const { sig: _sig, validator: _key, ...unsigned } = proof;
  const challenge = drawTrainingChallenge(receipt, accuser);
  return signTrainingFraudProof({ ...unsigned, receipt, challenge }, accuser);
}

/**
 * A fresh ledger and training validator (the accuser pledged) take `order`; then the round's
 * window closes.
 */
async function settleIn(
  order: readonly Arrival[],
  proof: TrainingFraudProof,
  other: TrainingReceipt,
  accuser: Identity,
): Promise<Outcome> {
  const name = `equivocation-proof-${order.join("-").replaceAll(" ", "_")}`;
  let outcome: Outcome | undefined;
  await inStakeHoldLedger(name, async ({ ledger, training, model, tick }) => {
    assert.equal(model, proof.receipt.startModel);
    const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
    for (const arrival of order) {
      if (arrival === "other" || arrival === "lazy") {
        const receipt = arrival === "other" ? other : proof.receipt;
        await training.ask({ type: "receipt", body: { receipt, terms }, origin: PEER });
      } else if (arrival === "trainer stake") {
        // As its pledge recorded (a deposit: the fixture's trainer key signs no pledge here).
        await ledger.ask({
          type: "deposit",
          key: proof.receipt.trainer,
          amount: LAZY_TRAINER_STAKE,
        });
      } else {
        await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER });
      }
    }
    // Re-run and settled outside the mailbox: waited for as long as any effect.
    await eventually(
      async () => (await account(accuser.publicKey)).balance > 0,
      "the accuser to be rewarded",
    ).catch(() => undefined);
    // Kept for the peers that connect while the window is open, whichever receipt it settled
    // against (before: only where the proved receipt was recorded here).
    const caughtUp = (await ledger.ask<CatchUpItem[]>({ type: "catch_up" }))
      .filter((item) => item.kind === "training_fraud_proof").length;
    tick(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    await ledger.ask({ type: "finalize" });
    outcome = {
      trainer: await account(proof.receipt.trainer),
      accuser: await account(accuser.publicKey),
      caughtUp,
    };
  });
  return outcome!;
}

Deno.test("review s63: a peer's proof about a trainer's receipt answered `equivocation` here (its other receipt for the round came first) settles against the one recorded: the trainer slashed once, its accuser rewarded, as where the proved receipt came first", async () => {
  const accuser = Identity.generate();
  const trainer = Identity.generate();
  const modelsDir = await Deno.makeTempDir({ prefix: "veriflow-equivocation-proof-cid-" });
  const startModel = await new RoundModels({ modelsDir, storage: () => undefined })
    .publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0))
    .finally(() => Deno.remove(modelsDir, { recursive: true }));
  const proof = lossFraud(startModel.cid, accuser, 8, trainer);
  const other = otherReceipt(proof.receipt, trainer);

  // The lazy receipt first: the proof settles against it, and the other is its equivocation.
  const lazyFirst = await settleIn(
    ["trainer stake", "lazy", "other", "proof"],
    proof,
    other,
    accuser,
  );
  assert.ok(lazyFirst.trainer.stake < LAZY_TRAINER_STAKE, "the trainer's stake cut");
  assert.equal(lazyFirst.trainer.balance, 0, "and it is not paid");
  assert.ok(lazyFirst.accuser.balance > 0, "its accuser rewarded");
  assert.equal(lazyFirst.accuser.stake, ACCUSER_PLEDGE);
  assert.equal(lazyFirst.caughtUp, 1, "the conviction kept for the peers that connect later");

  for (
    const order of [
      // The other receipt recorded, the lazy one its equivocation, then the proof.
      ["trainer stake", "other", "lazy", "proof"],
      // The lazy receipt reaches this node only in the proof (recorded from it: equivocation).
      ["trainer stake", "other", "proof"],
      // Both held for the trainer's stake, the proof for its receipt: recorded in order once it
      // staked, the lazy one answered `equivocation`, which releases the proof.
      ["other", "proof", "trainer stake"],
      ["other", "lazy", "proof", "trainer stake"],
    ] as const
  ) {
    assert.deepEqual(
      await settleIn(order, proof, other, accuser),
      lazyFirst,
      order.join(" → "),
    );
  }
});

Deno.test("review s63: an accuser whose proof settled against a trainer's round is not re-run for a proof about a third receipt of that trainer for the round", async () => {
  const accuser = Identity.generate();
  const trainer = Identity.generate();
  const modelsDir = await Deno.makeTempDir({ prefix: "veriflow-equivocation-proof-cid-" });
  const startModel = await new RoundModels({ modelsDir, storage: () => undefined })
    .publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0))
    .finally(() => Deno.remove(modelsDir, { recursive: true }));
  const proof = lossFraud(startModel.cid, accuser, 8, trainer);
  const other = otherReceipt(proof.receipt, trainer);
  await inStakeHoldLedger("equivocation-proof-third", async ({ ledger, training, model }) => {
    const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
    await training.ask({ type: "receipt", body: { receipt: other, terms }, origin: PEER });
    await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER });
    await eventually(async () => (await account(accuser.publicKey)).balance > 0, "the reward");
    // A third receipt the trainer signed for the round, and the same accuser's proof about it:
    // the accusation it settles against is made already (`repeated_accusation`), not re-run.
    const third = proofAbout(proof, otherReceipt(proof.receipt, trainer, "ab"), accuser);
    const answer = await training.ask<{ queued?: boolean; skipped?: string }>({
      type: "fraud_proof",
      body: { proof: third, arch: TEST_ARCH },
      origin: PEER,
    });
    assert.equal(answer.skipped, "repeated_accusation");
  });
});
