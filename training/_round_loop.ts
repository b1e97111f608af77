/**
 * The round loop of a RoundCoordinator (`round_coordinator.ts`): started in its `preStart`, it
 * runs outside the mailbox. It sends first what a round that finished before a restart still owes
 * (`deliver`), then, round after round until the run's `rounds` are finished, waits for enough
 * trainers (`minTrainers` for a start's first round, then one), seats them (`_round_seats.ts`:
 * not those this node's ledger convicted, not those whose free stake there cannot back the
 * round's receipt, at most {@link MAX_OUTCOME_TRAINERS}), takes the round's number (`announce`)
 * and runs the round (`_round_run.ts`). A round that failed, or that no trainer
 * reported for, is followed by a pause that doubles while it repeats.
 *
 * Rounds are paced: one starts no earlier than {@link RoundLoopOptions.paceMs} after the one
 * before it started (`roundPaceMs` in `training_stake.ts`). A round ends as soon as every trainer
 * reported, and each receipt locks its trainer's stake for a challenge window in every ledger that
 * records it: unpaced, a coordinator of `tiny` rounds ending in ~15 s kept 41 locked at once, and
 * from the 11th round every honest trainer at the default stake was refused (`insufficient_stake`):
 * it trained and was not paid (review s71, `tests/training/round_pace_test.ts`).
 *
 * Holds no state of its own: it asks the coordinator (`status`, `trainers`, `announce`) and tells
 * it whom a seating skipped (`seated`), so the trainer table, the round state and what `status`
 * counts change only in the coordinator's `receive`. Not part of the
 * public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { MAX_OUTCOME_TRAINERS } from "../protocols/training_messages.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import type { JoinedTrainer } from "./joined_trainers.ts";
import type { RoundRun } from "./_round_run.ts";
import { type RoundSeats, seatRound } from "./_round_seats.ts";
import type { SeatStakes } from "./_seat_stakes.ts";
import type {
  CoordinatorMessage,
  CoordinatorStatus,
  RoundCoordinatorOptions,
} from "./round_coordinator.ts";

/** How often the loop looks for enough trainers before a round. */
const TRAINER_POLL_MS = 200;
/**
 * How often the loop looks again when no joined trainer can take a seat (all convicted, or none
 * with the free stake to back a round): stake comes by a deposit or a peer's pledge, seconds
 * apart at best, and each look asks the ledger about every joined trainer.
 */
const SEAT_POLL_MS = 2_000;
/**
 * How long a start's first round waits for joined trainers without free stake here to become
 * backed before it seats the others: a trainer's pledge comes over the connection it joins on,
 * but the ledger records it a moment after the join is heard, and the last of `minTrainers` to
 * join was left out of the first round when its pledge landed just after the seating (CI, stop 78:
 * `training_network_test` round 0 seated 2 of 3, "free stake 0 here"). Polled every
 * {@link TRAINER_POLL_MS}; one that stays unbacked past it is left out as before.
 */
const FIRST_ROUND_PLEDGE_WAIT_MS = 2_000;
/**
 * Longest pause after rounds that failed, or that no trainer reported for, in a row (it doubles
 * from {@link TRAINER_POLL_MS}).
 */
const MAX_FAILURE_PAUSE_MS = 60_000;

/** Where the loop is between rounds. */
interface LoopState {
  /** The next round is this start's first (it waits for `minTrainers`). */
  first: boolean;
  /** The least number the next round may take. */
  next: number;
  /** When the last round was announced, on {@link RoundLoopOptions.timers}' clock. */
  started?: number;
  /** The last seating logged (its counts): the same one polled again is not logged again. */
  seatsLogged?: string;
}

