/**
 * The client-facing request schemas, in one place: the OpenAI-compatible HTTP bodies and the
 * WebSocket API's client messages. Bodies are parsed here once, at the edge; everything behind
 * takes the typed values. Field names follow OpenAI (`max_tokens`, `top_p`) so the official
 * clients and curl users need nothing new; `top_k` is our one extension.
 *
 * @module
 */
import { isJobInputCid, MAX_JOB_INPUT_BYTES } from "../protocols/job_input.ts";
import { z } from "zod";
import {
  DEFAULT_GENERATION_PARAMS,
  GENERATION_LIMITS,
  type GenerationParams,
} from "../protocols/job.ts";
import { MAX_TOP_LOGPROBS } from "../inference/top_logprobs.ts";
import { wellFormed } from "../protocols/well_formed.ts";
import { CHAT_NAME_RULE, isChatName } from "./chat_template.ts";
import { EdgeError, RequestValidationError } from "./http_errors.ts";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "./json_depth.ts";
import type { SamplingRequest, WsClientMessage } from "./stream_protocol.ts";
import { MAX_REQUEST_ID_CHARS } from "../protocols/stream_request_id.ts";

/** Longest WebSocket request id, in characters (shared with the client). */
export { MAX_REQUEST_ID_CHARS };
/**
 * Largest `logprobs` of `POST /v1/completions`: OpenAI's bound for the legacy API (chat's
 * `top_logprobs` goes to `MAX_TOP_LOGPROBS`, 20), so a request OpenAI refuses is refused here.
 */
export const MAX_COMPLETION_LOGPROBS = 5;

// Every bound on what a job may ask is GENERATION_LIMITS (protocols/job.ts): the edge refuses
// exactly what the InferenceActor, the sampler and the receipt check would refuse behind it.
const {
  maxTokens,
  maxTemperature,
  maxTopK,
  maxStopSequences,
  maxStopChars,
  maxPromptChars,
  maxModelChars,
  maxNonceChars,
} = GENERATION_LIMITS;

// Every text a job carries must be well-formed Unicode (a lone surrogate has no UTF-8 form, so
// the job's CBOR refuses it): refused here, naming the field, rather than as the job's params.
const stopText = wellFormed(z.string().min(1).max(maxStopChars));
const stopSchema = z.union([stopText, z.array(stopText).max(maxStopSequences)]);
const promptText = wellFormed(z.string().max(maxPromptChars));

/**
 * `max_tokens` (and `max_completion_tokens`): a positive integer, one above the job's cap
 * (`GENERATION_LIMITS.maxTokens`) taken as the cap. Clients ask for more than any job holds (8192
 * and up, or a model's whole context) to mean "as long as it goes"; a job ends at its context
 * anyway (`finish_reason: "length"`), and the job, its receipt's params included, carries the
 * cap, as it carries every default the node fills in.
 */
const maxTokensSchema = z.number().min(1)
  // Not `.int()`: zod's int is a safe integer, and 1e20 is as clear a "no limit" as 8192.
  .refine(Number.isInteger, "expected an integer")
  .transform((value) => Math.min(value, maxTokens));

/** A job's input CID (`protocols/job_input.ts`), refused at the edge with what it must be. */
const inputCid = z.string().max(maxModelChars).refine(isJobInputCid, {
  message: `must be the CID of a stored public file of at most ${
    MAX_JOB_INPUT_BYTES / 1024
  } KiB (one chunk: a raw CID, bafkrei…)`,
});

/**
 * Largest `seed` magnitude a request may send: OpenAI's `seed` is an int64, and clients send
 * seeds up to 2^63 − 1 (Python's `random.getrandbits(63)`), which a JSON double reads as 2^63.
 * The job's seed is a safe integer (`GENERATION_LIMITS`); {@link jobSeedOf} maps one to the other.
 */
export const MAX_REQUEST_SEED_MAGNITUDE = 2 ** 63;

const seedSchema = z.number().min(-MAX_REQUEST_SEED_MAGNITUDE).max(MAX_REQUEST_SEED_MAGNITUDE)
  // Not `.int()`: zod's int is a safe integer, which would refuse int64 seeds.
  .refine(Number.isInteger, "expected an integer");

