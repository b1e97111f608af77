/**
 * The RoundCoordinator (`training/round_coordinator.ts`, `training/_round_run.ts`) with trainers
 * standing in as connections or crafted reports, so no training runs: a trainer that leaves or
 * misbehaves mid-round, hostile trainers and faults, empty rounds after a restart, and the bounded
 * round history.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  MAX_OUTCOME_TRAINERS,
  type OutcomeBody,
  OutcomeMessage,
  type ReportBody,
  type RoundBody,
  RoundMessage,
  type TrainingGossip,
} from "../../protocols/training_messages.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
  type RoundCoordinatorOptions,
  type RoundRecord,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  decodeInt8Delta,
  deltaHash,
  encodeInt8Delta,
  quantizeDelta,
} from "../../training/int8_delta.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer, joinShard, trainerConnection } from "./_coordinator_trainers.ts";
import { join } from "node:path";
import { decodeRoundDelivery, encodeRoundDelivery } from "../../training/round_delivery.ts";
import { type GptWeights, gptWeightShapes, seededGptWeights } from "../../training/gpt_weights.ts";
import { type CoordinatorRun, CoordinatorState } from "../../training/coordinator_state.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import { TrainingError } from "../../training/training_error.ts";
import { turns } from "../_helpers/fake_timers.ts";

// ------------------------------------------------------------------------------------------------
// The RoundCoordinator alone, its trainers standing in as connections: a trainer that leaves
// mid-round does not hold the round up (the deadline is far away; the round goes on as soon as the
// departed trainer's request fails), and the round's model is the honest trainer's step. A trainer
// whose delta does not fit the start weights is refused alone, not the whole round.
// ------------------------------------------------------------------------------------------------

/** Far beyond the test's own give-up time: a round that waited for it would fail the test. */
const FAR_DEADLINE_MS = 600_000;
/** Local steps: the round only has to happen, not to learn much. */
const H = 4;

Deno.test("a trainer that leaves mid-round does not stall the round: it goes on with the reports it has", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-coordinator-test-" });
  const system = new ActorSystem({ name: "t" });
  try {
    const split = await testSplit();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const lines: string[] = [];
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: 2,
          models,
          log: (line) => lines.push(line),
        }),
    });
    const first = await coordinator.ask<CoordinatorStatus>({ type: "status" });

    const honestId = Identity.generate();
    const honest = honestTrainer(honestId, split.shards[0], models);
    const leaverId = Identity.generate();
    const leaver = trainerConnection(leaverId, () => {
      // It goes while the round is under way: its connection closes under the request.
      leaver.close();
      return Promise.reject(new VeriflowError("connection_closed", "the trainer went away"));
    });
    for (
      const [trainer, shard] of [[honest, split.shards[0]], [leaver, split.shards[1]]] as const
    ) {
      await joinShard(coordinator, trainer.connection, shard);
    }

    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 1 ? s : undefined;
      },
      "round 0 to end without the departed trainer",
      { timeoutMs: 60_000 },
    );
    const [round] = status.history;
    assert.deepEqual(round.accepted, [toHex(honestId.publicKey)]);
    assert.deepEqual(round.excluded, []);
    assert.equal(round.startModel, first.model);
    assert.notEqual(round.model, first.model, "the honest report made a new model");
    assert.equal(status.model, round.model);
    assert.ok(
      lines.some((l) => l.includes(`no report from ${toHex(leaverId.publicKey).slice(0, 16)}`)),
      lines.join("\n"),
    );
    // The departed trainer is off the table: the next round would not ask it.
    assert.deepEqual(status.trainers, [toHex(honestId.publicKey)]);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * One round of a coordinator (H steps, `TEST_HYPER`) with `trainers` joined on their shards:
 * the start model and the round's record.
 */