/** What {@link RoundLoop} needs from the coordinator. */
export interface RoundLoopOptions {
  /** The coordinator's options, read at each use (`rounds`, `minTrainers`, `convicted`). */
  settings: Pick<RoundCoordinatorOptions, "rounds" | "minTrainers" | "convicted">;
  /** One round, run by the loop. */
  rounds: RoundRun;
  /**
   * The lock of a round's receipt and `keys`' free stake in this node's ledger (the coordinator
   * asks its TrainingValidator); absent or undefined: no ledger records the receipts, no stake
   * is checked.
   */
  stakes?(keys: string[], ctx: ActorContext<CoordinatorMessage>): Promise<SeatStakes | undefined>;
  /**
   * The least time from one round's start to the next's, ms (`roundPaceMs`); 0: none. A start
   * (or a restart of the coordinator) begins at once.
   */
  paceMs: number;
  /** The clock and timers the pace is measured and waited on; default the real ones. */
  timers?: ConnectionTimers;
  /** Where one line per round goes. */
  log(line: string): void;
}

/** See the module doc. */
export class RoundLoop {
  readonly #options: RoundLoopOptions["settings"];
  readonly #parts: RoundLoopOptions;

  /** @param options See {@link RoundLoopOptions}. */
  constructor(options: RoundLoopOptions) {
    this.#options = options.settings;
    this.#parts = options;
  }

