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
 * worker whose runtime returns fp16 logits follows (fp16 makes exact ties, which the rule breaks
 * by the lower id, systematically against EOS's high one).
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
  const stops = params.stop.filter((s) => s.length > 0);
  const decoder = model.tokenizer.streamDecoder();
  const choices: EndChoices = { passed: 0, taken: 0 };
  let output = "";
  const counted = Math.min(winners.length, tokens.length);
  for (let t = 0; t < counted; t++) {
    const token = tokens[t];
    const piece = token === eos ? "" : decoder.push(token);
    const endsAnyway = t + 1 >= params.maxTokens ||
      promptLength + t + 1 >= model.info.contextLength;
    const pick = winners[t][0];
    if (pick !== undefined && !winners[t].includes(token) && !endsAnyway) {
      const mine = progress(stops, output, token === eos, piece);
      const theirs = pick === eos
        ? progress(stops, output, true, "")
        : progress(stops, output, false, textWith(model, tokens, t, pick));
      if (theirs > mine) choices.passed++;
      else if (mine > theirs) choices.taken++;
    }
    output += piece;
  }
  return choices;
}

/**
 * How far emitting a token takes the output toward its end: `Infinity` when it ends it (EOS, or
 * a stop string completed), else the length of the longest stop-string prefix the text then
 * ends with.
 */
function progress(
  stops: readonly string[],
  before: string,
  isEos: boolean,
  piece: string,
): number {
  if (isEos) return Infinity;
  const after = before + piece;
  let longest = 0;
  for (const stop of stops) {
    if (!before.includes(stop) && after.includes(stop)) return Infinity;
    for (let k = Math.min(stop.length - 1, after.length); k > longest; k--) {
      if (after.endsWith(stop.slice(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
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
