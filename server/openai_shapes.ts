/**
 * The two OpenAI response families the `/v1` routes answer in — text completions and chat
 * completions — as data: ids, `object` names, how a choice looks streamed and in full, and how
 * logprobs are written. The answers themselves (`openai_answers.ts`) are shared.
 *
 * Logprobs are the model's log-softmax, before temperature and cuts: the chosen token's is the
 * number its proof fingerprint commits to, and the top tokens' (chat `top_logprobs`, completions
 * `logprobs: N`) come from the same row, computed next to it. A token is named by its text: the
 * chosen one by the text it added to the output, an alternative by decoding its id alone.
 *
 * Completions' `top_logprobs` are `{ text: logprob }` objects listed most likely first, which a
 * JavaScript object cannot hold when a text is an integer ("9" would come before " "): they are
 * {@link OrderedJsonObject}s, written member by member by {@link stringifyAnswer}.
 *
 * @module
 */
import type { StreamedToken } from "../inference/inference_port.ts";
import type { WireUsage } from "./stream_protocol.ts";

// ---------------------------------------------------------------------------------------------
// The streamed chunks, as the routes write them (`sseAnswer` builds each one by these types)
// ---------------------------------------------------------------------------------------------

/**
 * OpenAI's `finish_reason` of a choice: `stop` (end of text or a stop sequence) or `length`
 * (`max_tokens` or the context) on a job's last chunk, `null` on every other. A job that fails or
 * is cancelled ends with an error event instead (`data: {"error": …}`, the HTTP error body).
 */
export type OpenAiFinishReason = "stop" | "length" | null;

/**
 * The fields Veriflow adds to a finished job's last chunk (the one with `finish_reason`), and to
 * a non-streamed answer's body. Every other chunk has none of them. OpenAI clients keep them on
 * the objects they hand back (the `openai` package does): read them by widening its chunk type.
 *
 * @example Read a receipt with the `openai` package
 * ```ts ignore
 * import OpenAI from "openai";
 * import { type VeriflowChunkFields, verifyReceipt } from "@veriflow/node";
 *
 * const client = new OpenAI({ baseURL: "http://127.0.0.1:8080/v1", apiKey: "unused" });
 * const stream = await client.chat.completions.create({
 *   model: "default",
 *   messages: [{ role: "user", content: "Once upon a time" }],
 *   max_tokens: 16,
 *   stream: true,
 * });
 * let text = "";
 * let end: VeriflowChunkFields = {};
 * for await (const chunk of stream) {
 *   text += chunk.choices[0]?.delta.content ?? "";
 *   const fields = chunk as typeof chunk & VeriflowChunkFields;
 *   if (fields.veriflow_job_id !== undefined) end = fields; // the last chunk
 * }
 * // The receipt commits to the text with the matched stop sequence put back.
 * const check = verifyReceipt(end.veriflow_receipt, { output: text + (end.veriflow_stop ?? "") });
 * ```
 */
export interface VeriflowChunkFields {
  /** The job's id (hex): the hash of the job the node ran, which its receipt names. */
  veriflow_job_id?: string;
  /**
   * The stop sequence that ended the job, left out of the text as OpenAI does, together with
   * any text its last token carried after it: `text + veriflow_stop` is the output the receipt
   * commits to. Absent when no stop sequence matched.
   */
  veriflow_stop?: string;
  /**
   * The job's signed receipt, when the node runs a prover (on a node that forwarded the job:
   * the worker's, checked), as JSON with byte strings as lower-case hex. Check it with
   * `verifyReceipt`, read it with `parseReceipt`.
   */
  veriflow_receipt?: unknown;
  /**
   * Why a job that finished has no receipt: its prover failed, or (on a node that forwarded
   * the job) the worker's receipt did not check out (`receipt_rejected`). An internal failure's
   * message is withheld: `internal server error`.
   */
  veriflow_receipt_error?: { code: string; message: string };
}

/** `logprobs` of a {@link CompletionChunkChoice}, when the request asked for them (`logprobs: N`). */
export interface CompletionLogprobs {
  /** Each token's text: what it added to the output. */
  tokens: string[];
  /** Each token's log-probability (the model's log-softmax, before temperature and cuts). */
  token_logprobs: (number | null)[];
  /**
   * Per token, `{ text: logprob }` of the most likely tokens, most likely first, the sampled
   * one always among them (written in that order even when a text looks like an integer).
   */
  top_logprobs: Record<string, number>[];
  /** Each token's character offset in the output. */
  text_offset: number[];
}

/** The one choice of a {@link CompletionChunk}. */
export interface CompletionChunkChoice {
  /** Always 0: one choice per request. */
  index: number;
  /** The text this chunk adds; `""` on the last chunk. */
  text: string;
  /** The tokens' logprobs, or `null` unless asked for. */
  logprobs: CompletionLogprobs | null;
  /** Set on the job's last chunk only. */
  finish_reason: OpenAiFinishReason;
}

