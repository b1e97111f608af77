/**
 * A RoundCoordinator that stops (a crash, a restart) loses nothing and pays nothing twice: it
 * resumes from its last finished round with the same model and momentum, refuses a state it cannot
 * trust, and ends a round one way in every ledger wherever the stop finds it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorContext } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { RoundMessage } from "../../protocols/training_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
  type RoundCoordinatorOptions,
} from "../../training/round_coordinator.ts";
import { type CoordinatorRun, CoordinatorState } from "../../training/coordinator_state.ts";
import { RoundModels } from "../../training/round_models.ts";
import { JoinedTrainers } from "../../training/joined_trainers.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import type { TrainingError } from "../../training/training_error.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testModelCredit, testSplit } from "./_fixtures.ts";
import { honestTrainer, joinShard, trainerConnection } from "./_coordinator_trainers.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { ValidatorTap } from "./_validator_tap.ts";

// ------------------------------------------------------------------------------------------------
// A RoundCoordinator that stops — a crash, a restart — loses nothing: started again over the same
// data it resumes from its last finished round, with the same model and momentum, so its next round
// gives what an uninterrupted run gives. A state written for another run, or one that cannot be
// read, is refused with an error naming the file (never a silent start from round 0); a write
// interrupted by a crash leaves the state before it, and a state moved aside as the refusal advises
// stays resumable. A round in flight at the stop is not run again under its number: its trainer
// answers the next one from the same model, is not slashed for it, and is paid once. A coordinator
// its supervisor restarts keeps its trainers (they join only when their connection opens, and
// theirs stayed open).
// ------------------------------------------------------------------------------------------------

/** Local steps: the rounds only have to happen, and to move the model and the momentum. */
const H = 2;
/** Far beyond the test's own give-up time: a round that waited for it would fail the test. */
const FAR_DEADLINE_MS = 600_000;
/** The state file under a node's data directory, as `node/node.ts` passes it. */
const STATE = ["training", "coordinator.json"];

/** The run a coordinator of these tests is configured for, as its state records it. */
const RUN: CoordinatorRun = {
  arch: TEST_ARCH,
  seed: 0,
  steps: H,
  hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
  outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
};

/** Options of a coordinator over `dir` (models under `<dir>/models`, state under `<dir>/training`). */
function coordinatorOptions(
  dir: string,
  models: RoundModels,
  overrides: Partial<RoundCoordinatorOptions> = {},
): RoundCoordinatorOptions {
  return {
    identity: Identity.generate(),
    arch: TEST_ARCH,
    seed: 0,
    rounds: 1,
    steps: H,
    hyper: TEST_HYPER,
    roundDeadlineMs: FAR_DEADLINE_MS,
    minTrainers: 1,
    models,
    statePath: join(dir, ...STATE),
    ...overrides,
  };
}

function roundModels(dir: string): RoundModels {
  return new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
}

/** Join each trainer (honest, on its shard) to `coordinator`. */
async function joinTrainers(
  coordinator: { ask: (m: CoordinatorMessage) => Promise<unknown> },
  trainers: { id: Identity; shard: TextShard }[],
  models: RoundModels,
): Promise<void> {
  for (const { id, shard } of trainers) {
    await joinShard(coordinator, honestTrainer(id, shard, models).connection, shard);
  }
}

/**
 * Run a coordinator over `dir` until it has finished `rounds` rounds in all, then stop it (its
 * whole system: nothing of it stays in memory). Returns its first status (before any trainer
 * joined), its last, and its log.
 */
