/**
 * Review s64: every part of the TrainingValidator runs on the economics its ledger runs with (the
 * validator's `economics`, resolved once in its constructor), not the default economics whatever
 * the ledger's. Before, a library user whose ledger ran a 20-minute window or a penalty of 500 got
 * a validator that dropped a proof held for its accuser's pledge after the default 10 minutes
 * (the lazy trainer paid here, slashed in every ledger that had the pledge first), and that
 * audited a round's outcome signed by a coordinator staked below the ledger's penalty (crediting
 * its trainers on the word of a key the ledger takes as unstaked). Each checks the ledger outcome.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { KeptHeldTrainingProofs } from "../../training/_kept_held_training_proofs.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { honestRound } from "./_honest_round.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { inStakeHoldLedger, type StakeHoldWorld } from "./_stake_hold_ledger.ts";

/** The accuser's pledge: well above any penalty below. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);
/** The ledger's challenge window in the window test: twice the default. */
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs * 2;
/** The ledger's false-accusation penalty in the penalty test: five times the default. */
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty * 5;

/** Where `receipt` stands in `ledger` (undefined: not recorded). */
async function statusOf(
  ledger: ActorRef<ValidatorMessage>,
  receipt: TrainingReceipt,
): Promise<ReceiptRecord | undefined> {
  const receiptId = trainingReceiptId(receipt);
  return await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId });
}

/** How many proofs the validator of `world` keeps on disk as held for their accuser's pledge. */
async function pledgeHeldOnDisk(world: StakeHoldWorld): Promise<number> {
  return (await KeptHeldTrainingProofs.in(world.ledgerDir).read()).length;
}

