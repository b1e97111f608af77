/**
 * Fixtures of the signed-stream tests (`tests/proof/stream_check_test.ts`,
 * `tests/actors/validator_stream_claim_test.ts`, `tests/network/stream_conviction_test.ts`): a
 * sampled job on a model, the token ids an honest worker streams for it, and the token a liar puts
 * where the job's rule gives it near-zero probability.
 *
 * @module
 */
import type { TextModel } from "../../inference/text_model.ts";
import type { TextJob } from "../../protocols/job.ts";

/** The prompt of the stream tests' jobs. */
export const STREAM_PROMPT = "Once upon a time, in a land far away, there lived";

/** A job on `model` sampled at temperature 0.8 (a seeded rule with room for near ties). */
export function sampledJob(model: TextModel, nonce: string, maxTokens = 16): TextJob {
  return {
    kind: "text",
    model: model.info.cid,
    prompt: STREAM_PROMPT,
    params: { maxTokens, temperature: 0.8, topK: 0, topP: 1, seed: 7, stop: [] },
    nonce,
  };
}

/** The token ids an honest worker streams for `job` (its first `limit`). */
export async function honestTokens(
  model: TextModel,
  job: TextJob,
  limit = Infinity,
): Promise<number[]> {
  const ids: number[] = [];
  for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
    ids.push(c.tokenId);
    if (ids.length === limit) break;
  }
  return ids;
}

/**
 * The byte id the job's rule gives the least probability after `prefix`, with that probability
 * (at temperature 0, its softmax at temperature 1: its logit's distance from the best one).
 */
export async function leastLikely(
  model: TextModel,
  job: TextJob,
  prefix: readonly number[],
): Promise<{ token: number; p: number }> {
  const promptIds = model.tokenizer.encode(job.prompt);
  const logits = await model.forward([...promptIds, ...prefix]);
  const vocab = model.info.vocabSize;
  const row = logits.subarray((promptIds.length - 1 + prefix.length) * vocab).subarray(0, vocab);
  const t = job.params.temperature > 0 ? job.params.temperature : 1;
  const max = Math.max(...row);
  let z = 0;
  for (const l of row) z += Math.exp((l - max) / t);
  let token = 0;
  for (let id = 0; id < 256; id++) if (row[id] < row[token]) token = id;
  return { token, p: Math.exp((row[token] - max) / t) / z };
}
