/**
 * Incremental detokenization that never splits a UTF-8 character across pieces.
 *
 * A byte-level token can end in the middle of a multi-byte character ("é" is two bytes, "🚀"
 * four). Streaming `decode([id])` per token would emit U+FFFD halves; instead each decoder
 * keeps the undecided tail and emits it once the character completes, so the concatenation of
 * the pieces is exactly `decode(allIds)` and no piece holds a broken character.
 *
 * @module
 */

/** Feeds token ids in, text pieces out. */
export interface TokenStreamDecoder {
  /** Add one id; returns the newly complete text ("" when a character is still incomplete). */
  push(id: number): string;
  /** End of stream: returns whatever is still held back (invalid tails become U+FFFD). */
  flush(): string;
}

/** The replacement character a decoder emits for an incomplete or invalid byte sequence. */
const REPLACEMENT = "\uFFFD";

/**
 * Generic incremental decoder over any `decode(ids)` function (used for Hugging Face
 * tokenizers, whose decoders are not streaming).
 *
 * It keeps two offsets into the ids seen so far: `prefix` (start of a small window already
 * emitted) and `read` (end of what has been emitted). Each push decodes the window with and
 * without the new ids; the difference is emitted unless it ends in U+FFFD, which means the last
 * token stopped inside a character. Decoding a window rather than everything keeps each push
 * O(window), and starting the window one emitted token back keeps tokenizers whose decoding
 * depends on the left neighbour (leading-space rules) consistent with a whole decode.
 */
export class TokenStreamTextDecoder implements TokenStreamDecoder {
  #decode: (ids: number[]) => string;
  #ids: number[] = [];
  #prefix = 0;
  #read = 0;

  /**
   * A decoder with nothing emitted yet.
   *
   * @param decode Whole-sequence decoder.
   */
  constructor(decode: (ids: number[]) => string) {
    this.#decode = decode;
  }

  /** Add one id; returns the newly complete text. */
  push(id: number): string {
    this.#ids.push(id);
    return this.#emit(false);
  }

  /** End of stream: returns what is still held back. */
  flush(): string {
    return this.#emit(true);
  }

  #emit(final: boolean): string {
    if (this.#read === this.#ids.length) return "";
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const after = this.#decode(this.#ids.slice(this.#prefix));
    if (!final && (after.length <= before.length || after.endsWith(REPLACEMENT))) return "";
    if (!after.startsWith(before)) {
      // The tokenizer rewrote already-emitted text (rare normalizing decoders): emit only what
      // is new after the common prefix rather than duplicating.
      let common = 0;
      while (common < before.length && before[common] === after[common]) common++;
      this.#advance();
      return after.slice(common);
    }
    this.#advance();
    return after.slice(before.length);
  }

  #advance(): void {
    this.#prefix = this.#read;
    this.#read = this.#ids.length;
  }
}
