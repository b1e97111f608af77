/**
 * What a TrainingValidator (`training_validator.ts`) keeps because the ledger did not answer for
 * it, to try again: one mechanism, composed by the claims (`_claim_takeovers.ts`, `claims_again`),
 * the peers' receipts (`_receipt_credits.ts`, `receipts_again`) and the round outcomes and credits
 * (`_outcome_audits.ts`, `outcome_again`) whose ledger asks went unanswered.
 *
 * An ask the ValidatorActor did not answer (stopped, restarting after a failed write, past its
 * ask's timeout) is neither a yes nor a no: the thing asked about is **kept** (at most `max`, and
 * `maxPerShare` of them per share key: a relaying peer, a claimant, so one key cannot shut out the
 * others; what an owner tries outside the mailbox meanwhile, on disk too, counts in both), **on
 * disk** beside the ledger (`<ledger dir>/<folder>/`, one file each,
 * `_kept_held_training_proofs.ts`) before it counts as kept, **tried again** after
 * {@link END_RETRY_MS} (the validator's `endRetryMs`), doubling up to {@link MAX_END_RETRY_MS}, by
 * one message to the validator scheduled once on the validator's `timers` (`sleep`: real
 * time by default, a test's fake timers it fires by hand), **read back** at the next start, and
 * **dropped**, logged, past {@link MAX_END_ATTEMPTS} tries or the bounds. One unanswered ask per round of tries
 * stops the round: the rest are kept again with one more try (the asks run in the mailbox, and a
 * hung ledger holds each up to its timeout).
 *
 * Each owner supplies only what differs: the key, the share key, how one is tried again, what the
 * log says. Read and written only inside the validator's `receive`. The peers' fraud proofs the
 * intake keeps for a ledger that did not answer (`_unanswered_training_proofs.ts`) are taken again
 * through the intake each after its own wait (`unanswered_again`), and share only
 * {@link retryWait} and the validator's `timers`. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { END_RETRY_MS, MAX_END_ATTEMPTS, MAX_END_RETRY_MS } from "./_challenge_endings.ts";
import {
  type HeldProofToKeep,
  type KeptHeldProof,
  KeptHeldTrainingProofs,
} from "./_kept_held_training_proofs.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";

/** The validator's context: the next round of tries is told to it. */
type Context = ActorContext<TrainingValidatorMessage>;

/**
 * The wait before the next try of something tried `attempts` times without a ledger answer, ms:
 * `retryMs` (default {@link END_RETRY_MS}) doubling with each try, at most {@link MAX_END_RETRY_MS}.
 */
export function retryWait(retryMs: number | undefined, attempts: number): number {
  const first = retryMs ?? END_RETRY_MS;
  return Math.min(MAX_END_RETRY_MS, first * 2 ** (Math.max(1, attempts) - 1));
}

/** What {@link LedgerRetries} needs of what it keeps: the tries made so far. */
export interface Retried {
  /** Tries made so far. */
  attempts: number;
}

/** What differs between the owners of a {@link LedgerRetries}. */
export interface LedgerRetriesOptions<T extends Retried> {
  /** The ledger's directory (`ownProofsDir`): kept in its `folder` across a stop; absent, memory only. */
  dir?: string;
  /** The folder, under the ledger's directory. */
  folder: string;
  /** Kept at most. */
  max: number;
  /** Of those, kept at most with one share key. */
  maxPerShare: number;
  /** What the log calls the holder of a share key (`too many kept from its <shareName>`). */
  shareName: string;
  /** One kept per key. */
  key(item: T): string;
  /** The key `maxPerShare` bounds; undefined: not bounded per share. */
  share(item: T): string | undefined;
  /** Why `item` is never kept (checked before the tries and the bounds); undefined: it may be. */
  refusal?(item: T): string | undefined;
  /**
   * What a copy of a key kept already gets: `"ignored"` (nothing, not even a log line: the one
   * kept stands), `"replaces"` the one kept, or dropped for the reason given.
   */
  duplicate: "ignored" | "replaces" | { dropped: string };
  /** The file of `item`, kept under `key`; undefined: memory only. */
  onDisk(key: string, item: T): HeldProofToKeep | undefined;
  /**
   * Items being tried outside the mailbox (again, or a first time an owner keeps across a stop):
   * on disk too until they answer, and counted in the bounds.
   */
  inFlight?(): Iterable<[string, T]>;
  /** Try `item` again; one that goes unanswered again is given back to {@link LedgerRetries.keep}. */
  tryAgain(item: T, ctx: Context): Promise<void>;
  /**
   * Whether trying `item` asks the ledger inside the mailbox (default: yes): only those stop a
   * round at an unanswered ask, and are stopped by it.
   */
  inMailbox?(item: T): boolean;
  /** The validator's message that makes the next round of tries. */
  again: TrainingValidatorMessage;
  /** First wait before a try again, ms, read at each use; default {@link END_RETRY_MS}. */
  retryMs(): number | undefined;
  /** The timers the waits before a try again run on (the validator's `timers`); default real time. */
  timers?: ConnectionTimers;
  /** What the log calls them all, before `not read back` or `not kept on disk`. */
  label: string;
  /** What the log calls one, after `the ledger did not answer for another`. */
  noun: string;
  /** The log line of `item` kept, its ledger ask unanswered (`error`). */
  kept(item: T, error: Error): string;
  /** The log line of `item` dropped for `reason`, its ledger ask unanswered (`error`). */
  dropped(item: T, reason: string, error: Error): string;
  /** Where the lines go. */
  log(line: string): void;
}

/** See the module doc. */
export class LedgerRetries<T extends Retried> {
  readonly #options: LedgerRetriesOptions<T>;
  /** What is kept, by key. */
  readonly #kept = new Map<string, T>();
  /** Whether the next round of tries is on its way. */
  #againScheduled = false;
  /** What is kept, across a stop (`dir`). */
  readonly #store: KeptHeldTrainingProofs | undefined;