/** The sampling fields shared by every text request (OpenAI names). */
const samplingFields = {
  model: z.string().min(1).max(maxModelChars).optional(),
  max_tokens: maxTokensSchema.nullish(),
  temperature: z.number().min(0).max(maxTemperature).nullish(),
  // 0, which OpenAI takes, keeps the most likely token only: `top_k` 1 (`toGenerationParams`).
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(maxTopK).nullish(),
  seed: seedSchema.nullish(),
  stop: stopSchema.nullish(),
};

/** OpenAI's `stream_options`. */
export interface StreamOptions {
  /** Send a last chunk with `usage` (and empty `choices`). */
  include_usage?: boolean | null;
}

/**
 * A validated `POST /v1/completions` body. Of the fields it does not read, only
 * {@link IGNORED_REQUEST_FIELDS} and those {@link refuseUnsupportedFields} judges get through.
 */
export interface CompletionRequest extends SamplingRequest {
  /** OpenAI's newer name for `max_tokens`, taken here as on chat (it wins over `max_tokens`). */
  max_completion_tokens?: number | null;
  /** The prompt (a batch must hold exactly one). */
  prompt: string | string[];
  /**
   * Veriflow's: the CID of a stored public file of one chunk whose text the model reads before
   * the prompt (the job's `input`, `protocols/job_input.ts`).
   */
  veriflow_input?: string | null;
  /** Stream server-sent events. */
  stream?: boolean | null;
  /** Streaming options. */
  stream_options?: StreamOptions | null;
  /** Choices per prompt; only 1. */
  n?: 1 | null;
  /** Echo the prompt; not supported. */
  echo?: false | null;
  /**
   * Logprobs of the chosen tokens, and this many of the most likely tokens at each position
   * (0 to {@link MAX_COMPLETION_LOGPROBS}).
   */
  logprobs?: number | null;
}

/** One chat message of a request. */
export interface ChatRequestMessage {
  /** Who speaks. */
  role: "system" | "developer" | "user" | "assistant";
  /** Text, or text parts. */
  content: string | { type: "text"; text: string }[];
  /** The speaker among several of the role, shown in its turn's label (`User (alice):`). */
  name?: string | null;
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
  /** Return the chosen tokens' logprobs. */
  logprobs?: boolean | null;
  /** The most likely tokens listed per position, 0 to 20; above 0 needs `logprobs: true`. */
  top_logprobs?: number | null;
}

/**
 * As OpenAI: `stream_options` says how a stream is sent, so asking for it without a stream is a
 * mistake (a client expecting a usage chunk would get none), refused rather than ignored.
 */
const streamOptionsNeedStream = (body: { stream?: boolean | null; stream_options?: unknown }) =>
  body.stream_options == null || body.stream === true;
/**
 * `stream_options`: its members are named, as the request's are, so a typo (`include_usag`) or
 * another server's option (vLLM's `continuous_usage_stats`) is a 400 naming it, not a stream sent
 * without what was asked (review s72). OpenAI's `include_obfuscation` pads each chunk against a
 * length side channel: none is added here, so `false` (what the node does) is taken and `true`
 * refused.
 */
const streamOptionsSchema = z.strictObject({
  include_usage: z.boolean().nullish(),
  include_obfuscation: z.literal(false, {
    error: "must be false: chunks are not padded (no obfuscation is added)",
  }).nullish(),
}).nullish();
const STREAM_OPTIONS_WITHOUT_STREAM = {
  message: "only allowed when 'stream' is true",
  path: ["stream_options"],
};

/**
 * Whether a completions `prompt` array is token ids: numbers, or arrays of them (a batch). A job's
 * prompt is text, what its receipt commits to, and the ids of one tokenizer are not that.
 */
const isTokenIdPrompt = (items: readonly unknown[]) =>
  items.some((item) => typeof item === "number" || Array.isArray(item));
