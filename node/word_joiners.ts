/**
 * The zero-width joiner (U+200D) and non-joiner (U+200C) inside a word. Between two characters of
 * a word they are part of ordinary writing: an emoji sequence (👩‍💻, 🏳️‍🌈), Persian, Sinhala,
 * Hindi; there they reorder nothing and hide nothing, so what escapes the characters a peer could
 * hide text with (the log, `node/log_format.ts`; `/metrics` labels, `server/metrics_registry.ts`)
 * keeps them as they are, and a model named with an emoji sequence reads as itself (review s77 vstr
 * F5; stop 78 for the log). Leading, trailing, doubled or beside a space they only hide, and are
 * written out. The dashboard keeps the same ones (`server/dashboard/app.js`).
 *
 * @example
 * ```ts
 * import { joinsWord } from "./word_joiners.ts";
 * joinsWord("👩\u200d💻", 2); // true: inside an emoji sequence
 * joinsWord("a \u200db", 2); // false: beside a space it only hides
 * ```
 *
 * @module
 */

/**
 * A character a word is made of, ending the text before a joiner: a letter, a mark, a digit or a
 * symbol (an emoji). Alternatives, not one class: V8 matches no character outside the BMP with
 * `[\p{S}]$` (a bracketed class before `$`), so 👩 before a joiner did not count.
 */
const WORD_END = /(?:\p{L}|\p{M}|\p{N}|\p{S})$/u;
/** The same, starting the text after a joiner. */
const WORD_START = /^(?:\p{L}|\p{M}|\p{N}|\p{S})/u;

/**
 * Whether the character at `at` (a UTF-16 index) in `text` is a zero-width joiner or non-joiner
 * between two characters of a word (see the module doc).
 *
 * @param text The whole text.
 * @param at The index of the character asked about.
 * @returns True only for U+200C or U+200D with a word's character on each side.
 */
export function joinsWord(text: string, at: number): boolean {
  const char = text[at];
  if (char !== "\u200c" && char !== "\u200d") return false;
  // Two code units each side: a character outside the BMP is a surrogate pair.
  return WORD_END.test(text.slice(Math.max(0, at - 2), at)) &&
    WORD_START.test(text.slice(at + 1, at + 3));
}
