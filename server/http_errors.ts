/**
 * Errors at the HTTP edge: one table from a typed error's `code` to an HTTP status, and the
 * OpenAI error shape `{ error: { message, type, param, code } }` every route answers with, so
 * OpenAI clients surface our errors the way they surface OpenAI's.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** Options of {@link EdgeError}. */
export interface EdgeErrorOptions extends ErrorOptions {
  /** The request field at fault. */
  param?: string;
  /** Seconds after which a refused request may succeed (sent as `Retry-After` with a 429). */
  retryAfterS?: number;
}

/**
 * A request the edge refuses before it reaches an actor: too large, from a refused origin,
 * without a valid key, over a limit. Its message says which option or field is at fault.
 */
export class EdgeError extends VeriflowError {
  /** The request field at fault (`max_tokens`, `messages.0.content`), when there is one. */
  readonly param: string | null;
  /** Seconds after which the request may succeed: a rate limit's, or a 503's that knows. */
  readonly retryAfterS?: number;

  /**
   * Create it.
   *
   * @param code Stable code; its HTTP status is in this module's table.
   * @param message What is wrong and what to do about it.
   * @param options The field at fault, a retry delay, a cause.
   */
  constructor(code: string, message: string, options: EdgeErrorOptions = {}) {
    super(code, message, options);
    this.param = options.param ?? null;
    if (options.retryAfterS !== undefined) this.retryAfterS = options.retryAfterS;
  }
}

