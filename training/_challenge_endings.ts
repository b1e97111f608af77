/**
 * The endings of a TrainingValidator's challenges in its ledger (`training_validator.ts`).
 *
 * A challenge holds its receipt `challenged` in the ledger until the validator ends it there:
 * passed (paid when its window closes), undecided (unpaid) or settled by its fraud proof
 * (slashed). The end is kept on disk (`ownProofsDir`, beside the own fraud proofs) before the
 * ledger is asked, and an ask that fails (the ValidatorActor restarting, a timeout) keeps the
 * receipt held and is asked again ({@link END_RETRY_MS}, doubling, {@link MAX_END_ATTEMPTS}
 * times), then at the next start: the kept end makes the ValidatorActor leave the receipt
 * `challenged` at its own restart (`trainingProofsResumed`), so the verdict stands instead of
 * ending unresolved. Before, a failed ending ask was dropped: the receipt stayed `challenged` with
 * nobody holding it until a restart ended it unresolved, so an honest trainer whose challenge
 * passed was never paid in this ledger, and a convicted one had its stake released instead of
 * slashed.
 *
 * {@link ChallengeEndings} keeps which receipts the validator holds and which endings wait for
 * another ask; the validator asks the ledger (through the callbacks it gives) and takes the
 * `end_again` message the retries send it, so every change still happens in its `receive`.
 *
 * @example
 * ```ts ignore
 * const endings = new ChallengeEndings({ ownProofs, askEnd, settleInLedger, log });
 * endings.hold(receiptId); // the ledger holds it `challenged` for this validator
 * await endings.end(ctx, receiptId, "passed"); // kept on disk, then asked of the ledger
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { sleep } from "../actors/_common.ts";
import type { ReceiptFiles } from "../actors/_receipt_files.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/**
 * First wait before a challenge's ending ask that failed is asked again, ms; it doubles each
 * time, up to {@link MAX_END_RETRY_MS}. A ValidatorActor that crashed is restarted after 100 ms
 * (the node supervisor's first restart delay, doubling), so the first retry usually finds it.
 */
export const END_RETRY_MS = 1_000;
/** The longest wait between two asks of one ending, ms. */
export const MAX_END_RETRY_MS = 60_000;
/**
 * Asks of one ending before the validator leaves it to its next start (~4 min of waits at the
 * defaults): bounded, so a ledger gone for good is not asked forever; the kept end is taken up
 * again when the validator starts.
 */
export const MAX_END_ATTEMPTS = 10;

/** The validator's internal `checked` message: a fraud proof checked there, to settle. */
type CheckedMessage = Extract<TrainingValidatorMessage, { type: "checked" }>;
/** The validator's context, which the endings ask through and tell `end_again` to. */
type Context = ActorContext<TrainingValidatorMessage>;

/**
 * How the validator's challenge of a receipt ends in its ledger: `passed` (pending again, paid
 * when its window closes), `undecided` (not paid), or `fraud`: its own checked fraud proof, to
 * settle (`checked`).
 */
type ChallengeEnd =
  | { step: "passed" | "undecided"; reason?: string }
  | { step: "fraud"; checked: CheckedMessage };

/** What is kept on disk of an ending until the ledger has it (beside the own fraud proofs). */
interface KeptEnd {
  /** The step the ledger is asked for. */
  end: "passed" | "undecided";
  /** Why it ended undecided. */
  reason?: string;
}

/** An ending whose ask failed, to ask again. */
interface UnendedChallenge {
  /** The ending. */
  end: ChallengeEnd;
  /** Asks made so far. */
  attempts: number;
}

/** Options of {@link ChallengeEndings}. */
export interface ChallengeEndingsOptions {
  /** The validator's own fraud proofs and endings on disk (`ownProofsDir`); absent: not kept. */
  ownProofs?: ReceiptFiles;
  /** First wait before an ending ask that failed is asked again, ms; default {@link END_RETRY_MS}. */
  retryMs?: number;
  /**
   * The timers its waits before a try again run on (the validator's `timers`); default real time.
   */
  timers?: ConnectionTimers;
  /** Ask the ledger to end the challenge of `receiptId`; rejects when it does not answer. */
  askEnd(
    ctx: Context,
    receiptId: string,
    step: "passed" | "undecided",
    reason: string | undefined,
  ): Promise<unknown>;
  /** Settle the validator's own checked fraud proof in the ledger; rejects when it does not answer. */
  settleInLedger(ctx: Context, checked: CheckedMessage): Promise<{ settled: boolean }>;
  /** Where one line per ending that failed goes. */
  log(line: string): void;
}

/** See the module doc. */
export class ChallengeEndings {
  readonly #options: ChallengeEndingsOptions;
  /** Receipts the validator's challenge holds `challenged` in its ledger (until it ends). */
  readonly #holding = new Set<string>();
  /** Held receipts whose ending ask failed, to ask again ({@link END_RETRY_MS}). */
  readonly #unended = new Map<string, UnendedChallenge>();
  /** Whether an `end_again` is on its way. */
  #endAgainScheduled = false;

  /** @param options See {@link ChallengeEndingsOptions}. */
  constructor(options: ChallengeEndingsOptions) {
    this.#options = options;
  }

  /** The ledger holds receipt `id` `challenged` for the validator: held here until it ends. */
  hold(id: string): void {
    this.#holding.add(id);
  }

  /** Whether the validator holds receipt `id` `challenged` in its ledger. */
  holds(id: string): boolean {
    return this.#holding.has(id);
  }

