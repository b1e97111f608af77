/**
 * The two OpenAI response families the `/v1` routes answer in — text completions and chat
 * completions — as data: ids, `object` names, how a choice looks streamed and in full, and how
 * logprobs are written. The answers themselves (`openai_answers.ts`) are shared.
 *
 * Logprobs are the chosen tokens' (the model's log-softmax, before temperature and cuts; the
 * same number the token's proof fingerprint commits to). Top alternatives are not computed
 * (`top_logprobs` / `logprobs > 0` are refused at the edge), so they are written empty.
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
      top_logprobs: null,
      text_offset: textOffset,
    };
  },
};

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
      top_logprobs: [],
    })),
    refusal: null,
  }),
};
