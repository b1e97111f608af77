/**
 * The training roles' part of the node (docs/TRAINING.md, "The network round"): the corpus parts
 * they need ({@link trainingInputs}, loaded before the tree starts) and their children of the
 * supervision tree ({@link addTrainingChildren}: TrainingValidator, TrainerService,
 * RoundCoordinator). Used by `node.ts` and by `_node_children.ts`, which adds them between the
 * inference and the network children. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ChildSpec } from "../actors/actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import type { ValidatorMessage } from "../actors/validator_actor.ts";
import type { Account } from "../proof/ledger.ts";
import { challengeProbabilityWarning, DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { ModelRegistry } from "../inference/model_registry.ts";
import type { Identity } from "../protocols/identity.ts";
import { fromHex } from "../protocols/hash.ts";
import type { NodeConfig } from "./config.ts";
import { loadBrownCorpus, splitCorpus, type TextShard } from "../training/brown_corpus.ts";
import { RoundModels } from "../training/round_models.ts";
import {
  type TrainerMessage,
  TrainerService,
  type TrainFunction,
} from "../training/trainer_service.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../training/training_validator.ts";
import { type CoordinatorMessage, RoundCoordinator } from "../training/round_coordinator.ts";
import { JoinedTrainers } from "../training/joined_trainers.ts";
import { keepShardPrivate } from "../training/private_shard.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../training/hyper_params.ts";
import {
  type HeldOutSource,
  heldOutSourceLine,
  publicHeldOutSource,
  readHeldOutFile,
} from "../training/held_out_text.ts";
import { NODE_ACTORS, TRAINING_ACTORS } from "./_actor_names.ts";
import { RoundModelRetirement } from "./_round_model_retirement.ts";

/**
 * The child that holds the round models' retirement ({@link RoundModelRetirement}) for the node's
 * life: it takes no message, and its stop clears the retirement's timer. Named here, not in
 * `TRAINING_ACTORS`: nothing asks it.
 */
const ROUND_MODEL_RETIREMENT_ACTOR = "node/round-model-retirement";

/** What the training roles need beyond the configuration: the corpus parts this node holds. */
export interface TrainingInputs {
  /** This trainer's private shard (`--train`). */
  shard?: TextShard;
  /**
   * Held-out text the coordinator evaluates on (`--coordinate-training`): `--held-out FILE`'s,
   * else the Brown split's. Held here and by the coordinator only: no message carries it.
   */
  heldOut?: TextShard;
  /** Which text `heldOut` is, for the coordinator's status (kind and size, never path or text). */
  heldOutSource?: HeldOutSource;
  /** The trainer's train function (a test fixture's, or the honest default). */
  train?: TrainFunction;
}

/**
 * Load the corpus parts the configured training roles need (nothing when none is on).
 *
 * @throws {HeldOutFileError} `training.coordinator.heldOutFile` is missing, empty, not UTF-8 or
 *   too small for the evaluation's samples (the start is refused with that one line).
 */
export async function trainingInputs(
  config: NodeConfig,
  train: TrainFunction | undefined,
  log: (line: string) => void,
): Promise<TrainingInputs> {
  const { trainer, coordinator, corpusDocs } = config.training;
  if (!trainer.enabled && !coordinator.enabled) return {};
  // Read first: a refused file stops the start before the corpus is loaded.
  const file = coordinator.enabled && coordinator.heldOutFile !== undefined
    ? await readHeldOutFile(coordinator.heldOutFile, DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes)
    : undefined;
  const docs = await loadBrownCorpus({ limit: corpusDocs });
  const split = splitCorpus(docs, trainer.shards);
  if (trainer.enabled) {
    log(
      `training: trainer on shard ${trainer.shard}/${trainer.shards} of ${docs.length} Brown ` +
        `documents (kept on this node)`,
    );
  }
  const held = !coordinator.enabled
    ? undefined
    : file ?? { shard: split.heldOut, source: publicHeldOutSource(split.heldOut) };
  if (held !== undefined) {
    log(heldOutSourceLine(held.source, DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes));
  }
  return {
    shard: trainer.enabled ? split.shards[trainer.shard] : undefined,
    heldOut: held?.shard,
    heldOutSource: held?.source,
    train,
  };
}

/**
 * Whether this node runs a TrainingValidator: a ledger-keeping node that trains, coordinates or
 * is told to validate training.
 */
export function trainingValidates(config: NodeConfig, inputs: TrainingInputs): boolean {
  const { roles, training } = config;
  const trains = training.trainer.enabled && inputs.shard !== undefined;
  return roles.validator && (trains || training.coordinator.enabled || training.validate);
}

/**
 * The training children (docs/TRAINING.md, "The network round"): a TrainingValidator on a
 * ledger-keeping node that trains, coordinates or is told to validate; a TrainerService with
 * `--train`; a RoundCoordinator with `--coordinate-training`. Returns their registry names for
 * the peer services.
 */
