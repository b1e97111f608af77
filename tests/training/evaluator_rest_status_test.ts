/**
 * The coordinator's status says when its held-out evaluator rests (stop 76): after
 * `EVALUATOR_MAX_WORKER_FAILURES` worker failures in a row it used to refuse every evaluation
 * until the node restarted, and nothing said why every later round published nothing. Now the
 * evaluator rests and tries a fresh worker on its own (`evaluator_worker_rest_test.ts`), and the
 * coordinator's status carries `evaluator: { failuresInARow, retryAt }`; the rounds it could not
 * evaluate still blame nobody.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TrainingGossip } from "../../protocols/training_messages.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestTrainer } from "./_coordinator_trainers.ts";
import { withDyingWorkers } from "./_dying_workers.ts";
import {
  EVALUATOR_MAX_WORKER_FAILURES,
  EVALUATOR_RETRY_AFTER_MS,
} from "../../training/held_out_evaluator.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** Trainers of the round, each on its own shard of the test split. */
const TRAINERS = 2;
/** Rounds run: enough evaluations failing for the evaluator to rest in the second. */
const ROUNDS = 2;
/**
 * Waiting for a round of the test model to end: a few seconds on an idle machine, far more on a
 * loaded two-core one (a liveness guard, not a bound on speed).
 */
const ROUND_WAIT_MS = 120_000;

/** Two rounds of 2 honest trainers; the coordinator's status after them and the log. */
async function twoRounds(): Promise<{ status: CoordinatorStatus; lines: string[] }> {
  const split = await testSplit();
  const dir = await Deno.makeTempDir({ prefix: "veriflow-evaluator-retry-" });
  const system = new ActorSystem({ name: "evaluator-retry" });
  const lines: string[] = [];
  const outcomes: TrainingGossip[] = [];
  const closers: (() => void)[] = [];
  try {
    await system.spawn<{ type: string; gossip: TrainingGossip }>({
      name: "t/network",
      factory: () => ({
        receive: (message: { type: string; gossip: TrainingGossip }) => {
          if (message.type === "publish_training" && message.gossip.kind === "outcome") {
            outcomes.push(message.gossip);
          }
        },
      }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: ROUNDS,
          steps: 4,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: TRAINERS,
          models,
          heldOut: split.heldOut,
          network: "t/network",
          log: (line) => void lines.push(line),
        }),
    });
    for (const shard of split.shards.slice(0, TRAINERS)) {
      const trainer = honestTrainer(Identity.generate(), shard, models);
      closers.push(trainer.close);
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
        const status = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return status.history.length === ROUNDS ? status : undefined;
      },
      "both rounds' records",
      { timeoutMs: ROUND_WAIT_MS, everyMs: 100 },
    );
    return { status, lines };
  } finally {
    for (const close of closers) close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the coordinator's status says its evaluator rests after too many worker failures, and no trainer is blamed", async () => {
  // The first worker answers the start model's evaluation, then every worker dies at its first:
  // round 0 fails twice (asked again once), round 1's first failure is the third in a row.
  await withDyingWorkers(["throw@1", "throw@0"], async (started) => {
    const before = Date.now();
    const { status, lines } = await twoRounds();
    for (const record of status.history) {
      assert.equal(record.model, record.startModel, "no new model");
      assert.deepEqual(record.accepted, [], "nobody paid");
      assert.deepEqual(record.excluded, [], "no trainer blamed");
    }
    assert.equal(status.trainers.length, TRAINERS, "both keep their seats");
    assert.equal(status.evaluator?.failuresInARow, EVALUATOR_MAX_WORKER_FAILURES, lines.join("\n"));
    const retryAt = status.evaluator?.retryAt ?? 0;
    assert.ok(
      retryAt >= before + EVALUATOR_RETRY_AFTER_MS,
      `a fresh worker is tried once the rest is over (retryAt ${retryAt})`,
    );
    assert.equal(started.length, EVALUATOR_MAX_WORKER_FAILURES, "none started while resting");
    assert.ok(
      lines.some((l) => l.includes("resting 300 s, then a fresh worker")),
      lines.join("\n"),
    );
  }, true);
});
