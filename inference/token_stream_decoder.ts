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

/**
 * Generic incremental decoder over any `decode(ids)` function (used for Hugging Face
 * tokenizers, whose decoders are not streaming).
 *
 * Whether the text so far ends inside a character is read off the tokens' bytes (`bytesOf`),
 * never off the decoded text: a text that ends in U+FFFD may be a real U+FFFD (a model that
 * repeats "�") or bytes that can no longer start a character, and both are final. A small UTF-8
 * reader ({@link Utf8Boundary}) follows the bytes, and the text is released up to the last token
 * boundary that no later byte can change: one between characters, or one inside a character that
 * turned out invalid. So only the tokens of the character still open (at most four bytes) are held,
 * however long a run of U+FFFD or of invalid bytes is. (A token whose bytes end one character and
 * open the next leaves no such boundary until a later token ends between characters; byte-level
 * merges stay inside a pre-tokenized word, so a run of them is a run of multi-byte characters.)
 *
 * It keeps two offsets into the ids seen so far: `prefix` (start of a small window already
 * emitted) and `read` (end of what has been emitted). Each release decodes the window with and
 * without the new ids and emits the difference. Decoding a window rather than everything keeps
 * each push O(window), and starting the window one emitted token back keeps tokenizers whose
 * decoding depends on the left neighbour (leading-space rules) consistent with a whole decode.
 */
export class TokenStreamTextDecoder implements TokenStreamDecoder {
  #decode: (ids: number[]) => string;
  #bytesOf: (id: number) => Uint8Array;
  #ids: number[] = [];
  #prefix = 0;
  #read = 0;
  #utf8 = new Utf8Boundary();
  /** The last token boundary (an index into `#ids`) whose text before it is final. */
  #safe = 0;
  /**
   * The last token boundary inside the character still open: final if that character turns out
   * invalid (its bytes decode alone as they do followed by the rest: one U+FFFD), not if it
   * completes.
   */
  #inside: number | undefined;

  /**
   * A decoder with nothing emitted yet.
   *
   * @param decode Whole-sequence decoder.
   * @param bytesOf The bytes a token adds to the text (`TextTokenizer.bytesOf`).
   */
  constructor(decode: (ids: number[]) => string, bytesOf: (id: number) => Uint8Array) {
    this.#decode = decode;
    this.#bytesOf = bytesOf;
  }

  /** Add one id; returns the newly complete text. */
  push(id: number): string {
    const index = this.#ids.length;
    this.#ids.push(id);
    if (this.#utf8.open) this.#inside = index;
    else this.#safe = index;
    for (const byte of this.#bytesOf(id)) {
      const ended = this.#utf8.push(byte);
      if (ended === "invalid" && this.#inside !== undefined) this.#safe = this.#inside;
      if (ended !== undefined) this.#inside = undefined;
    }
    if (!this.#utf8.open) this.#safe = this.#ids.length;
    return this.#emit(this.#safe);
  }

  /** End of stream: returns what is still held back (an open character becomes U+FFFD). */
  flush(): string {
    this.#utf8 = new Utf8Boundary();
    this.#inside = undefined;
    this.#safe = this.#ids.length;
    return this.#emit(this.#safe);
  }

  /** Release the text of the ids up to `end` (exclusive) not yet released. */
  #emit(end: number): string {
    if (end <= this.#read) return "";
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read));
    const after = this.#decode(this.#ids.slice(this.#prefix, end));
    this.#prefix = this.#read;
    this.#read = end;
    if (after.startsWith(before)) return after.slice(before.length);
    // The tokenizer rewrote already-emitted text (rare normalizing decoders): emit only what
    // is new after the common prefix rather than duplicating.
    let common = 0;
    while (common < before.length && before[common] === after[common]) common++;
    return after.slice(common);
  }
}

/** The range of a UTF-8 continuation byte (10xxxxxx). */
const CONTINUATION_MIN = 0x80;
const CONTINUATION_MAX = 0xbf;

/**
 * How a byte ended the character that was open: `complete` (valid) or `invalid` (the byte cannot
 * continue it: the bytes so far are one U+FFFD, and the byte is read again as a lead).
 */
type CharacterEnd = "complete" | "invalid";

/**
 * Where a UTF-8 byte stream stands: inside a character (`open`) or between characters, by the
 * rules every decoder here follows (WHATWG's, which `TextDecoder` implements): a lead byte opens a
 * character of 2 to 4 bytes, and a byte that cannot continue it ends it as invalid (one U+FFFD)
 * and is read again as a lead. The second byte's range is narrower after E0, ED, F0 and F4 (no
 * overlong forms, surrogates or code points past U+10FFFF), so such a byte ends the character as
 * soon as it arrives instead of being held.
 */
class Utf8Boundary {
  /** Continuation bytes still needed by the open character; 0 between characters. */
  #needed = 0;
  #lower = CONTINUATION_MIN;
  #upper = CONTINUATION_MAX;

  /** Whether a character is open (its bytes so far may still become a valid character). */
  get open(): boolean {
    return this.#needed > 0;
  }

  /** Read one byte; says how it ended the open character, if it did. */
  push(byte: number): CharacterEnd | undefined {
    if (this.#needed === 0) {
      this.#lead(byte);
      return undefined;
    }
    const continues = byte >= this.#lower && byte <= this.#upper;
    this.#lower = CONTINUATION_MIN;
    this.#upper = CONTINUATION_MAX;
    if (continues) {
      this.#needed--;
      return this.#needed === 0 ? "complete" : undefined;
    }
    this.#needed = 0;
    this.#lead(byte);
    return "invalid";
  }

  #lead(byte: number): void {
    if (byte >= 0xc2 && byte <= 0xdf) this.#needed = 1;
    else if (byte >= 0xe0 && byte <= 0xef) {
      this.#needed = 2;
      if (byte === 0xe0) this.#lower = 0xa0;
      if (byte === 0xed) this.#upper = 0x9f;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      this.#needed = 3;
      if (byte === 0xf0) this.#lower = 0x90;
      if (byte === 0xf4) this.#upper = 0x8f;
    }
    // Anything else (ASCII, a stray continuation, C0, C1, F5–FF) is a whole character, valid or
    // one U+FFFD: nothing stays open.
  }
}
