/**
 * A ledger that knows stakes and nothing else, for the tests of a TrainingValidator's outcome
 * gate: spawned as `node/validator`, it answers `account` and `has_staked` from a table the test
 * fills, `training_challenged` with none, and every other ask with undefined (no receipt known,
 * nothing recorded). The tests that
 * need the ledger's own rules use the real ValidatorActor (`_training_ledger.ts`).
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { toHex } from "../../protocols/hash.ts";

/** What the stakes ledger is asked. */
type StakesMessage = { type: string; key?: Uint8Array };

/** See the module doc. */
export class StakesLedger implements Actor<StakesMessage> {
  /** Stake by hex key. */
  readonly stakes = new Map<string, number>();

  /** Answer from the stakes; see the module doc. */
  receive(message: StakesMessage): unknown {
    const stake = message.key === undefined ? undefined : this.stakes.get(toHex(message.key));
    if (message.type === "account") return { balance: 0, stake: stake ?? 0, locked: 0 };
    if (message.type === "has_staked") return stake !== undefined;
    if (message.type === "training_challenged") return []; // no challenge held here
    return undefined;
  }
}

/** Spawn a {@link StakesLedger} as `node/validator` with `stakes` (public key → stake). */
export async function spawnStakesLedger(
  system: ActorSystem,
  stakes: [Uint8Array, number][],
): Promise<{ ref: ActorRef<StakesMessage>; ledger: StakesLedger }> {
  const ledger = new StakesLedger();
  for (const [key, stake] of stakes) ledger.stakes.set(toHex(key), stake);
  const ref = await system.spawn<StakesMessage>({ name: "node/validator", factory: () => ledger });
  return { ref, ledger };
}
