/**
 * A node's ledger side for the training tests that run a coordinator alone: a ValidatorActor
 * (`node/validator`) on a test clock, and a TrainingValidator (`node/training-validator`) that
 * records into it, with whatever challenge options the test needs; and a way to make the ledger look
 * stopped to the training validator.
 */
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { RoundModels } from "../../training/round_models.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
} from "../../training/training_validator.ts";

/** The training validator's registry name. */
export const TRAINING_VALIDATOR = "node/training-validator";
/** The ledger's (the ValidatorActor's) registry name. */
export const LEDGER = "node/validator";

/**
 * A switch that makes the ledger look stopped to whoever looks it up by name in `system` (the
 * training validator does, per ask): while on, `system.lookup(LEDGER)` finds none, as after
 * `system.stop`, and a test that holds the ledger's ref still reads it. Lasts as long as `system`.
 */
export function ledgerDownSwitch(system: ActorSystem): (down: boolean) => void {
  let down = false;
  const lookup = system.lookup.bind(system);
  system.lookup =
    ((registered: string) =>
      down && registered === LEDGER ? undefined : lookup(registered)) as typeof system.lookup;
  return (value) => {
    down = value;
  };
}

/** What {@link spawnTrainingLedger} needs. */
export interface TrainingLedgerOptions {
  /** The node's key. */
  identity: Identity;
  /** The ledger goes in `<dir>/ledger`. */
  dir: string;
  /** The ledger's clock, ms. */
  now: () => number;
  /** Round models the training validator reads. */
  models: RoundModels;
  /** The training validator's challenge options (probability, deadline, an injected check). */
  challenge: Omit<TrainingValidatorOptions, "identity" | "models" | "ledger">;
  /** Keep the training validator's own fraud proofs and resume them at start, as a node does. */
  resumeOwnProofs?: boolean;
}

/** Spawn the ledger and the training validator under `system`. */
export async function spawnTrainingLedger(
  system: ActorSystem,
  options: TrainingLedgerOptions,
): Promise<{
  ledger: ActorRef<ValidatorMessage>;
  training: ActorRef<TrainingValidatorMessage>;
  /** Stop the training validator and start it again as before (a restart of it alone). */
  restartTraining: () => Promise<ActorRef<TrainingValidatorMessage>>;
}> {
  const { identity, dir, now, models, challenge, resumeOwnProofs } = options;
  const ledger = await system.spawn<ValidatorMessage>({
    name: LEDGER,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: join(dir, "ledger"),
        ledger: { now },
        finalizeIntervalMs: 0,
        models: { get: () => Promise.resolve(undefined) },
        trainingProofsResumed: resumeOwnProofs,
      }),
  });
  const spawnTraining = () =>
    system.spawn<TrainingValidatorMessage>({
      name: TRAINING_VALIDATOR,
      factory: () =>
        new TrainingValidator({
          identity,
          models,
          ledger: LEDGER,
          ownProofsDir: resumeOwnProofs ? join(dir, "ledger") : undefined,
          ...challenge,
        }),
    });
  const training = await spawnTraining();
  const restartTraining = async () => {
    if (!await system.stop(TRAINING_VALIDATOR)) throw new Error("the training validator stops");
    return await spawnTraining();
  };
  return { ledger, training, restartTraining };
}
