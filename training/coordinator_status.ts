/**
 * What a RoundCoordinator (`round_coordinator.ts`) reports about its rounds and its trainers: the
 * `status` it answers ({@link CoordinatorStatus}, each finished round a {@link RoundRecord}), and
 * the standing of its joined trainers that the status counts ({@link TrainerStandings}).
 *
 * A round's seats go only to joined trainers this node's ledger has not convicted and whose free
 * stake there backs the round's receipt (`_round_seats.ts`); a join is looked at the same way at
 * once, so `status` counts only the trainers a round can ask and the log says why one is not
 * (review s73 F2, F3: every joined trainer was counted, and only the coordinator's own
 * convictions, so the dashboard showed a trainer this node's ledger convicted as one of
 * "2 trainers" and nowhere as convicted). The standings are the coordinator's, changed only in
 * its `receive`.
 *
 * @module
 */
import type { ExcludedEntry, ReasonCount } from "./excluded_summary.ts";
import type { JoinedTrainer, JoinedTrainers } from "./joined_trainers.ts";
import type { HeldOutSource } from "./held_out_text.ts";
import type { EvaluatorState } from "./held_out_evaluator.ts";
import { type RoundSeats, type SeatLookups, seatRound } from "./_round_seats.ts";

/** One finished round, as the status shows it. */
export interface RoundRecord {
  /** Round number. */
  round: number;
  /** Its start model. */
  startModel: string;
  /** The model it produced (the start model again when no report was accepted). */
  model: string;
  /** Hex keys whose deltas went in. */
  accepted: string[];
  /**
   * Trainers left out, with why: those asked whose deltas were dropped, then those the seating
   * skipped (`no_seat …`). Only the first `EXCLUDED_SAMPLE` (`excluded_summary.ts`); every
   * one is counted in `excludedCounts`. A record written before review s73 lists every one here
   * and has no counts (read back, it is counted and cut to the sample).
   */
  excluded: ExcludedEntry[];
  /** Every trainer left out, counted by the kind of its reason (absent: see `excluded`). */
  excludedCounts?: ReasonCount[];
  /** Held-out loss of the new model, nats per byte. */
  heldOutLoss?: number;
  /**
   * The momentum carried into the round was dropped (review s74 verify3 F1): the round's mean with
   * it failed the loss gate, or the round was refused for its loss (absent: kept).
   */
  momentumReset?: true;
}

/** What `status` answers. */
export interface CoordinatorStatus {
  /** The next round's number. */
  round: number;
  /** The current model's CID. */
  model: string;
  /** Held-out loss of the first start model. */
  initialLoss?: number;
  /**
   * The latest finished rounds, oldest first (at most
   * `RoundCoordinatorOptions.keptRoundRecords`).
   */
  history: RoundRecord[];
  /**
   * Rounds finished over the run, those no longer in `history` too (set by the coordinator;
   * absent: `history.length`).
   */
  finished?: number;
  /**
   * Hex keys of the joined trainers it can ask: not convicted (here or, at the last seating, in
   * this node's ledger), and not left without a seat for want of stake at the last seating.
   */
  trainers: string[];
  /**
   * Hex keys of trainers convicted, never asked again: by this coordinator, and the joined ones
   * this node's ledger convicted (skipped at the last seating).
   */
  convicted: string[];
  /**
   * Joined trainers the last seating left out because their free stake in this node's ledger
   * cannot back a round's receipt (absent: none).
   */
  unbacked?: number;
  /**
   * Which text the rounds are evaluated on: the public Brown split or a private file, with its
   * size (never its path or content; absent: not said, as in a test's coordinator).
   */
  heldOut?: HeldOutSource;
  /**
   * How the held-out evaluator's workers fare, once one has failed since the last good answer
   * (absent: none has). With `retryAt` it rests after too many failures in a row: the rounds until
   * then publish nothing and blame nobody, and the first evaluation after it starts a fresh worker.
   */
  evaluator?: EvaluatorState;
}

