/**
 * The RoundCoordinator alone, its trainers standing in as connections: a trainer that leaves
 * mid-round does not hold the round up (the deadline is far away; the round goes on as soon as
 * the departed trainer's request fails), and the round's model is the honest trainer's step. A
 * trainer whose delta does not fit the start weights is refused alone, not the whole round.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { type RoundBody, RoundMessage } from "../../protocols/training_messages.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
  type RoundRecord,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { decodeInt8Delta, deltaHash, encodeInt8Delta } from "../../training/int8_delta.ts";
import { signTrainingReceipt } from "../../training/training_receipt.ts";
import { commitShard } from "../../training/training_state.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer, trainerConnection } from "./_coordinator_trainers.ts";

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
      const { size, root } = commitShard(shard, TEST_HYPER.sampleBytes);
      await coordinator.ask({
        type: "join",
        connection: trainer.connection,
        shardSize: size,
        shardRoot: root,
      });
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
      const { size, root } = commitShard(shard, TEST_HYPER.sampleBytes);
      await coordinator.ask({ type: "join", connection, shardSize: size, shardRoot: root });
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
