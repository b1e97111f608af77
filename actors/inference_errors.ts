/**
 * The InferenceActor's typed refusals and its cancellation error. Each carries a stable `code`
 * that the HTTP edge maps to a status (`too_many_jobs` → 429, `duplicate_job` → 409) and that
 * crosses the wire unchanged when a job was relayed to another node.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** The model's queue is full: the job was refused (HTTP 429). */
export class TooManyJobsError extends VeriflowError {
  /**
   * Create it.
   *
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("too_many_jobs", message);
  }
}

/**
 * The same job (same job id) is already queued or running on this actor, or has already
 * finished here with a signed receipt (a worker signs one receipt per job: submit the job
 * again with a new nonce to run it again).
 */
export class DuplicateJobError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   *
   * @param jobId The job id.
   * @param state Where the earlier submission is.
   */
  constructor(jobId: string, state: "active" | "finished" = "active") {
    super(
      "duplicate_job",
      state === "active"
        ? `job ${jobId} is already queued or running`
        : `job ${jobId} already ran here and has a signed receipt; use a new nonce to run it again`,
    );
    this.jobId = jobId;
  }
}

/** The job was cancelled before it finished (by its requester or by the node stopping). */
export class JobCancelledError extends VeriflowError {
  /** The job id. */
  readonly jobId: string;

  /**
   * Create it.
   *
   * @param jobId The job id.
   */
  constructor(jobId: string) {
    super("job_cancelled", `job ${jobId} was cancelled`);
    this.jobId = jobId;
  }
}
