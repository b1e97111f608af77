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
 * a restart still refuses their retries. Each is kept with the time it was assigned, at least
 * {@link ASSIGNED_JOB_KEEP_MS}: past {@link MAX_ASSIGNED_JOBS} the oldest is forgotten only once
 * it is that old, unless {@link MAX_ASSIGNED_JOBS_HARD} forces it sooner (counted in
 * {@link AssignedJobs.stats}). The running ones are memory only: a restart ends them.
 *
 * With each assignment the port may keep what it hands its validator for the job (its handoff:
 * the worker's receipt, the job, the signed assignment), on disk before its client gets `done`,
 * until the validator took it ({@link AssignedJobs.handed}); those read back at a restart are
 * handed to the validator again ({@link AssignedJobsOptions.recover}): a router killed right after
 * its client got `done` left the receipt assigned nowhere (review s79 crash, F1).
 *
 * The port closes it as its node stops ({@link AssignedJobs.close}): the load and every write
 * asked before have ended when that resolves, and nothing is written after, so a node's data
 * directory holds still once the node has stopped.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import {
  ASSIGNED_JOBS_HEADER_BYTES,
  AssignedJobFile,
  type AssignedRecord,
  MAX_HANDOFF_BYTES,
  recordBytes,
} from "./_assigned_job_file.ts";
import { CLOCK_SKEW_MS, STALE_RECEIPT_AGE_MS } from "../proof/challenge_timing.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";

/**
 * How long an assigned job id is kept at least: the window in which a retry's second assignment
 * voids the first receipt's pay in some ledger, from its signing to the last moment a ledger may
 * record it (`STALE_RECEIPT_AGE_MS`) plus that ledger's challenge window (10 min by default) and
 * clock skew both ways: 22.5 min, `heldClaimMaxAgeMs` of the default window. Measured from its assignment here, which comes after its signing. Past it a
 * retry costs its own worker only (refused `job_already_recorded`), so an older id goes first.
 * Kept by count alone, 16,384 later jobs inside the window (12 a second) pushed an id out while
 * its retry still voided the first worker's pay (review s78 vassign, F4).
 */
export const ASSIGNED_JOB_KEEP_MS: number = STALE_RECEIPT_AGE_MS + 2 * CLOCK_SKEW_MS +
  DEFAULT_ECONOMICS.challengeWindowMs;

/**
 * How many assigned job ids are kept however old they are (the oldest forgotten first once older
 * than {@link ASSIGNED_JOB_KEEP_MS}), in memory and on disk: 16,384 cover the window at up to
 * 728 jobs a minute. Past the window no ledger can be harmed, but no ledger ever forgets the job
 * either, so ids are kept this far for free.
 */
export const MAX_ASSIGNED_JOBS = 16_384;

/**
 * Most assigned job ids kept at all: past it the oldest is forgotten even inside the window
 * ({@link AssignedJobs.stats}' `forcedEvictions`), so a flood of jobs cannot grow the memory
 * without bound. 131,072 cover the window at up to 5,825 jobs a minute (97 a second), in about
 * 22 MiB of memory (about 170 bytes an id: a 64-digit hex key, its entry and its map slot,
 * measured with V8) and 5.5 MiB of file (44 bytes a record; twice that before a compaction).
 */
export const MAX_ASSIGNED_JOBS_HARD = 131_072;

/**
 * Dead bytes of the file (records superseded or forgotten since its last rewrite) past which it
 * is rewritten from memory, once they are as many as its live bytes too (the records it would
 * write): handoffs carry their job (up to 448 KiB), so a bound by records alone let it grow to
 * gigabytes. 64 MiB is about 150 of the largest jobs, or thousands of usual ones, between
 * rewrites. Counted on all its bytes, a file holding more than this of handoffs the validator had
 * not taken yet was rewritten at every append, all of them each time (quadratic work); now each
 * rewrite follows at least as many bytes appended as it writes, and the file stays under twice
 * its live bytes or this past them.
 */
export const MAX_ASSIGNED_FILE_BYTES = 64 * 1024 * 1024;

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

/**
 * A client sent again a job (same nonce) whose every token it got and whose worker's receipt this
 * node still asks for (its `end` event was lost with the connection: `_lost_ends.ts`): that
 * receipt is assigned when it comes, and a retry's run would be assigned too, neither paid. Once
 * the lost end is forgotten (its window over, its place yielded, its receipt refused) the retry
 * runs; a receipt that came and was assigned is refused with {@link AssignedJobError}.
 */
export class OwedReceiptError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super(
      "duplicate_job",
      `job ${jobId} ran to its end and its worker's receipt is still owed (this node asks for ` +
        `it); send it with a new nonce, or again once the receipt is given up`,
    );
    this.jobId = jobId;
  }
}

