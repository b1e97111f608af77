/**
 * Where a worker ended its output, against where the job's sampling rule ends it on the
 * validator's own logits: the evidence of steering.
 *
 * The sampling check (`sampling_check.ts`) must admit every token honest noise could make the
 * rule pick, so at a genuine near-tie it admits two. A worker that wants to bill more tokens
 * can then pass over an ending token (any of the model's end tokens, or one that completes a
 * stop string), or over one that would start or extend a stop string of several tokens, for
 * another admitted one, and no single receipt shows it. What a validator can count is on which
 * side of the end the worker's choice fell wherever it differs from the validator's own pick:
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
 * Where neither token ends the output nor moves it toward a stop string, the choice may still
 * decide where the output ends, a few tokens on: a steerer that plays both branches of a
 * near-tie out and keeps the longer never meets an end of its own making. So at those positions
 * ({@link endChoicesPlayedOut}) the validator plays both branches out by the job's rule on its
 * own logits, until generation would stop, and counts them the same way: the worker's branch
 * ending later is **passed**, sooner **taken**, at the same length nothing. Both lengths are the
 * validator's own play-outs, never the worker's actual continuation: that depends on the
 * worker's later choices, which are counted themselves, and counting one choice twice would
 * bias the test. The worker's tokens only stand in for the rule's picks up to where the worker
 * next leaves them. Each position is one event at most, decided by the one-step rule first, and
 * what decides whether a position is played out (its place, the play-outs spent before it) is
 * known before the worker's choice there, so the events stay fair coins for an honest worker.
 * The cost is bounded per receipt ({@link MAX_BRANCH_PLAYOUTS}).
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
import { sampleToken } from "../inference/sampler.ts";
import { GenerationEnd, type ProofModel } from "./_common.ts";
import { endTokenIds } from "../inference/end_tokens.ts";

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
  return oneStepChoices(model, promptLength, tokens, winners, params).choices;
}

/**
 * Branch play-outs one receipt's end choices may cost at most. A play-out is a generation by the
 * job's rule of at most the job's remaining `maxTokens`: one pass over its prefix and one
 * KV-cached step per token with {@link ProofModel.generate} (about what the worker spent on those
 * tokens), one teacher-forced pass per token without it. Each branch choice reserves two before it is counted (the
 * validator's pick's branch, and the worker's from where it next leaves the rule's picks), so a
 * receipt counts at least two; a play-out shared by two choices is paid once.
 */
export const MAX_BRANCH_PLAYOUTS = 4;

/** Play-outs one branch choice may need: its pick's branch and the worker's. */
const PLAYOUTS_PER_CHOICE = 2;

/** Options of {@link endChoicesPlayedOut}. */
export interface PlayOutOptions {
  /** Abort the play-outs' generation. */
  signal?: AbortSignal;
  /** Play-outs at most (default {@link MAX_BRANCH_PLAYOUTS}). */
  maxPlayOuts?: number;
}

/** {@link EndChoices} counted with branch play-outs, and what they cost. */
export interface PlayedOutChoices extends EndChoices {
  /** Branch play-outs run. */
  playOuts: number;
  /**
   * Tokens they generated: one model step each (a KV-cached step with
   * {@link ProofModel.generate}, else a teacher-forced pass over the whole sequence).
   */
  playOutSteps: number;
}

/**
 * {@link endChoices}, and at the positions where the worker's token differs from the
 * validator's picks but neither ends the output nor nears a stop string, the branch choice (see
 * the module doc): the validator's pick and the worker's token are each played out by the job's
 * rule on the validator's logits until generation would stop, and the branch that ends later is
 * the one passed to. Positions are taken in order while {@link MAX_BRANCH_PLAYOUTS} leaves room.
 * `promptIds` and `tokens` are the receipt's, whose output passed the sampling and termination
 * checks.
 *
 * @example
 * ```ts ignore
 * const ends = await endChoicesPlayedOut(model, promptIds, tokens, winners, job.params);
 * ```
 */
export async function endChoicesPlayedOut(
  model: ProofModel,
  promptIds: readonly number[],
  tokens: readonly number[],
  winners: readonly (readonly number[])[],
  params: GenerationParams,
  options: PlayOutOptions = {},
): Promise<PlayedOutChoices> {
  const { choices, undecided } = oneStepChoices(model, promptIds.length, tokens, winners, params);
  const result: PlayedOutChoices = { ...choices, playOuts: 0, playOutSteps: 0 };
  // Where the worker's token is not the validator's pick as computed: from there on its tokens
  // no longer show the rule's own continuation.
  const departures = winners.flatMap((w, t) => w[0] !== undefined && w[0] !== tokens[t] ? [t] : []);
  const exactEnds = new Map<number, number | undefined>();
  let budget = options.maxPlayOuts ?? MAX_BRANCH_PLAYOUTS;
  /** Where the rule's branch from the validator's pick at `t` ends (capped at `limit`). */
  const branchEnd = async (t: number, limit: number): Promise<number | undefined> => {
    if (exactEnds.has(t)) return exactEnds.get(t);
    budget--;
    result.playOuts++;
    const end = await playOut(model, promptIds, tokens, t, winners[t][0], params, limit, {
      signal: options.signal,
      counted: () => result.playOutSteps++,
    });
    if (end === undefined || end < limit) exactEnds.set(t, end);
    return end;
  };
  for (const t of undecided) {
    // Reserve the most a choice can need, whether or not it does: whether the worker leaves the
    // rule's picks again later depends on its choice here, and must not decide what is counted.
    if (budget < PLAYOUTS_PER_CHOICE) break;
    const next = departures.find((d) => d > t);
    const mine = next === undefined ? tokens.length : await branchEnd(next, Infinity);
    if (mine === undefined) continue;
    const theirs = await branchEnd(t, mine + 1); // beyond `mine` the length no longer matters
    if (theirs === undefined) continue;
    if (mine > theirs) result.passed++;
    else if (theirs > mine) result.taken++;
  }
  return result;
}

