/**
 * The WebSocket streaming API's messages (`/v1/stream`), both directions; the zod schema that
 * validates client messages is in `request_schemas.ts`. All messages are
 * JSON text frames. Every `infer` ends with exactly one `done` or one `error` carrying its `id`;
 * an `error` without `id` is about a frame that ends no request: one that could not be
 * attributed, or one naming a job still running (an `infer` with its id, `duplicate_id`), whose
 * id the `error` carries as `refused_id` so that it cannot be taken for that job's end.
 *
 * ```
 * client: {"type":"infer","id":"a","prompt":"Hello","max_tokens":16}
 * server: {"type":"start","id":"a","job_id":"9f…","model":"bafyrei…","model_name":"veriflow-tiny",
 *          "execution_provider":"cpu","prompt_tokens":5}
 * server: {"type":"queued","id":"a","position":2}      (only while the job waits for a slot)
 * server: {"type":"token","id":"a","index":0,"token_id":44,"text":","}
 * …
 * server: {"type":"done","id":"a","finish_reason":"length","usage":{…},"timings":{…},"receipt":{…}}
 * ```
 *
 * An `infer` with `"logprobs": N` gets `logprob` on each token message, and for N > 0 the N most
 * likely tokens at its position in `top_logprobs`.
 *
 * @module
 */
import type {
  FinishReason,
  InferenceHandle,
  JobSummary,
  StreamedToken,
} from "../inference/inference_port.ts";
import { receiptErrorForClient } from "./http_errors.ts";
import { toJsonValue } from "./json_value.ts";

/**
 * Sampling fields as they come in, in OpenAI's names, shared by the WebSocket API and the `/v1`
 * routes; `null` means "default".
 */
export interface SamplingRequest {
  /** Model CID or name; default model when absent. */
  model?: string;
  /** Maximum new tokens. */
  max_tokens?: number | null;
  /** Softmax temperature; 0 is greedy. */
  temperature?: number | null;
  /** Nucleus mass in (0, 1]. */
  top_p?: number | null;
  /** Top-k cut; 0 disables. */
  top_k?: number | null;
  /** Seed of the counter-based RNG. */
  seed?: number | null;
  /** Stop sequence(s). */
  stop?: string | string[] | null;
}

/** Client → server: start a job on this socket under the client's `id`. */
export interface WsInferMessage extends SamplingRequest {
  /** Message tag. */
  type: "infer";
  /** Request id, unique among this socket's running jobs. */
  id: string;
  /** Prompt text. */
  prompt: string;
  /**
   * CID of a stored public file of one chunk whose text the model reads before the prompt (the
   * job's `input`, `protocols/job_input.ts`); `null`: none.
   */
  input?: string | null;
  /** Job nonce; random when absent (or `null`). */
  nonce?: string | null;
  /**
   * Log-probabilities on each `token` message: with 0 the token's own (`logprob`), with N > 0
   * also the N most likely tokens at its position (`top_logprobs`), up to 20. Absent (or
   * `null`): neither.
   */
  logprobs?: number | null;
}

/** Client → server: cancel the job started under `id`. */
export interface WsCancelMessage {
  /** Message tag. */
  type: "cancel";
  /** Request id. */
  id: string;
}

/** Any client → server message. */
export type WsClientMessage = WsInferMessage | WsCancelMessage;

/** The job was accepted and is queued or running. */
export interface WsStartMessage {
  /** Message tag. */
  type: "start";
  /** The client's request id. */
  id: string;
  /** The job id (hex SHA-256 of the job's canonical CBOR). */
  job_id: string;
  /** CID of the model. */
  model: string;
  /** Name of the model. */
  model_name: string;
  /** Where the model runs (`cpu`, `cuda`). */
  execution_provider: string;
  /** Tokens in the prompt. */
  prompt_tokens: number;
}

/**
 * The job waits for a slot (on this node, or on the worker a node forwarded it to), at
 * `position` in its model's queue (1: next). Sent between `start` and the first `token`: when
 * the job is queued, when its place changes, and every 10 s while it does not.
 */
export interface WsQueuedMessage {
  /** Message tag. */
  type: "queued";
  /** The client's request id. */
  id: string;
  /** The job's place in the queue, from 1. */
  position: number;
}

/** One generated token. */
export interface WsTokenMessage {
  /** Message tag. */
  type: "token";
  /** The client's request id. */
  id: string;
  /** Position in the output, from 0. */
  index: number;
  /** The token id. */
  token_id: number;
  /** Text this token completes; "" while a multi-byte character is still incomplete. */
  text: string;
  /** The token's log-probability under the model, when the `infer` asked for `logprobs`. */
  logprob?: number;
  /** The most likely tokens at this position, most likely first, for `logprobs` N > 0. */
  top_logprobs?: WsTopLogprob[];
}

/** One of the most likely tokens at a position. */
export interface WsTopLogprob {
  /** The token id. */
  token_id: number;
  /** The token's text on its own. */
  text: string;
  /** Its log-probability under the model. */
  logprob: number;
}

/** Token counts, OpenAI names. */
export interface WireUsage {
  /** Tokens in the prompt. */
  prompt_tokens: number;
  /** Tokens generated. */
  completion_tokens: number;
  /** Sum of both. */
  total_tokens: number;
}

