/**
 * Review s45: many validators challenging one receipt. Every ledger-keeping node that audits a
 * round challenges its trainers on its own coin, so N staked validators drawing the same receipt
 * queue N openings at the trainer, answered one after another in its engine's worker. Each
 * opening re-ran its steps from the nearest kept state, on its own: on `tiny` (H = 64, a state
 * kept every 16 steps) about 42 steps, 10 s, so from about six challenges the last ones missed
 * their 60 s deadline and the honest trainer was slashed for `opening_missing` in every ledger.
 *
 * The test measures no real load: it counts the training steps the trainer's engine re-runs to
 * open each challenge (the trace's backend is read once per re-run step) and charges each
 * {@link STEP_MS} on a fake clock, the challenges answered in the order they came, as the
 * engine's worker does; then each validator checks what arrived by its deadline, and a ledger
 * settles what the checks prove.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
} from "../../training/trainer_service.ts";
import { Ledger } from "../../proof/ledger.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import type { SealedStepOpenings } from "../../training/step_opening.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { InProcessTrainerEngine, type TrainFunction } from "../../training/trainer_engine.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
  type TrainingChallenge,
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import { checkTrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** One re-run training step of `tiny` on this machine's wasm backend (244–260 ms measured). */
const STEP_MS = 250;
/** H of the measured case (`docs/TRAINING.md`: opening 8 steps of `tiny`, H = 64, 10 s). */
const H = 64;
/** Validators drawing the same receipt: a handful of audit nodes at p = 0.1 … 1. */
const VALIDATORS = 8;
const TRAINER_STAKE = 1_000_000;
const VALIDATOR_STAKE = 1_000_000;

const split = await testSplit();
const start = seededGptWeights(TEST_ARCH, 0);
const startModel = gptModelId(TEST_ARCH, start);
const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER };

Deno.test("eight staked validators challenging one honest receipt at once are all answered within the 60 s deadline (the openings re-ran the same steps once each: the last ones missed it, opening_missing, and the honest trainer was slashed)", async () => {
  const trainer = Identity.generate();
  let reRun = 0;
  // The honest `trainAndSign`; its trace counts every step an opening re-runs.
  const counting: TrainFunction = async (options) => {
    const result = await trainAndSign(options);
    const backend = result.trace.backend;
    Object.defineProperty(result.trace, "backend", {
      get: () => {
        reRun++;
        return backend;
      },
    });
    return result;
  };
  const engine = new InProcessTrainerEngine(trainer, split.shards[0], counting);
  const report = await engine.train({
    arch: TEST_ARCH,
    round: 0,
    startModel,
    start,
    steps: H,
    dataSeed: 11,
    hyper,
  });
  const { receipt, delta } = report;
  assert.equal(reRun, 0, "training itself is not counted");

  // All challenges come at t0 (one audit of one outcome); the trainer answers them one after
  // another, each taking its re-run steps' time.
  const t0 = 1_000_000;
  const validators = Array.from({ length: VALIDATORS }, () => Identity.generate());
  const challenges: TrainingChallenge[] = validators.map((v) =>
    drawTrainingChallenge(receipt, v, { now: () => t0 })
  );
  let clock = t0;
  const answers: { sealed: SealedStepOpenings; at: number }[] = [];
  const perChallenge: number[] = [];
  for (const challenge of challenges) {
    const before = reRun;
    const sealed = await engine.open(challenge);
    perChallenge.push(reRun - before);
    clock += (reRun - before) * STEP_MS;
    answers.push({ sealed, at: clock });
  }

  // A ledger holding the receipt, the trainer's and every validator's stake.
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s45-openings-" });
  const ledgerClock = { t: t0 };
  const ledger = await Ledger.open(dir, Identity.generate(), { now: () => ledgerClock.t });
  try {
    await ledger.deposit(trainer.publicKey, TRAINER_STAKE);
    for (const v of validators) await ledger.deposit(v.publicKey, VALIDATOR_STAKE);
    await ledger.recordTrainingReceipt(receipt, { round: 0, startModel, steps: H });
    const stakeBefore = ledger.account(trainer.publicKey).stake;

    const late: number[] = [];
    for (const [i, challenge] of challenges.entries()) {
      if (answers[i].at <= challenge.deadline) continue; // on time: its check is not the point
      late.push(i);
      // Past the deadline with no answer: what the validator's check gives, and what every
      // ledger then settles (burned, nobody rewarded).
      const after = challenge.deadline + 50;
      const check = await checkStepOpenings(receipt, challenge, undefined, {
        validator: validators[i],
        arch: TEST_ARCH,
        startWeights: start,
        delta,
        shardSize: receipt.shardSize,
        shardRoot: receipt.shardRoot,
        now: () => after,
      });
      assert.equal(check.ok, false);
      assert.ok(!check.ok && check.reason === "opening_missing" && check.proof);
      const verdict = await checkTrainingFraudProof(check.proof, {
        arch: TEST_ARCH,
        startWeights: start,
        now: () => after,
      });
      if (!verdict.confirmed) continue;
      await ledger.settleTrainingFraud({
        receiptId: trainingReceiptId(receipt),
        fraudProofHash: verdict.proofHash,
        validator: validators[i].publicKey,
        confirmed: true,
        reason: "opening_missing",
        wordOnly: true,
      }).catch(() => {}); // a second accusation of a slashed receipt: `not_pending`
    }
    const total = perChallenge.reduce((a, b) => a + b, 0);
    assert.deepEqual(
      late,
      [],
      `re-run steps per challenge ${perChallenge.join(", ")} (${total} in all, H = ${H}): ` +
        `the last answer came ${(clock - t0) / 1000} s after the challenges, the deadline is ` +
        `${DEFAULT_OPENING_DEADLINE_MS / 1000} s`,
    );
    assert.ok(total <= H, `each step re-run at most once for the receipt (${total} > ${H})`);
    // The last answer, opened from states other challenges recomputed, is a valid one.
    const last = challenges.length - 1;
    const check = await checkStepOpenings(receipt, challenges[last], answers[last].sealed, {
      validator: validators[last],
      arch: TEST_ARCH,
      startWeights: start,
      delta,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
      now: () => answers[last].at,
    });
    assert.ok(check.ok, `the last answer checks: ${!check.ok && check.reason}`);
    assert.equal(
      ledger.account(trainer.publicKey).stake,
      stakeBefore,
      "the honest trainer's stake",
    );
    assert.equal(ledger.receipt(trainingReceiptId(receipt))?.status, "pending");
  } finally {
    await ledger.close();
    await engine.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trainer keeps every sealed answer for its validator until its deadline (nine answers ready at once: the 9th pushed out the 1st before it was fetched, unknown_opening, and its validator took it as missing)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s45-answers-" });
  const system = new ActorSystem({ name: "s45-answers" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const seed = await models.publish(TEST_ARCH, start);
    const validators = Array.from({ length: 9 }, () => Identity.generate());
    const staked = new Set(validators.map((v) => toHex(v.publicKey)));
    const ref = await system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity: Identity.generate(),
          shard: split.shards[0],
          models,
          train: trainAndSign, // in place: the honest run, opened from its trace
          sampleBytes: TEST_HYPER.sampleBytes,
          stakeOf: (key) => Promise.resolve(staked.has(toHex(key)) ? VALIDATOR_STAKE : 0),
        }),
    });
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body: {
        round: 0,
        startModel: seed.cid,
        startFile: seed.cid,
        arch: TEST_ARCH,
        steps: 4,
        dataSeed: 3,
        hyper,
        deadline: Date.now() + 60_000,
      },
      coordinator: "c0",
    });
    const { receipt } = await report;
    // Nine validators challenge at once; every answer is sealed before any is fetched (they
    // come fast now that the states are shared: a fraction of a second each).
    const challenges = validators.map((v) => drawTrainingChallenge(receipt, v));
    const headers = await Promise.all(challenges.map(async (challenge, i) => {
      const { openings } = await ref.ask<ChallengeAccepted>({
        type: "challenge",
        challenge,
        from: validators[i].publicKey,
      });
      return await openings;
    }));
    for (const [i, challenge] of challenges.entries()) {
      const challengeId = trainingChallengeId(challenge);
      for (let index = 0; index < headers[i].parts; index++) {
        const part = await ref.ask<Uint8Array>({ type: "part", challengeId, index }).catch(
          (e) => e as Error,
        );
        assert.ok(
          part instanceof Uint8Array,
          `validator ${i}'s answer, part ${index}: ${(part as Error).message}`,
        );
      }
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a part request for an answer the trainer does not hold is refused without crashing the trainer (any peer's bogus id crashed it: the answers it held and the challenges it owed were lost, opening_missing)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s45-part-" });
  const system = new ActorSystem({ name: "s45-part" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const seed = await models.publish(TEST_ARCH, start);
    const validator = Identity.generate();
    const ref = await system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity: Identity.generate(),
          shard: split.shards[0],
          models,
          train: trainAndSign,
          sampleBytes: TEST_HYPER.sampleBytes,
          stakeOf: (key) =>
            Promise.resolve(toHex(key) === toHex(validator.publicKey) ? VALIDATOR_STAKE : 0),
        }),
    });
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body: {
        round: 0,
        startModel: seed.cid,
        startFile: seed.cid,
        arch: TEST_ARCH,
        steps: 4,
        dataSeed: 5,
        hyper,
        deadline: Date.now() + 60_000,
      },
      coordinator: "c0",
    });
    const { receipt } = await report;
    const challenge = drawTrainingChallenge(receipt, validator);
    const { openings } = await ref.ask<ChallengeAccepted>({
      type: "challenge",
      challenge,
      from: validator.publicKey,
    });
    const header = await openings;
    // Anyone connected may ask for any part of any id.
    const bogus = await ref.ask<Uint8Array | undefined>({
      type: "part",
      challengeId: "00".repeat(32),
      index: 0,
    }).catch((e) => e as Error);
    assert.equal(bogus, undefined, `refused, not a crash: ${(bogus as Error)?.message}`);
    const part = await ref.ask<Uint8Array | undefined>({
      type: "part",
      challengeId: trainingChallengeId(challenge),
      index: 0,
    }).catch((e) => e as Error);
    assert.ok(part instanceof Uint8Array, `the validator's answer is still there: ${part}`);
    assert.ok(header.parts >= 1);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
