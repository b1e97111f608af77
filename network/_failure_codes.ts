/**
 * Whose failure a forwarded job's error is, by its code: the worker's (its connection lost, its
 * stream broken, its own refusal, or only that it is full now), or the job's own, which every
 * worker would give. Every decision of a failover reads these: `failover.ts` (whether a worker's
 * failure moves the job to another worker and whether that spends one of its tries), and, through
 * `failover.ts`'s re-exports, `NetworkInferencePort` (`network_inference_port.ts`: whether a
 * refusal at a job's start lets another worker be asked, and whether the refusing worker is kept
 * off the model).
 *
 * Not part of the public API: `failover.ts` re-exports the sets and predicates it exported before
 * they moved here.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { ConnectionClosedError } from "../protocols/protocol_errors.ts";

/**
 * Codes a worker's failure carries when the job lost it: its connection failed, or it sent
 * nothing of the job for the stall timeout, or none of its tokens within the first-token
 * timeout, and the job was cancelled on it (`worker_stalled`).
 */
export const WORKER_LOST_CODES: ReadonlySet<string> = new Set([
  "connection_closed",
  "peer_timeout",
  "worker_stalled",
]);
/** Whether `error` means the worker's connection is gone (so the job may resume elsewhere). */
export function isWorkerLost(error: unknown): boolean {
  return error instanceof ConnectionClosedError ||
    (error instanceof VeriflowError && WORKER_LOST_CODES.has(error.code));
}

/**
 * Codes of a worker's stream that broke the inference protocol, as the requester's side found
 * it (`inference_stream_invalid`: no `start` first, a resume nobody asked for, a token out of
 * order, an event where none may come): the worker's own fault, whatever it meant. The job goes
 * on as if the worker had been lost — to the next worker before its first token, resumed on
 * another after it — and the router keeps the worker off the model for a while. Ending the
 * client's job instead let one broken or malicious worker, chosen first for its claims of room,
 * fail every job for its model.
 */
export const WORKER_FAULT_CODES: ReadonlySet<string> = new Set([
  "inference_stream_invalid",
  // Its connection cut off for sending more frames this side refused than an honest peer ever
  // does (`too_many_refusals`, `protocols/_connection_inbound.ts`): lost, so the job goes on
  // elsewhere, and its own doing. Taken only for lost, it was asked last for a while and then
  // picked again; after its last token it was neither kept off nor its end asked for later.
  "too_many_refusals",
]);

/** Whether `error` says the worker broke the inference protocol ({@link WORKER_FAULT_CODES}). */
export function isWorkerFault(error: unknown): boolean {
  return error instanceof VeriflowError && WORKER_FAULT_CODES.has(error.code);
}

/**
 * Codes of a worker's refusal to start a job that another worker need not share: it is full
 * (`too_many_jobs`, `busy`), its model is gone or failing, it cannot resume, it did not answer
 * in time, its connection was lost, or its stream broke the protocol. Any other refusal (bad
 * parameters, an empty prompt, a model of another kind) is about the job, and every worker
 * would give it.
 */
export const WORKER_REFUSAL_CODES: ReadonlySet<string> = new Set([
  ...WORKER_LOST_CODES,
  ...WORKER_FAULT_CODES,
  "too_many_jobs",
  "busy",
  // Its own ledger shows too little free stake to back the job's receipt (`node/
  // _stake_backed_port.ts`): another worker's stake may back it.
  "insufficient_stake",
  "request_timeout",
  "unknown_model",
  "model_load_failed",
  "model_worker_failed",
  "model_disposed",
  "resume_unsupported",
  // The job's input could not be read there (not reached, no storage, other bytes): another
  // worker, a holder of it, may read it.
  "input_not_found",
  "input_unavailable",
  "input_mismatch",
  // It cannot read a field of the job (an older version: `JobVersionMismatchError`): a worker
  // of a version that reads it may run it.
  "job_version_mismatch",
]);

/**
 * Codes of an error about the job itself or its requester, which every worker would give it (bad
 * parameters, a prompt that does not fit the model, a model of another kind, a request this side
 * sent wrong, a requester that stopped reading its tokens). A worker refuses such a job before
 * its `start`, and the refusal goes to the client when no other worker starts the job
 * (`NetworkInferencePort`: one worker's word alone ended every job it was picked for); once it
 * started the job, only
 * {@link STARTED_JOB_ERROR_CODES} end the client's job without holding the worker to account.
 */
