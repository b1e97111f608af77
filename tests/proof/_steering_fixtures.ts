/**
 * Steered and honest receipts on a scripted model (`_scripted_model.ts`): from output position
 * 2 on, EOS wins every position by a wide margin. An honest worker ends there; a steerer passes
 * over it (EOS masked) and bills `maxTokens` tokens, passing over an end at each of positions
 * 2 … 6 (the 8th token ends the output anyway). A validator with the sampling tolerance
 * {@link WIDE_SAMPLING} admits both, as a calibrated one admits two tokens at a genuine
 * near-tie: this is the steering no single receipt shows.
 */
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import type { SamplingTolerance } from "../../proof/sampling_check.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { generateChunks, scriptedModel } from "./_scripted_model.ts";

/** Prompt of every job here. */
export const STEERING_PROMPT = "steer";
/** Output tokens of a steered receipt, and the passed-over ends in each. */
export const STEERED = { tokens: 8, passed: 5 } as const;

/** The scripted model whose EOS wins from output position 2 on. */
export const steeringModel = scriptedModel("bafk-steering-model", {
  patch: (row, position) => {
    if (position >= STEERING_PROMPT.length + 1) row[steeringModelEos()] = 10;
  },
});

function steeringModelEos(): number {
  return steeringModel.info.eosTokenId!;
}

/** A tolerance that admits any token the rule keeps (a stand-in for a genuine near-tie). */
export const WIDE_SAMPLING: SamplingTolerance = {
  logitEps: 100,
  logitSigma: Infinity,
  sigmas: 8,
  cdfMargin: 1e-6,
};

/** A job on {@link steeringModel}. */
export function steeringJob(nonce: string, requester?: string): TextJob {
  return {
    kind: "text",
    model: steeringModel.info.cid,
    prompt: STEERING_PROMPT,
    params: { maxTokens: STEERED.tokens, temperature: 0.7, topK: 0, topP: 1, seed: 9, stop: [] },
    nonce,
    ...(requester === undefined ? {} : { requester }),
  };
}

/** `worker`'s receipt for `job`: steered past every EOS, or honest. */
export function proveSteering(
  job: TextJob,
  worker: Identity,
  steer: boolean,
): Promise<ProvedJob> {
  const ids = steeringModel.tokenizer.encode(job.prompt);
  const chunks = generateChunks(steeringModel, ids, job.params, { runOn: steer });
  return proveJob(job, ReadableStream.from(chunks), worker);
}
