/**
 * The TrainerService's rounds: one receipt per round slot, one round at a time per coordinator, and
 * a round whose coordinator is gone abandoned before or during training, so nothing is signed for
 * it and no later round waits behind it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  type ReportBody,
  type RoundBody,
  RoundMessage,
  TRAINING_PROTOCOL,
} from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "../../training/hyper_params.ts";
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
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";
import { standInTraining } from "./_stand_in_train.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { servePeer } from "../../network/peer_services.ts";
import { WorkerTrainerEngine } from "../../training/trainer_engine.ts";

// ------------------------------------------------------------------------------------------------
// The TrainerService signs at most one receipt per round slot (round, start model), the slot every
// ledger counts equivocation by. A coordinator restarted with another H — or a second coordinator
// on the default seed — asks an honest trainer for "round 0 from the seeded model" again on other
// terms; signing both would slash the trainer in every ledger. It refuses the second
// (`slot_signed`), also after its own restart when it keeps a data directory, and still answers the
// same request again (training is deterministic: the same receipt).
// ------------------------------------------------------------------------------------------------

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
    hyper: Partial<LocalHyperParams> = {},
  ) => {
    const body: RoundBody = {
      round: n,
      startModel: seed.cid,
      startFile: seed.cid,
      arch: TEST_ARCH,
      steps,
      dataSeed: 7,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER, ...hyper },
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
    // `trainer_privacy_test.ts`).
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

Deno.test("a round on another batch size or sample length than the trainer's own is refused (round_terms_refused), never trained: a coordinator cannot open the whole shard with one challenge nor hold the engine for hours; one on the trainer's batch is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-trainer-terms-" });
  const system = new ActorSystem({ name: "trainer-terms" });
  try {
    const { trainer, round, calls, seed } = await trainerFixture(dir);
    const ref = await trainer(system, "node/trainer", dir);
    const refused = (e: { code?: string }) => e.code === "round_terms_refused";
    // What a coordinator sees over the wire: the refusal's code, at once.
    const coordinator = Identity.generate();
    const [a, b] = memoryDuplexPair();
    const [atCoordinator, atTrainer] = await Promise.all([
      Connection.open(a, { identity: coordinator, protocols: [TRAINING_PROTOCOL] }),
      Connection.open(b, { identity: Identity.generate(), protocols: [TRAINING_PROTOCOL] }),
    ]);
    servePeer(atTrainer, coordinator.publicKey, { system, trainer: "node/trainer" });
    try {
      await assert.rejects(
        atCoordinator.request(RoundMessage, {
          ...testRoundBody(seed.cid, 2),
          hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER, batchSize: 512 },
        }, { timeoutMs: 60_000 }),
        refused,
      );
    } finally {
      await Promise.all([atCoordinator.close(), atTrainer.close()]);
    }
    // The review's rounds: a batch of 4096 (every sample of the shard in one opened step), and a
    // batch of 1 (a cheaper step than the one the network prices).
    await assert.rejects(round(ref, 0, 2, "c0", { batchSize: 4096 }), refused);
    await assert.rejects(round(ref, 0, 2, "c1", { batchSize: 1 }), refused);
    await assert.rejects(
      round(ref, 0, 2, "c2", { sampleBytes: TEST_HYPER.sampleBytes + 1 }),
      refused,
    );
    assert.equal(calls(), 0, "nothing trained for them");
    await round(ref, 0, 2, "c3");
    assert.equal(calls(), 1, "a round on the trainer's own batch is trained");
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

// ------------------------------------------------------------------------------------------------
// A trainer takes one round at a time per coordinator (`round_in_progress`). It kept that slot for
// a round whose coordinator was gone — its connection closed, a restarted coordinator's request
// lost — so the restarted coordinator's next rounds were refused until the lost round ended. The
// `round` message now carries the request's signal (the peer service's handler signal: aborted when
// its connection closes, or the request is cancelled): once nobody waits for a round, its
// coordinator's slot is free, and a lost round that has not started training is abandoned — nothing
// is signed for it, so no ledger pays or slashes anything for it.
// ------------------------------------------------------------------------------------------------

/**
 * A trainer whose training (a stand-in for `trainAndSign`: a receipt that is a pure function of
 * the round) waits for `trainGate`, and whose start-model check waits for `modelGate`; it
 * records the rounds it trained (signed a receipt for).
 */