export const JOB_ERROR_CODES: ReadonlySet<string> = new Set([
  "invalid_generation_params",
  "empty_prompt",
  "prompt_too_long",
  "context_length_exceeded",
  "invalid_token",
  "invalid_tensor_input",
  "wrong_model_kind",
  "invalid_request",
  "duplicate_id",
  // The job's input is not text, or too large: so for every worker. (`input_mismatch` is not:
  // at a worker it means its own storage gave other bytes, and another worker may read them.)
  "input_required",
  "input_not_text",
  "input_too_large",
  // The client stopped reading, so this side stopped granting credit: the next worker would
  // wait on it the same, and an honest worker must not be kept off the model for a slow client.
  "reader_stalled",
  // The same slow client, after the job finished: the worker evicted its unread tokens and
  // keeps its receipt over them all (review s77 vclient, F2). Run again, it would end the same.
  "slow_reader",
]);

/** Whether `error` is about the job itself ({@link JOB_ERROR_CODES}). */
export function isJobError(error: unknown): boolean {
  return error instanceof VeriflowError && JOB_ERROR_CODES.has(error.code);
}

/**
 * Codes of {@link JOB_ERROR_CODES} a worker may end a job it *started* with: only that the
 * requester stopped reading (`reader_stalled`), or read too slowly for a finished job's tokens
 * (`slow_reader`), each of which the remote port already found believable:
 * a worker that says so while this side had not left the job's events unread for long, or while
 * it waited on the worker, breaks its stream; `inference/_remote_job.ts`). An honest worker checks
 * the rest (its parameters, its prompt, that it fits the context) before its `start`, so one
 * that starts a job and then calls it bad contradicts its own start, whatever it claims: the job
 * goes on elsewhere, as for any failure of its own, and a job truly bad is refused by the next
 * worker before its start.
 */
export const STARTED_JOB_ERROR_CODES: ReadonlySet<string> = new Set([
  "reader_stalled",
  "slow_reader",
]);

/** Whether `error`, ending a job its worker started, ends the client's job with it. */
export function isStartedJobError(error: unknown): boolean {
  return error instanceof VeriflowError && STARTED_JOB_ERROR_CODES.has(error.code);
}

/**
 * Codes of a worker's refusal that says only that it is full now: the worker's port queue or its
 * per-peer share of jobs (`too_many_jobs`, `inference/serve_inference.ts`), the connection's
 * inbound request limit (`busy`), or its free stake (`insufficient_stake`); or that it is too
 * old to read the job (`job_version_mismatch`). The worker did nothing for the job: asking the
 * next one costs no prefill and no token, so it does not spend the job's `MAX_WORKERS_PER_JOB`
 * (`failover.ts`).
 */
export const CAPACITY_REFUSAL_CODES: ReadonlySet<string> = new Set([
  "too_many_jobs",
  "busy",
  // Full of stake, not of seats: its free stake cannot back the job's receipt until its locks
  // free up (`node/_stake_backed_port.ts`). It computed nothing; no fault of its own, so no
  // try spent and not kept off the model, only asked last a while, as a full worker.
  "insufficient_stake",
  // Too old for the job, not full: it cannot read one of the job's fields (a newer requester's)
  // and refused it before running anything (review s81 wire, F2). Neither its fault nor the
  // job's: like a full worker it spends no try, is not kept off the model nor counted a
  // failure, and is asked last for a while. Nothing ran, so nobody is paid and nothing is locked.
  "job_version_mismatch",
]);

/** Whether `error` is a worker's refusal of a job because it is full now. */
export function isCapacityRefusal(error: unknown): boolean {
  return error instanceof VeriflowError && CAPACITY_REFUSAL_CODES.has(error.code);
}

/** Whether `error`, refusing a job, is the worker's own (so another worker may take the job). */
export function isWorkerRefusal(error: unknown): boolean {
  return isWorkerLost(error) ||
    (error instanceof VeriflowError && WORKER_REFUSAL_CODES.has(error.code));
}

/** Errors a resuming worker ends with before its first token when it cannot take the job. */
export const RESUME_REFUSALS: ReadonlySet<string> = new Set(["resume_mismatch", "invalid_resume"]);

/** The stable code of `error` (`internal_error` when it carries none). */
export function codeOf(error: unknown): string {
  return error instanceof VeriflowError ? error.code : "internal_error";
}