  /** Run the rounds until the run is over or the coordinator stops. */
  async run(ctx: ActorContext<CoordinatorMessage>): Promise<void> {
    const { rounds } = this.#options;
    // What a round that finished before a restart still owes goes out before anything else.
    await ctx.self.ask({ type: "deliver" });
    const state: LoopState = { first: true, next: 0 };
    let failures = 0;
    while (!ctx.signal.aborted) {
      // One iteration's failure (a conviction lookup to an actor that is restarting, a storage
      // write that times out, an evaluation that throws) is not the end of the run: the round
      // it was in is lost, as at a crash (its number was saved as taken), and the next goes on
      // after a pause that doubles while failures repeat. Before, it ended this loop for good
      // while the actor lived on: no round ever again.
      const pause = async (why: string) => {
        const pauseMs = Math.min(TRAINER_POLL_MS * 2 ** failures++, MAX_FAILURE_PAUSE_MS);
        this.#log(`training: ${why}; going on in ${pauseMs} ms`);
        await sleep(pauseMs, ctx.signal).catch(() => {});
        return true;
      };
      // A round no trainer reported for is followed by a pause too. After a restart of this
      // coordinator its trainers trained the round it lost to its end and refused its next
      // rounds (`round_in_progress`, one at a time per coordinator) within a round trip:
      // announced at once, round after round ended empty, each saved and counted among the
      // run's rounds, until the lost round was done (review s53). Trainers now take the next
      // round and stop the lost one at its next step (review s54); the pause stays for any
      // round nobody answers.
      const go = await this.#iteration(rounds, state, ctx).then(
        (go) => go === "unheard" ? pause("no trainer reported for the round") : (failures = 0, go),
        async (error) => {
          if (ctx.signal.aborted) return false;
          return await pause(`round failed (${(error as Error).message})`);
        },
      );
      if (!go) return;
    }
  }

  /**
   * One pass of the loop: false when the run is over, "unheard" when it ran a round no trainer
   * reported for.
   */
  async #iteration(
    rounds: number,
    state: LoopState,
    ctx: ActorContext<CoordinatorMessage>,
  ): Promise<boolean | "unheard"> {
    // Rounds finished before a restart count: `rounds` is the run's, not this start's.
    const finished = (await ctx.self.ask<CoordinatorStatus>({ type: "status" })).finished!;
    if (rounds !== 0 && finished >= rounds) return false;
    // Waited before the trainers are chosen, so the round asks those joined when it starts.
    if (!await this.#paced(state, ctx)) return false;
    // The first round of a start waits for `minTrainers` (after a node restart they join
    // again; after a restart of this actor alone they are still joined); later ones go on
    // with whoever is joined (and not convicted): a trainer that left, or cheated, does not
    // hold the network up.
    const needed = state.first ? this.#options.minTrainers : 1;
    let trainers: JoinedTrainer[];
    for (;;) {
      trainers = await ctx.self.ask<JoinedTrainer[]>({ type: "trainers" });
      if (trainers.length >= needed || ctx.signal.aborted) break;
      await sleep(TRAINER_POLL_MS, ctx.signal);
    }
    if (ctx.signal.aborted) return false;
    const status = await ctx.self.ask<CoordinatorStatus>({ type: "status" });
    if (ctx.signal.aborted) return false;
    // A number once announced is never announced again, by this incarnation either: a round
    // that failed (lost) leaves the status at its number, the next takes the one after.
    const round = Math.max(status.round, state.next);
    // Seats go only to trainers this node's ledger has not convicted and whose free stake there
    // backs the round's receipt (`_round_seats.ts`); the coordinator keeps who was skipped, so
    // its status counts only the trainers it can ask.
    const seat = () =>
      seatRound(round, trainers, {
        convicted: this.#options.convicted,
        stakes: (keys) => this.#parts.stakes?.(keys, ctx) ?? Promise.resolve(undefined),
      });
    let seats = await seat();
    // A start's first round gives joiners' pledges a moment to be recorded
    // ({@link FIRST_ROUND_PLEDGE_WAIT_MS}).
    for (
      let waited = 0;
      state.first && seats.unbacked.length > 0 && waited < FIRST_ROUND_PLEDGE_WAIT_MS &&
      !ctx.signal.aborted;
      waited += TRAINER_POLL_MS
    ) {
      await sleep(TRAINER_POLL_MS, ctx.signal).catch(() => {});
      if (!ctx.signal.aborted) seats = await seat();
    }
    if (ctx.signal.aborted) return false;
    await ctx.self.ask({
      type: "seated",
      checked: trainers.map((t) => t.key),
      convicted: seats.convicted,
      unbacked: seats.unbacked,
    });
    this.#logSeats(round, trainers.length, seats, state);
    if (seats.seated.length === 0) {
      // Nobody to ask: no number is taken; a deposit or a pledge may come, or another trainer
      // join. (`minTrainers` counts joins, as before: a start waits for the trainers it expects,
      // then seats those it can ask.)
      await sleep(SEAT_POLL_MS, ctx.signal).catch(() => {});
      return !ctx.signal.aborted;
    }
    trainers = seats.seated;
    await ctx.self.ask({ type: "announce", round });
    state.started = this.#timers.now();
    state.next = round + 1;
    state.first = false;
    return await this.#parts.rounds.run(round, trainers, ctx, seats.unseated) ? true : "unheard";
  }

  /**
   * Wait until {@link RoundLoopOptions.paceMs} has passed since the last round started; false when
   * the coordinator stopped meanwhile.
   */
  async #paced(state: LoopState, ctx: ActorContext<CoordinatorMessage>): Promise<boolean> {
    if (state.started === undefined) return true;
    const waitMs = state.started + this.#parts.paceMs - this.#timers.now();
    if (waitMs <= 0) return true;
    this.#log(
      `training: next round in ${Math.ceil(waitMs)} ms (a round at most every ` +
        `${this.#parts.paceMs} ms: its trainers' stake backs no more within a challenge window)`,
    );
    await sleep(waitMs, ctx.signal, this.#timers);
    return !ctx.signal.aborted;
  }

  get #timers(): ConnectionTimers {
    return this.#parts.timers ?? SYSTEM_TIMERS;
  }

  /** One line when a round's seating leaves trainers out (not again while it stays the same). */
  #logSeats(round: number, joined: number, seats: RoundSeats, state: LoopState): void {
    const { seated, convicted, unbacked, lock, rankedOut } = seats;
    const noted = `${seated.length}/${convicted.length}/${unbacked.length}/${rankedOut}/${lock}`;
    if (seated.length === joined || noted === state.seatsLogged) return;
    state.seatsLogged = noted;
    const parts = [
      convicted.length > 0 ? `${convicted.length} convicted in this node's ledger` : "",
      unbacked.length > 0
        ? `${unbacked.length} without the free stake here to back a receipt's lock of ${lock} ` +
          `(insufficient_stake: their receipts would be refused)`
        : "",
      rankedOut > 0 ? `${rankedOut} over the ${MAX_OUTCOME_TRAINERS} an outcome lists` : "",
    ].filter((p) => p !== "");
    this.#log(
      `training: round ${round} seats ${seated.length} of ${joined} joined trainers; not seated: ` +
        parts.join(", "),
    );
  }

  #log(line: string): void {
    this.#parts.log(line);
  }
}
