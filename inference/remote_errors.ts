/**
 * What goes wrong in a job relayed to a peer, as typed errors: a stream that breaks the
 * protocol ({@link InferenceStreamError}), a resume the worker cannot take
 * ({@link ResumeUnsupportedError}), a worker silent before its `start`
 * ({@link StartTimeoutError}) or after it ({@link WorkerStalledError}).
 *
 * A worker's refusal comes back as the typed error the local port throws for it
 * (`UnknownModelError`, ...), by its code ({@link typedRefusal}), so a caller catches one class
 * whichever port ran the job. The worker writes its refusal's words, and a client may be told
 * them (a 4xx keeps its message): they are taken as {@link refusalWords}, bounded and without
 * control characters.
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

/**
 * Most characters of a worker's words a refusal passes on ({@link refusalWords}). What this
 * version writes in one is a sentence: a context-length refusal is about 130 characters, an
 * `invalid_body` one at most about 230 (`describeIssue` cuts its detail at 200). The wire allows
 * 1,024 (`MAX_ERROR_MESSAGE_LENGTH`), all of which reached the client before.
 */
export const MAX_REFUSAL_CHARS = 300;

/**
 * What a peer's words may not carry into a message a client or a terminal shows: control
 * characters (C0 with tab and newline, DEL, C1: terminal escapes, fake lines), line and
 * paragraph separators, and the invisible bidirectional and zero-width marks that reorder or
 * hide text. A run of them becomes one space.
 */
const UNSHOWN = /[\p{Cc}\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]+/gu;

/**
 * A worker's words (a refusal's message) as this side passes them on: what {@link UNSHOWN}
 * names as one space each run, trimmed, and cut to {@link MAX_REFUSAL_CHARS} code points, the
 * last `…` where cut. A refusal this version writes comes through as it was.
 *
 * @example
 * ```ts
 * import { refusalWords } from "./remote_errors.ts";
 * refusalWords("bad\n\x1b[31mtemperature"); // "bad [31mtemperature"
 * ```
 */
export function refusalWords(words: string): string {
  const shown = words.replace(UNSHOWN, " ").trim();
  const chars = [...shown];
  if (chars.length <= MAX_REFUSAL_CHARS) return shown;
  return `${chars.slice(0, MAX_REFUSAL_CHARS - 1).join("")}…`;
}

/** Longest dotted field path {@link bodyRefusal} names as the refused field. */
const MAX_REFUSED_FIELD_CHARS = 128;

/**
 * An `invalid_body` refusal as `InvalidBodyError` writes it (`protocols/message_registry.ts`,
 * `describeIssue`): the message type, then a dotted path of plain field names, then what is
 * wrong. The field is all a requester reads from it; the type is the protocol's, not the client's.
 */
const BODY_REFUSAL = /^invalid body for "[a-z][a-z0-9_.]*": ([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): /;

/**
 * The message of the `invalid_generation_params` a worker's `invalid_body` refusal of a job
 * becomes (its schema refused the body, `inference/remote_port.ts`): the field it names, when it
 * names one as `describeIssue` does, and the rest of its words as {@link refusalWords}; else its
 * words alone, the same way. Before, the worker's text (up to 1,024 characters, any of them
 * control characters) reached the client as it was.
 *
 * @example
 * ```ts
 * import { bodyRefusal } from "./remote_errors.ts";
 * bodyRefusal('invalid body for "inference.submit": job.params.topP: Too big');
 * // "the worker refused the job: job.params.topP: Too big"
 * ```
 */
export function bodyRefusal(message: string): string {
  const named = BODY_REFUSAL.exec(message);
  if (named === null || named[1].length > MAX_REFUSED_FIELD_CHARS) {
    return `the worker refused the job: ${refusalWords(message)}`;
  }
  const rest = message.slice(named[0].length);
  return `the worker refused the job: ${named[1]}: ${refusalWords(rest)}`;
}

/**
 * `error` as the local port's typed class when it is a worker's refusal of a known code, its
 * message the worker's words as {@link refusalWords} (the fields a typed class reads from them
 * are read from the words as they came).
 */
export function typedRefusal(error: unknown, job: TextJob): unknown {
  if (!(error instanceof RemoteError)) return error;
  const make = TYPED_REFUSALS[error.code];
  if (make === undefined) return error;
  const typed = make(job);
  typed.message = refusalWords(error.message);
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