/**
 * One `data:` event of `POST /v1/completions` with `stream: true`, as the node writes it (the
 * stream ends with `data: [DONE]`). The last chunk with a choice carries `finish_reason` and the
 * {@link VeriflowChunkFields}; with `stream_options.include_usage`, every chunk has `usage: null`
 * and one more chunk, with no choice, has the usage.
 */
export interface CompletionChunk extends VeriflowChunkFields {
  /** `cmpl-` and the first 24 hex characters of the job id; the same on every chunk. */
  id: string;
  /** Always `text_completion`. */
  object: "text_completion";
  /** Unix time, seconds, of the stream's start. */
  created: number;
  /** The CID of the model that ran the job. */
  model: string;
  /** One choice; none on the usage chunk. */
  choices: CompletionChunkChoice[];
  /** With `stream_options.include_usage` only: `null`, then the usage on the extra last chunk. */
  usage?: WireUsage | null;
}

/** One token of {@link ChatLogprobs}. */
export interface ChatTokenLogprob {
  /** The text it added to the output. */
  token: string;
  /** Its log-probability. */
  logprob: number | null;
  /** Its text's UTF-8 bytes. */
  bytes: number[];
  /** The most likely tokens at its position (empty unless `top_logprobs` was asked for). */
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** `logprobs` of a {@link ChatCompletionChunkChoice}, when the request asked for them. */
export interface ChatLogprobs {
  /** The chunk's tokens. */
  content: ChatTokenLogprob[];
  /** Always `null`. */
  refusal: null;
}

/** The one choice of a {@link ChatCompletionChunk}. */
export interface ChatCompletionChunkChoice {
  /** Always 0: one choice per request. */
  index: number;
  /**
   * What this chunk adds: the first chunk `{ role: "assistant", content: "" }`, then
   * `{ content }`, and `{}` on the last.
   */
  delta: { role?: "assistant"; content?: string };
  /** The tokens' logprobs, or `null` unless asked for. */
  logprobs: ChatLogprobs | null;
  /** Set on the job's last chunk only. */
  finish_reason: OpenAiFinishReason;
}

/**
 * One `data:` event of `POST /v1/chat/completions` with `stream: true`, as the node writes it
 * (the stream ends with `data: [DONE]`); see {@link CompletionChunk} for the last chunk and the
 * usage.
 */
export interface ChatCompletionChunk extends VeriflowChunkFields {
  /** `chatcmpl-` and the first 24 hex characters of the job id; the same on every chunk. */
  id: string;
  /** Always `chat.completion.chunk`. */
  object: "chat.completion.chunk";
  /** Unix time, seconds, of the stream's start. */
  created: number;
  /** The CID of the model that ran the job. */
  model: string;
  /** One choice; none on the usage chunk. */
  choices: ChatCompletionChunkChoice[];
  /** With `stream_options.include_usage` only: `null`, then the usage on the extra last chunk. */
  usage?: WireUsage | null;
}

/** A streamed chunk of either route. */
export type OpenAiStreamChunk = CompletionChunk | ChatCompletionChunk;

// ---------------------------------------------------------------------------------------------
// The response families
// ---------------------------------------------------------------------------------------------

/** How a response family shapes its choices. */
export interface ResponseShape {
  /** Prefix of response ids (`cmpl`, `chatcmpl`); also names the API in the job log. */
  idPrefix: string;
  /** `object` of a full response. */
  object: string;
  /** `object` of a streamed chunk. */
  chunkObject: OpenAiStreamChunk["object"];
  /**
   * The choice of a streamed chunk: a text piece, or the end (`text` null). `logprobs` is what
   * this shape's {@link logprobs} wrote.
   */
  chunkChoice(
    text: string | null,
    logprobs: unknown | null,
    finishReason: OpenAiFinishReason,
  ): OpenAiStreamChunk["choices"][number];
  /** A chunk sent before any token (chat announces the assistant role), if any. */
  openingChoice?(): OpenAiStreamChunk["choices"][number];
  /** The choice of a full response. */
  fullChoice(
    text: string,
    logprobs: unknown | null,
    finishReason: OpenAiFinishReason,
  ): Record<string, unknown>;
  /** The logprobs of `tokens`, the first of which starts at character `offset` of the output. */
  logprobs(tokens: readonly StreamedToken[], offset: number): unknown;
}

/**
 * A JSON object whose members are written in the order given, for {@link stringifyAnswer}.
 * `JSON.stringify` of a plain object writes integer-like keys ("9", "42") first, whatever
 * order they were added in.
 */
export class OrderedJsonObject {
  /** The members, in the order they are written. */
  readonly entries: readonly (readonly [string, unknown])[];

