/**
 * The setup the prefill-turn tests share (`prefill_turns_test.ts`): a `BatchedDecoder` over a
 * test's decoder session, torn down however the test ends; a stream that keeps decoding while
 * the test's prompts are read; and a prompt's step that notes when it is answered, so the order
 * of reads and answers can be checked.
 *
 * @module
 */
import type { BatchedSequence } from "../../inference/_batched_sequence.ts";
import { BatchedDecoder } from "../../inference/_batch_decoder.ts";
import type { DecoderSession } from "../../inference/_decoder_session.ts";
import type { SamplingParams } from "../../inference/sampler.ts";

/** Greedy, so a prompt's first token read in a batch can be compared with it read alone. */
export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, seed: 1 };

/**
 * The most steps a decoding stream takes while it waits for the test's prompts: far more than a
 * long prompt's pieces here (a few), so it only ends a test whose prompt never answers.
 */
const MAX_DECODE_STEPS = 200;

/**
 * Run `test` on a new `BatchedDecoder` over `decoder`; dispose it, then release the session,
 * passed or not.
 */
export async function withBatch(
  decoder: DecoderSession,
  test: (batched: BatchedDecoder) => Promise<void>,
): Promise<void> {
  try {
    const batched = new BatchedDecoder(decoder);
    try {
      await test(batched);
    } finally {
      batched.dispose();
    }
  } finally {
    await decoder.session.release();
  }
}

/** A stream decoding on a batch, and the way to keep it decoding. */
export interface DecodingStream {
  sequence: BatchedSequence;
  /** Decode one token a step until `done` says so (at most {@link MAX_DECODE_STEPS} steps). */
  decodeUntil(done: () => boolean): Promise<void>;
}

/**
 * A stream on `batched` that has read `prompt` and decoded one token: it is decoding when the
 * test's prompts arrive.
 */
export async function decodingStream(
  batched: BatchedDecoder,
  prompt: number[],
): Promise<DecodingStream> {
  const sequence = batched.sequence();
  let feed = [(await sequence.step(prompt, { params: GREEDY, position: 0 })).tokenId];
  feed = [(await sequence.step(feed, { params: GREEDY, position: 1 })).tokenId];
  let position = 2;
  return {
    sequence,
    async decodeUntil(done) {
      for (; !done() && position < MAX_DECODE_STEPS; position++) {
        feed = [(await sequence.step(feed, { params: GREEDY, position })).tokenId];
      }
    },
  };
}

/** `step`, with `label` pushed on `reads` when it is answered. */
export function noted<T>(step: Promise<T>, reads: string[], label: string): Promise<T> {
  return step.then((answer) => {
    reads.push(label);
    return answer;
  });
}
