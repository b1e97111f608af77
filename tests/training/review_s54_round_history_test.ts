/**
 * A coordinator's round history grew by one record per round for as long as it ran (`--rounds 0`
 * runs until stopped): every record — up to `MAX_OUTCOME_TRAINERS` keys, ~17 KB — stayed in
 * memory, was copied by every `status` (the round loop asks twice a round, the dashboard every
 * tick) and was rewritten, fsynced, in `coordinator.json` twice a round: a month of 30-second
 * rounds is hundreds of MB written each round. The number of rounds finished, which ends a run
 * of `--rounds N`, was the history's length. The history now keeps the latest
 * `keptRoundRecords`, and the count of finished rounds is kept beside it (`finished`), on disk
 * too, so a resumed run still stops after N.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer } from "./_coordinator_trainers.ts";

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
    const { size, root } = commitShard(split.shards[0], TEST_HYPER.sampleBytes);
    await coordinator.ask({
      type: "join",
      connection: honestTrainer(Identity.generate(), split.shards[0], models).connection,
      shardSize: size,
      shardRoot: root,
    });
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

Deno.test("review s54 round history: a coordinator keeps only its latest round records, in memory and on disk, and still counts every round finished, across a restart", async () => {
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