  /**
   * End the validator's challenge of receipt `id` in its ledger, if it holds it: `passed`
   * (pending again, paid when its window closes) or `undecided` (not paid). The ending is kept on
   * disk until the ledger has it, and asked again when the ask fails ({@link END_RETRY_MS}).
   */
  async end(
    ctx: Context,
    id: string,
    step: "passed" | "undecided",
    reason?: string,
  ): Promise<void> {
    // Stopping: left as it is, for the next start (a kept proof or ending resumes it; else it
    // ends unresolved there), as a crash would leave it.
    if (ctx.signal.aborted) return;
    if (!this.#holding.delete(id)) return;
    const kept: KeptEnd = { end: step, ...(reason === undefined ? {} : { reason }) };
    // Before the ask: a ValidatorActor restarting meanwhile leaves the receipt to this ending.
    await this.#options.ownProofs?.save(id, kept).catch((error) =>
      this.#options.log(
        `training validator: ending of ${id.slice(0, 12)} not kept: ${(error as Error).message}`,
      )
    );
    await this.#ask(ctx, id, { step, reason }, 0);
  }

  /**
   * At start: when `value`, what was kept on disk for receipt `id`, is an ending (its ask had
   * failed, or the stop came before the answer), ask the ledger for it now.
   * @returns Whether `value` was an ending (otherwise it is the validator's own fraud proof, or
   * neither).
   */
  async resumeKept(ctx: Context, id: string, value: unknown): Promise<boolean> {
    const ended = keptEnd(value);
    if (ended === undefined) return false;
    await this.#ask(ctx, id, { step: ended.end, reason: ended.reason }, 0);
    return true;
  }

  /**
   * The validator's own proof about `id` was answered by the ledger: convicted, the receipt is
   * settled; refuted here, the work stands (passed); not settled, it is not paid.
   */
  async settled(ctx: Context, id: string, confirmed: boolean, settled: boolean): Promise<void> {
    if (confirmed && settled) {
      this.#holding.delete(id);
      await this.#options.ownProofs?.remove(id);
    } else await this.end(ctx, id, confirmed ? "undecided" : "passed", "fraud_unsettled");
  }

  /**
   * The ledger did not answer the settlement of the validator's own proof about `id` (`error`):
   * still held, it is asked again; otherwise (stopping, or not held) it ends undecided.
   */
  async unsettled(ctx: Context, id: string, checked: CheckedMessage, error: Error): Promise<void> {
    if (this.#holding.has(id) && !ctx.signal.aborted) {
      this.#later(ctx, id, { step: "fraud", checked }, 1, error);
    } else await this.end(ctx, id, "undecided", "fraud_unsettled");
  }

  /** Ask again for every ending whose ask failed (the validator's `end_again`). */
  async again(ctx: Context): Promise<void> {
    this.#endAgainScheduled = false;
    const due = [...this.#unended];
    this.#unended.clear();
    for (const [id, { end, attempts }] of due) {
      if (ctx.signal.aborted) return;
      if (this.#holding.delete(id)) await this.#ask(ctx, id, end, attempts);
    }
  }

  /**
   * Ask the ledger for `end` of the challenge of `id` (not held here while it is asked).
   * An answer, whatever it is (false: not held there any more, settled by someone else), ends
   * it here; a failed ask holds it again and asks later ({@link ChallengeEndings.#later}).
   */
  async #ask(ctx: Context, id: string, end: ChallengeEnd, attempts: number): Promise<void> {
    let settled = false;
    try {
      if (end.step === "fraud") {
        settled = (await this.#options.settleInLedger(ctx, end.checked)).settled;
      } else await this.#options.askEnd(ctx, id, end.step, end.reason);
    } catch (error) {
      this.#holding.add(id);
      this.#later(ctx, id, end, attempts + 1, error as Error);
      return;
    }
    if (end.step !== "fraud") await this.#options.ownProofs?.remove(id);
    else {
      this.#holding.add(id);
      await this.settled(ctx, id, end.checked.confirmed, settled);
    }
  }

  /**
   * The ask of `end` failed (`attempts` made): held, asked again after a wait that doubles; past
   * {@link MAX_END_ATTEMPTS}, left to the next start (its kept ending or proof ends it there).
   */
  #later(ctx: Context, id: string, end: ChallengeEnd, attempts: number, error: Error): void {
    const what = `ending (${end.step}) of the challenge of ${id.slice(0, 12)}`;
    if (attempts >= MAX_END_ATTEMPTS) {
      this.#holding.delete(id);
      this.#options.log(`training validator: ${what} left to the next start: ${error.message}`);
      return;
    }
    this.#options.log(`training validator: ${what} not answered, asked again: ${error.message}`);
    this.#unended.set(id, { end, attempts });
    if (this.#endAgainScheduled) return;
    this.#endAgainScheduled = true;
    const fewest = Math.min(...[...this.#unended.values()].map((u) => u.attempts));
    const first = this.#options.retryMs ?? END_RETRY_MS;
    const wait = Math.min(MAX_END_RETRY_MS, first * 2 ** (fewest - 1));
    // Told, not run here: the endings change state in the validator's `receive` (`end_again`).
    void sleep(wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell({ type: "end_again" });
    }).catch(() => {}); // the validator stopped meanwhile: the kept endings wait for its next start
  }
}

/** The ending kept on disk for a receipt ({@link KeptEnd}), or undefined for anything else. */
function keptEnd(value: unknown): KeptEnd | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { end, reason } = value as Partial<KeptEnd>;
  if (end !== "passed" && end !== "undecided") return undefined;
  return { end, ...(typeof reason === "string" ? { reason } : {}) };
}