async function runUntil(
  dir: string,
  rounds: number,
  trainers: { id: Identity; shard: TextShard }[],
): Promise<{ first: CoordinatorStatus; last: CoordinatorStatus; lines: string[] }> {
  const system = new ActorSystem({ name: "resume" });
  try {
    const models = roundModels(dir);
    const lines: string[] = [];
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator(coordinatorOptions(dir, models, {
          rounds,
          minTrainers: trainers.length,
          log: (line) => lines.push(line),
        })),
    });
    const first = await coordinator.ask<CoordinatorStatus>({ type: "status" });
    await joinTrainers(coordinator, trainers, models);
    const last = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === rounds ? s : undefined;
      },
      `${rounds} rounds to finish`,
      { timeoutMs: 60_000 },
    );
    return { first, last, lines };
  } finally {
    await system.shutdown();
  }
}

/** Spawn a coordinator over `dir` with `overrides`; the error its start fails with. */
async function startFailure(
  dir: string,
  overrides: Partial<RoundCoordinatorOptions> = {},
): Promise<TrainingError> {
  const system = new ActorSystem({ name: "refused" });
  try {
    const error = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () => new RoundCoordinator(coordinatorOptions(dir, roundModels(dir), overrides)),
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ActorCrashedError, `the start is refused (got ${error})`);
    return error.reason as TrainingError;
  } finally {
    await system.shutdown();
  }
}

/** A saved state over `dir` for {@link RUN}: the seeded model, round `round`, with a momentum. */
async function savedState(dir: string, round = 3): Promise<{ cid: string; momentum: GptWeights }> {
  const model = await roundModels(dir).publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const momentum = seededGptWeights(TEST_ARCH, 7);
  await new CoordinatorState(join(dir, ...STATE), RUN).save({
    round,
    model: { cid: model.cid },
    momentum,
    history: [],
    convicted: [],
  });
  return { cid: model.cid, momentum };
}

Deno.test("a coordinator stopped after K rounds resumes at round K from the same model and momentum: its next round gives the model of an uninterrupted run", async () => {
  const interrupted = await Deno.makeTempDir({ prefix: "veriflow-resume-" });
  const straight = await Deno.makeTempDir({ prefix: "veriflow-resume-ref-" });
  try {
    const split = await testSplit();
    const trainers = [0, 1].map((i) => ({ id: Identity.generate(), shard: split.shards[i] }));
    const K = 2;
    const before = await runUntil(interrupted, K, trainers);
    const after = await runUntil(interrupted, K + 1, trainers);

    // Started again: the saved rounds, model and loss, before any trainer joined.
    assert.equal(after.first.round, K);
    assert.equal(after.first.model, before.last.model);
    assert.deepEqual(after.first.history, before.last.history, "status shows the history");
    assert.ok(
      after.lines.includes(
        `training: resuming at round ${K} from model ${before.last.model} (${K} of ${
          K + 1
        } rounds finished)`,
      ),
      after.lines.join("\n"),
    );
    assert.ok(!after.lines.some((l) => l.startsWith("training: coordinating")), "not from round 0");
    const resumed = after.last.history[K];
    assert.equal(resumed.round, K, "the next number, not one announced before");
    assert.equal(resumed.startModel, before.last.model);

    // The same trainers, never stopped: the same models round by round — the resumed round's
    // outer step carried the momentum of the rounds before, bit for bit.
    const reference = await runUntil(straight, K + 1, trainers);
    assert.deepEqual(
      after.last.history.map((r) => r.model),
      reference.last.history.map((r) => r.model),
    );
    assert.notEqual(reference.last.model, before.last.model, "the last round moved the model");
  } finally {
    await Deno.remove(interrupted, { recursive: true });
    await Deno.remove(straight, { recursive: true });
  }
});

