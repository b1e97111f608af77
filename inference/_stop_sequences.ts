/**
 * A generation's stop sequences: the list a caller gives, checked against the wire's limits
 * ({@link checkStopSequences}), and the length of the longest, which bounds how far back in the
 * output a new token's text can complete one ({@link maxLength}). Used by `TextModel.generate`
 * (`text_model.ts`) and its stream (`_generation_stream.ts`). Not part of the public API.
 *
 * @module
 */
import { GENERATION_LIMITS } from "../protocols/job.ts";
import { InvalidGenerationParamsError } from "./errors.ts";

/**
 * `params.stop` checked by hand against the wire's limits (`generationParamsSchema`, which the
 * edge and the InferenceActor parse with zod): a direct caller of `generate` gets the same
 * typed refusal instead of a `TypeError` from a string, silently dropped non-strings, or more
 * or longer sequences than every job may carry. An empty sequence would end every generation
 * at its first token, so it is refused too. Absent means none. Returns a copy, so a caller that
 * reuses its array cannot change a running generation's stop list.
 */
export function checkStopSequences(stop: unknown): string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop)) {
    throw new InvalidGenerationParamsError(
      `stop must be an array of strings, got ${stop === null ? "null" : typeof stop}`,
    );
  }
  const { maxStopSequences, maxStopChars } = GENERATION_LIMITS;
  if (stop.length > maxStopSequences) {
    throw new InvalidGenerationParamsError(
      `stop holds ${stop.length} sequences, at most ${maxStopSequences} are allowed`,
    );
  }
  for (const s of stop) {
    if (typeof s !== "string" || s.length === 0 || s.length > maxStopChars) {
      throw new InvalidGenerationParamsError(
        `each stop sequence must be a string of 1 to ${maxStopChars} characters, got ${
          typeof s === "string" ? `${s.length} characters` : typeof s
        }`,
      );
    }
  }
  return [...stop];
}

/** The length of the longest of `strings` (0 for none). */
export function maxLength(strings: string[]): number {
  let max = 0;
  for (const s of strings) max = Math.max(max, s.length);
  return max;
}
