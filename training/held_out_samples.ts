/**
 * Which windows of its held-out text a training coordinator evaluates each model on: a fixed
 * number of non-overlapping windows spread evenly over the whole text, not the first ones.
 *
 * Until review s75 the evaluation read the text's first {@link HELD_OUT_EVAL_SAMPLES} windows
 * (64 × 65 bytes): on the public split that is the start of one Brown document of 50, and on a
 * private file its first 4 KB, so a poisoner had 4 KB of text to keep its delta harmless on while
 * it harmed everything else (Hel's finding). Window `i` of `n` is now the first of the `i`-th of
 * `n` equal strides of the text's windows (documents in order): the first window of the text is
 * read, and so is one in its last stride. The positions are a pure function of the text's length,
 * so every evaluation of a run reads the same samples and the loss of one model does not vary
 * (the gate compares numbers across rounds), and a restart reads them again. They are public
 * for the public split, as its text is; on a private file (`held_out_text.ts`) nobody else knows
 * the text they fall in.
 *
 * @module
 */
import { sampleAt, sampleCount, type TextShard } from "./brown_corpus.ts";
import { sha256Hex } from "../protocols/hash.ts";

/**
 * Samples the coordinator evaluates each new model on: its cost (one forward pass of this many
 * samples per evaluation, up to 268 evaluations a round at 256 seats: `_round_run.ts`) and what a
 * loss is an average over. Kept at the count the loss gate's ratios were measured with.
 */
export const HELD_OUT_EVAL_SAMPLES = 64;

/**
 * The windows an evaluation reads from `text`: `samples` (default {@link HELD_OUT_EVAL_SAMPLES})
 * non-overlapping `sampleBytes`-byte windows spread evenly over it (see the module doc), each one
 * document of the result (its id the window's `doc:offset`), in text order. Every window when the
 * text has no more than `samples`.
 */
export function heldOutSamples(
  text: TextShard,
  sampleBytes: number,
  samples: number = HELD_OUT_EVAL_SAMPLES,
): TextShard {
  const count = sampleCount(text, sampleBytes);
  const taken = Math.min(count, samples);
  const documents = Array.from({ length: taken }, (_, i) => {
    const { id, bytes } = sampleAt(text, sampleBytes, Math.floor((i * count) / taken));
    return { id, bytes };
  });
  return { documents };
}

/**
 * sha256 (hex) of what an evaluation reads from `samples` ({@link heldOutSamples}'s result): each
 * window's id and bytes. The coordinator's saved loss reference is tied to it
 * (`coordinator_state.ts`), so another text, or the same text read at other positions, measures
 * the reference again.
 */
export function heldOutSamplesDigest(samples: TextShard): string {
  const encoder = new TextEncoder();
  const parts = samples.documents.flatMap((d) => [encoder.encode(`${d.id}\n`), d.bytes]);
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return sha256Hex(all);
}
