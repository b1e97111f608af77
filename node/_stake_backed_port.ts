/**
 * A worker's admission of a job by its stake: a job whose receipt would earn (it names a
 * requester other than this node) is refused `insufficient_stake` before it runs when this node's
 * own ledger shows too little free stake to back the receipt's lock (`network/_job_stake_lock.ts`:
 * `slashMultiplier ×` the most it can earn, prompt tokens included). Computed anyway, the receipt
 * would be refused `insufficient_stake` by every ledger that sees the same stake, and the work go
 * unpaid (review s78 vprompt F2). The router takes the refusal as a full worker's and asks the
 * next one (`network/_failure_codes.ts`).
 *
 * A job admitted here holds its worst-case lock here from its admission until this node's ledger
 * holds its receipt (the ledger's own lock then counts it), or it ended with no receipt, or no
 * ledger will record its receipt any more: a burst of jobs, or a job admitted between a receipt's
 * signing and its record, is not admitted against the same free stake (review s79 vmoney F1).
 * "Any more" is the validator's own give-up, not a guess: its intake refuses a receipt signed
 * more than `STALE_RECEIPT_AGE_MS` ago (`actors/_receipt_intake.ts`, `receipt_stale`), also one it
 * held meanwhile on a full disk (`actors/_validator_read_only.ts`) or across a restart. Before, the
 * lock went 60 s after the job's end, and a receipt the read-only validator recorded later found
 * its stake admitted to a second job, whose receipt was refused unpaid (review s79 vcrash F1).
 * A receipt the ledger refuses for good gives the lock back at once: one that does not verify
 * (every copy is the same bytes), or whose job a receipt holds that no copy of this one can take
 * it from (this worker's own, or another worker's recorded with its assignment): nothing of it is
 * locked, nor will be, and held until stale (7.5 min) it shut the worker to jobs its stake backed
 * (stop 80). A refusal for now keeps it (review s80 vadm F1-F3): its stake short while other
 * receipts' windows are open (sent again once it frees, it is recorded), or its job held by
 * another worker's receipt recorded without an assignment (a copier's: the router's assigned copy
 * of this one takes the job from it and locks the stake), this worker's claim kept against such a
 * holder included. So does a receipt the ledger would still record (not handed to it yet, or held
 * on a full disk). Released, the next job was admitted, computed, and its receipt refused unpaid.
 * One client's open jobs hold at most {@link REQUESTER_STAKE_SHARE} of the free stake (its first
 * one excepted), so its queued jobs cannot shut the worker to everyone else (F6). The client is
 * the submitter the port is told (`SubmitOptions.client`: a peer's connection key), not the
 * job's `requester`, which the peer writes itself: a fresh key per job took the whole free stake
 * (review s79 vcrash F2).
 *
 * The ledger is read synchronously, from the memory of the validator's open ledger, never through
 * the validator's mailbox, which the intake may hold for seconds per receipt (F2). A node that
 * keeps no ledger, or that has no stake in it (a receipt of a worker without stake is held for
 * its pledge, not lost), admits every job: it knows no stake to check. A node whose ledger is not
 * open now (its validator starting or restarting) refuses: it never admits unchecked. Used by
 * `node.ts` for the peers' and the clients' jobs alike. Not part of the public API.
 *
 * @module
 */
import type { InferencePort, JobSummary } from "../inference/inference_port.ts";
import { jobId, type TextJob } from "../protocols/job.ts";
import { toHex } from "../protocols/hash.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { Account, Ledger } from "../proof/ledger.ts";
import { freeStake, type LedgerTerms } from "../proof/_ledger_amounts.ts";
import { InsufficientStakeError } from "../proof/ledger_errors.ts";
import { roundCredits } from "../proof/ledger_state.ts";
import type { PromptTokenCounter } from "../network/_prompt_token_claim.ts";
import { DEFAULT_LEDGER_TERMS, jobStakeLock } from "../network/_job_stake_lock.ts";
import { STALE_RECEIPT_AGE_MS } from "../proof/challenge_timing.ts";