const TOKEN_ID_PROMPT =
  "token ids are not taken as a prompt (a job's prompt is text, which its receipt commits to); " +
  "send the prompt as a string";

/**
 * OpenAI's `n`: one job is one choice, so 1 only, and a refusal that says how to get more, not
 * zod's bare "expected 1".
 */
const oneChoice = z.literal(1, {
  error: "must be 1: one choice per request is generated (send the request again for another; " +
    "without a seed, a sampled request gets a fresh one each time)",
}).nullish();

/** Roles of OpenAI's tool calling, which a conversation here cannot have (see `tools`). */
const TOOL_ROLES: ReadonlySet<unknown> = new Set(["tool", "function"]);

/** A chat message's role; a tool calling role is refused saying so. */
const chatRole = z.enum(["system", "developer", "user", "assistant"], {
  error: (issue) =>
    TOOL_ROLES.has(issue.input)
      ? `'${issue.input}' messages are not taken: the node runs plain text generation, ` +
        "without tool calling"
      : undefined,
});

/** An OpenAI request field this node cannot honour, and the values that ask for nothing. */
interface UnsupportedField {
  /** Whether `value` asks for nothing this node lacks (an empty list, a zero penalty). */
  harmless(value: unknown): boolean;
  /** Why it is refused. */
  why: string;
}

const isEmptyArray = (value: unknown) => Array.isArray(value) && value.length === 0;
const isEmptyObject = (value: unknown) =>
  typeof value === "object" && value !== null && Object.keys(value).length === 0;
const TOOLS = "the node runs plain text generation, without tool calling";
const STRUCTURED = "output is not constrained to a format (JSON mode, schemas)";

/**
 * The OpenAI fields (and vLLM's sampling and structured-output extensions) the node refuses
 * rather than ignores: ignoring them would return an answer that silently differs from what was
 * asked (a web search, a shorter answer, a repetition penalty, free text for a JSON schema).
 * Fields that change nothing in the output are ignored ({@link IGNORED_REQUEST_FIELDS}).
 */
const UNSUPPORTED_FIELDS: Readonly<Record<string, UnsupportedField>> = {
  tools: { harmless: isEmptyArray, why: TOOLS },
  tool_choice: { harmless: (value) => value === "none", why: TOOLS },
  functions: { harmless: isEmptyArray, why: TOOLS },
  function_call: { harmless: (value) => value === "none", why: TOOLS },
  response_format: {
    harmless: (value) => (value as { type?: unknown })?.type === "text",
    why: STRUCTURED,
  },
  logit_bias: { harmless: isEmptyObject, why: "the sampling rule has no logit bias" },
  presence_penalty: { harmless: (value) => value === 0, why: "the sampling rule has no penalties" },
  frequency_penalty: {
    harmless: (value) => value === 0,
    why: "the sampling rule has no penalties",
  },
  best_of: { harmless: (value) => value === 1, why: "one completion is generated per request" },
  suffix: { harmless: (value) => value === "", why: "there is no insertion mode" },
  audio: { harmless: () => false, why: "the node generates text only" },
  modalities: {
    harmless: (value) => Array.isArray(value) && value.every((m) => m === "text"),
    why: "the node generates text only",
  },
  prediction: { harmless: () => false, why: "there are no predicted outputs" },
  // Any object turns the search on (`{}` with OpenAI's default context size).
  web_search_options: { harmless: () => false, why: "the node does not search the web" },
  verbosity: {
    // OpenAI's default: what every answer here is.
    harmless: (value) => value === "medium",
    why: "answers are not steered shorter or longer (max_tokens bounds their length)",
  },
  // OpenAI refuses it for a model that does not reason; `none` asks for what every answer is.
  reasoning_effort: {
    harmless: (value) => value === "none",
    why: "the models here do not reason before answering",
  },
  // vLLM's sampling extensions, sent by clients of OpenAI-compatible servers (this node takes
  // vLLM's `top_k`): each would change the answer, so a value other than its no-op is refused.
  repetition_penalty: {
    harmless: (value) => value === 1,
    why: "the sampling rule has no penalties",
  },
  min_p: { harmless: (value) => value === 0, why: "the sampling rule has no min-p cut" },
  min_tokens: {
    harmless: (value) => value === 0,
    why: "a job ends at its first stop (the end of text or a stop sequence)",
  },
  ignore_eos: {
    harmless: (value) => value === false,
    why: "a job ends at the model's end of text",
  },
  include_stop_str_in_output: {
    harmless: (value) => value === false,
    why: "a matched stop sequence is left out of the text and sent as veriflow_stop",
  },
  // vLLM's structured output (its `guided_*` fields, and `structured_outputs` that replaced
  // them): a client that sends one expects text of that form, which nothing here makes.
  guided_json: { harmless: () => false, why: STRUCTURED },
  guided_regex: { harmless: () => false, why: STRUCTURED },
  guided_choice: { harmless: () => false, why: STRUCTURED },
  guided_grammar: { harmless: () => false, why: STRUCTURED },
  structured_outputs: { harmless: () => false, why: STRUCTURED },
  stop_token_ids: {
    harmless: isEmptyArray,
    why: "stop sequences are text ('stop'), which a job's receipt commits to, not token ids",
  },
  bad_words: { harmless: isEmptyArray, why: "the sampling rule bans no words" },
  allowed_token_ids: { harmless: () => false, why: "the sampling rule has no allow list" },
  use_beam_search: {
    harmless: (value) => value === false,
    why: "a job samples one token at a time (greedy or random), without beam search",
  },
  prompt_logprobs: {
    harmless: () => false,
    why: "logprobs are given for the generated tokens only",
  },
  truncate_prompt_tokens: {
    harmless: () => false,
    why: "a prompt is never cut (one past the context is refused: context_length_exceeded)",
  },
};

