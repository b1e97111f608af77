/**
 * Red team of stop 63's hold of peers' training receipts for their trainer's stake
 * (`training/_stake_held_training_receipts.ts`, 9d9113b): a receipt refused `insufficient_stake`
 * while its trainer never staked here is held, and recorded once the trainer has staked, so a
 * proof about a lazy one settles here as where the stake came first.
 *
 * The hold keeps two receipts a trainer, "its newest replaces its oldest". Nobody but the trainer
 * can sign its receipts, so no one else can push an honest trainer's receipt out; but the lazy
 * trainer itself can: two receipts it signs for made-up rounds (terms are not signed: any round
 * and start model its receipt names pass the ledger's checks, and are refused for its stake like
 * the lazy one), relayed after the lazy one and before its pledge, replace it. Its pledge then
 * lets those two through, the lazy receipt is never recorded here, the proof about it waits for it
 * for good, and the trainer keeps here the stake every ledger that had its pledge first slashed
 * (what 9d9113b fixed). This test fails against 9d9113b, on purpose.
 *
 * Fixed (helper-T1): the receipt a proof held for its receipt carries is recorded as a peer's
 * (`ReceiptCredits.proofHeld`), held for its trainer's stake in places of its own that the
 * trainer's receipts cannot push out nor a full hold of peers' receipts shut out
 * (`training/_stake_held_training_receipts.ts`). The tests below also cover the proof before the
 * pledge with the made-up receipts and a flood of 8 relaying peers after it, a proof from a key
 * that never pledged here (its receipt is not recorded from it), and the new places' bounds.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  MAX_STAKE_HELD_PER_ORIGIN,
  MAX_STAKE_HELD_PROVED,
  MAX_STAKE_HELD_PROVED_PER_ACCUSER,
  MAX_STAKE_HELD_TRAINING_RECEIPTS,
  StakeHeldTrainingReceipts,
} from "../../training/_stake_held_training_receipts.ts";
import { eventually } from "../_helpers/wait.ts";
import { START, trainingReceipt } from "../proof/_training_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import { inStakeHoldLedger } from "./_stake_hold_ledger.ts";

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** The peer relaying the lazy receipt (its coordinator, say). */
const PEER = "ee".repeat(32);
/** The peer relaying the trainer's receipts for made-up rounds (the trainer itself, say). */
const TRAINER_PEER = "ef".repeat(32);
/** Samples a step. */
const BATCH = 8;

/** `trainer`'s lazy receipt and `accuser`'s `loss_mismatch` proof against it (`lossFraud`). */
function lazyFraud(startModel: string, trainer: Identity, accuser: Identity): TrainingFraudProof {
  return lossFraud(startModel, accuser, BATCH, trainer);
}

Deno.test("stake hold red team: a lazy trainer's receipts for made-up rounds, relayed before its pledge, push its held lazy receipt out, and it keeps here the stake the other ledgers slashed", async () => {
  await inStakeHoldLedger("made-up-rounds", async ({ ledger, training, model, tick }) => {
    const trainer = Identity.generate();
    const accuser = Identity.generate();
    const proof = lazyFraud(model, trainer, accuser);
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    // The lazy receipt, before the trainer's pledge: held for it.
    const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
    await training.ask({ type: "receipt", body: { receipt: proof.receipt, terms }, origin: PEER });
    // Two receipts of the trainer's for made-up rounds, refused for its stake all the same.
    for (const round of [1_000, 1_001]) {
      const made = trainingReceipt(trainer, round, 1);
      const answer = await training.ask<{ refusal?: string }>({
        type: "receipt",
        body: { receipt: made, terms: { round, startModel: START, steps: 1 } },
        origin: TRAINER_PEER,
      });
      assert.equal(answer.refusal, "insufficient_stake");
    }
    // Its pledge (a deposit, as `review_s63_training_stake_order_test.ts`), then the proof.
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER });
    await eventually(async () => (await status()) === "fraud", "the proof to settle")
      .catch(() => undefined);
    tick(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    await ledger.ask({ type: "finalize" });
    const trainerEnd = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    const accuserEnd = await ledger.ask<Account>({ type: "account", key: accuser.publicKey });
    // As where its pledge came first (`review_s63_training_stake_order_test.ts`). Today: the
    // lazy receipt unknown here (status undefined), stake 10,000,000, accuser balance 0.
    assert.equal(await status(), "fraud", "the lazy receipt is recorded and convicted");
    assert.ok(trainerEnd.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainerEnd.stake}`);
    assert.ok(accuserEnd.balance > 0, `its accuser rewarded: ${accuserEnd.balance}`);
  });
});

Deno.test("stake hold red team: the proof before the pledge, then the trainer's receipts for made-up rounds and 8 relaying peers filling the hold: the lazy receipt is still recorded once the trainer stakes, and the trainer slashed", async () => {
  await inStakeHoldLedger("proof-first", async ({ ledger, training, model, tick }) => {
    const trainer = Identity.generate();
    const accuser = Identity.generate();
    const proof = lazyFraud(model, trainer, accuser);
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
    await training.ask({ type: "receipt", body: { receipt: proof.receipt, terms }, origin: PEER });
    const answer = await training.ask<{ held?: boolean }>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
    });
    assert.equal(answer.held, true, "held for its receipt");
    // After the proof: the trainer's receipts for made-up rounds, and 8 relaying peers' receipts
    // of fresh keys, as many as the peers' places.
    for (const round of [1_000, 1_001, 1_002]) {
      await training.ask({
        type: "receipt",
        body: {
          receipt: trainingReceipt(trainer, round, 1),
          terms: { round, startModel: START, steps: 1 },
        },
        origin: TRAINER_PEER,
      });
    }
    for (let i = 0; i < MAX_STAKE_HELD_TRAINING_RECEIPTS; i++) {
      await training.ask({
        type: "receipt",
        body: {
          receipt: trainingReceipt(Identity.generate(), 0, 1),
          terms: { round: 0, startModel: START, steps: 1 },
        },
        origin: `${(i % 8).toString(16)}f`.repeat(32),
      });
    }
    assert.equal(await status(), undefined, "not recorded before its trainer stakes");
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await eventually(async () => (await status()) === "fraud", "the proof to settle")
      .catch(() => undefined);
    tick(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    await ledger.ask({ type: "finalize" });
    const trainerEnd = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    const accuserEnd = await ledger.ask<Account>({ type: "account", key: accuser.publicKey });
    assert.equal(await status(), "fraud", "the lazy receipt is recorded and convicted");
    assert.ok(trainerEnd.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainerEnd.stake}`);
    assert.equal(trainerEnd.balance, 0, "never paid from here");
    assert.ok(accuserEnd.balance > 0, `its accuser rewarded: ${accuserEnd.balance}`);
  });
});

