/**
 * The TrainingValidator (`training/training_validator.ts`): its options and coin, its kept holds
 * and unbacked checks under attack, and every part of it running on the economics its ledger runs
 * with.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorContext } from "../../actors/actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeOutcome,
  type ChallengeRequest,
  secureRandom,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { join } from "node:path";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { StepOpeningsCheck } from "../../training/step_check.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "../../proof/economics.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { answeringConnection, LosesOpenAnswer } from "./_lost_open_answer.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { KeptHeldTrainingProofs } from "../../training/_kept_held_training_proofs.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { honestRound } from "./_honest_round.ts";
import { inStakeHoldLedger, type StakeHoldWorld } from "./_stake_hold_ledger.ts";

/**
 * Ask a TrainingValidator to challenge a report. Only the coin is reached when it is not drawn,
 * so the report, connection and context are stand-ins that fail loudly if anything else is.
 */
async function challenge(options: Partial<TrainingValidatorOptions>): Promise<ChallengeOutcome> {
  const validator = new TrainingValidator({
    identity: Identity.generate(),
    models: {} as RoundModels,
    ...options,
  });
  const request = { type: "challenge" } as ChallengeRequest;
  const ctx = {} as ActorContext<TrainingValidatorMessage>;
  const reply = await validator.receive(request, ctx) as { result: Promise<ChallengeOutcome> };
  return await reply.result;
}

Deno.test("the training challenge coin draws from the injected random source", async () => {
  const draws: number[] = [];
  const random = (value: number) => () => (draws.push(value), value);
  assert.deepEqual(
    await challenge({ challengeProbability: 0.5, random: random(0.5) }),
    { challenged: false },
  );
  assert.deepEqual(
    await challenge({ challengeProbability: 0.25, random: random(0.7) }),
    { challenged: false },
  );
  assert.deepEqual(draws, [0.5, 0.7]);
  // A draw below p goes past the coin: here to the stand-in report, which it then reads.
  await assert.rejects(
    () => challenge({ challengeProbability: 0.5, random: random(0.1) }),
    /report/,
    "a draw below p challenges",
  );
  assert.deepEqual(draws, [0.5, 0.7, 0.1]);
});

Deno.test("by default the training challenge coin comes from crypto.getRandomValues, not Math.random", async () => {
  const mathRandom = Math.random;
  const getRandomValues = crypto.getRandomValues;
  // Math.random would challenge (0 < p); the CSPRNG, all ones, draws just under 1 and does not.
  Math.random = () => 0;
  crypto.getRandomValues = (<T extends ArrayBufferView | null>(array: T): T => {
    if (array !== null) new Uint8Array(array.buffer, array.byteOffset, array.byteLength).fill(0xff);
    return array;
  }) as typeof crypto.getRandomValues;
  try {
    assert.equal(secureRandom(), 1 - 2 ** -53);
    assert.deepEqual(await challenge({ challengeProbability: 0.5 }), { challenged: false });
  } finally {
    Math.random = mathRandom;
    crypto.getRandomValues = getRandomValues;
  }
});

Deno.test("secureRandom draws uniformly in [0, 1)", () => {
  const n = 20_000;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const u = secureRandom();
    assert.ok(u >= 0 && u < 1, String(u));
    sum += u;
  }
  // The mean of n uniforms has standard deviation 1/sqrt(12n) ≈ 0.002: 0.02 is 10 of them.
  assert.ok(Math.abs(sum / n - 0.5) < 0.02, String(sum / n));
});

// ------------------------------------------------------------------------------------------------
// Attacks on the training validator's kept holds and unbacked checks. Each test failed before its
// fix.
// ------------------------------------------------------------------------------------------------

const PEER = "ee".repeat(32);
const RELAY = "dd".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

