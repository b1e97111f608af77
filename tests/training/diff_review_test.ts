/**
 * A trainer keeps its runs' traces on disk so that a challenge of a run from before a restart is
 * answered (`trace_store.ts`), and opens a challenge only for a challenger it owes one (the
 * receipt's coordinator, or a key staked in its ledger). Together: the coordinator a run was
 * trained for is still owed its opening after the trainer restarts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
} from "../../training/trainer_service.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";

Deno.test("a restarted trainer still opens a challenge from the coordinator it trained the run for (no ledger here)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-diff-review-" });
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const coordinator = Identity.generate();
  // The node's trainer: the honest engine in its worker, keeping traces under its data directory.
  const spawn = (system: ActorSystem) =>
    system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity,
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir: join(dir, "training"),
        }),
    });
  const body = testRoundBody(seed.cid, 4);
  const before = new ActorSystem({ name: "trainer-before-restart" });
  let receipt;
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body,
      coordinator: toHex(coordinator.publicKey),
    });
    receipt = (await report).receipt;
  } finally {
    await before.shutdown();
  }
  const after = new ActorSystem({ name: "trainer-after-restart" });
  try {
    const ref = await spawn(after);
    const challenge = drawTrainingChallenge(receipt, coordinator, { steps: 2 });
    const { openings } = await ref.ask<ChallengeAccepted>({
      type: "challenge",
      challenge,
      from: coordinator.publicKey,
    });
    // Refused, the coordinator's opening_missing slashes the honest trainer in every ledger.
    const header = await openings;
    assert.ok(header.size > 0, "the opening of the run from before the restart is sent");
  } finally {
    await after.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