/**
 * The most of this worker's free stake one client's open jobs may hold here (its first job is
 * never refused for it). Half, as a peer's job places (`DEFAULT_MAX_JOBS_PER_PEER`, 32) are about
 * half of a default worker's 4 slots and 64 queue places (`too_many_jobs`,
 * `inference/serve_inference.ts`): one peer — a router forwards all its clients' jobs under
 * its own key — can fill half, and the other half stays for everyone else.
 */
export const REQUESTER_STAKE_SHARE = 1 / 2;

/** A job refused because this worker's free stake cannot back its receipt's lock. */
export class JobUnbackedError extends InsufficientStakeError {
  /**
   * Create the error.
   * @param lock The most stake the job's receipt can lock.
   * @param free What of this worker's stake is free, less the locks of the jobs it runs.
   */
  constructor(lock: number, free: number) {
    super(lock, free);
    this.message = `this worker's receipt for the job could lock up to ${lock} of its stake, ` +
      `and it has ${free} free: refused before the work, not computed and left unpaid`;
  }
}

/** A job refused because its requester's open jobs hold their share of this worker's stake. */
export class RequesterShareError extends InsufficientStakeError {
  /**
   * Create the error.
   * @param lock The most stake the job's receipt can lock.
   * @param holding What the requester's open jobs here hold already.
   * @param share The most of the free stake one requester's jobs may hold.
   */
  constructor(lock: number, holding: number, share: number) {
    super(lock, Math.max(0, roundCredits(share - holding)));
    this.message = `this requester's open jobs here hold ${holding} of this worker's stake, and ` +
      `one requester may hold ${share}: the job's receipt could lock up to ${lock} more; refused ` +
      `before the work, not computed`;
  }
}

/** A job refused because this worker's ledger is not open now: its free stake is unknown. */
export class StakeUnknownError extends InsufficientStakeError {
  /** Create the error. */
  constructor() {
    super(0, 0);
    this.message = "this worker's ledger is not open now (its validator starting or " +
      "restarting): its free stake cannot be read, so the job is refused before the work, " +
      "not computed unchecked";
  }
}

/** What {@link refusingUnbacked} reads of this node's ledger, synchronously. */
export interface OwnStake {
  /** This node's account now. */
  account(): Readonly<Account>;
  /** Whether the ledger holds this node's receipt for job `jobId` (its lock is in `account`). */
  recorded(jobId: string): boolean;
  /**
   * Whether the ledger refuses `receipt`, this node's for an admitted job, for good (its form,
   * its job held for good by another receipt): nothing of it is locked, nor will be by any copy.
   * A refusal for now (its stake short, its job held by an unassigned receipt) is not one.
   * Absent: never known, and such a job's lock is held until the receipt is stale.
   */
  refuses?(receipt: Receipt): boolean;
}

/** The reads of a {@link Ledger} that {@link ownStakeIn} takes. */
export type LedgerStakeReads = Pick<
  Ledger,
  "account" | "receiptOfJob" | "receipt" | "keepsClaim" | "receiptRefusal"
>;