/**
 * `/v1/completions` has no `top_logprobs` (chat's field): its top tokens are asked for with
 * `logprobs: N`, so the chat field there would be silently ignored.
 */
const COMPLETION_UNSUPPORTED_FIELDS: Readonly<Record<string, UnsupportedField>> = {
  ...UNSUPPORTED_FIELDS,
  top_logprobs: {
    harmless: (value) => value === 0,
    why: `completions list the most likely tokens with logprobs: N (0–${MAX_COMPLETION_LOGPROBS})`,
  },
};

/**
 * Chat reads no stored input: its prompt is the rendered conversation, and an input's text before
 * it would come before the template's own start. Refused, not ignored: a chat answer that never
 * read the file a client named differs silently from what was asked. So are vLLM's chat template
 * switches (`echo`, `add_generation_prompt`, `continue_final_message`, `chat_template`) but for
 * the values that ask for what the template does.
 */
const CHAT_UNSUPPORTED_FIELDS: Readonly<Record<string, UnsupportedField>> = {
  ...UNSUPPORTED_FIELDS,
  veriflow_input: {
    harmless: () => false,
    why: "chat takes no stored input (its prompt is the conversation); use /v1/completions",
  },
  // vLLM's switches of its chat template: this node's template (`chat_template.ts`) always ends
  // the prompt with a new assistant turn and answers with that turn alone.
  echo: {
    harmless: (value) => value === false,
    why: "the conversation is not echoed (prepend its last message yourself)",
  },
  add_generation_prompt: {
    harmless: (value) => value === true,
    why: "the chat template always opens the assistant's turn",
  },
  continue_final_message: {
    harmless: (value) => value === false,
    why: "the chat template opens a new assistant turn; use /v1/completions to continue a text",
  },
  chat_template: {
    harmless: () => false,
    why: "the node renders every conversation with its own template (docs/API.md)",
  },
};

/**
 * The OpenAI fields a request may carry that change nothing in the answer, accepted and ignored:
 * who asks (`user`, `safety_identifier`), what OpenAI keeps or bills (`metadata`, `store`,
 * `service_tier`, `prompt_cache_key`), and `parallel_tool_calls`, which without `tools` (refused)
 * has no call to run. Any other field no table here names is refused, naming it (as OpenAI and
 * the WebSocket API do): a typo or another server's name for a length, stop or sampling setting
 * (`max_token`, `max_new_tokens`, `typical_p`) would otherwise run with the default and return an
 * answer that silently differs from what was asked.
 */
