/**
 * A sequence in a batch (`_batch_decoder.ts`): its state in the batcher (`SequenceState`: its
 * cache or row, the step it asked for, the steps queued ahead of its caller), the handle a
 * generation holds (`BatchedSequence`), and how its steps run ahead of the caller
 * (`_batch_decoder.ts`'s module doc, "Running ahead"): `noteAsked`, `deliver` and `extendAhead`,
 * at most {@link MAX_RUN_AHEAD} beyond the step last asked. `BatchedDecoder` owns the states and
 * re-exports `BatchedSequence` and `MAX_RUN_AHEAD`; `_prefill_planner.ts` reads them. Not part of
 * the public API.
 *
 * @module
 */
import type { PastCache, SampledStep, StepSampling } from "./_decoder_session.ts";
import type { BatchedDecoder } from "./_batch_decoder.ts";

/**
 * Most steps a sequence is computed beyond the one its caller last asked for (see
 * `_batch_decoder.ts`, "Running ahead"). With one, every tick waited for the callers' requests
 * to come back from the main thread (a worker's onnxruntime execution blocks its thread, so they
 * are read only between ticks): 8 clients on `small` left 2.4 ms (mean; 6 ms at p90) between
 * executions of ~27 ms. With two, a tick seldom waits for them: 1.8 ms (4.8 at p90), mostly the
 * reading and answering of those requests between executions.
 */
export const MAX_RUN_AHEAD = 2;

/** A step asked for and not answered yet. */
export interface PendingStep {
  tokens: readonly number[];
  /** Tokens of `tokens` already in the cache (a prompt read over several ticks). */
  fed: number;
  sampling: StepSampling;
  topLogprobs: number;
  /** Submission order, for fairness among prompts and joiners. */
  order: number;
  /**
   * Steps the caller promises to ask after this one (`_batch_decoder.ts`, "Running ahead"); 0 for
   * none.
   */
  ahead: number;
  resolve(step: SampledStep): void;
  reject(error: unknown): void;
}

/** A step the batcher queued ahead of its caller's request, and what became of it. */
export interface StepAhead {
  /** The token it feeds and the position it samples. */
  token: number;
  position: number;
  /** Its outcome, once computed. */
  outcome?: { step: SampledStep } | { error: unknown };
  /** The caller's request for it, when it came before the outcome. */
  waiter?: { resolve(step: SampledStep): void; reject(error: unknown): void; ahead: number };
}

/** One sequence's state in the batcher. */
export class SequenceState {
  /** Tokens in its cache. */
  length = 0;
  /** Its cache when it is not a member of the batch (`null`: none yet, or in the batch). */
  cache: PastCache | null = null;
  /** Its row in the batch, when it is a member. */
  row = -1;
  pending: PendingStep | undefined;
  /** Steps queued (or computed) ahead of the caller's requests, oldest first. */
  aheads: StepAhead[] = [];
  /** Position of the step the caller last asked for, and the last one it promised to ask. */
  asked = -1;
  promised = -1;
  /** The last step computed (its sampled token and position), which the next step feeds. */
  last: { token: number; position: number } | undefined;
  closed = false;
  /** A failed execution lost its cache: every later step fails with this. */
  failure: unknown;
  /** The rule and top-k count of its last step, which a step ahead repeats. */
  lastSampling: { sampling: StepSampling; topLogprobs: number } | undefined;
}

/** A generation's handle on a {@link BatchedDecoder}: the same API as a lone sequence. */
export class BatchedSequence {
  #owner: BatchedDecoder;
  #state: SequenceState;

  /** @internal Created by {@link BatchedDecoder.sequence}. */
  constructor(owner: BatchedDecoder, state: SequenceState) {
    this.#owner = owner;
    this.#state = state;
  }

  /** Tokens in the cache. */
  get length(): number {
    return this.#state.length;
  }

  /**
   * Feed `tokens` after the cached ones and sample the next token from the last one's logits
   * row under `sampling` (with its fingerprint and, with `topLogprobs` > 0, its most likely
   * tokens), at the next step boundary of the batch. With `ahead` = n (`true`: 1), the caller
   * promises the n steps after this one, each feeding back the token sampled before it: they
   * are queued as soon as their token is known (see `_batch_decoder.ts`, "Running ahead").
   */
  step(
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs = 0,
    ahead: number | boolean = 0,
  ): Promise<SampledStep> {
    return this.#owner.submit(this.#state, tokens, sampling, topLogprobs, ahead);
  }

  /**
   * Leave the batch and drop the cache. A step still waiting, or running in the batch now, is
   * rejected ("closed"); the other members' steps are not disturbed.
   */
  close(): void {
    this.#owner.closeSequence(this.#state);
  }
}

/** The caller asked for the step at `position` and promised `ahead` more after it. */
export function noteAsked(state: SequenceState, position: number, ahead: number): void {
  state.asked = position;
  state.promised = Math.max(state.promised, position + ahead);
}

/** Hand a step ahead's outcome to the caller's request. */
export function deliver(
  outcome: NonNullable<StepAhead["outcome"]>,
  waiter: NonNullable<StepAhead["waiter"]>,
): void {
  if ("error" in outcome) waiter.reject(outcome.error);
  else waiter.resolve(outcome.step);
}

/**
 * Queue the sequence's next step on its caller's behalf, when the caller promised it, the step
 * before it is computed (its token is what it feeds), none is pending, and it is at most
 * {@link MAX_RUN_AHEAD} beyond the step last asked.
 *
 * @param state The sequence.
 * @param nextOrder The batcher's submission order, taken when a step is queued.
 * @param schedule Called when a step is queued, to schedule a tick; left out during a tick.
 */
export function extendAhead(
  state: SequenceState,
  nextOrder: () => number,
  schedule?: () => void,
): void {
  if (state.closed || state.failure !== undefined || state.pending) return;
  const last = state.last;
  const previous = state.lastSampling;
  if (last === undefined || previous === undefined) return;
  const tail = state.aheads.at(-1);
  if (tail !== undefined && tail.outcome === undefined) return; // its token is not known yet
  const position = last.position + 1;
  if (position > state.promised || position - state.asked > MAX_RUN_AHEAD) return;
  const queued: StepAhead = { token: last.token, position };
  state.aheads.push(queued);
  const sampling = { params: previous.sampling.params, position };
  const settle = (outcome: NonNullable<StepAhead["outcome"]>) => {
    queued.outcome = outcome;
    if (state.aheads[0] === queued && queued.waiter) {
      state.aheads.shift();
      deliver(outcome, queued.waiter);
    }
  };
  state.pending = {
    tokens: [last.token],
    fed: 0,
    sampling,
    topLogprobs: previous.topLogprobs,
    order: nextOrder(),
    ahead: 0,
    resolve: (next) => settle({ step: next }),
    reject: (error) => settle({ error }),
  };
  state.lastSampling = { sampling, topLogprobs: previous.topLogprobs };
  if (schedule) schedule();
}