async function oneRound(
  trainers: (models: RoundModels) => { connection: Connection; shard: TextShard }[],
): Promise<{ startModel: string; round: RoundRecord }> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-coordinator-test-" });
  const system = new ActorSystem({ name: "t" });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const joined = trainers(models);
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: joined.length,
          models,
        }),
    });
    const first = await coordinator.ask<CoordinatorStatus>({ type: "status" });
    for (const { connection, shard } of joined) {
      await joinShard(coordinator, connection, shard);
    }
    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 1 ? s : undefined;
      },
      "round 0 to end",
      { timeoutMs: 60_000 },
    );
    return { startModel: first.model, round: status.history[0] };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a trainer's delta that does not fit the start weights is refused alone: the honest delta still makes the round's model", async () => {
  const split = await testSplit();
  const honestId = Identity.generate();
  const misfitId = Identity.generate();
  const { startModel, round } = await oneRound((models) => {
    const trained = honestTrainer(misfitId, split.shards[1], models);
    // It trains as asked, then drops a tensor from its delta: still a valid encoding, signed by
    // its receipt, so only the fit to the start weights is wrong.
    const misfit = trainerConnection(misfitId, async (body) => {
      const report = await trained.connection.request(RoundMessage, body);
      const delta = encodeInt8Delta(decodeInt8Delta(report.delta).slice(0, -1));
      const { sig: _sig, trainer: _trainer, ...unsigned } = report.receipt;
      const receipt = signTrainingReceipt(
        { ...unsigned, deltaHash: deltaHash(delta), deltaBytes: delta.length },
        misfitId,
      );
      return { receipt, delta };
    });
    return [
      {
        connection: honestTrainer(honestId, split.shards[0], models).connection,
        shard: split.shards[0],
      },
      { connection: misfit.connection, shard: split.shards[1] },
    ];
  });
  assert.notEqual(round.model, startModel, "the honest delta made a new model");
  assert.deepEqual(round.accepted, [toHex(honestId.publicKey)], "only what was averaged");
  assert.deepEqual(round.excluded, [{ key: toHex(misfitId.publicKey), reason: "bad_delta" }]);
});

Deno.test("a report on another data seed or other hyper-parameters than the round announced is refused", async () => {
  const split = await testSplit();
  const honestId = Identity.generate();
  // Each trains honestly on terms of its own and signs them: its receipt opens consistently, so
  // only the comparison with what was announced can tell.
  const offTerms: [string, (body: RoundBody) => RoundBody][] = [
    ["seed_mismatch", (body) => ({ ...body, dataSeed: 42 })], // batches of its own choosing
    ["hyper_mismatch", (body) => ({ ...body, hyper: { ...body.hyper, batchSize: 1 } })], // 1/8 of the work
    [
      "hyper_mismatch", // a scaled delta
      (body) => ({ ...body, hyper: { ...body.hyper, learningRate: body.hyper.learningRate * 10 } }),
    ],
  ];
  const ids = offTerms.map(() => Identity.generate());
  const { startModel, round } = await oneRound((models) => [
    {
      connection: honestTrainer(honestId, split.shards[0], models).connection,
      shard: split.shards[0],
    },
    ...offTerms.map(([, terms], i) => {
      const trained = honestTrainer(ids[i], split.shards[1], models);
      const connection = trainerConnection(
        ids[i],
        (body) => trained.connection.request(RoundMessage, terms(body)),
      ).connection;
      return { connection, shard: split.shards[1] };
    }),
  ]);
  assert.notEqual(round.model, startModel, "the honest delta made a new model");
  assert.deepEqual(round.accepted, [toHex(honestId.publicKey)]);
  assert.deepEqual(
    round.excluded,
    offTerms.map(([reason], i) => ({ key: toHex(ids[i].publicKey), reason })),
  );
});

// ------------------------------------------------------------------------------------------------
// The RoundCoordinator under faults and hostile trainers, with fake trainers whose reports are
// crafted (a signed receipt on the announced terms and a small int8 delta), so no training runs. No
// real-time sleep races a deadline: the rounds' deadlines are far away and the tests only poll for
// an effect.
// ------------------------------------------------------------------------------------------------

const H_CRAFTED = 2;
const SHARD_ROOT = "ab".repeat(32);
const SHARD_SIZE = 100;

/** A delta of `value` everywhere, in the architecture's shapes, encoded. */
function constantDelta(value: number): Uint8Array {
  const delta: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(TEST_ARCH)) {
    const n = shape.reduce((a, b) => a * b, 1);
    delta.set(name, { shape, data: new Float32Array(n).fill(value) });
  }
  return encodeInt8Delta(quantizeDelta(delta));
}

