/**
 * Who pays for a training receipt. Its terms (round, start model, H) travel with it by gossip,
 * and nothing on the wire shows that a coordinator ran that round: a trainer could gossip a
 * receipt for 400 steps of a round nobody ran and every ledger paid it (found by a review).
 * Gossip alone now records the receipt (its slash locked, so a fraud proof still takes it) and
 * pays nothing; the credit comes when an outcome this node audited names the receipt, or when
 * this node coordinated the round itself.
 */
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";
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
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { eventually } from "../_helpers/wait.ts";

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

Deno.test("a coordinator's ledger pays only the trainers whose deltas went into the round's model: a trainer answering its challenge with an unsigned opening is left out, paid nothing and slashed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-credit-excluded-" });
  const system = new ActorSystem({ name: "credit-excluded" });
  try {
    const honest = Identity.generate();
    const lazy = Identity.generate();
    const { clock, ledger, training, start, shard, join, ended } = await oneRound(system, dir, {
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
      steps: ROUND_STEPS,
      minTrainers: 2,
      stakes: [[honest, STAKE], [lazy, STAKE]],
    });
    // A well-formed CBOR value that is no signed answer at all.
    const junk = encodeCanonical({ junk: "not an opening" });
    for (const trainer of [honest, lazy]) {
      await join(reportingTrainer(trainer, start, shard, { answer: () => junk }));
    }
    const round = await ended();
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
