/**
 * What a TrainingValidator answers a RoundCoordinator about to seat a round (`seat_stakes`): the
 * stake one receipt of the round's work locks in this node's ledger, under the economics that
 * ledger runs with ({@link trainingLock}, the amount `proof/_ledger_training.ts` locks), and each
 * asked trainer's free stake there. A trainer whose free stake is below the lock would have its
 * receipt refused (`insufficient_stake`) after it trained: its delta cannot go in and it is not
 * paid, so it is not given a seat (`training/_round_seats.ts`). Asked of the validator, not of the
 * ledger directly, because the validator is what records the coordinator's receipts and knows the
 * ledger's name and economics. Not part of the public API.
 *
 * @module
 */
import type { AccountMessage } from "../actors/validator_messages.ts";
import { type EconomicParams, trainingLock, type TrainingWork } from "../proof/economics.ts";
import { freeStake } from "../proof/ledger.ts";
import type { Account } from "../proof/ledger_state.ts";
import { fromHex } from "../protocols/hash.ts";

/** The lock a round's receipt takes and the asked trainers' free stake, in the order asked. */
export interface SeatStakes {
  /** What one receipt of the round's work locks in this ledger. */
  lock: number;
  /** Each asked trainer's free stake in this ledger (stake less what is locked). */
  free: number[];
}

/**
 * The {@link SeatStakes} of `keys` (hex) for receipts of `work`, read from the ledger by `ask`.
 * @throws whatever `ask` throws (a ledger that does not answer): the caller decides.
 */
export async function seatStakes(
  ask: (message: AccountMessage) => Promise<Account>,
  economics: Readonly<EconomicParams>,
  keys: readonly string[],
  work: TrainingWork,
): Promise<SeatStakes> {
  const accounts = await Promise.all(
    keys.map((key) => ask({ type: "account", key: fromHex(key) })),
  );
  return { lock: trainingLock(economics, work), free: accounts.map(freeStake) };
}
