/**
 * Jobs and token streams for the ProverActor's tests: what a model hands the prover, without a
 * model.
 *
 * @module
 */
import type { TextJob } from "../../protocols/job.ts";
import type { TokenChunk } from "../../inference/text_model.ts";

/** A greedy text job of at most `maxTokens` tokens, distinct by `nonce`. */
export function scriptedJob(nonce: string, maxTokens: number): TextJob {
  return {
    kind: "text",
    model: "bafkreimodel",
    prompt: "Hello",
    params: { maxTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce,
  };
}

/** A scripted token stream of `n` tokens ("A", "B", …), fingerprints included. */
export function scriptedChunks(n: number): ReadableStream<TokenChunk> {
  return ReadableStream.from(Array.from({ length: n }, (_, index) => ({
    index,
    tokenId: 65 + index,
    text: String.fromCharCode(65 + index),
    fingerprint: { logProb: -1 - index / 8, projection: index / 4 },
    vocabSize: 256,
  })));
}