Deno.test("a coordinator state written for another run is refused: the error names the file and the field, and the file stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-mismatch-" });
  try {
    await savedState(dir);
    const path = join(dir, ...STATE);
    const text = await Deno.readTextFile(path);
    const cases: [Partial<RoundCoordinatorOptions>, string][] = [
      [{ steps: H + 1 }, `steps is ${H} there, ${H + 1} here`],
      [{ seed: 5 }, "seed is 0 there, 5 here"],
      [
        { hyper: { ...TEST_HYPER, learningRate: 0.1 } },
        "hyper.learningRate is 0.003 there, 0.1 here",
      ],
      [
        { arch: { ...TEST_ARCH, hiddenSize: 64 } as GptArchitecture },
        "arch.hiddenSize is 32 there, 64 here",
      ],
    ];
    for (const [options, field] of cases) {
      const error = await startFailure(dir, options);
      assert.equal(error.code, "coordinator_state_mismatch");
      assert.ok(error.message.includes(path), error.message);
      assert.ok(error.message.includes(field), error.message);
      assert.ok(error.message.includes("move the file aside"), error.message);
    }
    assert.equal(await Deno.readTextFile(path), text, "left as it was, for the operator");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a truncated or corrupt coordinator state is refused clearly, never a silent start from round 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-corrupt-" });
  try {
    const { cid } = await savedState(dir);
    const path = join(dir, ...STATE);
    const whole = await Deno.readFile(path);
    const momentumFile = [...Deno.readDirSync(join(dir, "training"))]
      .map((e) => e.name).find((n) => n.startsWith("coordinator-momentum-"))!;
    const momentumPath = join(dir, "training", momentumFile);
    const momentum = await Deno.readFile(momentumPath);

    const refusals: [string, () => Promise<void>, string][] = [
      ["truncated", () => Deno.writeFile(path, whole.subarray(0, whole.length >> 1)), path],
      ["not a state", () => Deno.writeTextFile(path, JSON.stringify({ v: 1, round: "x" })), path],
      ["a later format", () => Deno.writeTextFile(path, JSON.stringify({ v: 2 })), path],
      ["a round delivery that is none", async () => {
        const state = JSON.parse(new TextDecoder().decode(whole));
        await Deno.writeTextFile(path, JSON.stringify({ ...state, delivery: "a0" }));
      }, path],
      ["momentum altered", async () => {
        await Deno.writeFile(path, whole);
        const altered = momentum.slice();
        altered[100] ^= 1;
        await Deno.writeFile(momentumPath, altered);
      }, momentumPath],
      ["momentum gone", () => Deno.remove(momentumPath), momentumPath],
      ["model gone", async () => {
        await Deno.writeFile(momentumPath, momentum);
        await Deno.remove(join(dir, "models", cid), { recursive: true });
      }, cid],
    ];
    for (const [what, damage, named] of refusals) {
      await damage();
      const damaged = await Deno.readFile(path);
      const error = await startFailure(dir);
      assert.equal(error.code, "coordinator_state_unreadable", `${what}: ${error.message}`);
      assert.ok(error.message.includes(named), `${what}: ${error.message}`);
      assert.ok(error.message.includes(path), `${what}: ${error.message}`);
      assert.deepEqual(await Deno.readFile(path), damaged, `${what}: the state is left as it was`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a crash in the middle of a state write leaves the state before it: the half-written file is ignored and cleared, the momentum written for it ignored and left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-torn-" });
  try {
    const { cid, momentum } = await savedState(dir, 3);
    const training = join(dir, "training");
    // The write of round 4's state got as far as its momentum (written first) and half of its
    // JSON, in the temporary file that would have been renamed over the state.
    const next = JSON.stringify({ v: 1, run: RUN, round: 4, model: { cid: "bafynext" } });
    await Deno.writeTextFile(
      join(training, `coordinator.json.${crypto.randomUUID()}.tmp`),
      next.slice(0, next.length >> 1),
    );
    await Deno.writeFile(
      join(training, `coordinator-momentum-${"ab".repeat(32)}.f32`),
      new Uint8Array(8),
    );

    const state = new CoordinatorState(join(dir, ...STATE), RUN);
    const saved = await state.load();
    assert.equal(saved?.round, 3);
    assert.equal(saved?.model.cid, cid);
    for (const [name, tensor] of momentum) {
      assert.deepEqual(saved?.momentum?.get(name)?.data, tensor.data, `momentum ${name}`);
    }
    const left = [...Deno.readDirSync(training)].map((e) => e.name).sort();
    // The momentum no state here names stays: it may as well be a run's moved aside (a crash
    // between a momentum's write and its state's leaves one such file, no more).
    assert.deepEqual(
      left,
      ["coordinator.json", momentumFileOf(training), `coordinator-momentum-${"ab".repeat(32)}.f32`]
        .sort(),
      "the temporary file is gone",
    );

    // And a coordinator started over it resumes there.
    const system = new ActorSystem({ name: "torn" });
    try {
      const coordinator = await system.spawn<CoordinatorMessage>({
        name: "t/coordinator",
        factory: () => new RoundCoordinator(coordinatorOptions(dir, roundModels(dir))),
      });
      const status = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      assert.equal(status.round, 3);
      assert.equal(status.model, cid);
    } finally {
      await system.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The name of the momentum file the state in `training` names. */
function momentumFileOf(training: string): string {
  const { momentum } = JSON.parse(Deno.readTextFileSync(join(training, "coordinator.json")));
  return `coordinator-momentum-${momentum}.f32`;
}

Deno.test("a state moved aside as the refusal advises stays resumable: a new run beside it removes only the momentum files its own state replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-aside-" });
  try {
    const { cid, momentum } = await savedState(dir, 3);
    const path = join(dir, ...STATE);
    const training = join(dir, "training");
    const oldMomentum = momentumFileOf(training);
    const other: CoordinatorRun = { ...RUN, steps: H + 1 };

    const refusal = await new CoordinatorState(path, other).load().then(
      () => assert.fail("another run's state is refused"),
      (error: TrainingError) => error,
    );
    assert.equal(refusal.code, "coordinator_state_mismatch");
    assert.ok(refusal.message.includes(`mv ${path} ${path}.old`), refusal.message);
    assert.ok(refusal.message.includes(oldMomentum), refusal.message);

    // As advised; then a new run, three rounds with a momentum, then one that resets it.
    await Deno.rename(path, `${path}.old`);
    const fresh = new CoordinatorState(path, other);
    assert.equal(await fresh.load(), undefined, "a new run");
    for (const [round, seed] of [[1, 8], [2, 9], [3, 10], [4, undefined]] as const) {
      await fresh.save({
        round,
        model: { cid },
        momentum: seed === undefined ? undefined : seededGptWeights(TEST_ARCH, seed),
        history: [],
        convicted: [],
      });
    }
    assert.deepEqual(
      [...Deno.readDirSync(training)].map((e) => e.name).sort(),
      ["coordinator.json", "coordinator.json.old", oldMomentum].sort(),
      "the new run's momenta went as its state replaced them; the old run's stays",
    );

    // And back to the old run: its state renamed back resumes it, momentum and all.
    await Deno.rename(path, `${path}.new`);
    await Deno.rename(`${path}.old`, path);
    const back = await new CoordinatorState(path, RUN).load();
    assert.equal(back?.round, 3);
    for (const [name, tensor] of momentum) {
      assert.deepEqual(back?.momentum?.get(name)?.data, tensor.data, `momentum ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A coordinator that a `crash` message crashes, as any exception in its `receive` would. */
type Crashable = CoordinatorMessage | { type: "crash" };
class CrashableCoordinator extends RoundCoordinator {
  override receive(message: Crashable, ctx: ActorContext<Crashable>): unknown {
    if (message.type === "crash") throw new Error("crashed by the test");
    return super.receive(message, ctx as ActorContext<CoordinatorMessage>);
  }
}

Deno.test("a coordinator its supervisor restarts keeps its joined trainers: the rounds go on without them joining again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-restart-" });
  const system = new ActorSystem({ name: "restart" });
  try {
    const split = await testSplit();
    const id = Identity.generate();
    const models = roundModels(dir);
    const lines: string[] = [];
    // The node's table, outside the factory: every incarnation gets the same one.
    const joined = new JoinedTrainers();
    const coordinator = await system.spawn<Crashable>({
      name: "t/coordinator",
      factory: () =>
        new CrashableCoordinator(coordinatorOptions(dir, models, {
          rounds: 2,
          trainers: joined,
          log: (line) => lines.push(line),
        })),
    });
    // The trainer joins once, and answers every round but round 1, which the crash interrupts.
    const honest = honestTrainer(id, split.shards[0], models).connection;
    const inRound1 = Promise.withResolvers<void>();
    const { connection } = trainerConnection(id, (body) => {
      if (body.round !== 1) return honest.request(RoundMessage, body);
      inRound1.resolve();
      return new Promise(() => {});
    });
    await joinShard(coordinator, connection, split.shards[0]);
    await inRound1.promise;
    await coordinator.tell({ type: "crash" });

    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 2 ? s : undefined;
      },
      "a round after the restart",
      { timeoutMs: 60_000 },
    );
    assert.deepEqual(status.history.map((r) => r.round), [0, 2], "round 1 was lost in the crash");
    assert.equal(status.history[1].startModel, status.history[0].model);
    assert.deepEqual(status.history[1].accepted, [toHex(id.publicKey)], "the same trainer");
    assert.ok(
      lines.some((l) =>
        l.startsWith("training: resuming at round 2") && l.endsWith("; 1 trainer still joined")
      ),
      lines.join("\n"),
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The trainer's stake, as its pledge would bring it. */
const STAKE = 10_000_000;

Deno.test("a round in flight at a coordinator's stop is not run again under its number: its trainer answers the next one from the same model, is not slashed, and is paid once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-resume-inflight-" });
  const system = new ActorSystem({ name: "inflight" });
  const clock = { t: Date.now() };
  // Round 0's challenge is where the stop finds the round: its receipt already recorded.
  const inChallenge = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  try {
    const split = await testSplit();
    const me = Identity.generate();
    const trainer = { id: Identity.generate(), shard: split.shards[0] };
    const models = roundModels(dir);
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: {
        challengeProbability: 1,
        // The test's trainer opens nothing: the check is injected, after this short wait.
        openingDeadlineMs: 50,
        check: async (receipt) => {
          if (receipt.round === 0) {
            inChallenge.resolve();
            await release.promise;
          }
          return { ok: true };
        },
      },
    });
    await ledger.ask({ type: "deposit", key: trainer.id.publicKey, amount: STAKE });
    const spawnCoordinator = (lines: string[]) =>
      system.spawn<CoordinatorMessage>({
        name: "node/coordinator",
        factory: () =>
          new RoundCoordinator(coordinatorOptions(dir, models, {
            identity: me,
            validator: "node/training-validator",
            log: (line) => lines.push(line),
          })),
      });

    const firstLines: string[] = [];
    const first = await spawnCoordinator(firstLines);
    const seeded = (await first.ask<CoordinatorStatus>({ type: "status" })).model;
    await joinTrainers(first, [trainer], models);
    await inChallenge.promise;
    await system.stop("node/coordinator"); // the crash, mid-round
    // The stopped round's challenge ends now, and passes: nothing of that round may go on to
    // credit anyone (the resumed round below takes long enough for it to try).
    release.resolve();
    await eventually(async () => {
      const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
      return s.passed >= 1;
    }, "round 0's challenge to end");

    const lines: string[] = [];
    const second = await spawnCoordinator(lines);
    assert.ok(
      lines.some((l) =>
        l.startsWith(`training: resuming at round 1 from model ${seeded}`) &&
        l.includes("round 0 was in flight")
      ),
      lines.join("\n"),
    );
    await joinTrainers(second, [trainer], models);
    const status = await eventually(
      async () => {
        const s = await second.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 1 ? s : undefined;
      },
      "the resumed round to finish",
      { timeoutMs: 60_000 },
    );
    const [round] = status.history;
    assert.equal(round.round, 1, "under the next number");
    assert.equal(round.startModel, seeded, "from the same model");
    assert.deepEqual(round.accepted, [toHex(trainer.id.publicKey)]);

    clock.t += 24 * 60 * 60 * 1000; // past every challenge window
    await ledger.ask({ type: "finalize" });
    const account = await ledger.ask<Account>({ type: "account", key: trainer.id.publicKey });
    const credit = testModelCredit(H);
    assert.deepEqual(
      account,
      { balance: credit, stake: STAKE, locked: 0 },
      "paid once (round 1), not slashed for answering again",
    );
  } finally {
    release.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A round ends one way in every ledger, wherever a coordinator's stop finds it. Stopped before the
// round is saved as finished, it is lost: this node's ledger pays nothing for it and no outcome
// goes out (so no other ledger pays either), and the restart runs the next number from the same
// model. Stopped after — here, between its credit and its outcome — it stands: the restart sends
// its outcome and credits it again, which pays nothing twice, then runs the next round from its
// model. Each case is checked on the ledger's balances, and on the outcomes that left the
// coordinator (what every other ledger credits from).
// ------------------------------------------------------------------------------------------------

/** What one round pays the trainer. */
const ROUND_CREDIT = testModelCredit(H);
const COORDINATOR = "node/coordinator";

/** Round models whose publish (of a round's model) or delta storage can be held once. */
class GatedModels extends RoundModels {
  gate?: "publish" | "putFile";
  readonly reached = Promise.withResolvers<void>();
  readonly release = Promise.withResolvers<void>();
  /** Resolves when the held publish has returned. */
  readonly published = Promise.withResolvers<void>();

  override async publish(...args: Parameters<RoundModels["publish"]>) {
    const held = this.gate === "publish" && args[2] !== undefined;
    if (held) await this.#hold();
    const model = await super.publish(...args);
    if (held) this.published.resolve();
    return model;
  }

  override async putFile(bytes: Uint8Array, name: string) {
    if (this.gate === "putFile") await this.#hold();
    return await super.putFile(bytes, name);
  }

  async #hold(): Promise<void> {
    this.gate = undefined;
    this.reached.resolve();
    await this.release.promise;
  }
}

/**
 * One node: a ledger, its TrainingValidator behind a tap, and a coordinator that can be stopped
 * and started again over the same data.
 */
async function node(dir: string, system: ActorSystem) {
  const clock = { t: Date.now() };
  const me = Identity.generate();
  const trainer = { id: Identity.generate(), shard: (await testSplit()).shards[0] };
  const models = new GatedModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const { ledger } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock.t,
    models,
    challenge: { challengeProbability: 0 },
  });
  await ledger.ask({ type: "deposit", key: trainer.id.publicKey, amount: STAKE });
  const tap = new ValidatorTap("node/training-validator");
  await system.spawn<TrainingValidatorMessage>({ name: "node/tap", factory: () => tap });
  return {
    models,
    tap,
    /** Start a coordinator over the node's data (resuming its state) and join the trainer. */
    async start(rounds: number, lines: string[] = []) {
      const coordinator = await system.spawn<CoordinatorMessage>({
        name: COORDINATOR,
        factory: () =>
          new RoundCoordinator({
            identity: me,
            arch: TEST_ARCH,
            seed: 0,
            rounds,
            steps: H,
            hyper: TEST_HYPER,
            roundDeadlineMs: 600_000,
            minTrainers: 1,
            models,
            validator: "node/tap",
            statePath: join(dir, "training", "coordinator.json"),
            log: (line) => lines.push(line),
          }),
      });
      const { connection } = honestTrainer(trainer.id, trainer.shard, models);
      await joinShard(coordinator, connection, trainer.shard);
      return coordinator;
    },
    /** The trainer's account once every challenge window has closed. */
    async account(): Promise<Account> {
      clock.t += 24 * 60 * 60 * 1000;
      await ledger.ask({ type: "finalize" });
      return await ledger.ask<Account>({ type: "account", key: trainer.id.publicKey });
    },
  };
}

/** The coordinator's status once `rounds` rounds are in its history. */
function finished(
  coordinator: { ask: <R>(m: CoordinatorMessage) => Promise<R> },
  rounds: number,
): Promise<CoordinatorStatus> {
  return eventually(
    async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length >= rounds ? s : undefined;
    },
    `${rounds} rounds to finish`,
    { timeoutMs: 60_000 },
  );
}

for (
  const [where, gate, resumeOld] of [
    ["while it aggregates (the stopped incarnation's loop runs on)", "publish", true],
    ["while it stores the deltas (the process died there)", "putFile", false],
  ] as const
) {
  Deno.test(`a round stopped ${where}, before it was saved as finished, is lost in every ledger: nobody paid, no outcome, the next number runs from the same model`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-crash-lost-" });
    const system = new ActorSystem({ name: "lost" });
    try {
      const n = await node(dir, system);
      n.models.gate = gate;
      const first = await n.start(1);
      const seeded = (await first.ask<CoordinatorStatus>({ type: "status" })).model;
      await n.models.reached.promise; // round 0: past its challenges, model not yet saved
      await system.stop(COORDINATOR);
      if (resumeOld) {
        n.models.release.resolve();
        // The stopped loop gets its model and would go on to pay and announce round 0 at once.
        await n.models.published.promise;
      }

      const second = await n.start(1);
      const [round] = (await finished(second, 1)).history;
      assert.equal(round.round, 1, "round 0 is not run again under its number");
      assert.equal(round.startModel, seeded, "from the same model");
      await eventually(() => n.tap.outcomes.some((o) => o.round === 1), "round 1's outcome");

      assert.deepEqual(
        await n.account(),
        { balance: ROUND_CREDIT, stake: STAKE, locked: 0 },
        "paid once, for round 1",
      );
      assert.deepEqual(n.tap.credits, [1], "credited: round 1 only");
      assert.deepEqual(n.tap.outcomes.map((o) => o.round), [1], "announced: round 1 only");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a round stopped between its credit and its outcome stands: the restart announces it, pays nothing twice, and runs the next round from its model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-crash-credited-" });
  const system = new ActorSystem({ name: "credited" });
  const release = Promise.withResolvers<void>();
  try {
    const n = await node(dir, system);
    const held = n.tap.holdNextCredit(release.promise);
    await n.start(2);
    await held; // round 0 credited in the ledger, its outcome not yet sent
    const stopping = system.stop(COORDINATOR);
    release.resolve(); // the credit returns to a stopped incarnation
    await stopping;
    assert.equal(n.tap.outcomes.length, 0, "the stopped incarnation sent no outcome");

    const lines: string[] = [];
    const second = await n.start(2, lines);
    const status = await finished(second, 2);
    await eventually(() => n.tap.outcomes.some((o) => o.round === 1), "round 1's outcome");

    assert.deepEqual(
      await n.account(),
      { balance: 2 * ROUND_CREDIT, stake: STAKE, locked: 0 },
      "paid once per finished round: round 0 was not paid again",
    );
    assert.deepEqual(status.history.map((r) => r.round), [0, 1], "round 0 stands");
    assert.equal(status.history[1].startModel, status.history[0].model, "round 1 from round 0");
    assert.deepEqual(
      n.tap.outcomes.map((o) => [o.round, o.model]),
      status.history.map((r) => [r.round, r.model]),
      "each finished round announced once, with its model",
    );
    assert.deepEqual(n.tap.credits, [0, 0, 1], "round 0 credited again after the restart");
    assert.ok(
      lines.some((l) =>
        l.startsWith("training: resuming at round 1") &&
        l.includes("round 0 had finished: its credit and outcome go out again")
      ),
      lines.join("\n"),
    );
  } finally {
    release.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