/** The report a trainer would send for `body`: its receipt on exactly the announced terms. */
function craftedReport(identity: Identity, body: RoundBody, delta: Uint8Array): ReportBody {
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: body.round,
    startModel: body.startModel,
    steps: body.steps,
    dataSeed: body.dataSeed,
    hyper: body.hyper,
    samplesRoot: "01".repeat(32),
    sampleCount: body.steps * body.hyper.batchSize,
    // Each trainer's own (made-up) work: a round pays one piece of work once (`duplicate_work`).
    checkpointsRoot: sha256Hex(identity.publicKey),
    shardRoot: SHARD_ROOT,
    shardSize: SHARD_SIZE,
    losses: Array.from({ length: body.steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, identity);
  return { receipt, delta };
}

/** Trainers crafted so far: each one's delta differs a little from the others'. */
let crafted = 0;

/** A trainer that answers every round with a crafted report. */
function craftedTrainer(identity: Identity): { connection: Connection } {
  // About H × lr (0.006 at H_CRAFTED): every tensor's RMS within the round's limit (half the
  // bound, 0.012), as an honest delta's is, for the hundreds of trainers a test crafts.
  const delta = constantDelta(0.005 * (1 + crafted++ / 1000));
  return trainerConnection(
    identity,
    (body) => Promise.resolve(craftedReport(identity, body, delta)),
  );
}

async function withCoordinator(
  options: Partial<RoundCoordinatorOptions>,
  models: (dir: string) => RoundModels,
  run: (
    coordinator: Awaited<ReturnType<ActorSystem["spawn"]>>,
    lines: string[],
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-" });
  const system = new ActorSystem({ name: "t" });
  const lines: string[] = [];
  try {
    const roundModels = models(dir);
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H_CRAFTED,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: 1,
          models: roundModels,
          log: (line) => lines.push(line),
          ...options,
        }),
    });
    const trainer = craftedTrainer(Identity.generate());
    await coordinator.ask({
      type: "join",
      connection: trainer.connection,
      shardSize: SHARD_SIZE,
      shardRoot: SHARD_ROOT,
    });
    await run(coordinator, lines);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function finishedRounds(
  coordinator: Awaited<ReturnType<ActorSystem["spawn"]>>,
  lines: string[],
  what: string,
): Promise<CoordinatorStatus> {
  return await eventually(
    async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length >= 1 ? s : undefined;
    },
    `${what}\n${lines.join("\n")}`,
    { timeoutMs: 20_000 },
  );
}

Deno.test("s45: a failed conviction lookup (the ValidatorActor restarting) does not stop the coordinator's rounds for good", async () => {
  let lookups = 0;
  await withCoordinator(
    {
      // The first lookup fails as an ask to a restarting actor does; later ones answer.
      convicted: () => {
        lookups++;
        return lookups === 1
          ? Promise.reject(new Error("actor validator stopped"))
          : Promise.resolve(false);
      },
    },
    (dir) => new RoundModels({ modelsDir: dir, storage: () => undefined }),
    async (coordinator, lines) => {
      const status = await finishedRounds(coordinator, lines, "a round after the failed lookup");
      assert.equal(status.history[0].accepted.length, 1);
    },
  );
});

Deno.test("s45: a storage failure while a round's deltas are stored loses that round only: the next round still runs", async () => {
  let failed = false;
  await withCoordinator(
    {},
    (dir) => {
      const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
      const put = models.putFile.bind(models);
      models.putFile = (bytes: Uint8Array, name: string) => {
        if (name.startsWith("delta-") && !failed) {
          failed = true;
          return Promise.reject(new Error("put_bytes timed out"));
        }
        return put(bytes, name);
      };
      return models;
    },
    async (coordinator, lines) => {
      const status = await finishedRounds(coordinator, lines, "a round after the failed store");
      assert.ok(failed, "the store failed once");
      // Round 0 was lost (its number announced and saved as taken); round 1 made the model.
      assert.equal(status.history[0].round, 1);
      assert.equal(status.history[0].accepted.length, 1);
    },
  );
});

