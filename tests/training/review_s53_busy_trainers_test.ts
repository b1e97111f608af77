/**
 * Review s53: a coordinator restarted mid-round (by its supervisor, or its node) loses that round,
 * and announces the next one at once to the trainers still joined. They are still training the
 * lost round (nothing cancels it), and a trainer takes one round at a time per coordinator: every
 * one refuses the next round (`round_in_progress`) within a round trip. The round ends with no
 * report, and the loop announced the next one at once: a hot loop of empty rounds for as long as
 * the lost round still trains (seconds to minutes), each one saved to the state file and counted
 * among the run's rounds, so a run of R rounds could end with every remaining round empty. A round
 * that no trainer reported for is now followed by a pause (doubling while it repeats, as after a
 * failed round).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { RoundBody } from "../../protocols/training_messages.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { TrainingError } from "../../training/training_error.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { turns } from "../_helpers/fake_timers.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer, trainerConnection } from "./_coordinator_trainers.ts";

/** Rounds of the run. */
const ROUNDS = 4;
/** Local steps: the rounds only have to happen. */
const H = 2;
/** Far beyond the test's own give-up time. */
const FAR_DEADLINE_MS = 600_000;

Deno.test("review s53 busy trainers: rounds its trainers refuse while they finish a round the coordinator lost do not use up the run — it pauses, and the trainers' reports make its later rounds", async () => {
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
          steps: H,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: 1,
          models,
        }),
    });
    const { size, root } = commitShard(split.shards[0], TEST_HYPER.sampleBytes);
    await coordinator.ask({
      type: "join",
      connection: trainer.connection,
      shardSize: size,
      shardRoot: root,
    });
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