/** {@link OwnStake} of key `self` in `ledger`. */
export function ownStakeIn(ledger: LedgerStakeReads, self: Uint8Array): OwnStake {
  const hex = toHex(self);
  /** The record of the receipt holding job `id` here, if any. */
  const holder = (id: string) => {
    const receipt = ledger.receiptOfJob(id);
    return receipt === undefined ? undefined : ledger.receipt(receipt);
  };
  /**
   * Whether job `id` is held here for good against any copy of this node's receipt: by this
   * node's own receipt, or by another worker's recorded with its assignment (this node's
   * assigned copy is then a double assignment or a kept claim, never recorded). Another worker's
   * receipt recorded without one is not: this node's assigned copy (the router's announcement)
   * takes the job from it and locks this node's stake (review s80 vadm F1, F3).
   */
  const heldForGood = (id: string) => {
    const record = holder(id);
    return record !== undefined && (record.worker === hex || record.requester !== undefined);
  };
  return {
    account: () => ledger.account(self),
    recorded: (id) => {
      const record = holder(id);
      if (record === undefined) return false;
      // Another worker's assigned receipt holding the job keeps this node's as a claim, its
      // lock settled; an unassigned holder's is only for now (`heldForGood`).
      return record.worker === hex || (heldForGood(id) && ledger.keepsClaim(id, self));
    },
    // Only a refusal no copy of the receipt can undo: its form (every copy is the same bytes),
    // or its job held for good. A refusal for now keeps the lock (review s80 vadm F2): a stake
    // short while other receipts' windows are open records the receipt once it frees (it is
    // sent again: the router's announcement, a held receipt), as may a job held by an
    // unassigned receipt. Asked live, it is answered the same on every admission until final.
    refuses: (receipt) => {
      let code: string | undefined;
      try {
        code = ledger.receiptRefusal(receipt);
      } catch {
        return false; // not answered: held as before, until recorded or stale
      }
      switch (code) {
        case "receipt_rejected":
          return true;
        case "job_already_recorded":
        case "double_assignment":
        case "equivocation":
          return heldForGood(receipt.jobId);
        default:
          return false; // recordable, or refused for now (`insufficient_stake`, ...)
      }
    },
  };
}

/** What {@link refusingUnbacked} reads of the node. */
export interface StakeBackedPortOptions {
  /** This node's hex key: its own jobs (`requester` this node) earn nothing and are not checked. */
  self: string;
  /**
   * This node's ledger while it is open, undefined while it is not (a job is then refused).
   * Absent: the node keeps no ledger (no validator role), and every job is admitted.
   */
  ledger?: () => OwnStake | undefined;
  /** This node's count of a job's prompt tokens (`HeldModelPromptCounter.count`). */
  count: PromptTokenCounter;
  /**
   * Reads a model's tokenizer, so {@link count} is exact (`HeldModelPromptCounter
   * .promptCounting`): asked only when the window's bound does not fit the free stake.
   */
  prepare?: (model: string) => Promise<unknown>;
  /** The terms the node's ledger runs with (default `DEFAULT_LEDGER_TERMS`). */
  terms?: LedgerTerms;
  /**
   * Unix ms against which an unrecorded receipt's age is read (default `Date.now`: the clock the
   * validator's intake refuses a stale receipt by, on the same node).
   */
  now?: () => number;
}

/** A job admitted here whose lock its receipt has not taken over in the ledger yet. */
interface Admitted {
  readonly jobId: string;
  /** Who submitted it: the key of its share (see the module doc, F2). */
  readonly client: string;
  readonly lock: number;
  /**
   * Unix ms past which no intake records its receipt (signed end + `STALE_RECEIPT_AGE_MS`);
   * undefined while it runs.
   */
  recordableUntil?: number;
  /** The receipt it ended with, when shaped as one: asked of the ledger (`OwnStake.refuses`). */
  receipt?: Receipt;
}

/**
 * Where receipt `receipt` says its job ended (unix ms, as the intake reads it), or undefined when
 * it is not shaped as a receipt (the port's summary types it `unknown`: then its end is taken as
 * now, about when it was signed).
 */
function signedEnd(receipt: unknown): number | undefined {
  const timings = (receipt as { timings?: Partial<Receipt["timings"]> } | null)?.timings;
  const { startedAt, totalMs } = timings ?? {};
  return typeof startedAt === "number" && typeof totalMs === "number"
    ? startedAt + totalMs
    : undefined;
}

