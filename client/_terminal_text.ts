/**
 * Text from a node made safe to print on a terminal (`cli.ts infer`). What a job streams is the
 * node's, on a router a remote worker's: raw, its escape sequences drive the user's terminal
 * (set the title, write the clipboard with OSC 52, erase or rewrite what was printed). Not part
 * of the public API.
 *
 * @module
 */

/** C0 controls but tab and newline, DEL, and the C1 controls (0x9b is a one-byte CSI). */
// deno-lint-ignore no-control-regex -- matching control characters is this regex's purpose
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * `text` with every control character but tab and newline shown as its `\xNN` escape.
 *
 * @example
 * ```ts
 * import { terminalText } from "./_terminal_text.ts";
 * terminalText("a\x1b]0;t\x07\nb"); // "a\\x1b]0;t\\x07\nb"
 * ```
 */
export function terminalText(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