Deno.test("stake hold red team: a proof from a key that never pledged here does not get the receipt it carries recorded (no lock on its staked trainer's stake)", async () => {
  await inStakeHoldLedger("unpledged", async ({ ledger, training, model }) => {
    const trainer = Identity.generate();
    const stranger = Identity.generate();
    const proof = lazyFraud(model, trainer, stranger);
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    const answer = await training.ask<{ held?: boolean; awaitingPledge?: boolean }>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
    });
    assert.equal(answer.held, undefined, "not held for its receipt");
    assert.equal(answer.awaitingPledge, true, "held for its accuser's pledge");
    const id = trainingReceiptId(proof.receipt);
    const record = await ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: id,
    });
    assert.equal(record, undefined, "its receipt is not recorded from it");
    const trainerNow = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    assert.equal(trainerNow.locked, 0, "nothing locked");
  });
});

Deno.test("stake hold red team: a receipt a held proof carried has places of its own: its trainer's receipts do not push it out, a full hold of peers' ones does not shut it out, an accuser's third pushes out its own oldest, and past them all the oldest goes", () => {
  const body = (trainer: Identity, round: number) => ({
    receipt: trainingReceipt(trainer, round, 2),
    terms: { round, startModel: START, steps: 4 },
  });
  const held = new StakeHeldTrainingReceipts();
  const trainer = Identity.generate();
  const lazy = body(trainer, 0);
  assert.ok(held.hold({ body: lazy, origin: "a", since: 0 }), "a peer's copy first");
  assert.ok(held.hold({ body: lazy, origin: "b", since: 1, accuser: "x" }), "then a proof's");
  assert.equal(held.size, 1, "held once");
  for (let round = 1; round <= 3; round++) {
    assert.ok(held.hold({ body: body(trainer, round), origin: "t", since: round }));
  }
  // Peers fill all their places with fresh keys.
  let origin = 0;
  while (held.hold({ body: body(Identity.generate(), 0), origin: `p${origin++ % 8}`, since: 5 })) {
    assert.ok(held.size <= MAX_STAKE_HELD_TRAINING_RECEIPTS + 1);
  }
  assert.ok(origin <= MAX_STAKE_HELD_TRAINING_RECEIPTS + 8 * MAX_STAKE_HELD_PER_ORIGIN);
  const proved = body(Identity.generate(), 0);
  assert.ok(held.hold({ body: proved, origin: "p0", since: 6, accuser: "y" }), "not shut out");
  const taken = held.take(toHex(trainer.publicKey));
  assert.deepEqual(
    taken.map((h) => [h.body.receipt.round, h.accuser, h.since]),
    [[0, "x", 0], [2, undefined, 2], [3, undefined, 3]],
    "its lazy one is still held, with its first time",
  );
  // An accuser's third pushes out its own oldest.
  const y = [proved, body(Identity.generate(), 0), body(Identity.generate(), 0)];
  for (const b of y.slice(1)) {
    assert.ok(held.hold({ body: b, origin: "p1", since: 7, accuser: "y" }));
  }
  const ofY = (b: typeof proved) => held.take(toHex(b.receipt.trainer)).length;
  assert.equal(ofY(y[0]), 0, "its oldest pushed out");
  // Past all the proofs' places, the oldest goes.
  const many = Array.from({ length: MAX_STAKE_HELD_PROVED }, () => body(Identity.generate(), 0));
  many.forEach((b, i) => held.hold({ body: b, origin: "p2", since: 8, accuser: `a${i}` }));
  assert.equal(ofY(y[1]) + ofY(y[2]), 0, "the oldest went");
  assert.equal(
    many.reduce((n, b) => n + held.take(toHex(b.receipt.trainer)).length, 0),
    MAX_STAKE_HELD_PROVED,
  );
  assert.equal(MAX_STAKE_HELD_PROVED_PER_ACCUSER, 2);
});
