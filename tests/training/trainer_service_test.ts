/**
 * The TrainerService signs at most one receipt per round slot (round, start model), the slot
 * every ledger counts equivocation by. A coordinator restarted with another H — or a second
 * coordinator on the default seed — asks an honest trainer for "round 0 from the seeded model"
 * again on other terms; signing both would slash the trainer in every ledger. It refuses the
 * second (`slot_signed`), also after its own restart when it keeps a data directory, and still
 * answers the same request again (training is deterministic: the same receipt).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { RoundBody } from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainFunction,
} from "../../training/trainer_service.ts";
import {
  drawTrainingChallenge,
  TRAINING_CHALLENGE_STEPS,
  type TrainingChallenge,
} from "../../training/training_challenge.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { standInTraining } from "./_stand_in_train.ts";

/** The trainer's stake, as its pledge would bring it. */
const STAKE = 10_000_000;

/**
 * Stands in for `trainAndSign` (no tfjs): a delta and a receipt that are a pure function of
 * what the round asked, as honest training is. Counts its calls.
 */
function countingTrain(
  gate?: Promise<void>,
): { train: TrainFunction; calls: () => number } {
  let calls = 0;
  const train: TrainFunction = async (options) => {
    calls++;
    await gate;
    return standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.steps + o.dataSeed));
  };
  return { train, calls: () => calls };
}

/**
 * What the tests run a trainer on: a shard, the round models, a seeded start model. Training
 * waits for `options.gate` when given; `options.maxRoundSteps` is the trainer's.
 */
async function trainerFixture(
  dir: string,
  options: { gate?: Promise<void>; maxRoundSteps?: number } = {},
) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const { train, calls } = countingTrain(options.gate);
  const identity = Identity.generate();
  /**
   * A TrainerService named `name`, keeping its signed slots in `dataDir`; `stakeOf` is its
   * ledger's stake of a challenger (default: no ledger).
   */
  const trainer = (
    system: ActorSystem,
    name: string,
    dataDir: string,
    stakeOf?: (key: Uint8Array) => Promise<number>,
  ) =>
    system.spawn<TrainerMessage>({
      name,
      factory: () =>
        new TrainerService({
          identity,
          shard: split.shards[0],
          models,
          train,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir,
          stakeOf,
          maxRoundSteps: options.maxRoundSteps,
        }),
    });
  /** Ask `ref` for round `n` from the seeded model with H = `steps` for `coordinator`. */
  const round = async (
    ref: Awaited<ReturnType<typeof trainer>>,
    n: number,
    steps: number,
    coordinator = "c0",
  ) => {
    const body: RoundBody = {
      round: n,
      startModel: seed.cid,
      startFile: seed.cid,
      arch: TEST_ARCH,
      steps,
      dataSeed: 7,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      deadline: Date.now() + 60_000,
    };
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator });
    return await report;
  };
  return { seed, identity, calls, trainer, round };
}

