/**
 * What the training code writes in a node's data directory is its owner's only, as the rest of
 * what the node keeps there (`protocols/owner_only.ts`): trained models, the coordinator's state
 * and momenta, a trainer's traces, sealed answers, signed slots and shard record, a validator's
 * kept steps, held proofs and audited momenta hold what the node's stake and its clients' private
 * data rest on, and a backup or copy of the directory keeps each entry's own mode. Each writer runs
 * here under umask 022, in the folders the node gives it (`node/_training_children.ts`), some of
 * them left 0755 by an earlier version.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { CoordinatorState } from "../../training/coordinator_state.ts";
import { gptModelId, seededGptWeights, writeTrainedModel } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import { keepShardPrivate } from "../../training/private_shard.ts";
import { RoundModels } from "../../training/round_models.ts";
import { TraceStore } from "../../training/trace_store.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { KeptAnswers } from "../../training/_kept_answers.ts";
import { KeptHeldTrainingProofs } from "../../training/_kept_held_training_proofs.ts";
import { type KeptLastStep, KeptLastSteps } from "../../training/_kept_last_steps.ts";
import { AUDITED_MOMENTA_DIR, OutcomeGate } from "../../training/_outcome_gate.ts";
import { TrainerDataDir, writePairs } from "../../training/_pair_files.ts";
import { modeOf, modesTest, opened, underUmask022 } from "../_helpers/file_modes.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestRound } from "./_honest_round.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** Local steps of the rounds trained here: enough to make a delta, a trace and a momentum. */
const H = 2;

modesTest(
  "under umask 022 every file and folder the training code writes in the data directory is its owner's only",
  async (dataDir) => {
    const models = join(dataDir, "models");
    const training = join(dataDir, "training");
    const ledger = join(dataDir, "ledger");
    const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
    const system = new ActorSystem({ name: "training-modes" });
    let roundModel = "";
    try {
      await underUmask022(async () => {
        // Folders an earlier version made with the umask (0755): tightened when used.
        for (const dir of [training, join(training, "traces")]) {
          await Deno.mkdir(dir, { recursive: true });
          assert.equal(modeOf(dir).toString(8), "755");
        }
        // The node's own store (owner-only already): trained models are published in it and the
        // shard kept private there.
        const storage = await system.spawn<StorageMessage>({
          name: "node/storage",
          factory: () => new StorageActor({ dir: join(dataDir, "store"), ownerKey }),
        });
        const roundModels = new RoundModels({ modelsDir: models, storage: () => storage });

        // A coordinator: a round's model (writeTrainedModel, through RoundModels), its state and
        // momentum; a validator's audit of that round keeps the momentum it reproduced.
        const { outcome } = await honestRound(roundModels, H);
        roundModel = outcome.model;
        const gate = new OutcomeGate({
          models: roundModels,
          seen: { has: () => false, add: () => true },
          momentaDir: join(models, AUDITED_MOMENTA_DIR),
          economics: DEFAULT_ECONOMICS,
        });
        const audit = await gate.audit(outcome, () => Promise.resolve(false));
        assert.ok(audit.ok && audit.verified, "the round is reproduced, its momentum kept");
        const weights = seededGptWeights(TEST_ARCH, 1);
        await writeTrainedModel(join(dataDir, "written"), TEST_ARCH, weights);
        const run = {
          arch: TEST_ARCH,
          seed: 0,
          steps: H,
          hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
          outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
        };
        await new CoordinatorState(join(training, "coordinator.json"), run).save({
          round: 1,
          model: { cid: outcome.model, file: outcome.file },
          momentum: weights,
          history: [],
          finished: 1,
          convicted: [],
        });

        // A trainer: its shard's record, a run's trace, a signed slot, a sealed answer on disk.
        const split = await testSplit();
        await keepShardPrivate(storage, dataDir, {
          shard: split.shards[0],
          deal: { shard: 0, shards: split.shards.length, corpusDocs: 40 },
        });
        const start = seededGptWeights(TEST_ARCH, 0);
        const trained = await trainAndSign({
          arch: TEST_ARCH,
          round: 0,
          startModel: gptModelId(TEST_ARCH, start),
          start,
          shard: split.shards[0],
          steps: H,
          dataSeed: 1,
          hyper: TEST_HYPER,
          identity: Identity.generate(),
        });
        await new TraceStore({ dir: join(training, "traces") }).save(trained.trace);
        const slots = await new TrainerDataDir(join(training, "trainer")).make();
        await writePairs(join(slots, "signed-slots.json"), [["0", "aa".repeat(32)]]);
        const answers = new KeptAnswers({
          keptAnswerBytes: 0, // every answer goes to disk at once
          dataDir: training,
          now: () => 0,
          log: () => {},
        });
        answers.keep("ab".repeat(32), new Uint8Array([1, 2, 3]), 1_000);
        await eventually(
          () => Deno.stat(join(training, "answers", "ab".repeat(32))).then((s) => s.size === 3),
          "the answer on disk",
        );

        // A validator: a takeover's kept last step, a held proof.
        await new KeptLastSteps(join(ledger, "takeover-last-steps"), () => 0, () => {}).keep(
          "cd".repeat(32),
          { arch: TEST_ARCH } as unknown as KeptLastStep, // its form is not what is looked at
          1_000,
        );
        await KeptHeldTrainingProofs.in(ledger).keep([
          { hash: "ef".repeat(32), body: { proof: 1 }, origin: "01".repeat(32), since: 0 },
        ]);
      });

      // What the walk below must have seen, so that it cannot pass on folders left empty.
      for (
        const path of [
          join(models, roundModel, "model.onnx"),
          join(models, AUDITED_MOMENTA_DIR),
          join(dataDir, "written"),
          join(training, "coordinator.json"),
          join(training, "shard.cbor"),
          join(training, "traces"),
          join(training, "trainer", "signed-slots.json"),
          join(training, "answers"),
          join(ledger, "takeover-last-steps"),
        ]
      ) {
        assert.ok(Deno.statSync(path), path);
      }
      assert.deepEqual(await opened(dataDir), []);
    } finally {
      await system.shutdown();
    }
  },
);