/**
 * Where generation by the job's rule on `model` ends (the output's length) after
 * `tokens[0 .. t)` and `first` at position t; `limit` when it runs that far; undefined when a
 * row has no finite logit (no rule picks from it) or the branch cannot be generated at all.
 * With {@link ProofModel.generate}, one KV-cached step per token after one pass over the prefix;
 * without it, one teacher-forced pass per token.
 */
async function playOut(
  model: ProofModel,
  promptIds: readonly number[],
  tokens: readonly number[],
  t: number,
  first: number,
  params: GenerationParams,
  limit: number,
  hooks: { signal?: AbortSignal; counted: () => void },
): Promise<number | undefined> {
  const { contextLength } = model.info;
  if (promptIds.length === 0 || promptIds.length >= contextLength) return undefined;
  const branch = [...tokens.slice(0, t), first];
  // The rule `generate` stops by, as the termination check applies it.
  const end = new GenerationEnd(model, promptIds.length, params);
  for (let i = 0; i < branch.length; i++) {
    if (end.push(branch[i])) return i === branch.length - 1 ? branch.length : undefined;
  }
  if (branch.length >= limit) return limit;
  const steps = model.generate
    ? cachedSteps(model.generate.bind(model), promptIds, branch, params, hooks)
    : forwardSteps(model, promptIds, branch, params, hooks);
  try {
    for (;;) {
      const next = await steps.next();
      if (next.done) return next.value === "no_row" ? undefined : branch.length;
      branch.push(next.value);
      if (end.push(next.value)) return branch.length;
      if (branch.length >= limit) return limit;
    }
  } finally {
    await steps.return(undefined);
  }
}

/** The rule's next tokens after `branch`; "no_row" when a row has no finite logit. */
type PlayOutSteps = AsyncGenerator<number, "no_row" | "stopped" | undefined, undefined>;

/** One KV-cached step per token: the model's own generation from position `branch.length`. */
async function* cachedSteps(
  generate: NonNullable<ProofModel["generate"]>,
  promptIds: readonly number[],
  branch: readonly number[],
  params: GenerationParams,
  hooks: { signal?: AbortSignal; counted: () => void },
): PlayOutSteps {
  const reader = generate([...promptIds, ...branch], params, {
    signal: hooks.signal,
    startIndex: branch.length,
  }).getReader();
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return "stopped";
      hooks.counted();
      yield chunk.value.tokenId;
    }
  } catch (e) {
    if (isNoFiniteLogit(e)) return "no_row";
    throw e;
  } finally {
    // Frees the KV cache when the play-out stops before generation does.
    reader.cancel().catch(() => {});
  }
}

/** One teacher-forced pass per token, for a model without cached generation. */
async function* forwardSteps(
  model: ProofModel,
  promptIds: readonly number[],
  branch: readonly number[],
  params: GenerationParams,
  hooks: { signal?: AbortSignal; counted: () => void },
): PlayOutSteps {
  const vocab = model.info.vocabSize;
  const sequence = [...promptIds, ...branch];
  for (;;) {
    const logits = await model.forward(sequence, { signal: hooks.signal });
    hooks.counted();
    let token: number;
    try {
      token = sampleToken(
        logits.subarray(logits.length - vocab),
        params,
        sequence.length - promptIds.length,
      )
        .token;
    } catch {
      return "no_row";
    }
    sequence.push(token);
    yield token;
  }
}

/** The sampler's refusal of a row with no finite logit, thrown here or from a model worker. */
function isNoFiniteLogit(e: unknown): boolean {
  return e instanceof Error && (e as { code?: unknown }).code === "invalid_generation_params";
}

/**
 * The one-step end choices, and the positions where the worker's token differs from the
 * validator's picks but neither goes further toward an end (in order): where only the branches'
 * play-outs can tell.
 */
function oneStepChoices(
  model: ProofModel,
  promptLength: number,
  tokens: readonly number[],
  winners: readonly (readonly number[])[],
  params: Pick<GenerationParams, "maxTokens" | "stop">,
): { choices: EndChoices; undecided: number[] } {
  const undecided: number[] = [];
  const ends = endTokenIds(model.info);
  const stops = params.stop.filter((s) => s.length > 0).map((s) => UTF8.encode(s));
  const decoder = model.tokenizer.streamDecoder();
  const output = new OutputBytes(model);
  const choices: EndChoices = { passed: 0, taken: 0 };
  const counted = Math.min(winners.length, tokens.length);
  for (let t = 0; t < counted; t++) {
    const token = tokens[t];
    const piece = ends.has(token) ? "" : decoder.push(token);
    const endsAnyway = t + 1 >= params.maxTokens ||
      promptLength + t + 1 >= model.info.contextLength;
    const pick = winners[t][0];
    if (pick !== undefined && !winners[t].includes(token) && !endsAnyway) {
      const before = output.bytes();
      const mine = ends.has(token)
        ? Infinity
        : progress(stops, before, output.bytesWith(token, piece));
      const theirs = ends.has(pick)
        ? Infinity
        : progress(stops, before, output.bytesWith(pick, textWith(model, tokens, t, pick)));
      if (theirs > mine) choices.passed++;
      else if (mine > theirs) choices.taken++;
      else undecided.push(t);
    }
    if (!ends.has(token)) output.push(token, piece);
  }
  return { choices, undecided };
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
  const ends = endTokenIds(model.info);
  for (let i = 0; i < t; i++) if (!ends.has(tokens[i])) decoder.push(tokens[i]);
  return decoder.push(candidate);
}
