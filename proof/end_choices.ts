/**
 * Where a worker ended its output, against where the job's sampling rule ends it on the
 * validator's own logits: the evidence of steering.
 *
 * The sampling check (`sampling_check.ts`) must admit every token honest noise could make the
 * rule pick, so at a genuine near-tie it admits two. A worker that wants to bill more tokens
 * can then pass over an ending token (EOS, or one that completes a stop string), or over one
 * that would start or extend a stop string of several tokens, for another admitted one, and no
 * single receipt shows it. What a validator can count is on which side of the end the worker's
 * choice fell wherever it differs from the validator's own pick:
 *
 * - **passed**: the validator's pick ends the output here, or brings the text closer to a stop
 *   string (a longer prefix of one at its end), and the worker's token does less;
 * - **taken**: the other way round.
 *
 * Honest noise is the same both ways (worker and validator are two runs of one computation;
 * which of them rounds up at a tie is a coin), so an honest worker's passed and taken events
 * are equally likely. A steerer's are all passed. `steering.ts` tests a worker's counts over
 * many receipts. Not counted: positions where the output ends whatever the token (`maxTokens`,
 * a full context window), since no choice there changes the bill; and positions where the
 * worker's token is the rule's pick on the validator's logits rounded to fp16, which an honest
 * worker whose runtime returns fp16 logits follows (fp16 makes exact ties; the greedy rule breaks
 * them by the position's race noise, `inference/sampler.ts`, so they favour no id).
 *
 * Closeness to a stop string is measured in UTF-8 bytes, not in decoded text: a stop of
 * non-ASCII characters ("é", a CJK word, an emoji) begins inside a character, at a byte token
 * the stream decoder holds back until the character completes, so in decoded text its first
 * byte would make no progress and declining it would never be counted. The bytes of the
 * held-back tokens come from the tokenizer (`bytesOf`); one without it is measured on the
 * decoded text alone.
 *
 * @module
 */
import type { GenerationParams } from "../protocols/job.ts";
import type { ProofModel } from "./_common.ts";

/** A receipt's end choices against the validator's own picks. */
export interface EndChoices {
  /** Positions where the validator's pick goes further toward an end than the worker's token. */
  passed: number;
  /** Positions where the worker's token goes further toward an end than the validator's pick. */
  taken: number;
}

/**
 * Count the end choices of an output that passed the termination check (it ends exactly where
 * generation would, on its own tokens). `winners[t]` holds the tokens the job's rule picks at
 * output position t from the validator's logits, as computed first and then under the other
 * logits precisions (`RecomputedPosition.winners`); a position with none, and positions past
 * `winners.length`, are not counted.
 *
 * @example
 * ```ts ignore
 * const { passed, taken } = endChoices(model, promptIds.length, tokens, winners, job.params);
 * ```
 */
export function endChoices(
  model: ProofModel,
  promptLength: number,
  tokens: readonly number[],
  winners: readonly (readonly number[])[],
  params: Pick<GenerationParams, "maxTokens" | "stop">,
): EndChoices {
  const eos = model.info.eosTokenId;
  const stops = params.stop.filter((s) => s.length > 0).map((s) => UTF8.encode(s));
  const decoder = model.tokenizer.streamDecoder();
  const output = new OutputBytes(model);
  const choices: EndChoices = { passed: 0, taken: 0 };
  const counted = Math.min(winners.length, tokens.length);
  for (let t = 0; t < counted; t++) {
    const token = tokens[t];
    const piece = token === eos ? "" : decoder.push(token);
    const endsAnyway = t + 1 >= params.maxTokens ||
      promptLength + t + 1 >= model.info.contextLength;
    const pick = winners[t][0];
    if (pick !== undefined && !winners[t].includes(token) && !endsAnyway) {
      const before = output.bytes();
      const mine = token === eos
        ? Infinity
        : progress(stops, before, output.bytesWith(token, piece));
      const theirs = pick === eos
        ? Infinity
        : progress(stops, before, output.bytesWith(pick, textWith(model, tokens, t, pick)));
      if (theirs > mine) choices.passed++;
      else if (mine > theirs) choices.taken++;
    }
    if (token !== eos) output.push(token, piece);
  }
  return choices;
}

const UTF8 = new TextEncoder();