export const IGNORED_REQUEST_FIELDS: ReadonlySet<string> = new Set([
  "user",
  "metadata",
  "store",
  "service_tier",
  "parallel_tool_calls",
  "safety_identifier",
  "prompt_cache_key",
]);

/**
 * The fields of a body the schema lets through without reading them: the ignored ones, and those
 * of `unsupported`, whose values {@link refuseUnsupportedFields} judges after the parse (so each
 * keeps its `unsupported_field` refusal and its reason). Spread before a schema's own fields,
 * which take precedence.
 */
function passedFields(
  unsupported: Readonly<Record<string, UnsupportedField>>,
): Record<string, z.ZodOptional<z.ZodUnknown>> {
  const names = [...IGNORED_REQUEST_FIELDS, ...Object.keys(unsupported)];
  return Object.fromEntries(names.map((name) => [name, z.unknown().optional()]));
}

/** `POST /v1/completions` body: the fields above and in {@link passedFields}; any other is refused. */
export const CompletionRequestSchema: z.ZodType<CompletionRequest> = z.strictObject({
  ...passedFields(COMPLETION_UNSUPPORTED_FIELDS),
  ...samplingFields,
  // Clients that send the newer name everywhere would otherwise get the default length.
  max_completion_tokens: maxTokensSchema.nullish(),
  prompt: z.union([
    promptText,
    // OpenAI accepts a batch of prompts; one job per request here, so a batch must hold one.
    // A prompt of token ids (OpenAI's "array of tokens", or a batch of them) is refused as
    // such first, or it would be told it is a batch of too many prompts.
    z.array(z.unknown())
      .refine((items) => !isTokenIdPrompt(items), { message: TOKEN_ID_PROMPT, abort: true })
      .pipe(z.array(promptText).length(1)),
  ]),
  veriflow_input: inputCid.nullish(),
  stream: z.boolean().nullish(),
  stream_options: streamOptionsSchema,
  n: oneChoice,
  echo: z.literal(false, {
    error: "must be false: the prompt is not echoed (prepend it to the text yourself)",
  }).nullish(),
  logprobs: z.number().int().min(0).max(MAX_COMPLETION_LOGPROBS).nullish(),
}).refine(streamOptionsNeedStream, STREAM_OPTIONS_WITHOUT_STREAM);

const chatContentSchema = z.union([
  promptText,
  // At least one part, as OpenAI: an empty list is a mistake, not an empty turn to run.
  z.array(z.looseObject({ type: z.literal("text"), text: promptText })).min(1),
]);

/** `POST /v1/chat/completions` body: its fields and {@link passedFields}; any other is refused. */
export const ChatCompletionRequestSchema: z.ZodType<ChatCompletionRequest> = z.strictObject({
  ...passedFields(CHAT_UNSUPPORTED_FIELDS),
  ...samplingFields,
  /** OpenAI's newer name for `max_tokens`. */
  max_completion_tokens: maxTokensSchema.nullish(),
  messages: z.array(z.looseObject({
    role: chatRole,
    content: chatContentSchema,
    // Shown in the turn's label by the chat template, which takes only names that keep the
    // label one label on one line; refused here, naming the message, rather than dropped.
    name: wellFormed(z.string().refine(isChatName, CHAT_NAME_RULE)).nullish(),
  })).min(1),
  stream: z.boolean().nullish(),
  stream_options: streamOptionsSchema,
  n: oneChoice,
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
}).refine((body) => !body.top_logprobs || body.logprobs === true, {
  // As OpenAI: the top list is part of each token's logprobs entry, so it needs those.
  message: "top_logprobs above 0 needs logprobs: true",
  path: ["top_logprobs"],
}).refine(streamOptionsNeedStream, STREAM_OPTIONS_WITHOUT_STREAM);

/**
 * Throw a 400 `unsupported_field` naming the first field of `body` the node cannot honour
 * (`tools`, `response_format`, `logit_bias`, `veriflow_input` on chat, ...). `null` counts as
 * absent.
 */
