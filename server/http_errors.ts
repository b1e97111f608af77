/**
 * Errors at the HTTP edge: one table from a typed error's `code` to an HTTP status, and the
 * OpenAI error shape `{ error: { message, type, param, code } }` every route answers with, so
 * OpenAI clients surface our errors the way they surface OpenAI's.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** A request the edge refuses before it reaches an actor (bad JSON, bad shape, bad value). */
export class RequestValidationError extends VeriflowError {
  /** The request field at fault (`max_tokens`, `messages.0.content`), when there is one. */
  readonly param: string | null;

  /**
   * Create it.
   *
   * @param code `invalid_json` or `invalid_request`.
   * @param message What is wrong.
   * @param param The field at fault.
   */
  constructor(code: "invalid_json" | "invalid_request", message: string, param?: string) {
    super(code, message);
    this.param = param ?? null;
  }
}

/** The OpenAI error body. */
export interface OpenAiErrorBody {
  /** The error. */
  error: {
    /** Human-readable explanation. */
    message: string;
    /** Error class: `invalid_request_error`, `rate_limit_error` or `server_error`. */
    type: string;
    /** The request field at fault, or null. */
    param: string | null;
    /** Stable machine-readable code (the typed error's `code`). */
    code: string;
  };
}

/**
 * HTTP status by error code. Codes not listed are internal errors (500): a new error type must
 * be placed here deliberately rather than leak as a client error by accident.
 */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  invalid_json: 400,
  invalid_request: 400,
  context_length_exceeded: 400,
  empty_prompt: 400,
  invalid_generation_params: 400,
  invalid_token: 400,
  invalid_tensor_input: 400,
  wrong_model_kind: 400,
  model_not_found: 404,
  unknown_model: 404,
  not_found: 404,
  duplicate_job: 409,
  too_many_jobs: 429,
  // A forwarded job: no worker peer, or the worker went away before answering.
  no_worker: 503,
  service_unavailable: 503,
  connection_closed: 502,
  peer_timeout: 504,
};

/** HTTP status for an error: its code's entry in the table, else 500. */
export function httpStatusOf(error: unknown): number {
  return error instanceof VeriflowError ? STATUS_BY_CODE[error.code] ?? 500 : 500;
}

/** The OpenAI `type` that goes with a status. */
function errorTypeOf(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/**
 * The OpenAI error body for an error. Internal errors keep their message out of the body
 * (it may name files or internals); the code says enough to find the log line.
 */
export function openAiErrorBody(error: unknown): OpenAiErrorBody {
  const status = httpStatusOf(error);
  const code = error instanceof VeriflowError ? error.code : "internal_error";
  const message = status >= 500 && !(error instanceof VeriflowError)
    ? "internal server error"
    : (error as Error).message;
  const param = error instanceof RequestValidationError ? error.param : null;
  return { error: { message, type: errorTypeOf(status), param, code } };
}

/** A JSON response in the OpenAI error shape with the right status. */
export function errorResponse(error: unknown): Response {
  return Response.json(openAiErrorBody(error), { status: httpStatusOf(error) });
}
