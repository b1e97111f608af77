/**
 * Test fixture: a RoundCoordinator running `rounds` rounds of {@link TRAINERS} honest trainers (each
 * on its own shard of the test split) to their records, on a stand-in network that keeps the
 * outcomes gossiped: what the evaluator-failure tests (`evaluator_round_retry_test.ts`,
 * `evaluator_rest_status_test.ts`) run while the evaluator's workers are swapped.
 *
 * @module
 */
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
import { eventually } from "../_helpers/wait.ts";
import { honestTrainer, joinShard } from "./_coordinator_trainers.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** Trainers of each round, each on its own shard of the test split. */
export const TRAINERS = 2;
/**
 * Waiting for a round of the test model to end: a few seconds on an idle machine, far more on a
 * loaded two-core one (a liveness guard, not a bound on speed).
 */
const ROUND_WAIT_MS = 120_000;

/** What {@link coordinatedRounds} saw. */
export interface CoordinatedRounds {
  /** The coordinator's status once every round has its record. */
  status: CoordinatorStatus;
  /** The outcomes it gossiped. */
  outcomes: TrainingGossip[];
  /** Its log. */
  lines: string[];
}

/** `rounds` rounds of {@link TRAINERS} honest trainers, run until each has its record. */
export async function coordinatedRounds(rounds: number): Promise<CoordinatedRounds> {
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
          rounds,
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
      await joinShard(coordinator, trainer.connection, shard);
    }
    const status = await eventually(
      async () => {
        const status = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return status.history.length === rounds ? status : undefined;
      },
      `${rounds} rounds' records`,
      { timeoutMs: ROUND_WAIT_MS, everyMs: 100 },
    );
    return { status, outcomes, lines };
  } finally {
    for (const close of closers) close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