/** `receipt` as a {@link Receipt} when it is shaped as one (the summary types it `unknown`). */
function asReceipt(receipt: unknown): Receipt | undefined {
  return typeof (receipt as Partial<Receipt> | null)?.jobId === "string" &&
      (receipt as Partial<Receipt>).worker instanceof Uint8Array
    ? receipt as Receipt
    : undefined;
}

/** `port`, whose submits of earning jobs are refused when this node's stake cannot back them. */
export function refusingUnbacked(
  port: InferencePort,
  options: StakeBackedPortOptions,
): InferencePort {
  const terms = options.terms ?? DEFAULT_LEDGER_TERMS;
  const now = options.now ?? Date.now;
  const admitted = new Set<Admitted>();
  const lockOf = (job: TextJob) => jobStakeLock(job, options.count(job), terms);
  /** The locks held here by `client`'s jobs, or by all, after dropping what the ledger holds. */
  const held = (stake: OwnStake, client?: string) => {
    let sum = 0;
    for (const job of admitted) {
      if (job.recordableUntil !== undefined) {
        // Recorded (its lock is the ledger's), refused by the ledger for good (no copy will
        // be recorded), or stale (no intake records it any more).
        const settled = stake.recorded(job.jobId) ||
          (job.receipt !== undefined && stake.refuses?.(job.receipt) === true);
        if (settled || now() > job.recordableUntil) {
          admitted.delete(job);
          continue;
        }
      }
      if (client === undefined || job.client === client) sum += job.lock;
    }
    return roundCredits(sum);
  };
  const ended = (job: Admitted) => (summary: JobSummary) => {
    if (summary.receipt === undefined) admitted.delete(job);
    else {
      job.recordableUntil = (signedEnd(summary.receipt) ?? now()) + STALE_RECEIPT_AGE_MS;
      job.receipt = asReceipt(summary.receipt);
    }
  };
  return {
    submit: async (job, submitOptions) => {
      const requester = job.requester;
      if (requester === undefined || requester === options.self || !options.ledger) {
        return await port.submit(job, submitOptions);
      }
      let stake = options.ledger();
      if (stake === undefined) throw new StakeUnknownError();
      // No stake here: the ledger holds such a receipt until the worker's pledge comes (a
      // staked worker's refused receipt is lost), and its stake may be pledged to the ledgers
      // that pay it but not to its own. Nothing here says it cannot be backed.
      if (stake.account().stake <= 0) return await port.submit(job, submitOptions);
      let lock = lockOf(job);
      // The window's bound (a tokenizer not read yet) is no ground to refuse: count exactly.
      if (lock > freeStake(stake.account()) - held(stake) && options.prepare !== undefined) {
        await options.prepare(job.model).catch(() => undefined);
        lock = lockOf(job);
        stake = options.ledger();
        if (stake === undefined) throw new StakeUnknownError();
      }
      // From here to `admitted.add` nothing awaits: no other admission reads between.
      const ledgerFree = freeStake(stake.account());
      const free = roundCredits(ledgerFree - held(stake));
      if (lock > free) throw new JobUnbackedError(lock, Math.max(0, free));
      // The connection's key where a peer submitted it (a router's clients' jobs name the router,
      // its own key: `docs/PROTOCOL.md`), else the job's requester.
      const client = submitOptions?.client ?? requester;
      const holding = held(stake, client);
      const share = roundCredits(ledgerFree * REQUESTER_STAKE_SHARE);
      if (holding > 0 && roundCredits(holding + lock) > share) {
        throw new RequesterShareError(lock, holding, share);
      }
      const entry: Admitted = { jobId: jobId(job), client, lock };
      admitted.add(entry);
      try {
        const handle = await port.submit(job, submitOptions);
        // `done` never rejects; a rejection all the same ends the job with no receipt known.
        handle.done.then(ended(entry), () => admitted.delete(entry));
        return handle;
      } catch (error) {
        admitted.delete(entry);
        throw error;
      }
    },
    models: () => port.models(),
    stats: () => port.stats(),
  };
}
