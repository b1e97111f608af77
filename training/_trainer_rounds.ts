/**
 * The rounds a TrainerService (`trainer_service.ts`) takes: which it admits — at most
 * `maxRoundSteps` local steps, on the trainer's own batch size and sample length, one round at a
 * time per coordinator, one receipt per round slot (`_signed_slots.ts`) — the training of each outside the mailbox, in the engine, and the
 * stopping of a round nobody waits for any more. Admitted in the service's mailbox (its `round`
 * message), before any await; each step the engine takes comes back by the service's `step`
 * message, and the end of the run by its `trained` message, which records the receipt's
 * coordinator before the report goes back. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sha256Hex } from "../protocols/hash.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import {
  MAX_ROUND_STEPS,
  type ReportBody,
  type RoundBody,
} from "../protocols/training_messages.ts";
import type { RoundModels } from "./round_models.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import { TrainingError } from "./training_error.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import type { TrainerEngine } from "./trainer_engine.ts";
import type { SignedSlots } from "./_signed_slots.ts";
import type { RoundAccepted, Trained, TrainerMessage } from "./trainer_service.ts";

/** Options of {@link TrainerRounds}; see `TrainerServiceOptions` for the ones named alike. */
export interface TrainerRoundsOptions {
  /** Where round models are found, fetched and written. */
  models: RoundModels;
  /** Why this node refused a round model, or null (`TrainerServiceOptions.refusedModel`). */
  refusedModel?: (cid: string) => Promise<string | null>;
  /** The most local steps (H) a round may ask of this trainer; default {@link MAX_ROUND_STEPS}. */
  maxRoundSteps?: number;
  /**
   * The batch this trainer trains: a round announcing another `hyper.batchSize` or
   * `hyper.sampleBytes` is refused (`round_terms_refused`).
   */
  batch: Pick<LocalHyperParams, "batchSize" | "sampleBytes">;
  /** The round slots this trainer signed. */
  slots: SignedSlots;
  /** The trainer's engine, which trains the rounds (set once the service started). */
  engine(): TrainerEngine | undefined;
  /** The trainer's clock (ms since the epoch): rounds' deadlines are read on it. */
  now(): number;
  /** The trainer's log. */
  log(line: string): void;
}

/** See the module doc. */
export class TrainerRounds {
  readonly #options: TrainerRoundsOptions;
  /**
   * The round each coordinator has waiting or running here (see {@link admit}): its
   * number, the request (its body but the deadline, hashed), its report, how many askers still
   * wait for it (none: its coordinator is gone, the slot is free) and whether it was abandoned.
   */
  readonly #roundOf = new Map<string, RoundInProgress>();

  /** @param options See {@link TrainerRoundsOptions}. */
  constructor(options: TrainerRoundsOptions) {
    this.#options = options;
  }