Deno.test("review s64: a proof held for its accuser's pledge is held for the challenge window the ledger runs with: the pledge at 15 min of a 20 min window slashes the lazy trainer, a proof held past the window is forgotten", async () => {
  await inStakeHoldLedger("pledge-window", async (world) => {
    const { ledger, training, model } = world;
    const accuser = Identity.generate();
    const proof = lossFraud(model, accuser, 8);
    await recordLazyReceipt(ledger, training, proof, model);
    const answer = await training.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
    });
    assert.deepEqual(answer, { queued: false, skipped: "unstaked_accuser", awaitingPledge: true });
    world.tick(DEFAULT_ECONOMICS.challengeWindowMs * 1.5); // past the default window, inside the ledger's
    await training.ask({ type: "pledges_again" });
    // Before: 0 (dropped at the default window's end).
    assert.equal(await pledgeHeldOnDisk(world), 1, "still held inside the ledger's window");
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    await training.ask({ type: "pledges_again" });
    await eventually(
      async () => (await statusOf(ledger, proof.receipt))?.status === "fraud",
      "the held proof to settle",
    ).catch(() => undefined);
    world.tick(WINDOW + 1);
    await ledger.ask({ type: "finalize" });
    const trainerEnd = await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
    const accuserEnd = await ledger.ask<Account>({ type: "account", key: accuser.publicKey });
    assert.equal((await statusOf(ledger, proof.receipt))?.status, "fraud", "the lazy receipt");
    assert.ok(trainerEnd.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainerEnd.stake}`);
    assert.equal(trainerEnd.balance, 0, "and it is not paid");
    assert.ok(accuserEnd.balance > 0, `its accuser rewarded: ${accuserEnd.balance}`);
    assert.equal(accuserEnd.stake, ACCUSER_PLEDGE, "and charged nothing");

    // Another lazy receipt's proof, held past the ledger's window: forgotten.
    const late = lossFraud(model, Identity.generate(), 8);
    await recordLazyReceipt(ledger, training, late, model);
    await training.ask({
      type: "fraud_proof",
      body: { proof: late, arch: TEST_ARCH },
      origin: PEER,
    });
    world.tick(WINDOW);
    await training.ask({ type: "pledges_again" });
    assert.equal(await pledgeHeldOnDisk(world), 1, "held to the window's last ms");
    world.tick(1);
    await training.ask({ type: "pledges_again" });
    assert.equal(await pledgeHeldOnDisk(world), 0, "forgotten after the ledger's window");
  }, { economics: { challengeWindowMs: WINDOW }, kept: true });
});

/** A ledger and a training validator, both on `economics`, named `name` under `system`. */
async function spawnNode(
  system: ActorSystem,
  dir: string,
  name: string,
  storage: () => ActorRef<StorageMessage>,
  economics: Partial<EconomicParams>,
) {
  const now = () => 1_000_000;
  const ledger = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity: Identity.generate(),
        ledgerDir: join(dir, name, "ledger"),
        ledger: { now, economics },
        finalizeIntervalMs: 0,
        models: { get: () => Promise.resolve(undefined) },
      }),
  });
  const training = await system.spawn<TrainingValidatorMessage>({
    name: `${name}/training-validator`,
    factory: () =>
      new TrainingValidator({
        identity: Identity.generate(),
        models: new RoundModels({ modelsDir: join(dir, name, "models"), storage }),
        ledger: `${name}/validator`,
        challengeProbability: 0,
        now,
        serve: () => Promise.resolve(),
        economics,
      }),
  });
  const stats = () => training.ask<TrainingValidatorStats>({ type: "stats" });
  return { ledger, training, stats };
}

Deno.test("review s64: a round's outcome signed by a coordinator staked between the default penalty and the ledger's larger one is refused as unstaked, its receipts not credited, until it stakes the ledger's penalty", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-outcome-penalty-" });
  const system = new ActorSystem({ name: "s64-outcome-penalty" });
  try {
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const storage = () => storageRef;
    const round = await honestRound(
      new RoundModels({ modelsDir: join(dir, "coordinator"), storage }),
      3,
    );
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    const node = await spawnNode(system, dir, "node", storage, {
      falseAccusationPenalty: PENALTY,
    });
    for (const trainer of round.trainers) {
      await node.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: ACCUSER_PLEDGE });
    }
    // Staked past the default penalty, short of the ledger's.
    const between = (DEFAULT_ECONOMICS.falseAccusationPenalty + PENALTY) / 2;
    await node.ledger.ask({ type: "deposit", key: coordinator.publicKey, amount: between });
    await node.training.tell({ type: "outcome", body: signed, origin: "peer" });
    // Before: audited, adopted, and its receipts recorded credited.
    const refused = await eventually(async () => {
      const s = await node.stats();
      return s.outcomesRefused.length + s.adopted.length > 0 ? s : undefined;
    }, "the outcome decided");
    assert.deepEqual(refused.adopted, [], "not audited");
    assert.deepEqual(refused.outcomesRefused, [{
      model: round.outcome.model,
      coordinator: toHex(coordinator.publicKey),
      reason: "unstaked_coordinator",
    }]);
    for (const { receipt } of round.outcome.reports) {
      assert.equal(await statusOf(node.ledger, receipt), undefined, "no receipt recorded");
    }
    // Staked to the ledger's penalty: the same outcome, relayed again, is audited and credited.
    await node.ledger.ask({ type: "deposit", key: coordinator.publicKey, amount: PENALTY });
    await node.training.tell({ type: "outcome", body: signed, origin: "peer" });
    await eventually(async () => (await node.stats()).adopted.length === 1, "adopted");
    for (const { receipt } of round.outcome.reports) {
      const record = await eventually(() => statusOf(node.ledger, receipt), "recorded");
      assert.ok(record.credit > 0, "credited: the outcome that names it was reproduced");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

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

Deno.test("review s64: a peer's accuser staked between the default penalty and the ledger's larger one is checked unbacked: three false proofs spend the receipt's unbacked checks, a fourth accuser's valid proof is skipped until it stakes the ledger's penalty, then slashes the lazy trainer", async () => {
  await inStakeHoldLedger("accuser-penalty", async (world) => {
    const { ledger, training, model } = world;
    const lazy = lossFraud(model, Identity.generate(), 8);
    await recordLazyReceipt(ledger, training, lazy, model);
    const send = (proof: TrainingFraudProof) =>
      training.ask<Record<string, unknown>>({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      });
    const account = (key: Identity) => ledger.ask<Account>({ type: "account", key: key.publicKey });
    const checked = async () =>
      (await training.ask<TrainingValidatorStats>({ type: "stats" })).checked;
    // Pledged past the default penalty, short of the ledger's.
    const between = (DEFAULT_ECONOMICS.falseAccusationPenalty + PENALTY) / 2;
    const keys = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    for (const key of keys) {
      const pledge = signStakePledge(key, between, 1);
      assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    }
    const liars = keys.slice(0, -1);
    const honest = keys.at(-1)!;
    for (const key of liars) assert.deepEqual(await send(falseProof(lazy, key)), { queued: true });
    await eventually(
      async () => (await checked()) === MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the false proofs checked",
    );
    for (const key of liars) {
      assert.equal((await account(key)).stake, 0, "a refuted proof costs what stake it had");
    }
    const { sig: _sig, validator: _validator, ...unsigned } = lazy;
    const valid = signTrainingFraudProof(
      { ...unsigned, challenge: drawTrainingChallenge(lazy.receipt, honest) },
      honest,
    );
    // Before: backed by the default penalty, queued, and the lazy trainer slashed.
    assert.deepEqual(await send(valid), { queued: false, skipped: "unstaked_accuser" });
    assert.equal((await statusOf(ledger, lazy.receipt))?.status, "pending", "nobody convicted");
    // Staked past the ledger's penalty: the same proof, sent again, is checked backed.
    await ledger.ask({ type: "deposit", key: honest.publicKey, amount: PENALTY });
    assert.deepEqual(await send(valid), { queued: true });
    await eventually(
      async () => (await statusOf(ledger, lazy.receipt))?.status === "fraud",
      "the backed proof to settle",
    ).catch(() => undefined);
    world.tick(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    await ledger.ask({ type: "finalize" });
    const trainerEnd = await ledger.ask<Account>({ type: "account", key: lazy.receipt.trainer });
    assert.equal((await statusOf(ledger, lazy.receipt))?.status, "fraud", "the lazy receipt");
    assert.ok(trainerEnd.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainerEnd.stake}`);
    assert.equal(trainerEnd.balance, 0, "and it is not paid");
    assert.ok((await account(honest)).balance > 0, "its accuser rewarded");
  }, { economics: { falseAccusationPenalty: PENALTY } });
});