export function addTrainingChildren(
  config: NodeConfig,
  identity: Identity,
  models: ModelRegistry,
  lookup: <M>(name: string) => ActorRef<M> | undefined,
  log: (line: string) => void,
  inputs: TrainingInputs,
  add: <M>(spec: ChildSpec<M>) => void,
): { trainer?: string; coordinator?: string; trainingValidator?: string } {
  const { roles, training } = config;
  const trains = training.trainer.enabled && inputs.shard !== undefined;
  const coordinates = training.coordinator.enabled;
  const validates = trainingValidates(config, inputs);
  if (!trains && !coordinates && !validates) return {};
  const roundModels = new RoundModels({
    modelsDir: join(config.dataDir, "models"),
    storage: () => roles.storage ? lookup<StorageMessage>(NODE_ACTORS.storage) : undefined,
  });
  // A round's model is served here (and checkable by this node's validator); the older rounds'
  // are unloaded, then forgotten once no receipt of theirs can be challenged (review s78 F2).
  const retirement = roles.inference || roles.validator
    ? new RoundModelRetirement({ registry: models, log })
    : undefined;
  const serve = retirement && ((dir: string) => retirement.serve(dir));
  if (retirement !== undefined) {
    // Its timer retires the rounds' models also after training stops (s79); this child is its
    // stop path: added before the training actors, it stops after them, when the node stops.
    add<never>({
      name: ROUND_MODEL_RETIREMENT_ACTOR,
      factory: () => ({
        receive: () => {},
        postStop: () => retirement.stop(),
      }),
    });
  }
  if (validates) {
    const unsafe = challengeProbabilityWarning(
      training.challengeProbability ?? DEFAULT_ECONOMICS.challengeProbability,
    );
    if (unsafe !== undefined) {
      log(`warning: training validator: ${unsafe} (training.challengeProbability)`);
    }
    add<TrainingValidatorMessage>({
      name: TRAINING_ACTORS.validator,
      factory: () =>
        new TrainingValidator({
          identity,
          models: roundModels,
          ledger: NODE_ACTORS.validator,
          network: NODE_ACTORS.network,
          serve,
          challengeProbability: training.challengeProbability,
          // Rounds started from a seeded model carry no momentum: the default seed and this
          // node's coordinator's (round_audit.ts).
          genesisSeeds: [...new Set([0, training.coordinator.seed])],
          log,
          // Its own fraud proofs until they settle, beside the ledger (resumed after a stop).
          ownProofsDir: join(config.dataDir, "ledger"),
          // The economics its ledger runs with: the ValidatorActor (`_node_children.ts`) is given
          // none, so the defaults (a receipt is held for its trainer's stake a challenge window).
          economics: DEFAULT_ECONOMICS,
        }),
    });
  }
  if (trains) {
    add<TrainerMessage>({
      name: TRAINING_ACTORS.trainer,
      factory: () =>
        new TrainerService({
          identity,
          // The round slots it signed survive a restart: never two receipts for one slot.
          dataDir: join(config.dataDir, "training"),
          shard: inputs.shard!,
          keepShard: roles.storage
            ? async (shard) => {
              const storage = lookup<StorageMessage>(NODE_ACTORS.storage);
              if (storage === undefined) return shard;
              const { shard: shardNo, shards } = training.trainer;
              const kept = await keepShardPrivate(storage, config.dataDir, {
                shard,
                deal: { shard: shardNo, shards, corpusDocs: training.corpusDocs },
              });
              log(
                `training: shard ${kept.stored ? "stored" : "found"} in the private tier as ` +
                  `${kept.cid} (this node only, encrypted)`,
              );
              return kept.shard;
            }
            : undefined,
          models: roundModels,
          train: inputs.train,
          // Openings reveal batches of the shard: owed to the round's coordinator and to keys
          // with stake in this ledger, the bar a ledger sets for a peer's fraud proof.
          stakeOf: roles.validator
            ? async (key) =>
              (await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.ask<Account>({
                type: "account",
                key,
              }))?.stake ?? 0
            : undefined,
          refusedModel: validates
            ? async (cid) =>
              await lookup<TrainingValidatorMessage>(TRAINING_ACTORS.validator)?.ask<
                string | null
              >({ type: "model_standing", model: cid }) ?? null
            : undefined,
          log,
        }),
    });
  }
  if (coordinates) {
    const c = training.coordinator;
    // Outside the factory: a coordinator its supervisor restarts keeps the trainers joined on
    // connections that stay open (they join only when a connection opens).
    const joined = new JoinedTrainers();
    add<CoordinatorMessage>({
      name: TRAINING_ACTORS.coordinator,
      factory: () =>
        new RoundCoordinator({
          identity,
          arch: training.arch,
          seed: c.seed,
          rounds: c.rounds,
          steps: c.steps,
          roundDeadlineMs: c.deadlineMs,
          minTrainers: c.minTrainers,
          models: roundModels,
          heldOut: inputs.heldOut,
          heldOutSource: inputs.heldOutSource,
          validator: validates ? TRAINING_ACTORS.validator : undefined,
          network: NODE_ACTORS.network,
          convicted: roles.validator
            ? async (trainer) =>
              await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.ask<boolean>({
                type: "convicted",
                key: fromHex(trainer),
              }) ?? false
            : undefined,
          serve,
          // The rounds survive a crash or restart: resumed from the last finished one.
          statePath: join(config.dataDir, "training", "coordinator.json"),
          trainers: joined,
          // Rounds paced to the stake the start check assumes each trainer holds: rounds that end
          // early would otherwise lock more than it backs (`roundPaceMs`, review s71).
          trainerStake: config.selfStake,
          log,
        }),
    });
  }
  return {
    trainer: trains ? TRAINING_ACTORS.trainer : undefined,
    coordinator: coordinates ? TRAINING_ACTORS.coordinator : undefined,
    trainingValidator: validates ? TRAINING_ACTORS.validator : undefined,
  };
}
