/**
 * The jobs a forwarding node has assigned: each job id whose worker's receipt it handed to its
 * validator with its signed assignment, and how that receipt ended the job. A ledger pays one
 * assigned receipt per job: a second assignment of the same job id (its client's retry with the
 * same nonce, run by another worker) is refused `double_assignment`, and the receipt recorded
 * first loses its credit too, so neither worker is paid. The port refuses such a retry at
 * submission instead ({@link AssignedJobError}).
 *
 * Memory only, bounded: a restart forgets it, as does eviction of the oldest past
 * {@link MAX_ASSIGNED_JOBS}.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/**
 * How many assigned job ids are remembered (the oldest forgotten first): a retry comes seconds
 * or minutes after its job ended, and at a few hundred jobs a minute this holds hours of them
 * in a few MiB (a 64-character hex id and a number each).
 */
export const MAX_ASSIGNED_JOBS = 16_384;

/**
 * A client sent again a job (same job id: same nonce) whose receipt this node already assigned:
 * run again, the second receipt's assignment would void the first's pay in every ledger.
 */
export class AssignedJobError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   * @param jobId The job id.
   * @param cancelledAt The tokens the assigned receipt covers when it was signed `cancelled`;
   *   absent when the job ran to its end.
   */
  constructor(jobId: string, cancelledAt?: number) {
    super(
      "duplicate_job",
      cancelledAt === undefined
        ? `job ${jobId} already ran to its end and its receipt was assigned; send it with a ` +
          `new nonce`
        : `job ${jobId} was cancelled at ${cancelledAt} tokens and its receipt assigned; ` +
          `send it with a new nonce`,
    );
    this.jobId = jobId;
  }
}

/** The job ids this node assigned (see the module comment). */
export class AssignedJobs {
  /** Job id → the cancelled receipt's token count, or undefined (finished); insertion order. */
  readonly #jobs = new Map<string, number | undefined>();
  readonly #max: number;

  /**
   * Create it.
   * @param max How many to remember (default {@link MAX_ASSIGNED_JOBS}).
   */
  constructor(max: number = MAX_ASSIGNED_JOBS) {
    this.#max = max;
  }

  /** Remember `jobId` as assigned; `cancelledAt` when its receipt was signed `cancelled`. */
  assigned(jobId: string, cancelledAt?: number): void {
    this.#jobs.delete(jobId);
    this.#jobs.set(jobId, cancelledAt);
    if (this.#jobs.size > this.#max) this.#jobs.delete(this.#jobs.keys().next().value!);
  }

  /** @throws {AssignedJobError} when `jobId` was assigned here. */
  check(jobId: string): void {
    if (this.#jobs.has(jobId)) throw new AssignedJobError(jobId, this.#jobs.get(jobId));
  }
}