Deno.test("a trainer asked twice for one round from one start model on other terms (a coordinator restarted with another H) signs once: refused with slot_signed, also after its own restart, and its stake stays whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-slots-" });
  const system = new ActorSystem({ name: "trainer-slots" });
  try {
    const f = await trainerFixture(dir);
    const { seed, identity, calls } = f;
    const ledger = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: Identity.generate(),
          ledgerDir: join(dir, "ledger"),
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    await ledger.ask({ type: "deposit", key: identity.publicKey, amount: STAKE });
    const trainer = (name: string) => f.trainer(system, name, join(dir, "trainer"));
    /** Round 0 from the seeded model with H = `steps`; every report goes to the ledger. */
    const round0 = async (ref: Awaited<ReturnType<typeof trainer>>, steps: number) => {
      const { receipt } = await f.round(ref, 0, steps);
      await ledger.ask({
        type: "training_receipt",
        receipt,
        terms: { round: 0, startModel: seed.cid, steps },
        credited: true,
      });
    };
    const first = await trainer("node/trainer");
    await round0(first, 3);
    // The coordinator restarts with H = 4 and asks for round 0 from the seeded model again.
    const refused = await round0(first, 4).then(() => undefined, (e: { code?: string }) => e);
    const account = await ledger.ask<Account>({ type: "account", key: identity.publicKey });
    assert.equal(account.stake, STAKE, "an honest trainer loses no stake");
    assert.equal(refused?.code, "slot_signed");
    // The same request again (a retry) is answered: the same receipt, no equivocation.
    await round0(first, 3);
    assert.equal(calls(), 2, "the request on other terms never reached training");

    // The trainer's node restarts too: the slot is remembered from its data directory.
    await system.stop("node/trainer");
    const second = await trainer("node/trainer-restarted");
    await assert.rejects(round0(second, 4), (e: { code?: string }) => e.code === "slot_signed");
    assert.equal(calls(), 2);
    const after = await ledger.ask<Account>({ type: "account", key: identity.publicKey });
    assert.equal(after.stake, STAKE, "still whole");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the signed slots survive a restart whole, and a temp file an interrupted write left is never read and is removed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-slots-file-" });
  const system = new ActorSystem({ name: "trainer-slots-file" });
  try {
    const f = await trainerFixture(dir);
    const { calls, round } = f;
    const slotsDir = join(dir, "training");
    const trainer = (name: string) => f.trainer(system, name, slotsDir);
    const first = await trainer("node/trainer");
    await round(first, 0, 3);
    await round(first, 1, 3);
    await system.stop("node/trainer");
    const slotsFile = join(slotsDir, "signed-slots.json");
    const written = await Deno.readTextFile(slotsFile);
    assert.equal((JSON.parse(written) as unknown[]).length, 2, "both slots on disk");
    // A crash in the middle of a later write: its temp file is what is left of it.
    const stray = `${slotsFile}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(stray, '[["half a wri');

    const second = await trainer("node/trainer-restarted");
    for (const n of [0, 1]) {
      await assert.rejects(round(second, n, 4), (e: { code?: string }) => e.code === "slot_signed");
    }
    assert.equal(calls(), 2, "no slot signed twice");
    const left = [];
    for await (const entry of Deno.readDir(slotsDir)) left.push(entry.name);
    assert.deepEqual(left, ["signed-slots.json"], "the stray temp file is gone, no new one left");
    assert.equal(await Deno.readTextFile(slotsFile), written, "the record itself untouched");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trainer opens only the challenges it owes: from the challenge's validator over its own connection, of at most TRAINING_CHALLENGE_STEPS steps, one per validator and receipt (asked again, the same answer)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-challenges-" });
  const system = new ActorSystem({ name: "trainer-challenges" });
  try {
    const { trainer, round } = await trainerFixture(dir);
    const validator = Identity.generate();
    // The validator has stake in this trainer's ledger (a fresh key is owed nothing:
    // `privacy_review_test.ts`).
    const stakeOf = (key: Uint8Array) =>
      Promise.resolve(toHex(key) === toHex(validator.publicKey) ? STAKE : 0);
    const ref = await trainer(system, "node/trainer", join(dir, "data"), stakeOf);
    const H = TRAINING_CHALLENGE_STEPS + 4;
    const { receipt } = await round(ref, 0, H);
    const ask = (challenge: TrainingChallenge, from: Uint8Array) =>
      ref.ask<ChallengeAccepted>({ type: "challenge", challenge, from });
    const refusal = async (accepted: ChallengeAccepted) =>
      (await accepted.openings.then(() => undefined, (e) => e as { code: string; message: string }))
        ?.code;
    const fair = drawTrainingChallenge(receipt, validator);
    // From another peer than its validator: not owed (junk from any key used to queue ahead).
    assert.equal(
      await refusal(await ask(fair, Identity.generate().publicKey)),
      "challenge_mismatch",
    );
    // Every step of the run: more than a challenge draws.
    const greedy = drawTrainingChallenge(receipt, validator, { steps: H });
    assert.equal(await refusal(await ask(greedy, validator.publicKey)), "challenge_mismatch");
    // Its validator's own challenge is taken (this stand-in trainer keeps no trace to open,
    // so it fails past this gate, not at it) ...
    const first = await ask(fair, validator.publicKey);
    const again = await ask(fair, validator.publicKey);
    assert.equal(again.openings, first.openings, "asked again: the same answer");
    // ... and a second challenge of that receipt by that validator is not.
    const second = drawTrainingChallenge(receipt, validator);
    assert.equal(await refusal(await ask(second, validator.publicKey)), "challenge_mismatch");
    await first.openings.catch(() => {});
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged signed-slots file stops the trainer with an error that names it and the operator's choice, and is not dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-slots-" });
  try {
    const { trainer } = await trainerFixture(dir);
    const dataDir = join(dir, "data");
    await Deno.mkdir(dataDir, { recursive: true });
    for (const damaged of ["{ not json", '{"an":"object"}', '[["slot", 3]]']) {
      Deno.writeTextFileSync(join(dataDir, "signed-slots.json"), damaged);
      const system = new ActorSystem({ name: "trainer-slots" });
      try {
        await assert.rejects(
          () => trainer(system, "node/trainer", dataDir),
          // The actor's start fails with the trainer's error, which names the file and what to do.
          (e: Error) =>
            e.message.includes("signed_slots_unreadable") ||
            (e.message.includes("signed-slots.json") && e.message.includes("move it aside")),
        );
      } finally {
        await system.shutdown();
      }
      assert.equal(Deno.readTextFileSync(join(dataDir, "signed-slots.json")), damaged, "kept");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a round asking more local steps than the trainer takes is refused (too_many_steps), never trained; one at the bound is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-steps-" });
  const system = new ActorSystem({ name: "trainer-steps" });
  try {
    const { trainer, round, calls } = await trainerFixture(dir, { maxRoundSteps: 5 });
    const ref = await trainer(system, "node/trainer", dir);
    await assert.rejects(round(ref, 0, 6), (e: { code?: string }) => e.code === "too_many_steps");
    assert.equal(calls(), 0);
    await round(ref, 0, 5);
    assert.equal(calls(), 1);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("one round at a time per coordinator: a second while its first waits or runs is refused (round_in_progress), the same request again shares the running one's report, another coordinator's is taken", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-one-round-" });
  const system = new ActorSystem({ name: "trainer-one-round" });
  const gate = Promise.withResolvers<void>();
  try {
    const { trainer, round, calls } = await trainerFixture(dir, { gate: gate.promise });
    const ref = await trainer(system, "node/trainer", dir);
    const first = round(ref, 0, 3, "c0");
    const again = round(ref, 0, 3, "c0");
    await assert.rejects(
      round(ref, 1, 3, "c0"),
      (e: { code?: string }) => e.code === "round_in_progress",
    );
    const other = round(ref, 0, 3, "c1");
    gate.resolve();
    const [a, b] = await Promise.all([first, again]);
    assert.equal(a, b, "the same request again got the running round's report");
    await other;
    assert.equal(calls(), 2, "c0's round trained once, c1's once");
    // Its round over, the coordinator's next round is taken.
    await round(ref, 1, 3, "c0");
    assert.equal(calls(), 3);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