/** A request body or message that does not parse or validate (bad JSON, bad shape, bad value). */
export class RequestValidationError extends EdgeError {
  /**
   * Create it.
   *
   * @param code `invalid_json` or `invalid_request`.
   * @param message What is wrong.
   * @param param The field at fault.
   */
  constructor(code: "invalid_json" | "invalid_request", message: string, param?: string) {
    super(code, message, { param });
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
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  invalid_json: 400,
  invalid_request: 400,
  unsupported_field: 400,
  prompt_too_long: 400,
  too_many_messages: 400,
  missing_api_key: 401,
  invalid_api_key: 401,
  api_key_required: 403,
  // A dashboard socket's `auth` with a token that is neither an API key nor the operator token.
  bad_token: 401,
  // A dashboard handshake offering its token's subprotocol without `veriflow.dashboard`.
  bad_subprotocol: 400,
  origin_not_allowed: 403,
  misdirected_request: 421,
  request_too_large: 413,
  // A body in a content coding the node does not decode (`content_encoding_guard.ts`).
  unsupported_content_encoding: 415,
  // A body that broke off before its end: the client closed or reset its connection mid-body.
  incomplete_body: 400,
  // The edge's own: the client's body was too slow. A port's is the upstream's (504, below).
  request_timeout: 408,
  // The edge's own: past its first 64 KiB the body came slower than the minimum rate
  // (`body_min_rate.ts`); its own code so a client (and an alert) tells a stalled link from a
  // deadline.
  request_body_too_slow: 408,
  // A job cut because its client read nothing while others waited for its seat and the node's
  // memory for unread tokens was full (`actors/_unread_token_budget.ts`): the client was too slow.
  slow_reader: 408,
  // A stream cut because its client read nothing for `http.clientIdleTimeoutMs`
  // (`ClientIdleError`): told in the SSE stream's last event, the client's fault as above.
  client_idle: 408,
  context_length_exceeded: 400,
  empty_prompt: 400,
  invalid_generation_params: 400,
  invalid_token: 400,
  invalid_tensor_input: 400,
  wrong_model_kind: 400,
  model_not_found: 404,
  unknown_model: 404,
  // A name two listed models claim (`AmbiguousModelError`): the client asks by CID.
  ambiguous_model: 400,
  not_found: 404,
  // A known path asked with a method it does not take (`allowed_methods.ts`; `Allow` names them).
  method_not_allowed: 405,
  duplicate_job: 409,
  // A job's `input` (`protocols/job_input.ts`): the client's (not text, too large, not the
  // named block), or no node has it (404), or this node could not read it now (503).
  input_required: 400,
  input_mismatch: 400,
  input_not_text: 400,
  input_too_large: 400,
  input_not_found: 404,
  input_unavailable: 503,
  // A WebSocket `infer` whose id names a job of that socket still running.
  duplicate_id: 409,
  too_many_jobs: 429,
  too_many_uploads: 429,
  // Reads of stored files under way (`read_slots.ts`): the client's own, or the node's, all taken.
  too_many_reads: 429,
  // Gateway reads walking past a block's first storage peers (`deep_reads.ts`): the client's
  // budget, or the node's, spent.
  too_many_deep_reads: 429,
  // Request bodies being read hold the node's budget for them (`body_limit.ts`'s `BodyBudget`).
  too_many_request_bodies: 429,
  rate_limited: 429,
  key_concurrency_exceeded: 429,
  // The node's dashboard sockets of one kind (anonymous, waiting for their `auth`) all taken.
  too_many_sockets: 429,
  // Files (`file_routes.ts`).
  invalid_cid: 400,
  key_required: 403,
  chunk_not_found: 404,
  share_not_found: 404,
  share_expired: 410,
  range_not_satisfiable: 416,
  quota_exceeded: 507,
  replica_quota_exceeded: 507,
  disk_full: 507,
  // The node's store cannot be written (`EROFS`, `EACCES`, `EIO`: see `StorageUnwritableError`):
  // its files are still served, a write may succeed on another node or after the operator's fix.
  storage_unwritable: 503,
  replication_failed: 503,
  // A block the node is challenging a storage holder on, held for the few seconds of the
  // challenge (`actors/_challenged_chunks.ts`); its `retryAfterS` says when the hold ends at most.
  chunk_under_audit: 503,
  corrupt_chunk: 502,
  // The IPFS gateway (`gateway_routes.ts`): a content path naming nothing, bytes no codec reads,
  // a DAG node too big to read, an Accept it cannot meet, a CAR option it does not implement.
  path_not_found: 404,
  invalid_manifest: 422,
  block_too_large: 422,
  // A file DAG deeper than any importer writes, or one a plain read would walk more blocks of
  // than its bytes pay for (`storage/unixfs.ts`, review s78 F1, F2): content no read takes.
  dag_too_deep: 422,
  read_too_costly: 422,
  not_acceptable: 406,
  not_implemented: 501,
  // `Cache-Control: only-if-cached` for content this node would have had to fetch (Path Gateway
  // spec: 412, the client's own condition not met, rather than RFC 9111's 504).
  not_cached: 412,
  // A forwarded job: no worker peer, or the worker went away before answering.
  no_worker: 503,
  // Every worker asked is of an older version that cannot read a field of the job
  // (`JobVersionMismatchError`): the network's versions out of step, not the client's fault nor
  // the node's; its message names the field (review s81 vwire2, F2: a 500 hid it). No
  // `Retry-After`, as `no_worker`'s: it lasts until the workers are upgraded, not a second.
  job_version_mismatch: 503,
  // No worker's free stake backs the job's receipt now (`node/_stake_backed_port.ts`): the
  // node's want, not the client's; locks free as receipts finalize.
  insufficient_stake: 503,
  service_unavailable: 503,
  // The node is draining on shutdown (`serve.ts`): new requests and new jobs are refused.
  shutting_down: 503,
  // The node's port is bound but the node is not up yet (`node/http_listener.ts`).
  starting: 503,
  // The node's own actors restarting or overloaded (`actors/errors.ts`): see NODE_OVERLOAD_CODES.
  actor_stopped: 503,
  ask_timeout: 503,
  mailbox_full: 503,
  connection_closed: 502,
  // A forwarded job's worker cut off for the frames it sent that this node refused.
  too_many_refusals: 502,
  // Every worker that could take a lost job over refused the tokens it had sent (`failover.ts`).
  delivered_tokens_diverged: 502,
  // A forwarded job's worker failed it with an error of its own and none took it over
  // (`failover.ts`): an upstream failure; the worker's code is only in the message, since it
  // chose it (passed on, a worker's `invalid_api_key` told good keys they were bad).
  worker_failed: 502,
  // A forwarded job's worker broke the inference protocol (a token out of order, an event where
  // none may come) and none took the job over: the upstream misbehaved, the node did not.
  inference_stream_invalid: 502,
  peer_timeout: 504,
  // A forwarded job's worker started it and then sent nothing for the stall timeout.
  worker_stalled: 504,
};

/**
 * The actor runtime's errors that reach a client when an actor of the node (its InferenceActor)
 * is being restarted (`actor_stopped`), too busy to answer in time (`ask_timeout`) or has a full
 * mailbox (`mailbox_full`): transient overload of the node, not a bug, so a 503 with
 * `Retry-After` ({@link DEFAULT_RETRY_AFTER_S}) rather than a 500.
 */
const NODE_OVERLOAD_CODES: ReadonlySet<string> = new Set([
  "actor_stopped",
  "ask_timeout",
  "mailbox_full",
]);

/**
 * Status of a `request_timeout` that is not the edge's own: a port's, when a forwarded job's
 * worker accepted it and never started it (`StartTimeoutError`) or a peer never replied. That is
 * the upstream's silence, a gateway timeout; the table's 408 says the client's body was too slow,
 * which only the edge's `RequestTimeoutError` (an {@link EdgeError}) knows.
 */
const UPSTREAM_TIMEOUT_STATUS = 504;

/** HTTP status for an error: its code's entry in the table, else 500. */
export function httpStatusOf(error: unknown): number {
  if (!(error instanceof VeriflowError)) return 500;
  if (error.code === "request_timeout" && !(error instanceof EdgeError)) {
    return UPSTREAM_TIMEOUT_STATUS;
  }
  return STATUS_BY_CODE[error.code] ?? 500;
}

/** The OpenAI `type` that goes with a status. */
function errorTypeOf(status: number): string {
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/**
 * The message a client gets in place of an internal error's (a 500's): what failed may name
 * files, internals or peers, so its text stays in the node's log.
 */
export const INTERNAL_ERROR_MESSAGE = "internal server error";

/**
 * Codes with no status of their own (a 500 by the table) whose message is the node's own words
 * for the client, naming nothing internal: a cancelled job's, and a forwarded job's worker
 * receipt that did not check out (`receipt_rejected`: what in it was wrong).
 */
const CLIENT_MESSAGE_CODES: ReadonlySet<string> = new Set(["job_cancelled", "receipt_rejected"]);

/**
 * Whether `error` is internal: a 500 (an untyped error, or a typed one the table does not list:
 * `proof_store_failed`, `actor_crashed`, `model_load_failed`, a peer's unknown code) whose
 * message may name files, internals or peers, so the client is not told it and the operator's
 * log is. Not so for {@link CLIENT_MESSAGE_CODES}.
 */
export function isInternalError(error: unknown): boolean {
  if (httpStatusOf(error) !== 500) return false;
  return !(error instanceof VeriflowError && CLIENT_MESSAGE_CODES.has(error.code));
}

/**
 * A failed job's error as its client is told it, over HTTP (JSON, SSE) and WebSocket alike: an
 * internal failure's ({@link isInternalError}: a plain Error's message, a crashed actor's
 * reason) with {@link INTERNAL_ERROR_MESSAGE} for its text, which the gateway's log line of the
 * job keeps; the client's own errors, the node's 503/504 that say which worker or why, and a
 * cancelled job's keep their message, meant for the client.
 */
export function jobFailureForClient(code: string, message: string): VeriflowError {
  const failure = new VeriflowError(code, message);
  return isInternalError(failure) ? new VeriflowError(code, INTERNAL_ERROR_MESSAGE) : failure;
}

/**
 * Why a finished job has no receipt, as its client is told it (`veriflow_receipt_error`, the
 * WebSocket `done`'s `receipt_error`), by {@link jobFailureForClient}'s rule: an internal
 * failure's text (a proof store's directory and the OS's reason, a prover's bug) is
 * {@link INTERNAL_ERROR_MESSAGE}, and the code says which. The operator reads a proof store's
 * fault in the prover's log line and `/healthz`, a crashed prover's in the actor's crash line. A
 * forwarded job's `receipt_rejected` and a prover that did not answer in time (`ask_timeout`, a
 * 503) keep their text.
 */
export function receiptErrorForClient(
  error: { code: string; message: string },
): { code: string; message: string } {
  const { code, message } = jobFailureForClient(error.code, error.message);
  return { code, message };
}

/**
 * The OpenAI error body for an error. Internal errors ({@link isInternalError}: untyped, or
 * typed with no status of their own) keep their message out of the body (it may name files or
 * internals); the code says enough to find the log line.
 */
export function openAiErrorBody(error: unknown): OpenAiErrorBody {
  const status = httpStatusOf(error);
  const code = error instanceof VeriflowError ? error.code : "internal_error";
  const message = isInternalError(error) ? INTERNAL_ERROR_MESSAGE : (error as Error).message;
  const param = error instanceof EdgeError ? error.param : null;
  return { error: { message, type: errorTypeOf(status), param, code } };
}

/**
 * `Retry-After` of a 429 when the refusal does not know better (a full job queue), and of a 503
 * for the node's overload ({@link NODE_OVERLOAD_CODES}): one second, about one token's worth of
 * work on a busy node (or an actor's restart), so a client backs off without giving up.
 */
export const DEFAULT_RETRY_AFTER_S = 1;

/**
 * Seconds a client should wait before retrying a refused request: every 429 and every 503 for
 * the node's overload ({@link NODE_OVERLOAD_CODES}), by default {@link DEFAULT_RETRY_AFTER_S},
 * and a 503 whose error says when: a node still starting (an {@link EdgeError}), or a typed
 * error of a port's with a `retryAfterS` of its own (a forwarding node's `no_worker` while it is
 * still connecting to its peers, `network_inference_port.ts`'s `NoWorkerError`).
 */
export function retryAfterOf(error: unknown): number | undefined {
  const status = httpStatusOf(error);
  const seconds = retryAfterSOf(error);
  if (status === 503 && seconds !== undefined) return Math.max(1, Math.ceil(seconds));
  const overloaded = status === 503 && error instanceof VeriflowError &&
    NODE_OVERLOAD_CODES.has(error.code);
  if (status !== 429 && !overloaded) return undefined;
  return Math.max(1, Math.ceil(seconds ?? DEFAULT_RETRY_AFTER_S));
}

/**
 * The `retryAfterS` a typed error carries (an {@link EdgeError}'s, or a port's error that has one:
 * the edge does not import the ports' error classes), when it is a finite number.
 */
function retryAfterSOf(error: unknown): number | undefined {
  if (!(error instanceof VeriflowError)) return undefined;
  const seconds = (error as { retryAfterS?: unknown }).retryAfterS;
  return typeof seconds === "number" && Number.isFinite(seconds) ? seconds : undefined;
}

/**
 * A JSON response in the OpenAI error shape with the right status; a 429 (and a 503 that knows
 * when, or is the node's overload) carries `Retry-After`, a 401 `WWW-Authenticate: Bearer`
 * (what OpenAI clients expect), a 415 the one content coding the node reads (`Accept-Encoding:
 * identity`, RFC 9110 15.5.16).
 */
export function errorResponse(error: unknown): Response {
  const status = httpStatusOf(error);
  const headers = new Headers();
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== undefined) headers.set("retry-after", String(retryAfter));
  if (status === 401) headers.set("www-authenticate", 'Bearer realm="veriflow"');
  if (status === 415) headers.set("accept-encoding", "identity");
  return Response.json(openAiErrorBody(error), { status, headers });
}
