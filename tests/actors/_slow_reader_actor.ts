/**
 * The slow-reader tests' set-up (`inference_slow_reader_test.ts`, `inference_unread_eviction_test.ts`):
 * an InferenceActor with few seats, fake grace timers, an unread budget and a prover that counts
 * the receipts it signs; text jobs; reading a job's tokens.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { UnreadTokenBudget } from "../../actors/_unread_token_budget.ts";
import type { GenerativeModel, ProverHook } from "../../actors/inference_models.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, StaticModels } from "../server/_fixtures.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

let nonce = 0;

/** A text job of `maxTokens` tokens on `model` (a fresh nonce each: a job of its own). */
export function textJob(model: string, maxTokens: number, extra: Partial<TextJob> = {}): TextJob {
  return {
    kind: "text",
    model,
    prompt: "x",
    params: params({ maxTokens, stop: [] }),
    nonce: `slow-${++nonce}`,
    ...extra,
  };
}

/**
 * One actor serving `model` with `seats` seats (`concurrency`), fake grace timers, `budget` and a
 * prover that records the job ids it signs a receipt for.
 */
export async function slowReaderActor(
  model: GenerativeModel,
  budget: UnreadTokenBudget = new UnreadTokenBudget(),
  seats = 1,
) {
  const system = new ActorSystem({ name: "slow-reader" });
  const timers = new FakeTimers();
  const receipts: string[] = [];
  const prover: ProverHook = async (_job, jobId, chunks) => {
    for await (const _ of chunks);
    receipts.push(jobId);
    return { jobId };
  };
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([model]),
        concurrency: seats,
        prover,
        unreadBudget: budget,
        slowReaderTimers: timers,
      }),
  });
  return { system, timers, receipts, ref, budget };
}

/** Read up to `n` tokens (all, by default) from `reader`. */
export async function readN(
  reader: ReadableStreamDefaultReader<StreamedToken>,
  n = Infinity,
): Promise<StreamedToken[]> {
  const got: StreamedToken[] = [];
  while (got.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    got.push(value);
  }
  return got;
}