export function refuseUnsupportedFields(
  body: Record<string, unknown>,
  endpoint: "completions" | "chat",
): void {
  const table = endpoint === "completions"
    ? COMPLETION_UNSUPPORTED_FIELDS
    : CHAT_UNSUPPORTED_FIELDS;
  for (const [field, rule] of Object.entries(table)) {
    const value = body[field];
    if (value === undefined || value === null || rule.harmless(value)) continue;
    throw new EdgeError(
      "unsupported_field",
      `'${field}' is not supported by this node: ${rule.why}; remove it from the request`,
      { param: field },
    );
  }
}

/**
 * Refuse a chat body with more than `max` messages and content parts (400 `too_many_messages`,
 * `http.maxChatMessages`), counting them in the parsed JSON before the schema walks them.
 */
export function refuseTooManyMessages(raw: unknown, max: number): void {
  const messages = (raw as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return; // the schema says what is wrong
  let items = messages.length;
  for (const message of messages) {
    const content = (message as { content?: unknown } | null)?.content;
    if (Array.isArray(content)) items += content.length;
    if (items > max) {
      throw new EdgeError(
        "too_many_messages",
        `'messages': over ${max} messages and content parts, this node's limit ` +
          `(http.maxChatMessages); send fewer, or ask the operator to raise it`,
        { param: "messages" },
      );
    }
  }
}

// The WebSocket messages are our own protocol: an unknown field is a mistake (a typo like
// `max_token` would otherwise run with the default), so it is refused, naming the field. A known
// optional field may be `null`, which means absent, as for the sampling fields (clients that
// write unset fields as null).

/** WebSocket `infer`: start a job on this socket under the client's `id`. */
const wsInferSchema = z.strictObject({
  type: z.literal("infer"),
  id: z.string().min(1).max(MAX_REQUEST_ID_CHARS),
  prompt: promptText,
  /** A stored file the model reads before the prompt, by CID (the job's `input`). */
  input: inputCid.nullish(),
  /** Requester-chosen job nonce; random when absent. */
  nonce: wellFormed(z.string().max(maxNonceChars)).nullish(),
  /** Each token message carries its logprob and this many top tokens. */
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
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
  const issue = withinUnion(result.error.issues[0], value);
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

/**
 * What is wrong with a value a union (string or array: `stop`, `prompt`, chat `content`) refused:
 * when the value is of one branch's type (the others fail on the type itself), that branch's
 * first issue, under the union's path — five stop sequences are over the array's four, an image
 * part has the wrong `type` — where the union alone says only "Invalid input". When it is of no
 * branch's type (missing, a number, null), the types it may be and the one it is, as a field of
 * one type is told (`expected string or array, received undefined`).
 *
 * @param issue The first issue of the refusal.
 * @param root The value parsed, where the refused value is looked up by the issue's path.
 */
function withinUnion(issue: z.core.$ZodIssue, root: unknown): z.core.$ZodIssue {
  while (issue.code === "invalid_union") {
    const ofItsType = issue.errors.filter((branch) =>
      !(branch[0]?.code === "invalid_type" && branch[0].path.length === 0)
    );
    if (ofItsType.length === 0 && issue.errors.length > 0) {
      const expected = new Set(
        issue.errors.map((branch) => (branch[0] as z.core.$ZodIssueInvalidType).expected),
      );
      const message = `Invalid input: expected ${[...expected].join(" or ")}, received ${
        typeName(valueAt(root, issue.path))
      }`;
      return { ...issue, message };
    }
    const inner = ofItsType.length === 1 ? ofItsType[0][0] : undefined;
    if (inner === undefined) break;
    issue = { ...inner, path: [...issue.path, ...inner.path] };
  }
  return issue;
}

/** The value under `path` in `root` (undefined where a step is missing). */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A JSON value's type as zod's own messages name it: null and array apart from object. */
function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/**
 * Parse a JSON text, or throw a {@link RequestValidationError} with code `invalid_json`: malformed,
 * or nested deeper than {@link MAX_JSON_DEPTH} (refused before the parser sees it, which would
 * hold the event loop for as long as such a text takes it: `json_depth.ts`).
 */
export function parseJsonText(text: string): unknown {
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new RequestValidationError(
      "invalid_json",
      `JSON nested deeper than ${MAX_JSON_DEPTH} arrays and objects inside one another, the ` +
        `node's limit; send a flatter body`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RequestValidationError("invalid_json", `malformed JSON: ${(error as Error).message}`);
  }
}

const UINT64_MASK = (1n << 64n) - 1n;
const SAFE_INTEGER_MASK = BigInt(Number.MAX_SAFE_INTEGER); // 2^53 − 1: the low 53 bits

/**
 * The job seed of a request's `seed`: a safe integer is itself (the seeds that reproduce today
 * keep doing so); any other integer in ±2^63 is the low 53 bits of SplitMix64's finaliser of its
 * IEEE-754 double bits, so the same request seed always gives the same job seed, and seeds that
 * differ as doubles (2^62, 2^63) rarely share one. The RNG takes safe integers only.
 *
 * @example
 * ```ts
 * import { jobSeedOf } from "./request_schemas.ts";
 * jobSeedOf(42); // 42
 * Number.isSafeInteger(jobSeedOf(2 ** 62)); // true
 * ```
 */
export function jobSeedOf(seed: number): number {
  if (Number.isSafeInteger(seed)) return seed;
  const bits = new DataView(new ArrayBuffer(8));
  bits.setFloat64(0, seed);
  // SplitMix64's finaliser (Steele, Lea, Flood 2014): every input bit reaches the low 53.
  let z = bits.getBigUint64(0);
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & UINT64_MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & UINT64_MASK;
  z ^= z >> 31n;
  return Number(z & SAFE_INTEGER_MASK);
}

/**
 * The temperature of a request that sets a sampling knob (`top_p`, `top_k` or `seed`) but no
 * `temperature`: OpenAI's default, 1. Such a request asks to sample (OpenAI tells clients to
 * change `top_p` or `temperature`, not both, so many send `top_p` alone); decoding it greedily
 * would ignore the knobs it set and return one answer however often it is sent. A request that
 * sets none of them keeps the node's greedy default (`DEFAULT_GENERATION_PARAMS`, docs/API.md).
 */
export const SAMPLING_DEFAULT_TEMPERATURE = 1;

/**
 * A request's temperature: the one it sent; else {@link SAMPLING_DEFAULT_TEMPERATURE} when it set
 * a sampling knob, else the greedy default. One rule for the OpenAI routes and the WebSocket API.
 */
function temperatureOf(request: SamplingRequest): number {
  if (request.temperature != null) return request.temperature;
  const asksToSample = request.top_p != null || request.top_k != null || request.seed != null;
  return asksToSample ? SAMPLING_DEFAULT_TEMPERATURE : DEFAULT_GENERATION_PARAMS.temperature;
}

/** Generation parameters from request fields, defaults filled in ({@link temperatureOf}). */
export function toGenerationParams(
  request: SamplingRequest,
  maxTokens?: number | null,
): GenerationParams {
  const stop = request.stop ?? [];
  // A nucleus of mass 0 is the most likely token alone: what `top_k` 1 keeps. A job's `topP`
  // is in (0, 1].
  const onlyTop = request.top_p === 0;
  return {
    maxTokens: maxTokens ?? request.max_tokens ?? DEFAULT_GENERATION_PARAMS.maxTokens,
    temperature: temperatureOf(request),
    topK: onlyTop ? 1 : request.top_k ?? DEFAULT_GENERATION_PARAMS.topK,
    topP: onlyTop
      ? DEFAULT_GENERATION_PARAMS.topP
      : request.top_p ?? DEFAULT_GENERATION_PARAMS.topP,
    seed: request.seed == null ? DEFAULT_GENERATION_PARAMS.seed : jobSeedOf(request.seed),
    stop: typeof stop === "string" ? [stop] : [...stop],
  };
}