/** Options of {@link AssignedJobs}. */
export interface AssignedJobsOptions {
  /**
   * How many assigned job ids to keep however old (default {@link MAX_ASSIGNED_JOBS}); past it
   * the oldest goes once older than {@link keepMs}.
   */
  max?: number;
  /** Most ids kept at all (default {@link MAX_ASSIGNED_JOBS_HARD}, at least {@link max}). */
  hardMax?: number;
  /** How long an id is kept at least (default {@link ASSIGNED_JOB_KEEP_MS}). */
  keepMs?: number;
  /** Unix ms now: when an id was assigned (default `Date.now`; tests pass their own). */
  now?: () => number;
  /**
   * The file to keep them in (`<dataDir>/assigned-jobs.log`, `_assigned_job_file.ts`), read back
   * once {@link AssignedJobs.loaded}. Absent: memory only.
   */
  file?: string;
  /**
   * Whether a job's receipt is still owed (its worker's end event lost: the port's lost-end
   * store, which bounds and ends the owe); such a job is refused ({@link OwedReceiptError}) and is
   * written to the file only when its receipt is assigned ({@link AssignedJobs.assigned}).
   * Absent: none is.
   */
  owed?: (jobId: string) => boolean;
  /**
   * Called at load with each handoff read back that the validator had not taken (see the module
   * doc), oldest first; its owner hands it over and then calls {@link AssignedJobs.handed}.
   */
  recover?: (jobId: string, handoff: Uint8Array) => void;
  /**
   * Dead bytes past which the file is rewritten, once as many as its live ones (default
   * {@link MAX_ASSIGNED_FILE_BYTES}; tests pass a small one).
   */
  maxFileBytes?: number;
  /**
   * Told a line for each stretch of the file skipped at load as torn or damaged (where, how long):
   * a receipt handoff in it is lost. Absent: counted only ({@link AssignedJobsStats}).
   */
  log?: (line: string) => void;
}

/**
 * What went wrong with the memory of assigned jobs since the port started: each is a job whose
 * retry may be forwarded again, and run twice (`/metrics`:
 * `veriflow_router_assigned_jobs_faults_total{kind}`).
 */
export interface AssignedJobsStats {
  /** Loads of the file that failed (it could not be read, or its rewrite failed). */
  loadFailures: number;
  /** Appends to the file that failed (a full disk): those ids are kept in memory only. */
  appendFailures: number;
  /** Records of the file skipped at load as torn or damaged (a header that is not ours: 1). */
  droppedRecords: number;
  /** Ids forgotten inside {@link ASSIGNED_JOB_KEEP_MS}, forced by {@link MAX_ASSIGNED_JOBS_HARD}. */
  forcedEvictions: number;
}

/** An assigned job held in memory. */
interface Assigned {
  /** The cancelled receipt's token count; undefined: it ran to its end. */
  cancelledAt?: number;
  /** When it was assigned here (unix ms); at the load for one read back from the file. */
  at: number;
  /** Its handoff, until the validator took it: kept by a compaction. */
  handoff?: Uint8Array;
}

