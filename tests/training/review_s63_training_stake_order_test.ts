/**
 * Review s63 (training ledger convergence, the node in front of the ledger): a peer's training
 * receipt that reaches a node before its trainer's stake does is settled there as where the stake
 * came first. The ledger refuses a receipt whose trainer cannot back its lock
 * (`insufficient_stake`); the ValidatorActor holds an inference receipt refused so, until its
 * worker's pledge comes (`actors/_held_evidence.ts`), but the TrainingValidator took the refusal
 * as final: the receipt was never recorded there, the fraud proof about it was held for it for
 * good, and the lazy trainer every ledger that had its pledge first slashed kept its stake there
 * (its accuser unpaid there).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  DEFAULT_STAKE_HOLD_MS,
  MAX_STAKE_HELD_PER_ORIGIN,
  MAX_STAKE_HELD_PER_TRAINER,
  MAX_STAKE_HELD_TRAINING_RECEIPTS,
  StakeHeldTrainingReceipts,
} from "../../training/_stake_held_training_receipts.ts";
import { START, trainingReceipt } from "../proof/_training_receipt.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import { inStakeHoldLedger } from "./_stake_hold_ledger.ts";

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);

/** One piece of evidence reaching a node. */
type Arrival = "receipt" | "trainer stake" | "proof";

/** What a ledger made of the evidence, once the receipt's window closed. */
interface Outcome {
  status: string | undefined;
  trainer: Account;
  accuser: Account;
}

/**
 * A fresh ledger and training validator (the accuser pledged) take the lazy receipt, its
 * trainer's stake and the proof in `order`; then the receipt's window closes.
 */
async function settleIn(
  order: readonly Arrival[],
  proof: TrainingFraudProof,
  accuser: Identity,
): Promise<Outcome> {
  const name = `stake-order-${order.join("-").replaceAll(" ", "_")}`;
  let outcome: Outcome | undefined;
  await inStakeHoldLedger(name, async ({ ledger, training, model, tick }) => {
    assert.equal(model, proof.receipt.startModel);
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    for (const arrival of order) {
      if (arrival === "receipt") {
        const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
        await training.ask({
          type: "receipt",
          body: { receipt: proof.receipt, terms },
          origin: PEER,
        });
      } else if (arrival === "trainer stake") {
        // As its pledge recorded (a deposit: the fixture's trainer key is not at hand).
        await ledger.ask({
          type: "deposit",
          key: proof.receipt.trainer,
          amount: LAZY_TRAINER_STAKE,
        });
      } else {
        await training.ask({
          type: "fraud_proof",
          body: { proof, arch: TEST_ARCH },
          origin: PEER,
        });
      }
    }
    // Recorded and re-run and settled outside the mailbox: waited for as long as any effect.
    await eventually(async () => (await status()) === "fraud", "the proof to settle")
      .catch(() => undefined);
    tick(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    await ledger.ask({ type: "finalize" });
    outcome = {
      status: await status(),
      trainer: await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer }),
      accuser: await ledger.ask<Account>({ type: "account", key: accuser.publicKey }),
    };
  });
  return outcome!;
}

Deno.test("review s63: a lazy trainer's receipt that came before its trainer's stake is settled as where the stake came first: slashed, its accuser rewarded, in every order of receipt, stake and proof", async () => {
  const accuser = Identity.generate();
  const modelsDir = await Deno.makeTempDir({ prefix: "veriflow-stake-order-cid-" });
  const startModel = await new RoundModels({ modelsDir, storage: () => undefined })
    .publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0))
    .finally(() => Deno.remove(modelsDir, { recursive: true }));
  const proof = lossFraud(startModel.cid, accuser, 8);

  const stakeFirst = await settleIn(["trainer stake", "receipt", "proof"], proof, accuser);
  assert.equal(stakeFirst.status, "fraud", "the stake first: the cheat is slashed");
  assert.ok(stakeFirst.trainer.stake < LAZY_TRAINER_STAKE, "its stake cut");
  assert.equal(stakeFirst.trainer.balance, 0, "and it is not paid");
  assert.ok(stakeFirst.accuser.balance > 0, "its accuser rewarded");

  for (
    const order of [
      ["receipt", "trainer stake", "proof"],
      ["receipt", "proof", "trainer stake"],
      ["proof", "receipt", "trainer stake"],
    ] as const
  ) {
    assert.deepEqual(await settleIn(order, proof, accuser), stakeFirst, order.join(" → "));
  }
});

Deno.test("review s63: the receipts held for their trainer's stake are bounded: a trainer's newest replaces its oldest, a relaying peer has its share, a full hold takes no more, and a window later they are forgotten", () => {
  const body = (trainer: Identity, round: number) => ({
    receipt: trainingReceipt(trainer, round, 2),
    terms: { round, startModel: START, steps: 4 },
  });
  const held = new StakeHeldTrainingReceipts();
  const trainer = Identity.generate();
  for (let round = 0; round < MAX_STAKE_HELD_PER_TRAINER + 1; round++) {
    assert.ok(held.hold({ body: body(trainer, round), origin: "a", since: round }));
  }
  assert.ok(held.hold({ body: body(trainer, 2), origin: "a", since: 9 }), "the same again: held");
  assert.equal(held.size, MAX_STAKE_HELD_PER_TRAINER, "its newest replaced its oldest");
  // One relaying peer fills its share with fresh keys; its next is not held, another peer's is.
  while (held.hold({ body: body(Identity.generate(), 0), origin: "a", since: 10 })) {
    assert.ok(held.size <= MAX_STAKE_HELD_PER_ORIGIN);
  }
  assert.equal(held.size, MAX_STAKE_HELD_PER_ORIGIN, "a peer holds its share at most");
  let origin = 0;
  while (held.hold({ body: body(Identity.generate(), 0), origin: `p${origin++ % 8}`, since: 20 })) {
    assert.ok(held.size <= MAX_STAKE_HELD_TRAINING_RECEIPTS);
  }
  assert.equal(held.size, MAX_STAKE_HELD_TRAINING_RECEIPTS, "a full hold takes no more");
  const taken = held.take(toHex(trainer.publicKey));
  assert.deepEqual(taken.map((h) => h.body.receipt.round), [1, 2], "its two, oldest first");
  assert.equal(held.trainers().length, MAX_STAKE_HELD_TRAINING_RECEIPTS - 2);
  held.expire(15); // those held at 10 go, those held at 20 stay
  assert.equal(held.size, MAX_STAKE_HELD_TRAINING_RECEIPTS - MAX_STAKE_HELD_PER_ORIGIN);
  held.expire(20 + DEFAULT_STAKE_HOLD_MS);
  assert.equal(held.size, 0);
});
