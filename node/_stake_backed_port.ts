/**
 * A worker's admission of a job by its stake: a job whose receipt would earn (it names a
 * requester other than this node) is refused `insufficient_stake` before it runs when this node's
 * own ledger shows too little free stake to back the receipt's lock (`network/_job_stake_lock.ts`:
 * `slashMultiplier ×` the most it can earn, prompt tokens included). Computed anyway, the receipt
 * would be refused `insufficient_stake` by every ledger that sees the same stake, and the work go
 * unpaid (review s78 vprompt F2). The router takes the refusal as a full worker's and asks the
 * next one (`network/_failure_codes.ts`).
 *
 * Jobs admitted here whose receipts are not in the ledger yet hold their worst-case lock here
 * until they end, so a burst of jobs is not admitted against the same free stake. A node that
 * keeps no ledger, whose ledger cannot answer now, or that has no stake in it (a receipt of a
 * worker without stake is held for its pledge, not lost), admits every job: it knows no stake to
 * check. Used by `node.ts` for the peers' and the clients' jobs alike. Not part of the public
 * API.
 *
 * @module
 */
import type { InferencePort } from "../inference/inference_port.ts";
import type { TextJob } from "../protocols/job.ts";
import type { Account } from "../proof/ledger_state.ts";
import { freeStake, type LedgerTerms } from "../proof/_ledger_amounts.ts";
import { InsufficientStakeError } from "../proof/ledger_errors.ts";
import { roundCredits } from "../proof/ledger_state.ts";
import type { PromptTokenCounter } from "../network/_prompt_token_claim.ts";
import { DEFAULT_LEDGER_TERMS, jobStakeLock } from "../network/_job_stake_lock.ts";

/**
 * How long a job's admission waits on the node's ledger for its account: the validator answers
 * it from memory, so a ledger slower than this is busy (a long mailbox), and the job is admitted
 * as where no ledger is known rather than held at its start for the ask's default 30 s.
 */
export const STAKE_ASK_TIMEOUT_MS = 1_000;

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

/** What {@link refusingUnbacked} reads of the node. */
export interface StakeBackedPortOptions {
  /** This node's hex key: its own jobs (`requester` this node) earn nothing and are not checked. */
  self: string;
  /** This node's account in its own ledger; undefined where it keeps none or cannot say now. */
  account: () => Promise<Readonly<Account> | undefined>;
  /** This node's count of a job's prompt tokens (`HeldModelPromptCounter.count`). */
  count: PromptTokenCounter;
  /**
   * Reads a model's tokenizer, so {@link count} is exact (`HeldModelPromptCounter
   * .promptCounting`): asked only when the window's bound does not fit the free stake.
   */
  prepare?: (model: string) => Promise<unknown>;
  /** The terms the node's ledger runs with (default `DEFAULT_LEDGER_TERMS`). */
  terms?: LedgerTerms;
}

/** `port`, whose submits of earning jobs are refused when this node's stake cannot back them. */
export function refusingUnbacked(
  port: InferencePort,
  options: StakeBackedPortOptions,
): InferencePort {
  const terms = options.terms ?? DEFAULT_LEDGER_TERMS;
  /** Worst-case locks of the jobs admitted here that have not ended. */
  let held = 0;
  const lockOf = (job: TextJob) => jobStakeLock(job, options.count(job), terms);
  return {
    submit: async (job, submitOptions) => {
      if (job.requester === undefined || job.requester === options.self) {
        return await port.submit(job, submitOptions);
      }
      const account = await options.account().catch(() => undefined);
      // No stake here: the ledger holds such a receipt until the worker's pledge comes (a
      // staked worker's refused receipt is lost), and its stake may be pledged to the ledgers
      // that pay it but not to its own. Nothing here says it cannot be backed.
      if (account === undefined || account.stake <= 0) {
        return await port.submit(job, submitOptions);
      }
      let lock = lockOf(job);
      // The window's bound (a tokenizer not read yet) is no ground to refuse: count exactly.
      if (lock > freeStake(account) - held && options.prepare !== undefined) {
        await options.prepare(job.model).catch(() => undefined);
        lock = lockOf(job);
      }
      const free = roundCredits(freeStake(account) - held);
      if (lock > free) throw new JobUnbackedError(lock, Math.max(0, free));
      held = roundCredits(held + lock);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        held = roundCredits(held - lock);
      };
      try {
        const handle = await port.submit(job, submitOptions);
        handle.done.then(release, release);
        return handle;
      } catch (error) {
        release();
        throw error;
      }
    },
    models: () => port.models(),
    stats: () => port.stats(),
  };
}