/** The job ids this node runs or assigned (see the module comment). */
export class AssignedJobs {
  /** Job id → how it ended and when it was assigned; oldest first. */
  readonly #jobs = new Map<string, Assigned>();
  /** The jobs its clients' first submissions run now. */
  readonly #running = new Set<string>();
  readonly #max: number;
  readonly #hardMax: number;
  readonly #keepMs: number;
  readonly #now: () => number;
  readonly #file?: AssignedJobFile;
  readonly #owed: (jobId: string) => boolean;
  readonly #recover?: (jobId: string, handoff: Uint8Array) => void;
  readonly #maxFileBytes: number;
  readonly #log?: (line: string) => void;
  /** Bytes the records of {@link #jobs} take in the file: what a compaction writes. */
  #liveBytes = 0;
  /** Compactions of the file (its rewrites past the load). */
  #compactions = 0;
  /** Writes to the file not ended yet: each assignment's append, and a compaction after it. */
  readonly #writes = new Set<Promise<void>>();
  /** Set by {@link close}: from then on, assignments are kept in memory only. */
  #closing?: Promise<void>;
  readonly #stats: AssignedJobsStats = {
    loadFailures: 0,
    appendFailures: 0,
    droppedRecords: 0,
    forcedEvictions: 0,
  };
  /**
   * Resolves once the ids kept on disk are read back (at once without a file); never rejects.
   * A file that cannot be read at all leaves the memory as it is (empty), and its ids forgotten;
   * one whose rewrite fails keeps the ids read. Both are counted ({@link stats}).
   */
  readonly loaded: Promise<void>;

  /**
   * Create it.
   * @param options A bound by count alone (kept however young: the soft and hard bound at once),
   *   or the options ({@link AssignedJobsOptions}).
   */
  constructor(options: number | AssignedJobsOptions = {}) {
    const o = typeof options === "number" ? { max: options, hardMax: options } : options;
    this.#max = o.max ?? MAX_ASSIGNED_JOBS;
    this.#hardMax = Math.max(this.#max, o.hardMax ?? MAX_ASSIGNED_JOBS_HARD);
    this.#keepMs = o.keepMs ?? ASSIGNED_JOB_KEEP_MS;
    this.#now = o.now ?? Date.now;
    if (o.file !== undefined) this.#file = new AssignedJobFile(o.file);
    this.#owed = o.owed ?? (() => false);
    this.#recover = o.recover;
    this.#maxFileBytes = o.maxFileBytes ?? MAX_ASSIGNED_FILE_BYTES;
    this.#log = o.log;
    this.loaded = this.#load().catch(() => {
      this.#stats.loadFailures++;
    });
  }

  /** What went wrong so far ({@link AssignedJobsStats}); the counters never go down. */
  stats(): AssignedJobsStats {
    return { ...this.#stats };
  }

  /** Rewrites of the file to drop its dead records, since the port started (not at load). */
  get compactions(): number {
    return this.#compactions;
  }

  async #load(): Promise<void> {
    if (this.#file === undefined) return;
    const { records, skipped, rewriteFailed } = await this.#file.load(this.#hardMax);
    this.#stats.droppedRecords += skipped.length;
    for (const { offset, bytes } of skipped) {
      this.#log?.(
        `assigned jobs: skipped ${bytes} torn or damaged bytes at offset ${offset}; a receipt ` +
          `handoff or an assigned job id kept there is lost`,
      );
    }
    if (rewriteFailed) this.#stats.loadFailures++;
    // Their times are not on disk: taken as assigned now, so each is kept a whole window after a
    // restart, never less. Assigned since the port started (before the load ended) stays newest.
    const at = this.#now();
    const since = [...this.#jobs];
    for (const [jobId] of since) this.#forget(jobId);
    for (const { jobId, cancelledAt, handoff } of records) {
      this.#keep(jobId, { cancelledAt, at, handoff });
    }
    for (const [jobId, job] of since) this.#keep(jobId, job);
    this.#bound();
    for (const [jobId, { handoff }] of this.#jobs) {
      if (handoff !== undefined) this.#recover?.(jobId, handoff);
    }
  }

  /**
   * Write nothing more to the file: resolves once its load and every write asked before (an
   * assignment's append, a compaction) have ended; assignments after are kept in memory only, as
   * without a file. Never rejects; idempotent. At once without a file.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.loaded;
      // A write waits for the load before it reaches the file: awaited here, not by the file.
      await Promise.all(this.#writes);
      await this.#file?.close();
    })();
    return this.#closing;
  }

  /**
   * Remember `jobId` as assigned; `cancelledAt` when its receipt was signed `cancelled`;
   * `handoff`, what its owner hands the validator for it, kept until {@link handed}. Resolves
   * once it is on disk (at once without a file, or after {@link close}); never rejects: a failed
   * write leaves it in memory only, refused until the node restarts, and is counted
   * ({@link stats}).
   */
  assigned(jobId: string, cancelledAt?: number, handoff?: Uint8Array): Promise<void> {
    // Kept for the file only: without one (or closed), or too large for a record (none an honest
    // job makes), it is handed over from memory only, and memory holds no copy of it.
    const kept = this.#file !== undefined && this.#closing === undefined;
    if (!kept || (handoff !== undefined && handoff.length > MAX_HANDOFF_BYTES)) {
      handoff = undefined;
    }
    this.#keep(jobId, { cancelledAt, at: this.#now(), handoff });
    this.#bound();
    return this.#append(jobId, { jobId, cancelledAt, handoff });
  }

  /**
   * The validator took `jobId`'s handoff: forgotten here, and a record without it appended (not
   * waited for by anyone: read back before it, the handoff is only handed over twice, and the
   * ledger takes a receipt once). Nothing for a job not kept with one.
   */
  handed(jobId: string): Promise<void> {
    const job = this.#jobs.get(jobId);
    if (job?.handoff === undefined) return Promise.resolve();
    this.#keep(jobId, { ...job, handoff: undefined }, false);
    return this.#append(jobId, { jobId, cancelledAt: job.cancelledAt });
  }

  /** Append `record` to the file, if there is one and it is open; never rejects. */
  #append(jobId: string, record: AssignedRecord): Promise<void> {
    const file = this.#file;
    const closed = this.#closing !== undefined;
    if (file === undefined || closed || !JOB_ID_PATTERN.test(jobId)) return Promise.resolve();
    const write = this.#write(file, record);
    this.#writes.add(write);
    write.finally(() => this.#writes.delete(write));
    return write;
  }

  /** Append `record` to `file` once it is loaded, and compact it when due; never rejects. */
  #write(file: AssignedJobFile, record: AssignedRecord): Promise<void> {
    const { jobId, cancelledAt, handoff } = record;
    return this.loaded.then(async () => {
      const plain: AssignedRecord = cancelledAt === undefined ? { jobId } : { jobId, cancelledAt };
      await file.append(handoff === undefined ? plain : { ...plain, handoff }).catch(
        (error) => {
          this.#stats.appendFailures++;
          throw error;
        },
      );
      // Twice the records it keeps, or as many dead bytes as live ones and the byte bound:
      // rewritten from memory, so it stays bounded too, and each rewrite follows at least as
      // much appended as it writes (amortised).
      const many = file.records > 2 * Math.max(this.#max, this.#jobs.size);
      const live = ASSIGNED_JOBS_HEADER_BYTES + this.#liveBytes;
      const dead = file.bytes - live;
      if (many || dead >= Math.max(live, this.#maxFileBytes)) {
        this.#compactions++;
        await file.compact(this.#records());
      }
    }).catch(() => {});
  }

  /**
   * Refuse `jobId` if it was assigned here, or its receipt is still owed.
   * @throws {AssignedJobError} when `jobId` was assigned here.
   * @throws {OwedReceiptError} when its receipt is still owed ({@link AssignedJobsOptions.owed}).
   */
  check(jobId: string): void {
    const job = this.#jobs.get(jobId);
    if (job !== undefined) throw new AssignedJobError(jobId, job.cancelledAt);
    if (this.#owed(jobId)) throw new OwedReceiptError(jobId);
  }

  /**
   * A client's submission of `jobId` starts: refused when it was assigned here
   * ({@link AssignedJobError}), its receipt is owed ({@link OwedReceiptError}) or it is running for
   * another submission ({@link RunningJobError}); else held as running until the returned function
   * is called (once the submission's job has ended and its receipt, if any, was assigned:
   * {@link assigned} first).
   */
  start(jobId: string): () => void {
    this.check(jobId);
    if (this.#running.has(jobId)) throw new RunningJobError(jobId);
    this.#running.add(jobId);
    return () => this.#running.delete(jobId);
  }

  /**
   * Past {@link MAX_ASSIGNED_JOBS}, forget the oldest ids that are older than the keep window;
   * past {@link MAX_ASSIGNED_JOBS_HARD}, the oldest whatever their age, counted.
   */
  #bound(): void {
    const now = this.#now();
    for (const [jobId, { at }] of this.#jobs) {
      if (this.#jobs.size <= this.#max) return;
      const young = now - at < this.#keepMs;
      if (young && this.#jobs.size <= this.#hardMax) return;
      if (young) this.#stats.forcedEvictions++;
      this.#forget(jobId);
    }
  }

  /**
   * Hold `job` as `jobId`'s, at the newest place (`last`, the default) or at its own, and count
   * its bytes in the file.
   */
  #keep(jobId: string, job: Assigned, last = true): void {
    if (last) this.#forget(jobId);
    else this.#liveBytes -= this.#fileBytes(jobId, this.#jobs.get(jobId));
    this.#jobs.set(jobId, job);
    this.#liveBytes += this.#fileBytes(jobId, job);
  }

  /** Forget `jobId`, and its bytes in the file. */
  #forget(jobId: string): void {
    this.#liveBytes -= this.#fileBytes(jobId, this.#jobs.get(jobId));
    this.#jobs.delete(jobId);
  }

  /** Bytes `job` takes in the file as `jobId`'s record (none when it is not written). */
  #fileBytes(jobId: string, job: Assigned | undefined): number {
    if (job === undefined || !JOB_ID_PATTERN.test(jobId)) return 0;
    return recordBytes({ jobId, handoff: job.handoff });
  }

  /** The ids kept, oldest first, as the file writes them. */
  #records(): AssignedRecord[] {
    return [...this.#jobs]
      .filter(([jobId]) => JOB_ID_PATTERN.test(jobId))
      .map(([jobId, { cancelledAt, handoff }]) => {
        const record: AssignedRecord = { jobId };
        if (cancelledAt !== undefined) record.cancelledAt = cancelledAt;
        if (handoff !== undefined) record.handoff = handoff;
        return record;
      });
  }
}