/** Timings of a job, milliseconds from its submission. */
export interface WireTimings {
  /**
   * Waiting for a slot (`null` when this node did not see it: a relayed job resumed on another
   * worker).
   */
  queue_ms: number | null;
  /** To the first token (`null` when no token came). */
  ttft_ms: number | null;
  /** Generated tokens per second after the job started (0 when not measured). */
  tokens_per_s: number;
  /** To the end of the stream. */
  total_ms: number;
}

/** The job ended (normally or cancelled). */
export interface WsDoneMessage {
  /** Message tag. */
  type: "done";
  /** The client's request id. */
  id: string;
  /** The job id. */
  job_id: string;
  /** `stop` (end of text or stop sequence), `length` (max tokens or context) or `cancelled`. */
  finish_reason: FinishReason;
  /** Token counts. */
  usage: WireUsage;
  /** Timings. */
  timings: WireTimings;
  /** The signed receipt, when the node runs a prover (byte strings as lower-case hex). */
  receipt?: unknown;
  /**
   * Why a job that finished carries no receipt: its prover failed, or (on a node that
   * forwarded the job) the worker's receipt did not check out (`receipt_rejected`). An internal
   * failure's message (a proof store's directory) is withheld: `internal server error`.
   */
  receipt_error?: { code: string; message: string };
}

/** A request failed, or a frame was refused. */
export interface WsErrorMessage {
  /** Message tag. */
  type: "error";
  /** The request id, when the error ends that request. */
  id?: string;
  /**
   * Instead of `id`, when the refused frame named a job still running (`duplicate_id`): that
   * job's own `done` or `error` is still to come.
   */
  refused_id?: string;
  /** Stable error code (`too_many_jobs`, `unknown_model`, `invalid_request`, ...). */
  code: string;
  /** Human-readable explanation. */
  message: string;
  /**
   * For a refusal over a limit (`too_many_jobs`, `rate_limited`) or for the node's overload
   * (`mailbox_full`, `ask_timeout`, `actor_stopped`): seconds to wait first.
   */
  retry_after_s?: number;
}

/** Any server → client WebSocket message. */
export type WsServerMessage =
  | WsStartMessage
  | WsQueuedMessage
  | WsTokenMessage
  | WsDoneMessage
  | WsErrorMessage;

/** The `start` message for a handle. */
export function startMessage(id: string, handle: InferenceHandle): WsStartMessage {
  return {
    type: "start",
    id,
    job_id: handle.jobId,
    model: handle.model.cid,
    model_name: handle.model.name,
    execution_provider: handle.model.executionProvider ?? "cpu",
    prompt_tokens: handle.promptTokens,
  };
}

/**
 * The `token` message for a token; with `logprobs` set (the `infer`'s), its logprob and, for
 * N > 0, its top list.
 */
export function tokenMessage(id: string, token: StreamedToken, logprobs?: number): WsTokenMessage {
  const message: WsTokenMessage = {
    type: "token",
    id,
    index: token.index,
    token_id: token.tokenId,
    text: token.text,
  };
  if (logprobs === undefined) return message;
  if (token.logprob !== undefined) message.logprob = token.logprob;
  if (logprobs > 0) {
    message.top_logprobs = (token.topLogprobs ?? []).map((top) => ({
      token_id: top.tokenId,
      text: top.text,
      logprob: top.logprob,
    }));
  }
  return message;
}

/** OpenAI-style usage from a summary. */
export function wireUsage(summary: JobSummary): WireUsage {
  const { promptTokens, completionTokens } = summary.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/**
 * Wire timings from a summary, rounded to microseconds (finer is noise). A summary measured on a
 * node that relayed the job has NaN for what it could not see (`queueMs`; `tokensPerS` of a
 * cancelled one), which JSON would write as `null` where clients read numbers: `queue_ms` is
 * `null` then, as documented, and `tokens_per_s` 0, as a job that generated nothing.
 */
export function wireTimings(summary: JobSummary): WireTimings {
  const { queueMs, ttftMs, totalMs, tokensPerS } = summary.timings;
  return {
    queue_ms: Number.isFinite(queueMs) ? roundMicros(queueMs) : null,
    ttft_ms: Number.isFinite(ttftMs) ? roundMicros(ttftMs) : null,
    tokens_per_s: Number.isFinite(tokensPerS)
      ? Math.round(tokensPerS * TOKENS_PER_S_DECIMALS) / TOKENS_PER_S_DECIMALS
      : 0,
    total_ms: Number.isFinite(totalMs) ? roundMicros(totalMs) : 0,
  };
}

/** The `done` message for a summary. */
export function doneMessage(id: string, summary: JobSummary): WsDoneMessage {
  const message: WsDoneMessage = {
    type: "done",
    id,
    job_id: summary.jobId,
    finish_reason: summary.finishReason,
    usage: wireUsage(summary),
    timings: wireTimings(summary),
  };
  if (summary.receipt !== undefined) message.receipt = toJsonValue(summary.receipt);
  // As over HTTP: an internal failure's text stays out (`receiptErrorForClient`).
  else if (summary.error !== undefined) {
    message.receipt_error = receiptErrorForClient(summary.error);
  }
  return message;
}

const MICROS_PER_MS = 1000;
const TOKENS_PER_S_DECIMALS = 100;

function roundMicros(ms: number): number {
  return Math.round(ms * MICROS_PER_MS) / MICROS_PER_MS;
}