  /** @param options See {@link LedgerRetriesOptions}. */
  constructor(options: LedgerRetriesOptions<T>) {
    this.#options = options;
    this.#store = options.dir === undefined
      ? undefined
      : KeptHeldTrainingProofs.in(options.dir, options.folder, options.max);
  }

  /**
   * At start: what was kept when the validator last stopped (untrusted; a failed read is logged
   * and reads as nothing). Give what checks out to {@link LedgerRetries.restore}, or take it
   * again otherwise; the rest leaves the folder at its next write.
   */
  async read(): Promise<KeptHeldProof[]> {
    return await this.#store?.read().catch((error) => {
      this.#options.log(`${this.#options.label} not read back: ${(error as Error).message}`);
      return [];
    }) ?? [];
  }

  /**
   * Keep again (in memory, within `max`) what was read back and checks out, and try it again at
   * the next round (not in the start itself: a hung ledger would hold it up to a timeout each).
   */
  restore(ctx: Context, items: Iterable<T>): void {
    for (const item of items) {
      if (this.#kept.size < this.#options.max) this.#kept.set(this.#options.key(item), item);
    }
    if (this.#kept.size > 0) this.#againLater(ctx);
  }

  /**
   * Keep `item`, whose ledger ask went unanswered (`error`), to try again after a wait that
   * doubles; past `MAX_END_ATTEMPTS` tries, or past the bounds, it is dropped, logged. On disk
   * before it counts as kept (one write per item newly kept, within the bound); a validator
   * stopping keeps it too, for the next start.
   */
  async keep(ctx: Context, item: T, error: Error): Promise<void> {
    const options = this.#options;
    const key = options.key(item);
    const duplicate = this.#kept.has(key) ? options.duplicate : undefined;
    if (duplicate === "ignored") return;
    const dropped = options.refusal?.(item) ??
      (item.attempts >= MAX_END_ATTEMPTS
        ? `${item.attempts} tries`
        : duplicate === "replaces"
        ? undefined
        : duplicate !== undefined
        ? duplicate.dropped
        : this.outOfBounds(item));
    if (dropped !== undefined) {
      options.log(options.dropped(item, dropped, error));
      return;
    }
    this.#kept.set(key, item);
    await this.keepOnDisk();
    options.log(options.kept(item, error));
    if (!ctx.signal.aborted) this.#againLater(ctx);
  }

  /**
   * Why `item` would not fit beside what is kept and what is tried outside the mailbox
   * (`inFlight`), both on disk, other keys than its own: `too many kept` (`max`), or too many
   * from its share (`maxPerShare`); undefined: it fits. {@link LedgerRetries.keep} asks it, and
   * so does an owner before it puts something on disk while it is tried the first time.
   */
  outOfBounds(item: T): string | undefined {
    const options = this.#options;
    const key = options.key(item);
    const held = new Map([...this.#kept, ...(options.inFlight?.() ?? [])]);
    held.delete(key);
    const share = options.share(item);
    const fromShare = share === undefined
      ? 0
      : [...held.values()].filter((other) => options.share(other) === share).length;
    if (held.size >= options.max) return "too many kept";
    if (fromShare >= options.maxPerShare) return `too many kept from its ${options.shareName}`;
    return undefined;
  }

  /**
   * Try again everything kept (the validator's `again` message): kept again while the ledger still
   * does not answer; one unanswered ask per round of tries.
   */
  async again(ctx: Context): Promise<void> {
    const options = this.#options;
    this.#againScheduled = false;
    const due = [...this.#kept.values()];
    this.#kept.clear();
    let unanswered: Error | undefined;
    for (const item of due) {
      // Stopped: left on disk as kept, for the next start.
      if (ctx.signal.aborted) return;
      const inMailbox = options.inMailbox?.(item) ?? true;
      if (inMailbox && unanswered !== undefined) {
        await this.keep(ctx, { ...item, attempts: item.attempts + 1 }, unanswered);
        continue;
      }
      await options.tryAgain(item, ctx);
      if (inMailbox && this.#kept.has(options.key(item))) {
        unanswered = new Error(`the ledger did not answer for another ${options.noun}`);
      }
    }
    // Those answered (or dropped) leave the disk.
    await this.keepOnDisk();
  }

  /**
   * Make the folder hold what is kept now, and what is being tried outside the mailbox. A failed
   * write costs only their survival of a restart, not their retry: logged.
   */
  async keepOnDisk(): Promise<void> {
    if (this.#store === undefined) return;
    const entries: HeldProofToKeep[] = [];
    for (const [key, item] of [...this.#kept, ...(this.#options.inFlight?.() ?? [])]) {
      const entry = this.#options.onDisk(key, item);
      if (entry !== undefined) entries.push(entry);
    }
    await this.#store.keep(entries).catch((error) =>
      this.#options.log(`${this.#options.label} not kept on disk: ${(error as Error).message}`)
    );
  }

  /** Tell the `again` message after a wait that doubles with the fewest tries kept, unless on its way. */
  #againLater(ctx: Context): void {
    if (this.#againScheduled) return;
    this.#againScheduled = true;
    const fewest = Math.min(...[...this.#kept.values()].map((kept) => kept.attempts));
    const wait = retryWait(this.#options.retryMs(), fewest);
    // Told, not run here: what is kept changes in the validator's `receive`.
    void sleep(wait, ctx.signal, this.#options.timers).then(() => {
      if (!ctx.signal.aborted) return ctx.self.tell(this.#options.again);
    }).catch(() => {}); // stopped meanwhile: the next start reads them from the disk
  }
}
