/**
 * A fresh ledger and training validator (the network a recorder, no challenges of its own, the held
 * evidence checked again every few ms) on a clock the test moves, with the `TEST_ARCH` start model
 * published: the world of the stake-hold tests (`stake_held_receipts_test.ts`). Given `economics`,
 * the ledger and the validator run them; given `kept`, the validator keeps what it holds beside the
 * ledger, as a node does, and can be restarted on it.
 */
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { EconomicParams } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** How often the held evidence is checked again for its pledge here (ms): fast, for the test. */
export const STAKE_HOLD_RECHECK_MS = 5;

type Spawned = Awaited<ReturnType<typeof spawnTrainingLedger>>;

/** What {@link inStakeHoldLedger} hands its test. */
export interface StakeHoldWorld {
  ledger: Spawned["ledger"];
  training: Spawned["training"];
  /** The published start model's CID. */
  model: string;
  /** Move the ledger's (and the validator's) clock on by `ms`. */
  tick: (ms: number) => void;
  /**
   * Stop the training validator and start it again on the same directory, running `meanwhile`
   * while it is stopped: the new one.
   */
  restart: (meanwhile?: () => void) => Promise<ActorRef<TrainingValidatorMessage>>;
  /** The ledger's directory (where a `kept` validator keeps what it holds). */
  ledgerDir: string;
}

/** How {@link inStakeHoldLedger}'s world differs from the default one. */
export interface StakeHoldWorldOptions {
  /** The ledger's economics, given to the training validator too; default the defaults. */
  economics?: Partial<EconomicParams>;
  /** The training validator keeps what it holds beside the ledger (a node's `ownProofsDir`). */
  kept?: boolean;
}

/** Run `run` in a fresh world named `name`, then stop it and remove its directory. */
export async function inStakeHoldLedger(
  name: string,
  run: (world: StakeHoldWorld) => Promise<void>,
  options: StakeHoldWorldOptions = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-stake-hold-${name}-` });
  const system = new ActorSystem({ name: `stake-hold-${name}` });
  let clock = Date.now();
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const { ledger, training, restartTraining } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock,
      models,
      economics: options.economics,
      resumeOwnProofs: options.kept,
      challenge: {
        challengeProbability: 0,
        network: "node/network",
        pledgeRecheckMs: STAKE_HOLD_RECHECK_MS,
        now: () => clock,
      },
    });
    await run({
      ledger,
      training,
      model: model.cid,
      tick: (ms) => clock += ms,
      restart: restartTraining,
      ledgerDir: join(dir, "ledger"),
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
