/**
 * The chat template of `/v1/chat/completions` for models without one of their own (the
 * built-in byte-level model has none): one line per message, `Role: content`, then an open
 * `Assistant:` turn for the model to continue. Plain text on purpose: a byte-level model has no
 * special role tokens, and a template a person can read is one a person can reproduce to check
 * a receipt's prompt.
 *
 * ```
 * System: You are terse.
 * User: Say hi.
 * Assistant:
 * ```
 *
 * Generation always stops at {@link CHAT_TURN_STOP} (a new user turn), the request's own stop
 * sequences added to it ({@link withTurnStop}), as a model's end-of-turn token stays a stop
 * under vLLM and OpenAI whatever `stop` says: without it the model runs on into a user turn it
 * makes up, and answers it. A stop that cannot end the output before another takes no slot of
 * the job, so OpenAI's 4 stop sequences fit beside the turn stop whenever one of them contains
 * another, the turn stop included, or is part of it.
 *
 * @module
 */

/** One chat message, content already flattened to text. */
export interface ChatMessage {
  /** `system`, `developer`, `user` or `assistant`. */
  role: string;
  /** Text of the message. */
  content: string;
}

/** The stop sequence every chat request gets, with its own: the start of a user turn. */
export const CHAT_TURN_STOP = "\nUser:";

/**
 * The stop sequences of a chat job: the request's and {@link CHAT_TURN_STOP}, less those that can
 * never end the output first, so a job (which holds at most `GENERATION_LIMITS.maxStopSequences`)
 * is not lengthened for nothing. A stop that contains another of the list (the turn stop, as
 * `"\n\nUser:"` does) cannot: the one it contains has completed by the time it has. So neither
 * can one listed twice, nor the turn stop when a request's stop is part of it (`"\n"`, the turn
 * stop itself), which ends the output where the turn stop would, or sooner. The output of the job
 * is the same as with every stop; the edge still trims all of them (`chatTrimmedStops`), so a stop
 * that ends in the same token as the one it contains is left out of the text whole.
 *
 * @example
 * ```ts
 * import { withTurnStop } from "./chat_template.ts";
 * withTurnStop(["\n\n"]); // ["\n\n", "\nUser:"]
 * withTurnStop(["\n"]); // ["\n"]
 * withTurnStop(["END", "THE END", "\n\nUser:"]); // ["END", "\nUser:"]
 * ```
 */
export function withTurnStop(stops: readonly string[]): string[] {
  const all = [...new Set([...stops, CHAT_TURN_STOP])];
  return all.filter((stop) => !all.some((other) => other !== stop && stop.includes(other)));
}

/**
 * The stop sequences the edge trims from a chat answer: the request's and {@link CHAT_TURN_STOP},
 * every one, including those {@link withTurnStop} leaves out of the job (they cannot end the
 * output sooner, but one may end it in the same token, and then it is the stop OpenAI leaves
 * out: the earliest).
 */
export function chatTrimmedStops(stops: readonly string[]): string[] {
  return [...new Set([...stops, CHAT_TURN_STOP])];
}

const ROLE_LABELS: Readonly<Record<string, string>> = {
  system: "System",
  // OpenAI's newer name for the system role; same meaning to the model.
  developer: "System",
  user: "User",
  assistant: "Assistant",
};

/**
 * The prompt text for a conversation.
 *
 * @example
 * ```ts
 * import { renderChatPrompt } from "./chat_template.ts";
 * renderChatPrompt([{ role: "user", content: "hi" }]); // "User: hi\nAssistant:"
 * ```
 */
export function renderChatPrompt(messages: readonly ChatMessage[]): string {
  let prompt = "";
  for (const message of messages) {
    prompt += `${ROLE_LABELS[message.role] ?? message.role}: ${message.content}\n`;
  }
  return prompt + "Assistant:";
}

/**
 * Between a message's text parts: a newline, as vLLM joins them for a template that takes text,
 * so `[{text: "Translate this:"}, {text: "Good morning"}]` does not read "this:Good".
 */
const CONTENT_PART_SEPARATOR = "\n";

/** Text of a chat message's content: a string, or its text parts, one per line. */
export function flattenChatContent(content: string | ReadonlyArray<{ text: string }>): string {
  return typeof content === "string"
    ? content
    : content.map((part) => part.text).join(CONTENT_PART_SEPARATOR);
}