Deno.test("copies of one honest unbacked training proof relayed with a wrong architecture do not spend its receipt's unbacked budget: the genuine copy still convicts the lazy trainer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-unbacked-arch-" });
  const system = new ActorSystem({ name: "review-unbacked-arch" });
  try {
    const clock = Date.now();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    // An honest accuser that pledged here, short of the penalty: its proof is checked unbacked.
    const accuser = Identity.generate();
    await ledger.ask({
      type: "pledge",
      pledge: signStakePledge(accuser, PENALTY / 2, 1),
      origin: PEER,
    });
    const proof = lossFraud(model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const send = (body: { proof: TrainingFraudProof; arch: GptArchitecture }, origin: string) =>
      training.ask<Record<string, unknown>>({ type: "fraud_proof", body, origin });

    // A relay with no key and no stake passes the same signed proof on beside a wrong (unsigned)
    // architecture: each copy's check fails before any re-run, and charges nobody.
    const wrong: GptArchitecture = { ...TEST_ARCH, hiddenSize: TEST_ARCH.hiddenSize * 2 };
    for (let copy = 0; copy < MAX_UNBACKED_CHECKS_PER_RECEIPT; copy++) {
      await eventually(
        async () => (await send({ proof, arch: wrong }, RELAY)).queued === true,
        `bad copy ${copy} taken (its predecessor failed)`,
      ).catch(() => undefined);
    }
    // The genuine copy comes from the accuser itself once the bad ones have failed.
    let intake: Record<string, unknown> = {};
    await eventually(
      async () => {
        intake = await send({ proof, arch: TEST_ARCH }, PEER);
        return intake.queued === true;
      },
      "the genuine copy checked",
    ).catch(() => undefined); // refused: the assertion below names its reason
    assert.deepEqual(intake, { queued: true }, "the genuine copy is checked");
    await eventually(
      async () =>
        (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
          ?.status === "fraud",
      "the lazy trainer convicted",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A TrainingValidator that counts the `pledges_again` it receives. */
class CountingValidator extends TrainingValidator {
  rechecks = 0;
  override receive(
    message: TrainingValidatorMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<unknown> {
    if (message.type === "pledges_again") this.rechecks++;
    return super.receive(message, ctx);
  }
}

Deno.test("without a ledger directory, a proof held for its receipt and released does not leave the validator rechecking every second for ever", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-recheck-" });
  const system = new ActorSystem({ name: "review-recheck" });
  try {
    const clock = Date.now();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const identity = Identity.generate();
    const { ledger } = await spawnTrainingLedger(system, {
      identity,
      dir,
      now: () => clock,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    const counting = new CountingValidator({
      identity,
      models,
      ledger: "node/validator",
      network: "node/network",
      challengeProbability: 0,
      pledgeRecheckMs: 20,
      now: () => clock,
    });
    const training = await system.spawn<TrainingValidatorMessage>({
      name: "review/training-validator",
      factory: () => counting,
    });
    const accuser = Identity.generate();
    await ledger.ask({
      type: "pledge",
      pledge: signStakePledge(accuser, 10 * PENALTY, 1),
      origin: PEER,
    });
    const proof = lossFraud(model.cid, accuser, 8);
    const held = await training.ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
    });
    assert.equal(held.held, true, "held for its receipt");
    await recordLazyReceipt(ledger, training, proof, model.cid);
    // Released with its receipt, checked and settled: the rechecks it caused (one after each
    // change of what would be kept) come to an end. Waited for, not slept on: on a loaded
    // machine the check can outlast any fixed pause (the test flaked so). A validator that
    // rechecks for ever (every 20 ms here) is never quiet for 100 ms, and fails here.
    const id = trainingReceiptId(proof.receipt);
    await eventually(
      async () =>
        (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
          ?.status === "fraud",
      "the released proof settled",
    );
    let last = counting.rechecks;
    let quietSince = performance.now();
    await eventually(() => {
      if (counting.rechecks !== last) [last, quietSince] = [counting.rechecks, performance.now()];
      return performance.now() - quietSince >= 100;
    }, "the rechecks coming to an end");
    const before = counting.rechecks;
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(counting.rechecks - before, 0, "no recheck while nothing is held");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a training challenge whose open the ledger refused (window closed), its answer lost, does not leave the trainer's pending receipt unresolved when it ends undecided: paid as when the refusal is heard", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-open-refused-" });
  const system = new ActorSystem({ name: "review-open-refused" });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const me = Identity.generate();
    let clock = Date.now();
    const ledger = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          ledger: { now: () => clock },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
          trainingProofsResumed: true,
        }),
    });
    const proxy = new LosesOpenAnswer("node/validator");
    await system.spawn<ValidatorMessage>({ name: "review/proxy", factory: () => proxy });
    const training = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: me,
          models,
          ledger: "review/proxy",
          ownProofsDir: join(dir, "ledger"),
          challengeProbability: 1,
          random: () => 0,
          // This validator cannot decide (its own gap, no proof): undecided.
          check: () =>
            Promise.resolve({ ok: false, reason: "validator_gap" } as unknown as StepOpeningsCheck),
          endRetryMs: 10,
          now: () => clock,
        }),
    });
    const { receipt } = lossFraud(start.cid, me);
    const id = trainingReceiptId(receipt);
    const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
    await ledger.ask({ type: "deposit", key: receipt.trainer, amount: 10_000_000 });
    await training.ask({ type: "credit", receipts: [receipt], terms });
    // Its window has closed, the ledger not finalized yet: the open is refused there.
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report: { receipt, delta: new Uint8Array(1) },
      connection: answeringConnection(),
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    assert.equal((await result).challenged, true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await ledger.ask({ type: "finalize" });
    assert.equal(proxy.lost, 1, "the open's answer was lost once");
    const status =
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    assert.equal(status, "final", "never challenged in the ledger: paid at its window's end");
    const paid = await ledger.ask<Account>({ type: "account", key: receipt.trainer });
    assert.ok(paid.balance > 0, "the trainer is paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("this validator's own fraud proof held for a receipt not recorded yet outlives a restart, as a peer's does: the lazy trainer is slashed once the receipt comes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-own-held-" });
  const system = new ActorSystem({ name: "review-own-held" });
  try {
    const clock = Date.now();
    const now = () => clock;
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const challenge = { challengeProbability: 0, network: "node/network", pledgeRecheckMs: 5, now };
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now,
      models,
      challenge,
      resumeOwnProofs: true,
    });
    await ledger.ask({
      type: "pledge",
      pledge: signStakePledge(me, 10 * PENALTY, 1),
      origin: PEER,
    });
    // This validator's challenge failed with a proof about a receipt its ledger has not
    // recorded (its open refused): the proof goes through the intake as its own, and is held.
    const proof = lossFraud(model.cid, me, 8);
    const id = trainingReceiptId(proof.receipt);
    const held = await training.ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "local",
    });
    assert.equal(held.held, true, "held for its receipt");
    assert.ok(await system.stop("node/training-validator"), "the training validator stops");
    const again = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: me,
          models,
          ledger: "node/validator",
          ownProofsDir: join(dir, "ledger"),
          ...challenge,
        }),
    });
    await recordLazyReceipt(ledger, again, proof, model.cid);
    let status: string | undefined;
    await eventually(
      async () => {
        status =
          (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
            ?.status;
        return status === "fraud";
      },
      "the lazy trainer convicted",
    ).catch(() => undefined);
    assert.equal(status, "fraud", "the lazy trainer convicted");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// The TrainingValidator's challenge coin defaults to the economics its ledger runs with
// (`economics.challengeProbability`), as every other part of it does, not the default economics'
// chance whatever the ledger's. Before, a validator on a ledger that asks every receipt challenged
// (`challengeProbability` 1), given no coin of its own, drew at the default 0.1: a lazy trainer's
// receipt drawn at 0.5 went unchallenged and the trainer was paid.
// ------------------------------------------------------------------------------------------------

/** The coin's draw: above the default chance (0.1), below the ledger's (1). */
const DRAW = 0.5;

Deno.test("a training validator given its ledger's economics and no coin of its own challenges at the ledger's chance: a receipt drawn at 0.5 under a chance of 1 is challenged and its lazy trainer slashed", async () => {
  assert.ok(DEFAULT_ECONOMICS.challengeProbability <= DRAW, "the default chance would not draw it");
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-challenge-coin-" });
  const system = new ActorSystem({ name: "s64-challenge-coin" });
  let clock = Date.now();
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const me = Identity.generate();
    const proof = lossFraud(model.cid, me); // what this validator's check of the lazy steps finds
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock,
      models,
      economics: { challengeProbability: 1 },
      challenge: {
        network: "node/network",
        random: () => DRAW,
        check: () => Promise.resolve({ ok: false, reason: proof.reason, proof }),
        now: () => clock,
      },
    });
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const { receipt } = proof;
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report: { receipt, delta: new Uint8Array(1) },
      connection: answeringConnection(),
      terms: { round: 0, startModel: model.cid, steps: receipt.steps },
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    // Before: { challenged: false } (drawn at the default 0.1), and the lazy trainer paid.
    assert.equal((await result).challenged, true, "drawn at the ledger's chance");
    const receiptId = trainingReceiptId(receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId }))?.status;
    await eventually(async () => (await status()) === "fraud", "the proof settled");
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const trainer = await ledger.ask<Account>({ type: "account", key: receipt.trainer });
    assert.equal(await status(), "fraud", "the lazy receipt");
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainer.stake}`);
    assert.equal(trainer.balance, 0, "and it is not paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// Every part of the TrainingValidator runs on the economics its ledger runs with (the validator's
// `economics`, resolved once in its constructor), not the default economics whatever the ledger's.
// Before, a library user whose ledger ran a 20-minute window or a penalty of 500 got a validator
// that dropped a proof held for its accuser's pledge after the default 10 minutes (the lazy trainer
// paid here, slashed in every ledger that had the pledge first), and that audited a round's outcome
// signed by a coordinator staked below the ledger's penalty (crediting its trainers on the word of
// a key the ledger takes as unstaked). Each checks the ledger outcome.
// ------------------------------------------------------------------------------------------------

/** The accuser's pledge: well above any penalty below. */
const ACCUSER_PLEDGE = 10_000;
/** The ledger's challenge window in the window test: twice the default. */
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs * 2;
/** The ledger's false-accusation penalty in the penalty test: five times the default. */
const PENALTY_ECONOMICS = DEFAULT_ECONOMICS.falseAccusationPenalty * 5;

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

Deno.test("a proof held for its accuser's pledge is held for the challenge window the ledger runs with: the pledge at 15 min of a 20 min window slashes the lazy trainer, a proof held past the window is forgotten", async () => {
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

Deno.test("a round's outcome signed by a coordinator staked between the default penalty and the ledger's larger one is refused as unstaked, its receipts not credited, until it stakes the ledger's penalty", async () => {
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
      falseAccusationPenalty: PENALTY_ECONOMICS,
    });
    for (const trainer of round.trainers) {
      await node.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: ACCUSER_PLEDGE });
    }
    // Staked past the default penalty, short of the ledger's.
    const between = (DEFAULT_ECONOMICS.falseAccusationPenalty + PENALTY_ECONOMICS) / 2;
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
    await node.ledger.ask({
      type: "deposit",
      key: coordinator.publicKey,
      amount: PENALTY_ECONOMICS,
    });
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

Deno.test("a peer's accuser staked between the default penalty and the ledger's larger one is checked unbacked: three false proofs spend the receipt's unbacked checks, a fourth accuser's valid proof is skipped until it stakes the ledger's penalty, then slashes the lazy trainer", async () => {
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
    const between = (DEFAULT_ECONOMICS.falseAccusationPenalty + PENALTY_ECONOMICS) / 2;
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
    await ledger.ask({ type: "deposit", key: honest.publicKey, amount: PENALTY_ECONOMICS });
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
  }, { economics: { falseAccusationPenalty: PENALTY_ECONOMICS } });
});