Deno.test("s45: a new run beside a moved-aside state does not remove the momentum file the old state names, even when its own momentum had the same bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-aside-" });
  try {
    const path = join(dir, "training", "coordinator.json");
    const run: CoordinatorRun = {
      arch: TEST_ARCH,
      seed: 0,
      steps: H_CRAFTED,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
    };
    const snapshot = (round: number, seed: number) => ({
      round,
      model: { cid: "bafy-old-model" },
      momentum: seededGptWeights(TEST_ARCH, seed),
      history: [],
      convicted: [],
    });
    // The old run, after a round: its state names momentum file H1.
    await new CoordinatorState(path, run).save(snapshot(1, 8));
    // Moved aside as a refusal advises (its model could not be loaded, say), and the same run
    // started over: the same seeds and trainers give the same first round, the same momentum.
    await Deno.rename(path, `${path}.old`);
    const fresh = new CoordinatorState(path, run);
    assert.equal(await fresh.load(), undefined);
    await fresh.save(snapshot(1, 8)); // the very bytes of H1
    await fresh.save(snapshot(2, 9)); // its next round replaces them
    // Back to the old run, as the refusal promised: "renaming it back resumes this run".
    await Deno.rename(path, `${path}.new`);
    await Deno.rename(`${path}.old`, path);
    const back = await new CoordinatorState(path, run).load();
    assert.equal(back?.round, 1);
    assert.ok(back?.momentum !== undefined, "the old state's momentum is there");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s45: a round with more trainers joined than an outcome may list still gives an outcome every node (and the coordinator's own restart) can read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-many-" });
  const system = new ActorSystem({ name: "t" });
  const lines: string[] = [];
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const gossip: TrainingGossip[] = [];
    await system.spawn<{ type: string; gossip: TrainingGossip }>({
      name: "t/network",
      factory: () => ({
        receive: (message: { type: string; gossip: TrainingGossip }) => {
          if (message.type === "publish_training") gossip.push(message.gossip);
        },
      }),
    });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H_CRAFTED,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: MAX_OUTCOME_TRAINERS + 1,
          models,
          network: "t/network",
          log: (line) => lines.push(line),
        }),
    });
    // Connections this node dialled, or from keys it already has, are not bounded by the
    // connection table's 256: a large network's coordinator can have more trainers joined.
    for (let i = 0; i <= MAX_OUTCOME_TRAINERS; i++) {
      await coordinator.ask({
        type: "join",
        connection: craftedTrainer(Identity.generate()).connection,
        shardSize: SHARD_SIZE,
        shardRoot: SHARD_ROOT,
      });
    }
    const outcome = await eventually(
      () => gossip.find((g) => g.kind === "outcome")?.body as OutcomeBody | undefined,
      "the round's outcome",
      { timeoutMs: 60_000 },
    ).catch((error) => assert.fail(`${(error as Error).message}\n${lines.slice(-5).join("\n")}`));
    const parsed = OutcomeMessage.schema.safeParse(outcome);
    if (!parsed.success) {
      assert.fail(`every node refuses the outcome: ${parsed.error.issues[0]?.message}`);
    }
    assert.equal(outcome.accepted.length, MAX_OUTCOME_TRAINERS, "as many as an outcome lists");
    // What a restart reads back when the round was saved as finished before its outcome went out.
    decodeRoundDelivery(encodeRoundDelivery({
      terms: { round: outcome.round, startModel: outcome.startModel, steps: H_CRAFTED },
      credit: [],
      outcome,
    }));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A coordinator restarted mid-round (by its supervisor, or its node) loses that round, and
// announces the next one at once to the trainers still joined. They are still training the lost
// round (nothing cancels it), and a trainer takes one round at a time per coordinator: every one
// refuses the next round (`round_in_progress`) within a round trip. The round ends with no report,
// and the loop announced the next one at once: a hot loop of empty rounds for as long as the lost
// round still trains (seconds to minutes), each one saved to the state file and counted among the
// run's rounds, so a run of R rounds could end with every remaining round empty. A round that no
// trainer reported for is now followed by a pause (doubling while it repeats, as after a failed
// round).
// ------------------------------------------------------------------------------------------------

