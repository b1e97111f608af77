/**
 * Who pays for a training receipt, from the reports a coordinator takes: gossip alone credits
 * nothing, a stakeless trainer's delta is left out, one piece of work is paid once, and a lazy
 * trainer whose answer cannot be opened is slashed while its validator pays nothing.
 *
 * @module
 */
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { TrainingReceiptMessage } from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS, trainingReward } from "../../proof/economics.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { testModelCredit } from "./_fixtures.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
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
import { sealInput } from "../../proof/private_input.ts";
import { openingContext, sealOpeningBytes } from "../../training/step_opening.ts";
import { type TrainingChallenge, trainingChallengeId } from "../../training/training_challenge.ts";

// ------------------------------------------------------------------------------------------------
// Who pays for a training receipt. Its terms (round, start model, H) travel with it by gossip, and
// nothing on the wire shows that a coordinator ran that round: a trainer could gossip a receipt for
// 400 steps of a round nobody ran and every ledger paid it (found by a review). Gossip alone now
// records the receipt (its slash locked, so a fraud proof still takes it) and pays nothing; the
// credit comes when an outcome this node audited names the receipt, or when this node coordinated
// the round itself.
// ------------------------------------------------------------------------------------------------

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
    const credit = trainingReward(DEFAULT_ECONOMICS, named);
    assert.ok(credit > 0, "the named claim earns something");
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

/** Local steps of the coordinator round below: the credit is `testModelCredit(H)`. */
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
    const credit = testModelCredit(ROUND_STEPS);
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

// ------------------------------------------------------------------------------------------------
// A trainer whose receipt the coordinator's ledger refuses (no stake to lock) has nothing at risk:
// a fraud proof against it would settle nowhere. Its delta is left out of the round. It used to be
// averaged in whatever the ledger said (found by a review), so a fresh key could push a made-up
// delta into the model every round the coin did not draw it. Since review s73 F3 it is not even
// seated: a coordinator gives seats only to trainers whose free stake backs a round's receipt
// (the check after the reports, for stake that moves between: `round_seats_test.ts`).
// ------------------------------------------------------------------------------------------------

const STEPS = 3;

Deno.test("a trainer with no stake takes no seat: it is not asked, nothing of it is recorded and no model is made of it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-stakeless-" });
  const system = new ActorSystem({ name: "stakeless" });
  try {
    // The production default is 0.1: 9 rounds in 10 the coordinator challenges nothing. Here 0.
    const { coordinator, start, shard, join } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: STEPS,
      minTrainers: 1,
      stakes: [],
    });
    const sybil = Identity.generate(); // fresh key, never deposited anything
    const sent: TrainingReceipt[] = [];
    // A large made-up "delta" (a poisoning attempt), no training.
    await join(reportingTrainer(sybil, start, shard, { value: () => 500, sent }));
    const status = await eventually(async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.unbacked === 1 ? s : undefined;
    }, "the stakeless trainer to be counted without a seat");
    assert.deepEqual(status.trainers, [], "no trainer it can ask");
    assert.deepEqual(status.history, [], "no round of nobody");
    assert.deepEqual(sent, [], "never asked: no receipt signed, nothing to record or pay");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// One piece of training work is paid once. A trainer whose shard is one repeated sample trains
// batches that do not depend on its data seed, so a second key of its own can sign the very same
// trace and pass every challenge; the coordinator takes the first report of a trajectory or delta
// and leaves out (unpaid, not averaged) any other report of the same. The test failed before the
// coordinator (`training/_round_run.ts`) refused the copy: both were accepted.
// ------------------------------------------------------------------------------------------------

Deno.test("two keys reporting the same training in a round: the first is taken, the copy left out as duplicate_work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-duplicate-work-" });
  const system = new ActorSystem({ name: "duplicate-work" });
  try {
    const [first, copy] = [Identity.generate(), Identity.generate()];
    const { start, shard, join, ended } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: 2,
      minTrainers: 2,
      stakes: [[first, 1_000_000], [copy, 1_000_000]],
    });
    // The same delta under both keys.
    const value = (i: number) => 1e-3 * Math.cos(i);
    await join(reportingTrainer(first, start, shard, { value }));
    await join(reportingTrainer(copy, start, shard, { value }));
    const record = await ended();
    assert.equal(record.accepted.length, 1, JSON.stringify(record));
    const left = record.excluded.find((e) => e.key !== record.accepted[0]);
    assert.ok(left, JSON.stringify(record));
    assert.match(left.reason, /^duplicate_work: the same training as /);
    assert.ok([toHex(first.publicKey), toHex(copy.publicKey)].includes(left.key));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// The ledger outcome of a lazy trainer that answers its challenge at once with an answer it signed
// but sealed to another key (it can never be opened): slashed once the deadline passed, and the
// honest validator pays nothing. A proof used to be issued before the deadline, which every checker
// refuted (`before_deadline`): the lazy trainer kept its stake and the validator paid the
// false-accusation penalty (found by a review).
// ------------------------------------------------------------------------------------------------

/** A signed answer to `challenge` whose box is sealed to some other key: it never opens. */
function unopenableAnswer(challenge: TrainingChallenge, trainer: Identity): Uint8Array {
  const plaintext = encodeCanonical({ whatever: 1 });
  const sealed = sealOpeningBytes(plaintext, challenge, trainer);
  sealed.box = sealInput(
    plaintext,
    Identity.generate().publicKey,
    openingContext(challenge.receiptId, trainingChallengeId(challenge)),
  );
  return encodeCanonical(sealed);
}

Deno.test("a lazy trainer answering with a signed answer that cannot be opened is slashed after the deadline; the validator is not penalized", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-unopenable-" });
  const system = new ActorSystem({ name: "unopenable" });
  try {
    const lazy = Identity.generate();
    const { me, clock, ledger, training, start, shard, join, ended } = await oneRound(
      system,
      dir,
      {
        challenge: { challengeProbability: 1, openingDeadlineMs: 2_000 },
        steps: STEPS,
        minTrainers: 1,
        stakes: [[lazy, STAKE]],
      },
    );
    await ledger.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    await join(reportingTrainer(lazy, start, shard, {
      answer: (challenge) => unopenableAnswer(challenge, lazy),
    }));
    assert.deepEqual((await ended()).accepted, [], "its delta is not averaged in");
    await eventually(async () => {
      const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
      return s.checked >= 1 ? s : undefined;
    }, "the proof to be checked and settled");
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.deepEqual([stats.frauds, stats.confirmed], [1, 1], "one proof, confirmed");
    clock.t += 24 * 60 * 60 * 1000;
    await ledger.ask({ type: "finalize" });
    const lazyAcc = await ledger.ask<Account>({ type: "account", key: lazy.publicKey });
    const meAcc = await ledger.ask<Account>({ type: "account", key: me.publicKey });
    const slash = roundCredits(testModelCredit(STEPS) * DEFAULT_ECONOMICS.slashMultiplier);
    assert.equal(lazyAcc.stake, STAKE - slash, "the lazy trainer should be slashed");
    assert.equal(meAcc.stake, 1_000, "the honest validator should not be penalized");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
