/**
 * Who takes a round's seats (`_round_loop.ts`): of the joined trainers, not those this node's
 * ledger convicted (every node would refuse an outcome that averages one), not those whose free
 * stake in this node's ledger cannot back the lock of the round's receipt (the ledger would refuse
 * the receipt, `insufficient_stake`, so the delta could not go in), and of the rest at most
 * {@link MAX_OUTCOME_TRAINERS}, ranked by the hash of the round and the key.
 *
 * Stake is read before the seats are given, not only after the reports (review s73 F3): seats went
 * by hash rank alone, so 256 stakeless keys ground to rank first took every seat, every report was
 * refused afterwards and the staked honest trainer was never asked. The check after the reports
 * stays (`_round_run.ts`): stake moves between the two. Not part of the public API.
 *
 * @module
 */
import { MAX_OUTCOME_TRAINERS } from "../protocols/training_messages.ts";
import type { JoinedTrainer } from "./joined_trainers.ts";
import type { SeatStakes } from "./_seat_stakes.ts";
import { dataSeedOf } from "./_round_run.ts";

/** Reason recorded for a joined trainer left without a seat for want of free stake. */
export const NO_SEAT_STAKE = "no_seat (insufficient_stake)";
/** Reason recorded for a joined trainer left without a seat because this node's ledger convicted it. */
export const NO_SEAT_CONVICTED = "no_seat (convicted)";

/** What the seating reads from the node. */
export interface SeatLookups {
  /** Whether this node's ledger convicted a trainer (hex key); absent: none is skipped. */
  convicted?: (trainer: string) => Promise<boolean>;
  /**
   * The lock of the round's receipt and each trainer's free stake in this node's ledger;
   * undefined (or absent): no ledger records this coordinator's receipts, so no stake is checked.
   */
  stakes?: (keys: string[]) => Promise<SeatStakes | undefined>;
}

/** A round's seating. */
export interface RoundSeats {
  /** The trainers asked, at most {@link MAX_OUTCOME_TRAINERS}, in rank order. */
  seated: JoinedTrainer[];
  /** Joined trainers left without a seat for a reason of their own, with why (not by rank). */
  unseated: { key: string; reason: string }[];
  /** Hex keys of those the ledger convicted (among `unseated`). */
  convicted: string[];
  /** Hex keys of those whose free stake cannot back the lock (among `unseated`). */
  unbacked: string[];
  /** What the round's receipt locks, when stake was checked. */
  lock?: number;
  /** Trainers that could have taken a seat and were ranked out (over {@link MAX_OUTCOME_TRAINERS}). */
  rankedOut: number;
}

/**
 * Seat round `round` from `trainers` (see the module doc).
 * @throws whatever a lookup throws (a ledger that does not answer): the round is not seated.
 */
export async function seatRound(
  round: number,
  trainers: readonly JoinedTrainer[],
  lookups: SeatLookups,
): Promise<RoundSeats> {
  let candidates = [...trainers];
  const unseated: { key: string; reason: string }[] = [];
  const convicted: string[] = [];
  if (lookups.convicted !== undefined) {
    const flags = await Promise.all(candidates.map((t) => lookups.convicted!(t.key)));
    for (const [i, t] of candidates.entries()) if (flags[i]) convicted.push(t.key);
    candidates = candidates.filter((_, i) => !flags[i]);
  }
  for (const key of convicted) unseated.push({ key, reason: NO_SEAT_CONVICTED });
  const unbacked: string[] = [];
  const stakes = candidates.length === 0
    ? undefined
    : await lookups.stakes?.(candidates.map((t) => t.key));
  if (stakes !== undefined) {
    const backed = candidates.filter((t, i) => {
      if (stakes.free[i] >= stakes.lock) return true;
      unbacked.push(t.key);
      unseated.push({
        key: t.key,
        reason: `${NO_SEAT_STAKE}: free stake ${
          stakes.free[i]
        } here, a receipt locks ${stakes.lock}`,
      });
      return false;
    });
    candidates = backed;
  }
  let rankedOut = 0;
  if (candidates.length > MAX_OUTCOME_TRAINERS) {
    // An outcome lists at most this many trainers (accepted, and excluded): one over it is
    // refused by every node as malformed, and a restart could not read it back from the state.
    // A round asks no more, chosen afresh each round (by the data seed's hash), so none is
    // always left out.
    const rank = new Map(candidates.map((t) => [t.key, dataSeedOf(round, t.key)]));
    rankedOut = candidates.length - MAX_OUTCOME_TRAINERS;
    candidates = candidates.toSorted((a, b) => rank.get(a.key)! - rank.get(b.key)!)
      .slice(0, MAX_OUTCOME_TRAINERS);
  }
  return { seated: candidates, unseated, convicted, unbacked, lock: stakes?.lock, rankedOut };
}
