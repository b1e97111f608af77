/**
 * Who pays for a training receipt. Its terms (round, start model, H) travel with it by gossip,
 * and nothing on the wire shows that a coordinator ran that round: a trainer could gossip a
 * receipt for 400 steps of a round nobody ran and every ledger paid it (found by a review).
 * Gossip alone now records the receipt (its slash locked, so a fraud proof still takes it) and
 * pays nothing; the credit comes when an outcome this node audited names the receipt, or when
 * this node coordinated the round itself.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { TrainingReceiptMessage } from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type UnsignedTrainingReceipt,
} from "../../training/training_receipt.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/local_trainer.ts";
import type { Connection } from "../../protocols/connection.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import {
  ChallengeMessage,
  OpeningPartMessage,
  type RoundBody,
  RoundMessage,
} from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

const SEED_CID = "bafkreihwoyd6pmgo7xulmv67id2d5oadfacqqcqzqju76bvhzkvvjtckom";

Deno.test("a training receipt gossiped for a round nobody ran, on terms of its own, is recorded (slashable) but earns nothing; a receipt an audited outcome names is paid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "review-mint-" });
  const system = new ActorSystem({ name: "review-mint" });
  const clock = { t: 1_000_000 };
  try {
    const validatorId = Identity.generate();
    const ledger = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: validatorId,
          ledgerDir: `${dir}/ledger`,
          ledger: { now: () => clock.t },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    const training = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: validatorId,
          models: undefined as never,
          ledger: "node/validator",
        }),
    });
    const trainer = Identity.generate();
    // The trainer's stake, as its pledge would bring it.
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: 10_000_000 });

    // No training at all: a receipt claiming 400 steps of round 12345.
    const steps = 400;
    const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS };
    /** A receipt of `trainer` for `round`, claiming 400 steps of work never done. */
    const claim = (round: number) =>
      signTrainingReceipt({
        v: TRAINING_RECEIPT_VERSION,
        round,
        startModel: SEED_CID,
        steps,
        dataSeed: 1,
        hyper,
        samplesRoot: "aa".repeat(32),
        sampleCount: steps * hyper.batchSize,
        checkpointsRoot: "bb".repeat(32),
        shardRoot: "cc".repeat(32),
        shardSize: 100,
        losses: Array.from({ length: steps }, () => 1),
        deltaHash: "dd".repeat(32),
        deltaBytes: 1,
      } as Omit<UnsignedTrainingReceipt, "trainer">, trainer);
    const receipt = claim(12345);
    const body = { receipt, terms: { round: 12345, startModel: SEED_CID, steps } };
    // It is what the wire accepts from any peer.
    assert.ok(TrainingReceiptMessage.schema.safeParse(body).success, "valid gossip");
    const recorded = await training.ask({ type: "receipt", body, origin: "trainer-itself" });
    assert.deepEqual(recorded, { recorded: true, fresh: true });
    // Another receipt of the same trainer, which an outcome this node audited names: credited.
    const named = claim(12346);
    const namedTerms = { round: 12346, startModel: SEED_CID, steps };
    await ledger.ask({ type: "training_receipt", receipt: named, terms: namedTerms });
    await ledger.ask({
      type: "training_receipt",
      receipt: named,
      terms: namedTerms,
      credited: true,
    });

    clock.t += 60 * 60 * 1000; // past the challenge window
    await ledger.ask({ type: "finalize" });
    const account = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    const credit = steps * DEFAULT_ECONOMICS.trainingCreditPerStep;
    assert.deepEqual(
      account,
      { balance: credit, stake: 10_000_000, locked: 0 },
      "only the named one is paid",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Local steps of the coordinator round below: the credit is `trainingCreditPerStep × H`. */
const ROUND_STEPS = 3;
/** The trainers' stake, as their pledges would bring it. */
const STAKE = 10_000_000;

/**
 * A trainer as a coordinator sees it: it answers the round with a signed report on a small
 * delta (no training: the step check is what decides, and it is injected below), and a
 * challenge with `answer`'s bytes as its sealed opening.
 */
function reportingTrainer(
  identity: Identity,
  start: GptWeights,
  shard: { size: number; root: string },
  answer: Uint8Array,
): Connection {
  const closed = Promise.withResolvers<void>();
  return {
    peerKey: identity.publicKey,
    closed: closed.promise,
    request: (definition: unknown, body: RoundBody) => {
      if (definition === RoundMessage) {
        const delta = encodeInt8Delta(
          quantizeDelta(
            new Map([...start].map(([name, t]) => [name, {
              shape: [...t.shape],
              data: t.data.map((_x, i) => 1e-3 * Math.sin(i + 1)),
            }])),
          ),
        );
        const receipt = signTrainingReceipt({
          v: TRAINING_RECEIPT_VERSION,
          round: body.round,
          startModel: body.startModel,
          steps: body.steps,
          dataSeed: body.dataSeed,
          hyper: body.hyper,
          samplesRoot: "aa".repeat(32),
          sampleCount: body.steps * body.hyper.batchSize,
          checkpointsRoot: "bb".repeat(32),
          shardRoot: shard.root,
          shardSize: shard.size,
          losses: Array.from({ length: body.steps }, () => 3),
          deltaHash: deltaHash(delta),
          deltaBytes: delta.length,
        }, identity);
        return Promise.resolve({ receipt, delta });
      }
      if (definition === ChallengeMessage) {
        return Promise.resolve({ size: answer.length, parts: 1, sha256: sha256Hex(answer) });
      }
      if (definition === OpeningPartMessage) return Promise.resolve({ bytes: answer });
      return Promise.reject(new Error("not asked in this test"));
    },
  } as unknown as Connection;
}

Deno.test("a coordinator's ledger pays only the trainers whose deltas went into the round's model: a trainer answering its challenge with an unsigned opening is left out, paid nothing and slashed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-credit-excluded-" });
  const system = new ActorSystem({ name: "credit-excluded" });
  const clock = { t: Date.now() };
  try {
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const honest = Identity.generate();
    const lazy = Identity.generate();
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: {
        challengeProbability: 1,
        // The lazy trainer's answer comes by its own connection at once: the wait is for the
        // deadline only, which the re-check needs before it may call the answer missing.
        openingDeadlineMs: 300,
        // The honest trainer's steps re-run (not trained here: its check passes); the lazy
        // one's answer goes through the real check, which finds it unsigned.
        check: (receipt, challenge, sealed, context) =>
          bytesEqual(receipt.trainer, honest.publicKey)
            ? Promise.resolve({ ok: true })
            : checkStepOpenings(receipt, challenge, sealed, context),
      },
    });
    for (const trainer of [honest, lazy]) {
      await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    }
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: me,
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: ROUND_STEPS,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 2,
          models,
          validator: "node/training-validator",
        }),
    });
    const start = seededGptWeights(TEST_ARCH, 0);
    const shard = { size: 100, root: "cc".repeat(32) };
    // A well-formed CBOR value that is no signed answer at all.
    const junk = encodeCanonical({ junk: "not an opening" });
    for (const trainer of [honest, lazy]) {
      await coordinator.ask({
        type: "join",
        connection: reportingTrainer(trainer, start, shard, junk),
        shardSize: shard.size,
        shardRoot: shard.root,
      });
    }
    const status = await eventually(async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length === 1 ? s : undefined;
    }, "round 0 to end");
    const [round] = status.history;
    assert.deepEqual(round.accepted, [toHex(honest.publicKey)]);
    assert.deepEqual(round.excluded.map((e) => e.key), [toHex(lazy.publicKey)]);
    // Its junk answer, past the deadline, is a missing opening: a proof, settled here.
    await eventually(async () => {
      const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
      return s.checked >= 1;
    }, "the lazy trainer's fraud proof to be settled");

    clock.t += 24 * 60 * 60 * 1000; // past every challenge window
    await ledger.ask({ type: "finalize" });
    const credit = ROUND_STEPS * DEFAULT_ECONOMICS.trainingCreditPerStep;
    const paid = await ledger.ask<Account>({ type: "account", key: honest.publicKey });
    assert.deepEqual(paid, { balance: credit, stake: STAKE, locked: 0 }, "the honest trainer");
    const left = await ledger.ask<Account>({ type: "account", key: lazy.publicKey });
    assert.equal(left.balance, 0, "a trainer whose delta was left out is not paid");
    assert.equal(left.stake, STAKE - credit * DEFAULT_ECONOMICS.slashMultiplier, "slashed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