async function fixture(dir: string, gates: { train?: Promise<void>; model?: Promise<void> }) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const signed: number[] = [];
  const entered: number[] = [];
  const train: TrainFunction = async (options) => {
    entered.push(options.round);
    await gates.train;
    signed.push(options.round);
    return standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.round));
  };
  const system = new ActorSystem({ name: "s53b-lost-round" });
  const ref = await system.spawn<TrainerMessage>({
    name: "node/trainer",
    factory: () =>
      new TrainerService({
        identity: Identity.generate(),
        shard: split.shards[0],
        models,
        train,
        sampleBytes: TEST_HYPER.sampleBytes,
        dataDir: join(dir, "data"),
        refusedModel: async () => {
          await gates.model;
          return null;
        },
      }),
  });
  /** Round `n`'s request. */
  const bodyOf = (n: number): RoundBody => ({
    round: n,
    startModel: seed.cid,
    startFile: seed.cid,
    arch: TEST_ARCH,
    steps: 3,
    dataSeed: 7,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    deadline: Date.now() + 60_000,
  });
  /** Ask for round `n` for `coordinator`, waited on while `gone` is not aborted. */
  const ask = async (n: number, coordinator: string, gone?: AbortSignal) => {
    const body = bodyOf(n);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator, gone });
    return { report }; // not the report itself: an async function would wait for it
  };
  /** Until `count` rounds entered training (polled: the stand-in's own record). */
  const training = async (count: number) => {
    while (entered.length < count) await new Promise((resolve) => setTimeout(resolve, 1));
  };
  return { system, round: ask, bodyOf, signed, training };
}

const codeOf = (report: Promise<ReportBody>) =>
  report.then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");