/** The replacement character a stream decoder emits for bytes that form no character. */
const REPLACEMENT = "\uFFFD";

/**
 * The output as bytes: the UTF-8 of the text the stream decoder has emitted, then the bytes of
 * the tokens it still holds back (the start of a character not yet complete).
 */
class OutputBytes {
  #model: ProofModel;
  #text = new Uint8Array(64);
  #length = 0;
  /** Tokens pushed since the decoder last emitted text, which it holds back. */
  #held: number[] = [];

  constructor(model: ProofModel) {
    this.#model = model;
  }

  /** The output so far. */
  bytes(): Uint8Array {
    return this.#join(new Uint8Array(0), this.#held);
  }

  /** The output after `token`, for which the decoder emits `piece`. */
  bytesWith(token: number, piece: string): Uint8Array {
    return this.#join(UTF8.encode(piece), this.#heldAfter(token, piece));
  }

  /** Append `token`, for which the decoder emitted `piece`. */
  push(token: number, piece: string): void {
    const bytes = UTF8.encode(piece);
    if (this.#length + bytes.length > this.#text.length) {
      const grown = new Uint8Array(Math.max(2 * this.#text.length, this.#length + bytes.length));
      grown.set(this.#text.subarray(0, this.#length));
      this.#text = grown;
    }
    this.#text.set(bytes, this.#length);
    this.#length += bytes.length;
    this.#held = this.#heldAfter(token, piece);
  }

  /**
   * What the decoder holds back after `token`: everything since its last text when it emits
   * none. A piece ending in U+FFFD may have replaced only the bytes before the token (a byte
   * decoder flushes an unfinished character when a new one starts, and holds the new lead
   * byte), so the token itself stays held: were it not, its bytes would make no progress. When
   * it was replaced too (a stray byte), the bytes after U+FFFD can start no stop-string prefix.
   */
  #heldAfter(token: number, piece: string): number[] {
    if (piece === "") return [...this.#held, token];
    return piece.endsWith(REPLACEMENT) ? [token] : [];
  }

  #join(piece: Uint8Array, held: readonly number[]): Uint8Array {
    const tokenizer = this.#model.tokenizer;
    const heldBytes = tokenizer.bytesOf ? held.map((id) => tokenizer.bytesOf!(id)) : [];
    const size = heldBytes.reduce((n, b) => n + b.length, this.#length + piece.length);
    const out = new Uint8Array(size);
    out.set(this.#text.subarray(0, this.#length));
    let at = this.#length;
    for (const bytes of [piece, ...heldBytes]) {
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }
}

/**
 * How far the output `after` a token takes it toward its end from `before`: `Infinity` when
 * the token completes a stop string, else the length in bytes of the longest stop-string
 * prefix `after` ends with.
 */
function progress(stops: readonly Uint8Array[], before: Uint8Array, after: Uint8Array): number {
  let longest = 0;
  for (const stop of stops) {
    if (!includes(before, stop) && includes(after, stop)) return Infinity;
    for (let k = Math.min(stop.length - 1, after.length); k > longest; k--) {
      if (endsWithPrefix(after, stop, k)) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}

/** Whether `bytes` contains `part`. */
function includes(bytes: Uint8Array, part: Uint8Array): boolean {
  for (let i = 0; i + part.length <= bytes.length; i++) {
    let j = 0;
    while (j < part.length && bytes[i + j] === part[j]) j++;
    if (j === part.length) return true;
  }
  return false;
}

/** Whether `bytes` ends with the first `k` bytes of `stop`. */
function endsWithPrefix(bytes: Uint8Array, stop: Uint8Array, k: number): boolean {
  const offset = bytes.length - k;
  for (let j = 0; j < k; j++) if (bytes[offset + j] !== stop[j]) return false;
  return true;
}

/**
 * The text the stream decoder emits for `candidate` after `tokens[0 .. t)` (a fresh decoder:
 * only positions where the worker and the validator differ, which are rare, pay for it).
 */
function textWith(
  model: ProofModel,
  tokens: readonly number[],
  t: number,
  candidate: number,
): string {
  const decoder = model.tokenizer.streamDecoder();
  const eos = model.info.eosTokenId;
  for (let i = 0; i < t; i++) if (tokens[i] !== eos) decoder.push(tokens[i]);
  return decoder.push(candidate);
}
