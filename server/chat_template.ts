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
 * Generation also stops at {@link CHAT_TURN_STOP} (a new user turn), unless the request gives
 * its own stop sequences.
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

/** The stop sequence added to chat requests without their own: the start of a user turn. */
export const CHAT_TURN_STOP = "\nUser:";

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

/** Text of a chat message's content: a string, or the concatenated text parts. */
export function flattenChatContent(content: string | ReadonlyArray<{ text: string }>): string {
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}
