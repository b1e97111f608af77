/**
 * The validator the held-claim flood tests judge on (`held_claim_flood_test.ts`,
 * `held_claim_known_flood_test.ts`): the worker withholds its proof data from it too, so only a
 * held "proof withheld" claim can convict, and it draws no challenge of its own, so what a receipt
 * ends as is the claims' doing.
 *
 * @module
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { Identity } from "../../protocols/identity.ts";
import { HONEST_MODELS, type LedgerClock, spawnValidator } from "./_validator_fixture.ts";

/** Spawn `v/validator` under `identity` in `system`, its ledger in `ledgerDir` on `clock`. */
export function withholdingValidator(
  system: ActorSystem,
  identity: Identity,
  ledgerDir: string,
  clock: LedgerClock,
): Promise<ActorRef<ValidatorMessage>> {
  return spawnValidator(system, {
    name: "v/validator",
    identity,
    ledgerDir,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
    source: { proof: () => Promise.resolve(undefined) },
  });
}
