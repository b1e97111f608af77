/**
 * How a training fraud proof settles in a ledger, whatever reaches it first: each way a challenge
 * can end and who pays for it, a proof before its receipt, and a proof about a receipt the ledger
 * did not record because the trainer equivocated.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS, trainingReward } from "../../proof/economics.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  signTrainingReceipt,
  type TrainingReceipt,
  trainingReceiptId,
} from "../../training/training_receipt.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { openChallengedSteps, unsealStepOpenings } from "../../training/step_opening.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { inStakeHoldLedger } from "./_stake_hold_ledger.ts";

// ------------------------------------------------------------------------------------------------
// What each way a training challenge can end does to the ledger (a review of the branches: who
// pays, trainer or accuser). Each test drives the TrainingValidator in front of a real ledger and
// checks balances and receipt status, not only the verdict.
//
// - A fraud proof's `arch` travels beside the signed proof, unsigned. A relay (or the accuser)
//   could swap it: an honest trainer's valid opening then fails to decode and a false
//   `opening_mismatch` was confirmed (the honest trainer slashed, the accuser rewarded); a true
//   step claim failed to decode and was refuted (the honest accuser charged, the cheat kept its
//   pay), and the genuine copy arriving after it was dropped as already seen.
// - A fraud proof that arrives before its receipt was dropped for good: the ledger later recorded
//   and credited the receipt (an audited outcome) and paid the trainer every other ledger slashed.
// ------------------------------------------------------------------------------------------------

const STAKE = 10_000_000;
/** Another architecture: the test model's states do not decode under it. */
const OTHER_ARCH: GptArchitecture = { ...TEST_ARCH, numLayers: 2 };

/** A ledger and training validator on a fresh actor system, with a log to wait on. */
async function node(prefix: string) {
  const dir = await Deno.makeTempDir({ prefix });
  const system = new ActorSystem({ name: prefix });
  const me = Identity.generate();
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const told: NetworkMessage[] = [];
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork(told),
  });
  const lines: string[] = [];
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: Date.now,
    models,
    challenge: {
      challengeProbability: 0,
      network: "node/network",
      log: (line) => lines.push(line),
    },
  });
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const status = (receiptId: string) =>
    ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId });
  /** Wait for the n-th fraud proof line of the log (settled, refuted or unchecked). */
  const proofLines = (n: number) =>
    eventually(() => {
      const done = lines.filter((l) => / fraud proof .*(confirmed|refuted|unchecked)/.test(l));
      return done.length >= n ? done : undefined;
    }, `${n} fraud proof(s) to be checked`);
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { model, ledger, training, account, status, proofLines, lines, close };
}

Deno.test("an honest trainer's valid opening, gossiped as `opening_mismatch` under another architecture, slashes nobody and rewards nobody", async () => {
  const n = await node("veriflow-outcomes-arch-");
  try {
    const split = await testSplit();
    const trainer = Identity.generate();
    const run = await trainAndSign({
      arch: TEST_ARCH,
      round: 0,
      startModel: n.model.cid,
      start: n.model.weights,
      shard: split.shards[0],
      steps: 2,
      dataSeed: 3,
      hyper: TEST_HYPER,
      identity: trainer,
      keepEvery: 1,
    });
    const { receipt } = run.report;
    // The accuser is a staked validator the trainer answered, honestly.
    const accuser = Identity.generate();
    const challenge = drawTrainingChallenge(receipt, accuser);
    const sealed = await openChallengedSteps(run.trace, challenge);
    const unsealed = unsealStepOpenings(sealed, challenge, receipt, accuser);
    assert.ok(unsealed.ok, "the honest answer opens");
    const proof = signTrainingFraudProof({
      v: TRAINING_FRAUD_PROOF_VERSION,
      reason: "opening_mismatch",
      receipt,
      challenge,
      answer: { plaintext: unsealed.plaintext, sig: sealed.sig },
      issuedAt: Date.now(),
    }, accuser);
    await n.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: accuser.publicKey, amount: STAKE });
    const recorded = await n.training.ask<{ recorded: boolean }>({
      type: "receipt",
      body: { receipt, terms: { round: 0, startModel: n.model.cid, steps: receipt.steps } },
      origin: "peer",
    });
    assert.ok(recorded.recorded);

    await n.training.ask({
      type: "fraud_proof",
      body: { proof, arch: OTHER_ARCH },
      origin: "peer",
    });
    await n.proofLines(1);
    const id = trainingReceiptId(receipt);
    assert.equal((await n.status(id))?.status, "pending", "the honest receipt stays open");
    assert.equal((await n.account(trainer.publicKey)).stake, STAKE, "the trainer is not slashed");
    assert.equal((await n.account(accuser.publicKey)).balance, 0, "the accuser gains nothing");
  } finally {
    await n.close();
  }
});