Deno.test("once the connection that asked for a round closes, its coordinator's next round (a restarted coordinator's) is taken, not refused round_in_progress; a coordinator still waiting keeps its slot", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-lost-round-" });
  const gate = Promise.withResolvers<void>();
  const { system, round, signed, training } = await fixture(dir, { train: gate.promise });
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    const waited = (await round(0, "c1", new AbortController().signal)).report;
    await training(2);
    // While its connection is open, the coordinator's second round is refused, as before.
    assert.equal(await codeOf((await round(1, "c0")).report), "round_in_progress");
    connection.abort(new Error("connection closed"));
    const next = (await round(1, "c0", new AbortController().signal)).report;
    // The other coordinator, still waiting, keeps its slot.
    assert.equal(await codeOf((await round(1, "c1")).report), "round_in_progress");
    gate.resolve();
    assert.equal((await next).receipt.round, 1, "the restarted coordinator's round is trained");
    assert.equal((await waited).receipt.round, 0);
    // The lost round had started training: it ran to its end (nobody reads its report, so it
    // is paid nowhere; its receipt is its honest run, so nothing slashes it).
    await codeOf(lost);
    assert.deepEqual(signed.toSorted(), [0, 0, 1]);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a round whose coordinator is gone before it started training is abandoned (round_abandoned): nothing is trained or signed for it, so nothing is paid or slashed for it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-abandoned-" });
  const model = Promise.withResolvers<void>();
  const { system, round, signed } = await fixture(dir, { model: model.promise });
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    connection.abort(new Error("connection closed"));
    model.resolve();
    assert.equal(await codeOf(lost), "round_abandoned");
    assert.deepEqual(signed, [], "no receipt signed for the lost round");
    // Its slot is free, and the same request again (the coordinator back) is trained anew.
    const back = (await round(0, "c0", new AbortController().signal)).report;
    assert.equal((await back).receipt.round, 0);
    assert.deepEqual(signed, [0]);
  } finally {
    model.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the same request again over a new connection, after the first closed, shares the running round's report (trained once)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-same-again-" });
  const gate = Promise.withResolvers<void>();
  const { system, round, signed, training } = await fixture(dir, { train: gate.promise });
  try {
    const first = new AbortController();
    const lost = (await round(0, "c0", first.signal)).report;
    await training(1);
    first.abort(new Error("connection closed"));
    const again = (await round(0, "c0", new AbortController().signal)).report;
    assert.equal(again, lost, "the running round's report");
    assert.equal(
      await codeOf((await round(1, "c0")).report),
      "round_in_progress",
      "waited on again",
    );
    gate.resolve();
    await again;
    assert.deepEqual(signed, [0], "trained once");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("over the wire, a coordinator whose connection closed while its round trained (it restarted) has its next round taken over its new connection, not refused round_in_progress", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-wire-" });
  const gate = Promise.withResolvers<void>();
  const { system, bodyOf, signed, training } = await fixture(dir, { train: gate.promise });
  const coordinator = Identity.generate();
  const node = Identity.generate();
  const open: Connection[] = [];
  /** A connection from the coordinator to the trainer's node, served as the node serves peers. */
  const connect = async () => {
    const [a, b] = memoryDuplexPair();
    const [atCoordinator, atTrainer] = await Promise.all([
      Connection.open(a, { identity: coordinator, protocols: [TRAINING_PROTOCOL] }),
      Connection.open(b, { identity: node, protocols: [TRAINING_PROTOCOL] }),
    ]);
    servePeer(atTrainer, coordinator.publicKey, { system, trainer: "node/trainer" });
    open.push(atCoordinator, atTrainer);
    return atCoordinator;
  };
  try {
    const before = await connect();
    const lost = before.request(RoundMessage, bodyOf(0), { timeoutMs: 60_000 })
      .then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    await training(1);
    await before.close(); // the coordinator restarts
    await lost;
    const after = await connect();
    const next = after.request(RoundMessage, bodyOf(1), { timeoutMs: 60_000 })
      .then((report) => report.receipt.round, (e: { code?: string }) => e.code ?? "thrown");
    // The lost round still trains when the next is asked for: taken (it enters training), or
    // refused (answered at once).
    await Promise.race([next, training(2)]);
    gate.resolve();
    assert.equal(await next, 1, "the restarted coordinator's next round, trained");
    assert.deepEqual(signed.toSorted(), [0, 1]);
  } finally {
    gate.resolve();
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A round whose coordinator is gone while it already trains is lost: nobody will ever read its
// report. Before, it still ran all its H local steps, and a trainer's rounds run one after another
// in its engine's worker, so every round asked after it — the restarted coordinator's next one,
// another coordinator's — waited behind up to `MAX_ROUND_STEPS` steps of work nobody pays for, and
// missed its deadline (unpaid); and one key could queue round after round there by closing its
// connection once each had entered training. A round now stops at its next step (`round_abandoned`,
// nothing signed) once it is lost for good: nobody waits for it and its coordinator asked for
// another round, or nobody waits for it and its deadline has passed.
// ------------------------------------------------------------------------------------------------

const STEPS = 50;

/**
 * A trainer whose training is a stand-in that takes `STEPS` steps, each after the engine's
 * `between` (where a lost round stops) and after the test lets it go (`step()`); it records
 * the steps each round took and the rounds it signed. Its clock is the test's.
 */
async function fixtureCancel(dir: string) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const taken = new Map<number, number>();
  const signed: number[] = [];
  let go = Promise.withResolvers<void>();
  const train: TrainFunction = async (options) => {
    for (let step = 0; step < options.steps; step++) {
      await options.between?.();
      await go.promise;
      taken.set(options.round, step + 1);
      options.onStep?.(step, 3);
    }
    signed.push(options.round);
    return standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.round));
  };
  const clock = { now: 1_000_000 };
  const system = new ActorSystem({ name: "s54-lost-round" });
  const ref = await system.spawn<TrainerMessage>({
    name: "node/trainer",
    factory: () =>
      new TrainerService({
        identity: Identity.generate(),
        shard: split.shards[0],
        models,
        train,
        sampleBytes: TEST_HYPER.sampleBytes,
        dataDir: join(dir, "data"),
        now: () => clock.now,
      }),
  });
  const bodyOf = (n: number): RoundBody => ({
    round: n,
    startModel: seed.cid,
    startFile: seed.cid,
    arch: TEST_ARCH,
    steps: STEPS,
    dataSeed: 7,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    deadline: clock.now + 60_000,
  });
  const round = async (n: number, coordinator: string, gone?: AbortSignal) => {
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body: bodyOf(n),
      coordinator,
      gone,
    });
    return { report };
  };
  /** Let every waiting step go, and the next ones wait again. */
  const step = () => {
    const released = go;
    go = Promise.withResolvers<void>();
    released.resolve();
  };
  /** Let the steps run freely from now on. */
  const free = () => {
    const released = go;
    go = Promise.withResolvers<void>();
    go.resolve();
    released.resolve();
  };
  /** Until round `n` took `count` steps (its `step` messages, polled in the mailbox). */
  const until = async (n: number, count: number) => {
    while ((taken.get(n) ?? 0) < count) {
      step();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  return { system, ref, round, step, free, until, taken, signed, clock };
}

Deno.test("a round already training whose coordinator is gone and asked for its next round stops at its next step (round_abandoned, nothing signed); the next round is trained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s54-lost-round-" });
  const { system, round, until, free, taken, signed } = await fixtureCancel(dir);
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    await until(0, 2);
    connection.abort(new Error("connection closed")); // the coordinator restarts
    const next = (await round(1, "c0", new AbortController().signal)).report;
    free();
    assert.equal(await codeOf(lost), "round_abandoned", "the lost round stopped");
    assert.ok(taken.get(0)! < STEPS, `the lost round took ${taken.get(0)} of ${STEPS} steps`);
    assert.equal((await next).receipt.round, 1);
    assert.deepEqual(signed, [1], "nothing signed for the lost round");
  } finally {
    free();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a round already training that nobody waits for stops at its next step once its deadline passed (the trainer's clock); before that it goes on, and another coordinator's round is trained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s54-past-deadline-" });
  const { system, round, until, free, taken, signed, clock } = await fixtureCancel(dir);
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    const other = (await round(0, "c1", new AbortController().signal)).report;
    await until(0, 2);
    connection.abort(new Error("connection closed")); // gone for good: no next round
    await until(0, 4); // its deadline not passed: it goes on (the same request may come again)
    clock.now += 120_000;
    free();
    assert.equal(await codeOf(lost), "round_abandoned", "the lost round stopped");
    assert.ok(taken.get(0)! < STEPS, `the lost round took ${taken.get(0)} of ${STEPS} steps`);
    assert.equal((await other).receipt.round, 0, "a waited-for round past its deadline goes on");
    assert.equal(taken.get(0)! >= 4, true);
    assert.equal(signed.length, 1, "one receipt: the waited-for round's");
  } finally {
    free();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a worker engine's round whose signal aborts stops at its next step (round_abandoned), one queued behind it never starts, and the worker goes on to the next round", async () => {
  const split = await testSplit();
  const start = seededGptWeights(TEST_ARCH, 0);
  const round = (n: number, steps: number) => ({
    arch: TEST_ARCH,
    round: n,
    startModel: gptModelId(TEST_ARCH, start),
    start,
    steps,
    dataSeed: 3,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
  });
  const engine = new WorkerTrainerEngine(Identity.generate(), split.shards[0]);
  try {
    const cancel = new AbortController();
    let heard = 0;
    const lost = engine.train(round(0, 150), () => {
      if (++heard === 2) cancel.abort();
    }, cancel.signal).then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    // Queued behind round 0, and lost before it starts: it never starts.
    const queuedCancel = new AbortController();
    let queuedSteps = 0;
    const queued = engine.train(round(1, 2), () => queuedSteps++, queuedCancel.signal)
      .then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    queuedCancel.abort();
    const next = engine.train(round(2, 2));
    next.catch(() => {}); // awaited below; a failure there fails the test, not the runner
    assert.equal(await lost, "round_abandoned");
    assert.equal(await queued, "round_abandoned");
    assert.equal(queuedSteps, 0, "the queued round never started");
    assert.equal((await next).receipt.round, 2, "the worker went on to the next round");
  } finally {
    await engine.close();
  }
});
