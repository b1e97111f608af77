/**
 * OpenAI's `stop` convention for the `/v1` routes: a matched stop sequence is not part of the
 * returned text. The model stops *after* the token with which its output contains a stop
 * sequence (the receipt commits to that output, stop included), so the edge holds back the
 * tokens whose text could be the start of a stop sequence until the next token shows it is
 * not, and drops the matched sequence — and anything the last token carried after it — at the
 * end. Whole tokens are held, so each released piece carries the tokens (and
 * logprobs) it came from; the tokens of a character still incomplete are held with the one that
 * completes it, so a trimmed stop sequence takes all its tokens with it.
 *
 * ```
 * stop ["\nUser:"]   tokens "Hi" "\n" "Us" "er" ":"
 * push "Hi"   → "Hi"        push "\n" → (held)   push "Us" → (held)   …
 * finish(stop) → text "", stop "\nUser:"         (the client saw "Hi")
 * ```
 *
 * @module
 */
import type { FinishReason, StreamedToken } from "../inference/inference_port.ts";

/** Text released to the client, with the tokens it came from. */
export interface TextPiece {
  /** The text. */
  text: string;
  /** The tokens whose text this piece starts (for logprobs). */
  tokens: StreamedToken[];
}

/** The rest of the output at the end of a job. */
export interface TrimmedEnd {
  /** What was still held, minus the matched stop sequence. */
  piece: TextPiece;
  /**
   * When the output ended on a stop sequence: the output after the returned text — the matched
   * sequence, and whatever the token that completed it carried after it. The text released
   * plus this is the whole output, what the receipt signs.
   */
  stop?: string;
}

/** Holds back possible stop-sequence starts and drops a matched stop sequence. */
export class StopTrimmer {
  #stops: readonly string[];
  #held: StreamedToken[] = [];
  #heldText = "";

  /**
   * Create it.
   *
   * @param stops The request's stop sequences (none: every token passes at once).
   */
  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((stop) => stop.length > 0);
  }

  /**
   * Take the next token; returns what can be released now, if anything. A released piece always
   * has text: tokens of a character not yet complete stay held until it is.
   */
  push(token: StreamedToken): TextPiece | undefined {
    this.#held.push(token);
    this.#heldText += token.text;
    const last = token.finishReason !== undefined;
    // A last token that may have completed a stop sequence: the end decides what is one. Any
    // other last token (a length cut; a stop with no stop sequences asked for, the end of text)
    // goes out now with all that was held: no later token can make it part of a stop, and the
    // client need not wait for the job's end (its receipt) to see it.
    if (last && token.finishReason === "stop" && this.#stops.length > 0) return undefined;
    const keep = last ? 0 : this.#possibleStopStart();
    // Release whole tokens from the front while the rest still covers the `keep` tail. A token
    // with no text (the first bytes of a multi-byte character) belongs to the character the next
    // token completes, which may start a stop sequence: it goes with that token, never before.
    let releasedChars = 0;
    let count = 0;
    while (count < this.#held.length) {
      let completing = count;
      while (completing < this.#held.length && this.#held[completing].text === "") completing++;
      if (completing === this.#held.length) break;
      const next = this.#held[completing].text.length;
      if (this.#heldText.length - releasedChars - next < keep) break;
      releasedChars += next;
      count = completing + 1;
    }
    if (count === 0) return undefined;
    const tokens = this.#held.splice(0, count);
    const text = this.#heldText.slice(0, releasedChars);
    this.#heldText = this.#heldText.slice(releasedChars);
    return { text, tokens };
  }

  /**
   * Release the rest at the end of the job. A job that ended on a stop sequence loses it and
   * whatever followed it: the model stops once its output *contains* a stop sequence, and with
   * multi-character tokens the token that completes it may carry more text after it.
   */
  finish(reason: FinishReason): TrimmedEnd {
    // The earliest occurrence (the longest sequence, when several start there) is the one that
    // stopped the model: an earlier one would have stopped it sooner, and none can start in the
    // text already released (a possible stop start is always held).
    let cut = this.#heldText.length;
    let matched = false;
    if (reason === "stop") {
      let length = 0;
      for (const stop of this.#stops) {
        const at = this.#heldText.indexOf(stop);
        if (at < 0) continue;
        if (!matched || at < cut || (at === cut && stop.length > length)) {
          cut = at;
          length = stop.length;
          matched = true;
        }
      }
    }
    const tokens: StreamedToken[] = [];
    let offset = 0;
    for (const token of this.#held) {
      // A token counts when some of its text is kept (an empty one, when it comes before the cut).
      if (offset < cut || (offset === cut && token.text === "" && !matched)) {
        tokens.push(token);
      }
      offset += token.text.length;
    }
    const piece = { text: this.#heldText.slice(0, cut), tokens };
    const stop = matched ? this.#heldText.slice(cut) : undefined;
    this.#held = [];
    this.#heldText = "";
    return stop === undefined ? { piece } : { piece, stop };
  }

  /** Length of the longest tail of the held text that is a proper prefix of a stop sequence. */
  #possibleStopStart(): number {
    let longest = 0;
    for (const stop of this.#stops) {
      const max = Math.min(stop.length - 1, this.#heldText.length);
      for (let n = max; n > longest; n--) {
        if (this.#heldText.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