/** Rounds of the run. */
const ROUNDS = 4;
/** Local steps: the rounds only have to happen. */
const H_BUSY = 2;
Deno.test("rounds its trainers refuse while they finish a round the coordinator lost do not use up the run — it pauses, and the trainers' reports make its later rounds", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53-busy-" });
  const system = new ActorSystem({ name: "s53-busy" });
  try {
    const split = await testSplit();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const identity = Identity.generate();
    const honest = honestTrainer(identity, split.shards[0], models);
    // Still training the round the coordinator lost at its restart: refuses until it is done.
    let busy = true;
    const asked: number[] = [];
    const trainer = trainerConnection(identity, (body: RoundBody) => {
      asked.push(body.round);
      if (busy) {
        return Promise.reject(
          new TrainingError("round_in_progress", "one round at a time per coordinator"),
        );
      }
      return honest.connection.request(undefined as never, body as never);
    });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "s53-busy/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: ROUNDS,
          steps: H_BUSY,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: 1,
          models,
        }),
    });
    await joinShard(coordinator, trainer.connection, split.shards[0]);
    await eventually(() => Promise.resolve(asked.length > 0), "the first round's request");
    await turns(5); // a few turns of the event loop: no lost round trains that fast
    busy = false; // the lost round is done: the trainer takes the next one
    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === ROUNDS ? s : undefined;
      },
      "the run to end",
      { timeoutMs: 120_000 },
    );
    const trained = status.history.filter((r) => r.accepted.length > 0);
    assert.ok(
      trained.length > 0,
      `the run was used up by empty rounds while the trainer was busy (asked for rounds ${asked})`,
    );
    assert.deepEqual(trained.at(-1)!.accepted, [toHex(identity.publicKey)]);
    assert.notEqual(status.model, status.history[0].startModel, "the run made a model");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A coordinator's round history grew by one record per round for as long as it ran (`--rounds 0`
// runs until stopped): every record — up to `MAX_OUTCOME_TRAINERS` keys, ~17 KB — stayed in memory,
// was copied by every `status` (the round loop asks twice a round, the dashboard every tick) and
// was rewritten, fsynced, in `coordinator.json` twice a round: a month of 30-second rounds is
// hundreds of MB written each round. The number of rounds finished, which ends a run of `--rounds
// N`, was the history's length. The history now keeps the latest `keptRoundRecords`, and the count
// of finished rounds is kept beside it (`finished`), on disk too, so a resumed run still stops
// after N.
// ------------------------------------------------------------------------------------------------

/** Finished rounds of a status: its count (absent before review s54: the history's length). */
const finishedOf = (s: CoordinatorStatus) =>
  (s as { finished?: number }).finished ?? s.history.length;

/** Run a coordinator over `dir` keeping 2 records until `rounds` rounds finished in all. */
async function runUntil(dir: string, rounds: number): Promise<CoordinatorStatus> {
  const split = await testSplit();
  const system = new ActorSystem({ name: "s54-history" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds,
          steps: 2,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 1,
          models,
          statePath: join(dir, "training", "coordinator.json"),
          keptRoundRecords: 2,
        }),
    });
    const { connection } = honestTrainer(Identity.generate(), split.shards[0], models);
    await joinShard(coordinator, connection, split.shards[0]);
    return await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return finishedOf(s) >= rounds ? s : undefined;
      },
      `${rounds} rounds to finish`,
      { timeoutMs: 60_000 },
    );
  } finally {
    await system.shutdown();
  }
}

Deno.test("a coordinator keeps only its latest round records, in memory and on disk, and still counts every round finished, across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s54-history-" });
  try {
    const first = await runUntil(dir, 3);
    assert.deepEqual(first.history.map((r) => r.round), [1, 2], "the latest 2 records");
    assert.equal(finishedOf(first), 3);
    const file = JSON.parse(await Deno.readTextFile(join(dir, "training", "coordinator.json")));
    assert.equal(file.history.length, 2, "the state file keeps 2 records");
    assert.equal(file.finished, 3, "and the count");

    // Resumed for a run of 4: one more round, not two (the count is not the history's length).
    const second = await runUntil(dir, 4);
    assert.equal(finishedOf(second), 4);
    assert.deepEqual(second.history.map((r) => r.round), [2, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
