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

/** How a response family shapes its choices. */
export interface ResponseShape {
  /** Prefix of response ids (`cmpl`, `chatcmpl`); also names the API in the job log. */
  idPrefix: string;
  /** `object` of a full response. */
  object: string;
  /** `object` of a streamed chunk. */
  chunkObject: string;
  /** The choice of a streamed chunk: a text piece, or the end (`text` null). */
  chunkChoice(
    text: string | null,
    logprobs: unknown | null,
    finishReason: string | null,
  ): Record<string, unknown>;
  /** A chunk sent before any token (chat announces the assistant role), if any. */
  openingChoice?(): Record<string, unknown>;
  /** The choice of a full response. */
  fullChoice(
    text: string,
    logprobs: unknown | null,
    finishReason: string | null,
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
  chunkChoice: (text, logprobs, finishReason) => ({
    index: 0,
    text: text ?? "",
    logprobs,
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
  chunkChoice: (text, logprobs, finishReason) => ({
    index: 0,
    delta: text === null ? {} : { content: text },
    logprobs,
    finish_reason: finishReason,
  }),
  openingChoice: () => ({
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
  logprobs: (tokens) => ({
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
