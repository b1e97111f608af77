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
  /**
   * The logprobs of `tokens`, the first of which starts at character `offset` of the output;
   * `withTop`: the request asked for the most likely tokens too.
   */
  logprobs(tokens: readonly StreamedToken[], offset: number, withTop: boolean): unknown;
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
  logprobs: (tokens, offset, withTop) => {
    const textOffset: number[] = [];
    for (const token of tokens) {
      textOffset.push(offset);
      offset += token.text.length;
    }
    return {
      tokens: tokens.map((token) => token.text),
      token_logprobs: tokens.map((token) => token.logprob ?? null),
      top_logprobs: withTop ? tokens.map(topLogprobsByText) : null,
      text_offset: textOffset,
    };
  },
};

/**
 * The legacy completions form of a token's top list: `{ text: logprob }`. Two ids with the same
 * text on their own (byte tokens that are each an incomplete character) share one key, which
 * keeps the more likely one, as OpenAI's own dictionaries do.
 */
function topLogprobsByText(token: StreamedToken): Record<string, number> {
  // No prototype: a token whose text is "__proto__" is a key like any other.
  const byText: Record<string, number> = Object.create(null);
  for (const top of token.topLogprobs ?? []) {
    if (!Object.hasOwn(byText, top.text)) byText[top.text] = top.logprob;
  }
  return byText;
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