  /**
   * Train a round for `coordinator`, or refuse it at once. Rounds run one after another, so any
   * peer that can ask for one could hold this trainer's real coordinators' rounds behind its own
   * past their deadlines (the review of stop 49 found it): a round of more than
   * {@link TrainerRoundsOptions.maxRoundSteps} steps is refused (`too_many_steps`), so is one on
   * another batch than the trainer's own ({@link TrainerRoundsOptions.batch}:
   * `round_terms_refused`, which also keeps what a challenge opens of the shard bounded), and so
   * is a second round from a coordinator while one of its rounds waits or runs here
   * (`round_in_progress`) — the same request again (a coordinator that lost its connection and
   * asks again) gets the running round's report instead. Decided in the mailbox, before any
   * await: two requests cannot both pass, however close together they come.
   *
   * A round nobody waits for any more (`gone` aborted: the connection that asked closed — a
   * coordinator restarted, or cut off) no longer holds its coordinator's slot: the restarted
   * coordinator's next round was refused until the lost one ended (review s53). If it has not
   * started training it is abandoned (`round_abandoned`): nothing is signed for it, so no ledger
   * pays or slashes anything. One already training goes on while the same request may still
   * come again (a coordinator whose connection blipped asks again, and shares its report), and
   * stops before its next step (`round_abandoned`, nothing signed) once it is lost for good:
   * its coordinator asked for another round, or its deadline passed
   * ({@link TrainerRoundsOptions.now}). Before review s54 it ran all its H steps, and the
   * rounds after it in the engine — the restarted coordinator's, other coordinators' — waited
   * behind work nobody reads, past their deadlines; and one key could queue round after round
   * there, closing its connection once each had started.
   */
  admit(
    body: RoundBody,
    coordinator: string,
    gone: AbortSignal | undefined,
    ctx: ActorContext<TrainerMessage>,
  ): RoundAccepted {
    const refused = (error: TrainingError): RoundAccepted => {
      const report = Promise.reject(error);
      report.catch(() => {}); // the asker awaits it; a refusal is its answer, not a crash
      return { report };
    };
    const maxSteps = this.#options.maxRoundSteps ?? MAX_ROUND_STEPS;
    if (body.steps > maxSteps) {
      this.#log(
        `trainer: round ${body.round} refused for ${coordinator.slice(0, 16)}: H = ` +
          `${body.steps} is more than ${maxSteps}`,
      );
      return refused(
        new TrainingError(
          "too_many_steps",
          `this trainer takes rounds of at most ${maxSteps} local steps, not ${body.steps}`,
        ),
      );
    }
    // The batch is this trainer's, not the coordinator's to choose: one challenge opens every
    // sample of TRAINING_CHALLENGE_STEPS batches, so a batch of 4096 opened the whole shard, and
    // a step's time grows with it, so H steps of it held the engine for hours past any bound on H
    // (review s71 F3). The batch the privacy bound and `maxRoundSteps` are measured at is kept.
    const { batchSize, sampleBytes } = this.#options.batch;
    if (body.hyper.batchSize !== batchSize || body.hyper.sampleBytes !== sampleBytes) {
      this.#log(
        `trainer: round ${body.round} refused for ${coordinator.slice(0, 16)}: batches of ` +
          `${body.hyper.batchSize} × ${body.hyper.sampleBytes} B, not ${batchSize} × ${sampleBytes} B`,
      );
      return refused(
        new TrainingError(
          "round_terms_refused",
          `this trainer trains batches of ${batchSize} samples of ${sampleBytes} bytes, not ` +
            `${body.hyper.batchSize} of ${body.hyper.sampleBytes}`,
        ),
      );
    }
    const request = sha256Hex(encodeCanonical({ ...body, deadline: 0 }));
    const running = this.#roundOf.get(coordinator);
    if (running !== undefined && !running.abandoned) {
      if (running.request === request) {
        waitFor(running, gone, () => this.stopIfPastDeadline(coordinator, running.round));
        return { report: running.report };
      }
      if (running.waiting === 0) {
        this.#log(
          `trainer: round ${running.round} of ${coordinator.slice(0, 16)} lost with its ` +
            `connection: stopped; round ${body.round} taken`,
        );
        running.abandoned = true;
        running.stop.abort();
      } else {
        return refused(
          new TrainingError(
            "round_in_progress",
            `round ${running.round} of this coordinator is still waiting or running here: ` +
              `one round at a time per coordinator`,
          ),
        );
      }
    }
    const refusal = this.#options.slots.claim(body, coordinator);
    if (refusal !== undefined) return refused(refusal);
    const stop = new AbortController();
    // Called once the training's first awaits are past, `entry` set by then.
    const report = this.#train(body, coordinator, ctx, () => {
      if (entry.waiting > 0) return false;
      entry.abandoned = true;
      return true;
    }, stop.signal);
    report.catch(() => {}); // the asker awaits it; a failure is its answer, not a crash
    const entry: RoundInProgress = {
      round: body.round,
      request,
      report,
      waiting: 0,
      abandoned: false,
      deadline: body.deadline,
      stop,
    };
    waitFor(entry, gone, () => this.stopIfPastDeadline(coordinator, entry.round));
    this.#roundOf.set(coordinator, entry);
    const done = () => {
      if (this.#roundOf.get(coordinator) === entry) this.#roundOf.delete(coordinator);
    };
    report.then(done, done);
    return { report };
  }

  /**
   * Stop `coordinator`'s round `round` if it is lost for good: nobody waits for its report and
   * its deadline has passed, so no coordinator could take it (see {@link admit}). Looked
   * at when an asker leaves and on each step the round takes: it stops before its next one.
   */
  stopIfPastDeadline(coordinator: string, round: number): void {
    const entry = this.#roundOf.get(coordinator);
    if (entry === undefined || entry.round !== round || entry.stop.signal.aborted) return;
    if (entry.waiting > 0 || this.#options.now() <= entry.deadline) return;
    this.#log(
      `trainer: round ${round} of ${coordinator.slice(0, 16)} stopped: nobody waits for it ` +
        `and its deadline has passed`,
    );
    entry.abandoned = true;
    entry.stop.abort();
  }

  /**
   * Train one round outside the mailbox (in the engine); counted by `trained`. `lost` says
   * (and marks) that nobody waits for it any more: it is then not started. `stop` aborts once
   * it is lost for good while it trains: the engine stops it at its next step.
   */
  async #train(
    body: RoundBody,
    coordinator: string,
    ctx: ActorContext<TrainerMessage>,
    lost: () => boolean,
    stop: AbortSignal,
  ): Promise<ReportBody> {
    const started = performance.now();
    await this.#options.slots.saving; // the slot is on disk before anything is signed for it
    const refused = await this.#options.refusedModel?.(body.startModel);
    if (refused) {
      this.#log(
        `trainer: round ${body.round} refused: its start model failed the audit (${refused})`,
      );
      throw new TrainingError(
        "start_model_refused",
        `start model ${body.startModel} is not what its round's deltas give (${refused})`,
      );
    }
    const start = await this.#options.models.get(
      body.startModel,
      body.arch,
      body.startFile,
      body.startUpdate,
    );
    if (start.fetched !== undefined) {
      this.#log(
        `trainer: round ${body.round}: start model ${body.startModel.slice(0, 16)}… ` +
          (start.fetched.via === "update"
            ? `rebuilt from its outer update (${start.fetched.bytes} bytes)`
            : `downloaded (${start.fetched.bytes} bytes)`),
      );
    }
    if (lost()) {
      this.#log(
        `trainer: round ${body.round} for ${coordinator.slice(0, 16)} abandoned: nobody waits ` +
          `for it (its connection closed)`,
      );
      throw new TrainingError(
        "round_abandoned",
        `round ${body.round}'s coordinator is gone: not trained, nothing signed`,
      );
    }
    const { round, steps } = body;
    const report = await this.#options.engine()!.train(
      {
        arch: body.arch,
        round,
        startModel: body.startModel,
        start: start.weights,
        steps,
        dataSeed: body.dataSeed,
        hyper: body.hyper,
      },
      (step, loss) =>
        void ctx.self.tell({ type: "step", coordinator, round, steps, step, loss })
          .catch(() => {}),
      stop,
    );
    // Before the report goes back: the coordinator's challenge of it finds it owed, also after
    // a restart (the record is on disk, as the run's trace is).
    const { saved } = await ctx.self.ask<Trained>({
      type: "trained",
      losses: report.receipt.losses,
      receiptId: trainingReceiptId(report.receipt),
      coordinator,
    });
    await saved;
    const losses = report.receipt.losses;
    this.#log(
      `trainer: round ${body.round} for ${coordinator.slice(0, 16)}: ${body.steps} steps in ${
        Math.round(performance.now() - started)
      } ms, loss ${losses[0]?.toFixed(3)} → ${
        losses.at(-1)?.toFixed(3)
      }, delta ${report.delta.length} bytes`,
    );
    return { receipt: report.receipt, delta: report.delta };
  }

  #log(line: string): void {
    this.#options.log(line);
  }
}

/** A round waiting or running for a coordinator (see `TrainerRounds.admit`). */
interface RoundInProgress {
  round: number;
  /** The request, its body but the deadline, hashed. */
  request: string;
  report: Promise<ReportBody>;
  /** How many askers wait for its report (Infinity: one without a signal, waited on to its end). */
  waiting: number;
  /** Set when it was not started, or stopped, because nobody waited for it any more. */
  abandoned: boolean;
  /** Its deadline (the coordinator's, ms since the epoch): lost for good past it. */
  deadline: number;
  /** Aborted to stop it while it trains (lost for good; see `TrainerRounds.admit`). */
  stop: AbortController;
}

/**
 * Count one more asker of `entry` waiting, until `gone` aborts (absent: to the end); `left` is
 * called when it does (the coordinator's request timed out at the round's deadline: a round still
 * queued in the engine then never starts).
 */
function waitFor(
  entry: RoundInProgress,
  gone: AbortSignal | undefined,
  left: () => void,
): void {
  if (gone === undefined) {
    entry.waiting = Infinity;
    return;
  }
  if (gone.aborted) return;
  entry.waiting++;
  gone.addEventListener("abort", () => {
    entry.waiting--;
    left();
  }, { once: true });
}
