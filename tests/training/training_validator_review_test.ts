/**
 * Adversarial review of the training validator's kept holds and unbacked checks (3c0a40a,
 * a925473). Each test failed before its fix.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import type { ActorContext } from "../../actors/actor.ts";
import { join } from "node:path";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { StepOpeningsCheck } from "../../training/step_check.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  type ChallengeOutcome,
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../../training/training_validator.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { answeringConnection, LosesOpenAnswer } from "./_lost_open_answer.ts";
import { lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

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
