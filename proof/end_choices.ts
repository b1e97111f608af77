/**
 * Where a worker ended its output, against where the job's sampling rule ends it on the
 * validator's own logits: the evidence of steering.
 *
 * The sampling check (`sampling_check.ts`) must admit every token honest noise could make the
 * rule pick, so at a genuine near-tie it admits two. A worker that wants to bill more tokens
 * can then pass over an ending token (EOS, or one that completes a stop string) for another
 * admitted one, and no single receipt shows it. What a validator can count is on which side
 * of the end the worker's choice fell wherever it differs from the validator's own pick:
 *
 * - **passed**: the validator's pick ends the output here, the worker's token does not;
 * - **taken**: the worker's token ends the output here, the validator's pick does not.
 *
 * Honest noise is the same both ways (worker and validator are two runs of one computation;
 * which of them rounds up at a tie is a coin), so an honest worker's passed and taken events
 * are equally likely. A steerer's are all passed. `steering.ts` tests a worker's counts over
 * many receipts. Positions where the output ends whatever the token (`maxTokens`, a full
 * context window) are not counted: no choice there changes the bill.
 *
 * @module
 */
import type { GenerationParams } from "../protocols/job.ts";
import type { ProofModel } from "./_common.ts";

/** A receipt's end choices against the validator's own picks. */
export interface EndChoices {
  /** Positions where the validator's pick ends the output and the worker's token does not. */
  passed: number;
  /** Positions where the worker's token ends the output and the validator's pick does not. */
  taken: number;
}

/**
 * Count the end choices of an output that passed the termination check (it ends exactly where
 * generation would, on its own tokens). `winners[t]` is the token the job's rule picks at
 * output position t from the validator's logits (`RecomputedPosition.winner`); positions past
 * `winners.length` are not counted.
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
  winners: readonly number[],
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
    if (winners[t] !== token && !endsAnyway) {
      const tokenEnds = token === eos || completesStop(stops, output, output + piece);
      const winnerEnds = winners[t] === eos ||
        completesStop(stops, output, output + textWith(model, tokens, t, winners[t]));
      if (winnerEnds && !tokenEnds) choices.passed++;
      else if (tokenEnds && !winnerEnds) choices.taken++;
    }
    output += piece;
  }
  return choices;
}

/** Whether `after` contains a stop string that `before` did not. */
function completesStop(stops: readonly string[], before: string, after: string): boolean {
  return stops.some((s) => !before.includes(s) && after.includes(s));
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
