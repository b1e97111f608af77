/**
 * The jobs a forwarding node holds by their id: each job running for one of its clients now, and
 * each job whose worker's receipt it handed to its validator with its signed assignment (and how
 * that receipt ended the job). A ledger pays one assigned receipt per job: a second assignment of
 * the same job id (its client's retry with the same nonce, run by another worker) is refused
 * `double_assignment`, and the receipt recorded first loses its credit too while it is open, so
 * neither worker is paid; once that receipt is final it stays paid, and the second is refused
 * `job_already_recorded` for good (ledgers keep a job's receipt forever), its honest worker
 * unpaid. The port refuses such a retry at submission instead: one of a job it assigned
 * ({@link AssignedJobError}), and one of a job still running, which would be assigned twice as
 * both runs end ({@link RunningJobError}); both `duplicate_job`.
 *
 * The assigned ones are kept on disk when the port is given a file (`_assigned_job_file.ts`), so
 * a restart still refuses their retries; bounded by {@link MAX_ASSIGNED_JOBS}, the oldest
 * forgotten first. The running ones are memory only: a restart ends them.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { AssignedJobFile, type AssignedRecord } from "./_assigned_job_file.ts";

/**
 * How many assigned job ids are remembered (the oldest forgotten first), in memory and on disk.
 * What must be covered is the window in which a retry's second assignment voids the first
 * receipt's pay in some ledger: from its signing to the last moment a ledger may record it
 * (`STALE_RECEIPT_AGE_MS`, 7.5 min) plus that ledger's challenge window (10 min by default) and
 * clock skew, 22.5 min (`heldClaimMaxAgeMs` of the default window). 16,384 ids hold that at up to
 * 728 jobs a minute, in about 2 MiB of memory and 640 KiB of file (40 bytes each, twice that
 * before a compaction). Past the window a retry costs its own worker only (refused
 * `job_already_recorded`), so no age is set: an id is kept until the bound pushes it out, since no
 * ledger ever forgets the job.
 */
export const MAX_ASSIGNED_JOBS = 16_384;

/** Job ids are SHA-256 hex digests: only those are kept on disk (the file's record is fixed). */
const JOB_ID_PATTERN = /^[0-9a-f]{64}$/;

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

/**
 * A client sent again a job (same nonce) that this node is still running for its first
 * submission: both runs would end in a receipt assigned by this node, and neither be paid.
 */
export class RunningJobError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super(
      "duplicate_job",
      `job ${jobId} is still running on this node for its first submission; wait for its end, ` +
        `or send it with a new nonce`,
    );
    this.jobId = jobId;
  }
}

/** Options of {@link AssignedJobs}. */
export interface AssignedJobsOptions {
  /** How many assigned job ids to remember (default {@link MAX_ASSIGNED_JOBS}). */
  max?: number;
  /**
   * The file to keep them in (`<dataDir>/assigned-jobs.log`, `_assigned_job_file.ts`), read back
   * once {@link AssignedJobs.loaded}. Absent: memory only.
   */
  file?: string;
}

/** The job ids this node runs or assigned (see the module comment). */
export class AssignedJobs {
  /** Job id → the cancelled receipt's token count, or undefined (finished); insertion order. */
  readonly #jobs = new Map<string, number | undefined>();
  /** The jobs its clients' first submissions run now. */
  readonly #running = new Set<string>();
  readonly #max: number;
  readonly #file?: AssignedJobFile;
  /**
   * Resolves once the ids kept on disk are read back (at once without a file); never rejects.
   * Records skipped as torn or damaged are in {@link dropped}; a file that cannot be read at all
   * leaves the memory as it is (empty), and its ids forgotten.
   */
  readonly loaded: Promise<void>;
  /** Records of the file skipped at load as torn or damaged (a header that is not ours: 1). */
  dropped = 0;

  /**
   * Create it.
   * @param options The bound, or the options ({@link AssignedJobsOptions}).
   */
  constructor(options: number | AssignedJobsOptions = {}) {
    const o = typeof options === "number" ? { max: options } : options;
    this.#max = o.max ?? MAX_ASSIGNED_JOBS;
    if (o.file !== undefined) this.#file = new AssignedJobFile(o.file);
    this.loaded = this.#load().catch(() => {});
  }

  async #load(): Promise<void> {
    if (this.#file === undefined) return;
    const { records, dropped } = await this.#file.load(this.#max);
    this.dropped = dropped;
    // Assigned since the port started (before the load ended) stays newest.
    const since = [...this.#jobs];
    this.#jobs.clear();
    for (const { jobId, cancelledAt } of records) this.#jobs.set(jobId, cancelledAt);
    for (const [jobId, cancelledAt] of since) this.#remember(jobId, cancelledAt);
  }

  /**
   * Remember `jobId` as assigned; `cancelledAt` when its receipt was signed `cancelled`. Resolves
   * once it is on disk (at once without a file); never rejects: a failed write leaves it in
   * memory only, refused until the node restarts.
   */
  assigned(jobId: string, cancelledAt?: number): Promise<void> {
    this.#remember(jobId, cancelledAt);
    const file = this.#file;
    if (file === undefined || !JOB_ID_PATTERN.test(jobId)) return Promise.resolve();
    return this.loaded.then(async () => {
      await file.append(cancelledAt === undefined ? { jobId } : { jobId, cancelledAt });
      // Twice the bound in the file: rewritten from memory, so it stays bounded too.
      if (file.records > 2 * this.#max) await file.compact(this.#records());
    }).catch(() => {});
  }

  /**
   * Refuse `jobId` if it was assigned here.
   * @throws {AssignedJobError} when `jobId` was assigned here.
   */
  check(jobId: string): void {
    if (this.#jobs.has(jobId)) throw new AssignedJobError(jobId, this.#jobs.get(jobId));
  }

  /**
   * A client's submission of `jobId` starts: refused when it was assigned here
   * ({@link AssignedJobError}) or is running for another submission ({@link RunningJobError});
   * else held as running until the returned function is called (once the submission's job has
   * ended and its receipt, if any, was assigned: {@link assigned} first).
   */
  start(jobId: string): () => void {
    this.check(jobId);
    if (this.#running.has(jobId)) throw new RunningJobError(jobId);
    this.#running.add(jobId);
    return () => this.#running.delete(jobId);
  }

  #remember(jobId: string, cancelledAt: number | undefined): void {
    this.#jobs.delete(jobId);
    this.#jobs.set(jobId, cancelledAt);
    if (this.#jobs.size > this.#max) this.#jobs.delete(this.#jobs.keys().next().value!);
  }

  /** The ids kept, oldest first, as the file writes them. */
  #records(): AssignedRecord[] {
    return [...this.#jobs]
      .filter(([jobId]) => JOB_ID_PATTERN.test(jobId))
      .map(([jobId, cancelledAt]) =>
        cancelledAt === undefined ? { jobId } : { jobId, cancelledAt }
      );
  }
}
