/**
 * The client-facing request schemas, in one place: the OpenAI-compatible HTTP bodies and the
 * WebSocket API's client messages. Bodies are parsed here once, at the edge; everything behind
 * takes the typed values. Field names follow OpenAI (`max_tokens`, `top_p`) so the official
 * clients and curl users need nothing new; `top_k` is our one extension.
 *
 * @module
 */
import { z } from "zod";
import {
  DEFAULT_GENERATION_PARAMS,
  GENERATION_LIMITS,
  type GenerationParams,
} from "../protocols/job.ts";
import { RequestValidationError } from "./http_errors.ts";
import type { SamplingRequest, WsClientMessage } from "./stream_protocol.ts";

/** Longest WebSocket request id, in characters. */
export const MAX_REQUEST_ID_CHARS = 128;

// Every bound on what a job may ask is GENERATION_LIMITS (protocols/job.ts): the edge refuses
// exactly what the InferenceActor, the sampler and the receipt check would refuse behind it.
const {
  maxTokens,
  maxTemperature,
  maxTopK,
  minSeed,
  maxSeed,
  maxStopSequences,
  maxStopChars,
  maxPromptChars,
  maxModelChars,
  maxNonceChars,
} = GENERATION_LIMITS;

const stopSchema = z.union([
  z.string().min(1).max(maxStopChars),
  z.array(z.string().min(1).max(maxStopChars)).max(maxStopSequences),
]);

const maxTokensSchema = z.number().int().min(1).max(maxTokens);

/** The sampling fields shared by every text request (OpenAI names). */
const samplingFields = {
  model: z.string().min(1).max(maxModelChars).optional(),
  max_tokens: maxTokensSchema.nullish(),
  temperature: z.number().min(0).max(maxTemperature).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(maxTopK).nullish(),
  seed: z.number().int().min(minSeed).max(maxSeed).nullish(),
  stop: stopSchema.nullish(),
};

/** OpenAI's `stream_options`. */
export interface StreamOptions {
  /** Send a last chunk with `usage` (and empty `choices`). */
  include_usage?: boolean | null;
}

/** A validated `POST /v1/completions` body (unknown fields are kept but ignored). */
export interface CompletionRequest extends SamplingRequest {
  /** The prompt (a batch must hold exactly one). */
  prompt: string | string[];
  /** Stream server-sent events. */
  stream?: boolean | null;
  /** Streaming options. */
  stream_options?: StreamOptions | null;
  /** Choices per prompt; only 1. */
  n?: 1 | null;
  /** Echo the prompt; not supported. */
  echo?: false | null;
}

/** One chat message of a request. */
export interface ChatRequestMessage {
  /** Who speaks. */
  role: "system" | "developer" | "user" | "assistant";
  /** Text, or text parts. */
  content: string | { type: "text"; text: string }[];
}

/** A validated `POST /v1/chat/completions` body. */
export interface ChatCompletionRequest extends SamplingRequest {
  /** OpenAI's newer name for `max_tokens`. */
  max_completion_tokens?: number | null;
  /** The conversation. */
  messages: ChatRequestMessage[];
  /** Stream server-sent events. */
  stream?: boolean | null;
  /** Streaming options. */
  stream_options?: StreamOptions | null;
  /** Choices; only 1. */
  n?: 1 | null;
}

/** `POST /v1/completions` body. Unknown fields are ignored, as OpenAI clients send many. */
export const CompletionRequestSchema: z.ZodType<CompletionRequest> = z.looseObject({
  ...samplingFields,
  prompt: z.union([
    z.string().max(maxPromptChars),
    // OpenAI accepts a batch of prompts; one job per request here, so a batch must hold one.
    z.array(z.string().max(maxPromptChars)).length(1),
  ]),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1).nullish(),
  echo: z.literal(false).nullish(),
});

const chatContentSchema = z.union([
  z.string().max(maxPromptChars),
  z.array(z.looseObject({ type: z.literal("text"), text: z.string().max(maxPromptChars) })),
]);

/** `POST /v1/chat/completions` body. */
export const ChatCompletionRequestSchema: z.ZodType<ChatCompletionRequest> = z.looseObject({
  ...samplingFields,
  /** OpenAI's newer name for `max_tokens`. */
  max_completion_tokens: maxTokensSchema.nullish(),
  messages: z.array(z.looseObject({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: chatContentSchema,
  })).min(1),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1).nullish(),
});

// The WebSocket messages are our own protocol: an unknown field is a mistake (a typo like
// `max_token` would otherwise run with the default), so it is refused, naming the field.

/** WebSocket `infer`: start a job on this socket under the client's `id`. */
const wsInferSchema = z.strictObject({
  type: z.literal("infer"),
  id: z.string().min(1).max(MAX_REQUEST_ID_CHARS),
  prompt: z.string().max(maxPromptChars),
  /** Requester-chosen job nonce; random when absent. */
  nonce: z.string().max(maxNonceChars).optional(),
  ...samplingFields,
});

/** WebSocket `cancel`: stop the job started under `id`. */
const wsCancelSchema = z.strictObject({
  type: z.literal("cancel"),
  id: z.string().min(1).max(MAX_REQUEST_ID_CHARS),
});

/** Any client → server WebSocket message. */
export const WsClientMessageSchema: z.ZodType<WsClientMessage> = z.discriminatedUnion("type", [
  wsInferSchema,
  wsCancelSchema,
]);

/**
 * Parse `value` with `schema`, or throw a {@link RequestValidationError} naming the first field
 * at fault (what OpenAI's `param` carries).
 */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.path.map(String);
  // An unknown field is named as the field at fault, not as its parent object.
  if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
  const param = path.join(".");
  const where = param === "" ? "request" : `'${param}'`;
  const message = issue.code === "unrecognized_keys"
    ? "unknown field (check its spelling; docs/API.md lists the fields)"
    : issue.message;
  throw new RequestValidationError("invalid_request", `${where}: ${message}`, param || undefined);
}

/** Parse a JSON text, or throw a {@link RequestValidationError} with code `invalid_json`. */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RequestValidationError("invalid_json", `malformed JSON: ${(error as Error).message}`);
  }
}

/** Generation parameters from request fields, defaults filled in. */
export function toGenerationParams(
  request: SamplingRequest,
  maxTokens?: number | null,
): GenerationParams {
  const stop = request.stop ?? [];
  return {
    maxTokens: maxTokens ?? request.max_tokens ?? DEFAULT_GENERATION_PARAMS.maxTokens,
    temperature: request.temperature ?? DEFAULT_GENERATION_PARAMS.temperature,
    topK: request.top_k ?? DEFAULT_GENERATION_PARAMS.topK,
    topP: request.top_p ?? DEFAULT_GENERATION_PARAMS.topP,
    seed: request.seed ?? DEFAULT_GENERATION_PARAMS.seed,
    stop: typeof stop === "string" ? [stop] : [...stop],
  };
}