Deno.test("a true training fraud proof relayed under another architecture does not charge its accuser, and the genuine copy after it still slashes", async () => {
  const n = await node("veriflow-outcomes-relay-");
  try {
    const proof = lossFraud(n.model.cid);
    const { receipt } = proof;
    await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: proof.validator, amount: STAKE });
    await n.training.ask({
      type: "receipt",
      body: { receipt, terms: { round: 0, startModel: n.model.cid, steps: receipt.steps } },
      origin: "peer",
    });
    const locked = (await n.account(receipt.trainer)).locked;
    assert.ok(locked > 0);

    // A relay's altered copy first, then the accuser's own.
    await n.training.ask({
      type: "fraud_proof",
      body: { proof, arch: OTHER_ARCH },
      origin: "relay",
    });
    await n.proofLines(1);
    assert.equal(
      (await n.account(proof.validator)).stake,
      STAKE,
      "the honest accuser pays no false-accusation penalty for a relay's copy",
    );
    await n.training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: "peer" });
    await n.proofLines(2);
    const id = trainingReceiptId(receipt);
    assert.equal((await n.status(id))?.status, "fraud", "the cheat is convicted");
    assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked, "and slashed");
    assert.equal(
      (await n.account(proof.validator)).balance,
      locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "the accuser is rewarded",
    );
  } finally {
    await n.close();
  }
});

Deno.test("a training fraud proof that arrives before its receipt is settled once the receipt is recorded", async () => {
  const n = await node("veriflow-outcomes-early-");
  try {
    const proof = lossFraud(n.model.cid);
    const { receipt } = proof;
    await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: proof.validator, amount: STAKE });
    const body = { proof, arch: TEST_ARCH };
    assert.deepEqual(
      await n.training.ask({ type: "fraud_proof", body, origin: "peer" }),
      { queued: false, skipped: "receipt_unknown", held: true },
      "not re-run while its receipt is unknown here, but held",
    );
    // The receipt comes in later (here with credit, as from an audited round outcome).
    await n.training.ask({
      type: "credit",
      receipts: [receipt],
      terms: { round: 0, startModel: n.model.cid, steps: receipt.steps },
    });
    await n.proofLines(1);
    const id = trainingReceiptId(receipt);
    const locked = roundCredits(
      trainingReward(DEFAULT_ECONOMICS, receipt) * DEFAULT_ECONOMICS.slashMultiplier,
    );
    assert.equal((await n.status(id))?.status, "fraud", "convicted here as everywhere else");
    assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked);
  } finally {
    await n.close();
  }
});

// ------------------------------------------------------------------------------------------------
// A peer's fraud proof about a trainer's receipt this ledger did not record, because another
// receipt of the same trainer for the round came first (its equivocation: slashed, answered
// `equivocation`), settles against the receipt recorded for the round, as where the proved receipt
// came first: the trainer slashed once, the accuser rewarded. It was held for its receipt, which
// never comes (`_receipt_held_training_proofs.ts`), until it lapsed: the accuser unpaid there,
// where every ledger that heard the lazy receipt first paid it (`Ledger.trainingFraudSubject`, the
// intake's `receipt_status`, `settleTrainingFraud` in `actors/_validator_training.ts`, and the
// proofs held for a receipt released on an `equivocation` answer in `_receipt_credits.ts`).
// ------------------------------------------------------------------------------------------------

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

Deno.test("a peer's proof about a trainer's receipt answered `equivocation` here (its other receipt for the round came first) settles against the one recorded: the trainer slashed once, its accuser rewarded, as where the proved receipt came first", async () => {
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

Deno.test("an accuser whose proof settled against a trainer's round is not re-run for a proof about a third receipt of that trainer for the round", async () => {
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