/** What the coordinator holds of its rounds, as {@link TrainerStandings.status} reports it. */
export interface CoordinatorRounds {
  /** The next round's number. */
  round: number;
  /** The current model's CID. */
  model: string;
  /** Held-out loss of the first start model. */
  initialLoss?: number;
  /** The latest finished rounds, oldest first. */
  history: readonly RoundRecord[];
  /** Rounds finished over the run. */
  finished: number;
  /** Trainers this coordinator convicted (hex keys). */
  convicted: ReadonlySet<string>;
}

/**
 * Whom the last seating skipped among the joined trainers (`_round_seats.ts`): those this node's
 * ledger convicted, and those without the free stake to back a round. Only for `status` to
 * count: the seating itself asks the ledger afresh each round.
 */
export class TrainerStandings {
  readonly #trainers: JoinedTrainers;
  readonly #convicted = new Set<string>();
  readonly #unbacked = new Set<string>();

  /** @param trainers The coordinator's joined trainers (those that left are forgotten here). */
  constructor(trainers: JoinedTrainers) {
    this.#trainers = trainers;
  }

  /** Mark which of `checked` a seating skipped, as convicted or unbacked, and unmark the rest. */
  mark(checked: readonly string[], convicted: string[], unbacked: string[]): void {
    const isConvicted = new Set(convicted);
    const isUnbacked = new Set(unbacked);
    for (const key of checked) {
      if (isConvicted.has(key)) this.#convicted.add(key);
      else this.#convicted.delete(key);
      if (isUnbacked.has(key)) this.#unbacked.add(key);
      else this.#unbacked.delete(key);
    }
    // Bounded by the joined trainers: one that left is forgotten.
    const open = new Set(this.#trainers.open().map((t) => t.key));
    for (const set of [this.#convicted, this.#unbacked]) {
      for (const key of set) if (!open.has(key)) set.delete(key);
    }
  }

  /**
   * At a join: whether round `round`'s seating would skip `trainer` (convicted in this node's
   * ledger, or without the free stake there to back a round's receipt), so that `status` counts
   * it right before any round seats it, and the log says why it is not asked. It stays joined:
   * stake may come later (a deposit, a peer's pledge), and the seating of each round asks again.
   */
  async lookAtJoin(
    round: number,
    trainer: JoinedTrainer,
    lookups: SeatLookups,
    log: (line: string) => void,
  ): Promise<void> {
    let seats: RoundSeats;
    try {
      seats = await seatRound(round, [trainer], lookups);
    } catch {
      return; // the ledger did not answer: the next round's seating asks again
    }
    const { key } = trainer;
    this.mark([key], seats.convicted, seats.unbacked);
    const why = seats.unseated[0]?.reason;
    if (why !== undefined) {
      log(`training: trainer ${key.slice(0, 16)} takes no seat in a round for now: ${why}`);
    }
  }

  /**
   * What `status` answers for `rounds`. The trainers counted are those a round can ask; those
   * this node's ledger convicted are listed as convicted beside the coordinator's own.
   */
  status(rounds: CoordinatorRounds): CoordinatorStatus {
    const open = this.#trainers.open().map((t) => t.key);
    const ledgerConvicted = open.filter((key) =>
      this.#convicted.has(key) && !rounds.convicted.has(key)
    );
    const unbacked = open.filter((key) => this.#unbacked.has(key)).length;
    return {
      round: rounds.round,
      model: rounds.model,
      initialLoss: rounds.initialLoss,
      history: [...rounds.history],
      finished: rounds.finished,
      trainers: open.filter((key) =>
        !rounds.convicted.has(key) && !this.#convicted.has(key) && !this.#unbacked.has(key)
      ),
      convicted: [...rounds.convicted, ...ledgerConvicted],
      ...(unbacked === 0 ? {} : { unbacked }),
    };
  }
}
