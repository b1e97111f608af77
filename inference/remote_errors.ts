/**
 * What goes wrong in a job relayed to a peer, as typed errors: a stream that breaks the
 * protocol ({@link InferenceStreamError}), a resume the worker cannot take
 * ({@link ResumeUnsupportedError}), a worker silent before its `start`
 * ({@link StartTimeoutError}) or after it ({@link WorkerStalledError}).
 *
 * A worker's refusal comes back as the typed error the local port throws for it
 * (`UnknownModelError`, ...), by its code ({@link typedRefusal}), so a caller catches one class
 * whichever port ran the job.
 *
 * @module
 */
import { jobId, type TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { RemoteError } from "../protocols/protocol_errors.ts";
import { InsufficientStakeError } from "../proof/ledger_errors.ts";
import {
  DuplicateJobError,
  JobCancelledError,
  TooManyJobsError,
} from "../actors/inference_errors.ts";
import {
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTensorInputError,
  InvalidTokenError,
  ModelDisposedError,
  ModelLoadError,
  ModelWorkerError,
  UnknownModelError,
  WrongModelKindError,
} from "./errors.ts";
import {
  InvalidResumeError,
  RESUME_MISMATCH_MESSAGE,
  ResumeMismatchError,
} from "./resumed_generation.ts";

/** The peer's stream broke the protocol (no `start` first, events out of order). */
export class InferenceStreamError extends VeriflowError {
  /**
   * Create it.
   * @param message What was wrong.
   */
  constructor(message: string) {
    super("inference_stream_invalid", message);
  }
}

/**
 * The worker did not take the submission's `resume` (it predates resuming): its stream would
 * start over from position 0, which the requester already has.
 */
export class ResumeUnsupportedError extends VeriflowError {
  /**
   * Create it.
   * @param message What the worker answered.
   */
  constructor(message: string) {
    super("resume_unsupported", message);
  }
}

/**
 * The worker's `start` did not come within the start timeout (it accepted the job and went
 * silent). Its code, `request_timeout`, is a refusal of the worker's own, so a router moves the
 * job on to the next worker (`network/failover.ts`).
 */
export class StartTimeoutError extends VeriflowError {
  /**
   * Create it.
   * @param ms The start timeout that passed.
   */
  constructor(ms: number) {
    super("request_timeout", `the worker did not start the job within ${ms} ms`);
  }
}

/**
 * The worker started the job and then sent nothing (no token, no end) for the stall timeout
 * while this side waited for its next event; its connection may well be alive (it answers
 * pings). The job is cancelled on the worker. A router treats it as a lost worker and resumes
 * the job on another (`network/failover.ts`).
 */
export class WorkerStalledError extends VeriflowError {
  /**
   * The job never got its first token from a busy worker: it waited past the first-token
   * timeout while the worker kept sending the model's other jobs on the same connection (or
   * this side held one of them up by not reading it), so it was most likely queued behind
   * them. Such a worker is working, not stuck: a router moves the job on but does not keep the
   * worker off the model. False for a worker silent on all of the model's jobs, and for a job
   * that stopped after its first token (a running job is owed every step).
   */
  readonly busy: boolean;
  /** Tokens the worker had sent in this job when it was cut. */
  readonly tokens: number;

  /**
   * Create it.
   * @param worker The worker's key (hex, or a prefix of it).
   * @param ms The timeout that passed: the stall timeout, or the first-token timeout for a
   *   busy worker.
   * @param tokens Tokens the worker had sent in this job.
   * @param busy See {@link WorkerStalledError.busy} (default false).
   */
  constructor(worker: string, ms: number, tokens: number, busy = false) {
    super(
      "worker_stalled",
      busy
        ? `the worker ${worker} did not start the job within ${ms} ms, busy with other jobs ` +
          `of the model; the job was cancelled there`
        : `the worker ${worker} sent nothing for ${ms} ms after ${tokens} tokens of the job; ` +
          `the job was cancelled there`,
    );
    this.busy = busy;
    this.tokens = tokens;
  }
}

/**
 * The worker streamed the job below the delivery floor: after its first token it took, in the
 * time this side waited on it, more than the stall timeout plus `tokenBudgetMs` per later token
 * (`RemoteInferencePortOptions.tokenBudgetMs`). Each token came within the stall timeout, so no
 * single wait was a stall; together they would hold the client without bound (a worker that
 * sends one token just inside each stall timeout). Its code is the stall's, `worker_stalled`
 * (what the edge maps to 504), so a router resumes the job on another worker as for a stall; it
 * is marked {@link WorkerTooSlowError.slow}, and a router asks the worker last for a while
 * rather than keep it off the model: it may be honest and only slow.
 */
export class WorkerTooSlowError extends WorkerStalledError {
  /** Always true: set apart from a stall by its class and this field alike. */
  readonly slow = true;

  /**
   * Create it.
   * @param worker The worker's key (hex, or a prefix of it).
   * @param tokens Tokens the worker had sent in this job.
   * @param waitedMs How long this side waited on it after its first token.
   * @param tokenBudgetMs The floor: most ms per token after the first, on average.
   * @param graceMs The head start the floor allows (the stall timeout).
   */
  constructor(
    worker: string,
    tokens: number,
    waitedMs: number,
    tokenBudgetMs: number,
    graceMs: number,
  ) {
    super(worker, waitedMs, tokens, false);
    this.message = `the worker ${worker} sent ${tokens} tokens of the job too slowly: ` +
      `${waitedMs} ms waited on it after its first token, over the ${graceMs} ms plus ` +
      `${tokenBudgetMs} ms per later token it may take (tokenBudgetMs); the job was cancelled there`;
  }
}

/** The requester stopped reading; what `done` reports for a job cancelled this side. */
export const CANCELLED = "job_cancelled";

/**
 * A worker's refusal as the typed error the local port throws for it (the codes are the
 * same on both sides, `docs/PROTOCOL.md`), so a caller catches one class whichever port ran
 * the job. The worker's message is kept; an unknown code stays a {@link RemoteError}.
 */
const TYPED_REFUSALS: Readonly<Record<string, (job: TextJob) => VeriflowError>> = {
  too_many_jobs: () => new TooManyJobsError(""),
  // A worker whose free stake cannot back the job's receipt (`node/_stake_backed_port.ts`):
  // typed, so the router asks the next worker rather than counting it the worker's own failure.
  insufficient_stake: () => new InsufficientStakeError(NaN, NaN),
  duplicate_job: (job) => new DuplicateJobError(jobId(job)),
  job_cancelled: (job) => new JobCancelledError(jobId(job)),
  unknown_model: (job) => new UnknownModelError(job.model),
  model_load_failed: () => new ModelLoadError(""),
  model_worker_failed: () => new ModelWorkerError(""),
  model_disposed: () => new ModelDisposedError(),
  context_length_exceeded: () => new ContextLengthError(NaN, NaN),
  empty_prompt: () => new EmptyPromptError(),
  invalid_generation_params: () => new InvalidGenerationParamsError(""),
  invalid_token: () => new InvalidTokenError(NaN, NaN),
  invalid_tensor_input: () => new InvalidTensorInputError(""),
  wrong_model_kind: (job) => new WrongModelKindError(job.model, "text", "tensor"),
  invalid_resume: () => new InvalidResumeError(""),
  resume_mismatch: () => new ResumeMismatchError(""),
};

/**
 * `ContextLengthError`'s message, whose numbers are the error's fields: a prompt's, or (from a
 * worker of an earlier version, or a sequence's) the older form.
 */
const CONTEXT_LENGTH_MESSAGE =
  /^(?:the prompt is (\d+) tokens; the model's context window of (\d+) |(\d+) tokens do not fit the model's context window of (\d+)$)/;

/** `error` as the local port's typed class when it is a worker's refusal of a known code. */
export function typedRefusal(error: unknown, job: TextJob): unknown {
  if (!(error instanceof RemoteError)) return error;
  const make = TYPED_REFUSALS[error.code];
  if (make === undefined) return error;
  const typed = make(job);
  typed.message = error.message;
  if (typed instanceof ContextLengthError) {
    const numbers = CONTEXT_LENGTH_MESSAGE.exec(error.message);
    // Read-only for callers; set once here, as the worker's constructor set them.
    const fields = typed as { -readonly [K in "tokens" | "contextLength"]: number };
    fields.tokens = Number(numbers?.[1] ?? numbers?.[3] ?? NaN);
    fields.contextLength = Number(numbers?.[2] ?? numbers?.[4] ?? NaN);
  }
  if (typed instanceof ResumeMismatchError) {
    // Read-only for callers; set once here, as the worker's constructor set it.
    const position = RESUME_MISMATCH_MESSAGE.exec(error.message)?.[1];
    (typed as { -readonly [K in "position"]: number }).position = Number(position ?? NaN);
  }
  return typed;
}

/**
 * `error` as a summary's `error` field: its code and message, `internal_error` for one that
 * is not a {@link VeriflowError}.
 */
export function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof VeriflowError) return { code: error.code, message: error.message };
  return {
    code: "internal_error",
    message: error instanceof Error ? error.message : String(error),
  };
}