  /**
   * Create it.
   *
   * @param entries The members, in order; keys are expected to be distinct.
   */
  constructor(entries: readonly (readonly [string, unknown])[]) {
    this.entries = entries;
  }
}

/**
 * `JSON.stringify(value)`, except that an {@link OrderedJsonObject} is written as an object with
 * its members in their order. Everything else is written as `JSON.stringify` writes it (members
 * that are `undefined` or functions left out of objects, `null` in arrays; `toJSON` honoured).
 *
 * @example
 * ```ts
 * import { OrderedJsonObject, stringifyAnswer } from "./openai_shapes.ts";
 * stringifyAnswer({ top: new OrderedJsonObject([[" ", -1], ["9", -2]]) }); // '{"top":{" ":-1,"9":-2}}'
 * ```
 */
export function stringifyAnswer(value: unknown): string {
  return writeJson(value) ?? "null";
}

function writeJson(value: unknown): string | undefined {
  if (value instanceof OrderedJsonObject) return writeMembers(value.entries);
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return writeJson((value as { toJSON(): unknown }).toJSON());
  }
  if (Array.isArray(value)) return `[${value.map((item) => writeJson(item) ?? "null").join(",")}]`;
  return writeMembers(Object.entries(value));
}

function writeMembers(entries: readonly (readonly [string, unknown])[]): string {
  const members: string[] = [];
  for (const [key, member] of entries) {
    const text = writeJson(member);
    if (text !== undefined) members.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${members.join(",")}}`;
}

/** `POST /v1/completions`. */
export const COMPLETION_SHAPE: ResponseShape = {
  idPrefix: "cmpl",
  object: "text_completion",
  chunkObject: "text_completion",
  chunkChoice: (text, logprobs, finishReason): CompletionChunkChoice => ({
    index: 0,
    text: text ?? "",
    // This shape's own `logprobs` (its top lists are OrderedJsonObjects, written as objects).
    logprobs: logprobs as CompletionLogprobs | null,
    finish_reason: finishReason,
  }),
  fullChoice: (text, logprobs, finishReason) => ({
    index: 0,
    text,
    logprobs,
    finish_reason: finishReason,
  }),
  logprobs: (tokens, offset) => {
    const textOffset: number[] = [];
    for (const token of tokens) {
      textOffset.push(offset);
      offset += token.text.length;
    }
    return {
      tokens: tokens.map((token) => token.text),
      token_logprobs: tokens.map((token) => token.logprob ?? null),
      // Asked for with `logprobs: 0` too: then each position lists the sampled token alone.
      top_logprobs: tokens.map(topLogprobsByText),
      text_offset: textOffset,
    };
  },
};

/**
 * The legacy completions form of a token's top list: `{ text: logprob }`, most likely first.
 * The sampled token is always in it, under the text it added to the output (its entry in
 * `tokens`), as OpenAI's "up to logprobs+1 elements": `top[tokens[i]]` is `token_logprobs[i]`.
 * Two ids with the same text on their own (byte tokens that are each an incomplete character)
 * share one key, which keeps the more likely one, as OpenAI's own dictionaries do; the sampled
 * token's key is its own.
 */
function topLogprobsByText(token: StreamedToken): OrderedJsonObject {
  const byText = new Map<string, number>();
  if (token.logprob !== undefined) byText.set(token.text, token.logprob);
  for (const top of token.topLogprobs ?? []) {
    // The sampled id is listed by the text it added (set above), not by its text on its own.
    if (top.tokenId === token.tokenId && token.logprob !== undefined) continue;
    if (!byText.has(top.text)) byText.set(top.text, top.logprob);
  }
  // Stable: equal logprobs keep the sampled token, then the top list's order.
  return new OrderedJsonObject([...byText].sort((a, b) => a[1] > b[1] ? -1 : a[1] < b[1] ? 1 : 0));
}

const encoder = new TextEncoder();

/** `POST /v1/chat/completions`. */
export const CHAT_SHAPE: ResponseShape = {
  idPrefix: "chatcmpl",
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  chunkChoice: (text, logprobs, finishReason): ChatCompletionChunkChoice => ({
    index: 0,
    delta: text === null ? {} : { content: text },
    logprobs: logprobs as ChatLogprobs | null, // this shape's own `logprobs`
    finish_reason: finishReason,
  }),
  openingChoice: (): ChatCompletionChunkChoice => ({
    index: 0,
    delta: { role: "assistant", content: "" },
    logprobs: null,
    finish_reason: null,
  }),
  fullChoice: (text, logprobs, finishReason) => ({
    index: 0,
    message: { role: "assistant", content: text, refusal: null },
    logprobs,
    finish_reason: finishReason,
  }),
  logprobs: (tokens): ChatLogprobs => ({
    content: tokens.map((token) => ({
      token: token.text,
      logprob: token.logprob ?? null,
      bytes: [...encoder.encode(token.text)],
      // Empty unless the request asked for top_logprobs, as OpenAI.
      top_logprobs: (token.topLogprobs ?? []).map((top) => ({
        token: top.text,
        logprob: top.logprob,
        bytes: [...encoder.encode(top.text)],
      })),
    })),
    refusal: null,
  }),
};
