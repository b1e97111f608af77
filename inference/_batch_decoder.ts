/**
 * Continuous batching on one decoder session: the generations open on a session share its
 * executions. Sequences join the running batch at a step boundary and leave it when they finish;
 * each keeps its own KV cache rows, positions and attention mask inside the batch, and each step
 * samples and fingerprints every row with that row's own rule (`sampleRow`), so the seeded
 * sampler and the proof fingerprint stay per sequence.
 *
 * **Layout.** The batch's cache is one tensor per layer and kind, `[B, heads, T, head_dim]`,
 * where T is the longest member's length: a shorter member's rows are left-padded, its padded
 * slots masked out (`attention_mask` 0) and its new token placed at its own position
 * (`position_ids`). The graph's mask gives a padded key a weight of exactly 0, so a row's logits
 * do not depend on the other rows' data; they can still differ from the sequence run alone in
 * the last bits, because onnxruntime's CPU kernels block a product of 8 rows differently from
 * one of 1 (measured ≤ ~1e-6 on the fingerprints, the same tokens:
 * `tests/inference/batch_decoder_test.ts`); the validators' calibrated tolerances absorb that
 * (`tests/proof/adversarial_test.ts`, the batch cases). The batch's cache is a
 * `BatchCache` (`_batch_cache.ts`): with the built-in graphs a change of membership copies the
 * one row that joins or leaves, never the batch, and memory is allocated only to grow.
 *
 * **A step boundary** (a *tick*) reads waiting prompts, first come first served, then runs one
 * batched execution over the members that asked for their next token (prompts first: a client
 * waiting for its first token comes before the running streams' next one, whose gap is the same
 * either way; a sequence whose prompt was just read joins that execution). Prompts that have not
 * started are read whole and together — the first waiting one and those right after it, as many
 * as fit one execution of {@link PREFILL_GROUP_TOKENS} tokens ({@link GPU_PREFILL_GROUP_TOKENS} on
 * a GPU provider), left-padded to the longest — so clients that arrive together pay one
 * execution's fixed cost and start together; each gets its own cache. A longer prompt is read alone, on its own cache: whole with nobody decoding (a lone
 * stream's first token as fast as unbatched), else in pieces of equal length, each within half
 * a budget of it and never shorter than {@link MIN_PREFILL_PIECE} (each execution has a fixed
 * cost). The budget is the tokens that cost about {@link PREFILL_STALL_FACTOR} decode steps (it
 * follows the measured cost of a prompt token and of the last decode step), so the prompt delays
 * the others' next token by one bounded piece, never by the whole prompt.
 *
 * **When a tick starts.** As soon as every member of the batch has asked for its next step (the
 * usual case: each asks right after its previous token comes back), else after a short wait
 * ({@link gatherWaitMs}) for the stragglers; a member that has not asked by then is taken out of
 * the batch (its rows copied into a cache of its own) and rejoins when it asks, so a slow
 * consumer never holds the others back for more than that wait. "As soon as" is a macrotask
 * later (`setImmediate`), so steps asked in the same turn, or by messages already queued, join
 * the tick. But when a tick ends with every member's next step already asked (steps ahead, the
 * steady state) and the event loop turned while it ran, the next tick starts at once: its
 * execution will turn the loop anyway (onnxruntime-node starts each from a `setImmediate`), and
 * the messages read in that turn still count (a prompt among them is read at the start of the
 * next tick; a step of a sequence outside the batch joins at the tick after). On `small`
 * (2-core VM) the turn saved cost one stream ~0.07 ms of a ~3.5 ms step (~3 % more tokens/s in a
 * worker); with 8 streams that turn was mostly reading the members' requests, which now happens
 * in the execution's turn instead (no change measured). A backend that resolves in a microtask
 * never turns the loop, so it always waits for the macrotask and cannot starve the loop. A
 * tick that read a prompt to its end waits for a macrotask before its decode step: setting up
 * that execution (the new member's prompt cache copied into the batch, ~0.4 ms on `small`)
 * would otherwise run before the first token's reply leaves, and a first token is what a client
 * waits for (time to first token); it costs one turn per job.
 *
 * **Running ahead.** A step asked with `ahead` = n promises that, unless the sequence is closed,
 * the n steps after it will be asked, each feeding back the token the one before sampled, at the
 * next position (what `TextModel.generate` does with a run-ahead window in worker mode). The
 * batcher then queues those steps itself as soon as each token is known, up to
 * {@link MAX_RUN_AHEAD} beyond the step last asked, so the sequence is ready at the next ticks
 * without waiting for the round trip to the caller, and the caller's requests are answered from
 * the steps already computed (or in flight). A closed sequence's steps ahead are dropped.
 *
 * Both execution modes run this: in-thread on the calling thread, in worker mode inside each
 * model worker (one batch per worker), so both feed onnxruntime the same tensors.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { BatchCache } from "./_batch_cache.ts";
import {
  copySlots,
  type DecoderSession,
  type PastCache,
  type SampledStep,
  sampleRow,
  type StepSampling,
} from "./_decoder_session.ts";
import { ModelDisposedError } from "./errors.ts";
import type { ExecutionProvider } from "./_session.ts";

/**
 * Default most sequences in one execution. Measured on the `small` model, one intra-op thread
 * (2-core VM): a step of 8 rows costs 2× a step of 1 for 4× the tokens; 16 rows add ~20 % more
 * tokens/s for twice the per-token latency of 8. Further sequences wait for a seat.
 */
export const DEFAULT_MAX_BATCH = 8;

/**
 * While others decode, a prompt piece costs about this many decode steps (a prompt is cut into
 * pieces of equal length, each within half of this budget of it). The running sequences'
 * inter-token latency during a join is then about (1 + this), at most (1 + 1.5 × this), × a
 * step's, within the 3 × median that keeps a stream smooth; a larger piece would bring the
 * joiner's first token sooner at the price of the others' smoothness.
 */
export const PREFILL_STALL_FACTOR = 1;
/**
 * Shortest prompt piece (but a prompt's last). Every execution pays a fixed cost, whatever its
 * length: reading the weights once (on `small`, 2-core VM: one execution of one token ≈ 5 ms,
 * the cost of ~15 more prompt tokens). A piece sized only by the decode step's length shrank to
 * a few tokens while the batch was small (a one-row step costs that fixed cost alone), each
 * piece paid it again, and a 128-token prompt took 16 executions instead of one: eight clients
 * arriving together waited ~0.7 s (p50) for a first token. At 64 tokens the fixed cost is at
 * most about a fifth of a piece; the running streams' gap during a join is then about one such
 * piece (~25 ms here), below a full batch's step (pieces of equal length, each at least this
 * long and at most 1.5 × the budget).
 */
export const MIN_PREFILL_PIECE = 64;
/**
 * Prompts that have not started yet are read whole and together, in one execution of at most
 * this many tokens (padding included): one fixed cost for all of them, and clients that arrive
 * together start together. Measured on `small` (2-core VM), eight 128-token prompts arriving
 * at once: read one piece at a time, the last got its first token after ~0.7 s; a 512-token
 * group takes ~170 ms, the one stall the running streams see for it. A longer prompt is read
 * alone, in pieces.
 */
export const PREFILL_GROUP_TOKENS = 512;
/**
 * The group budget on a GPU provider (`cuda`, `webgpu`). There an execution's cost barely
 * depends on its length at these sizes (H200, WebGPU, `small`: one execution of 128 prompt
 * tokens or of 1,024 cost about the same), so reading four prompts at a time made the 5th of
 * eight clients arriving together wait for a second group, and their time to first token was
 * 4.65 × one stream's. At this budget every waiting prompt up to the batch's seats is read in
 * one execution for prompts up to 512 tokens; the bound keeps one prefill's attention scores
 * (heads × tokens × its row's length) within device memory for longer prompts.
 */
export const GPU_PREFILL_GROUP_TOKENS = 4096;

/** The group budget for a session on `provider` (see {@link GPU_PREFILL_GROUP_TOKENS}). */
export function prefillGroupTokensFor(provider: ExecutionProvider): number {
  return provider === "cpu" ? PREFILL_GROUP_TOKENS : GPU_PREFILL_GROUP_TOKENS;
}
/** Weight of the newest measurement in the running per-token prefill cost. */
const PREFILL_COST_SMOOTHING = 0.25;

/**
 * Most steps a sequence is computed beyond the one its caller last asked for (see the module
 * doc). With one, every tick waited for the callers' requests to come back from the main thread
 * (a worker's onnxruntime execution blocks its thread, so they are read only between ticks):
 * 8 clients on `small` left 2.4 ms (mean; 6 ms at p90) between executions of ~27 ms. With two,
 * a tick seldom waits for them: 1.8 ms (4.8 at p90), mostly the reading and
 * answering of those requests between executions.
 */
export const MAX_RUN_AHEAD = 2;

/** Bounds of the wait for stragglers (see {@link gatherWaitMs}). */
const GATHER_WAIT_MIN_MS = 1;
const GATHER_WAIT_MAX_MS = 8;
/**
 * Wait for a straggler at most this fraction of the last tick's compute: waiting costs the
 * others at most that much throughput, while giving up on it costs a copy of its rows out of
 * the batch and back, and a lone step for it later.
 */
const GATHER_WAIT_FRACTION = 0.25;

/** Resolves at the next macrotask turn of the event loop (`setImmediate`). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** How long a tick waits for members that have not asked yet, given the last tick's duration. */
export function gatherWaitMs(lastTickMs: number): number {
  return Math.min(
    GATHER_WAIT_MAX_MS,
    Math.max(GATHER_WAIT_MIN_MS, lastTickMs * GATHER_WAIT_FRACTION),
  );
}

/** Options of {@link BatchedDecoder}. */
export interface BatchedDecoderOptions {
  /** Most sequences per execution; default {@link DEFAULT_MAX_BATCH} (1 disables batching). */
  maxBatch?: number;
  /**
   * Prompt tokens read per tick while others decode, fixed (pieces of equal length, each within
   * half of this of it); default: adaptive (a piece costs about {@link PREFILL_STALL_FACTOR}
   * decode steps, and is at least {@link MIN_PREFILL_PIECE} tokens).
   */
  prefillTokensPerTick?: number;
  /**
   * Most tokens (padding included) of one execution reading prompts that have not started,
   * whole and together; default {@link PREFILL_GROUP_TOKENS}, `prefillTokensPerTick` when that
   * is set (the model runtime passes {@link prefillGroupTokensFor} its session's provider).
   */
  prefillGroupTokens?: number;
}

/** Counters of a {@link BatchedDecoder}, for diagnostics and tests. */
export interface BatchStats {
  /** Ticks run. */
  ticks: number;
  /** Batched decode executions run (one per tick that had members asking). */
  decodeRuns: number;
  /** Decode rows computed, over all executions (÷ `decodeRuns` = mean batch size). */
  decodeRows: number;
  /** Largest batch run. */
  maxBatch: number;
  /** Times a sequence joined the batch (its rows copied in). */
  joins: number;
  /**
   * Times the batch's cache was allocated again: grown (fixed-cache graphs), or copied for a
   * change of membership (concat-convention graphs; see `_batch_cache.ts`).
   */
  reallocations: number;
  /** Prompt pieces run alone. */
  prefillRuns: number;
}

/** A step asked for and not answered yet. */
interface PendingStep {
  tokens: readonly number[];
  /** Tokens of `tokens` already in the cache (a prompt read over several ticks). */
  fed: number;
  sampling: StepSampling;
  topLogprobs: number;
  /** Submission order, for fairness among prompts and joiners. */
  order: number;
  /** Steps the caller promises to ask after this one (see the module doc); 0 for none. */
  ahead: number;
  resolve(step: SampledStep): void;
  reject(error: unknown): void;
}

/** A step the batcher queued ahead of its caller's request, and what became of it. */
interface StepAhead {
  /** The token it feeds and the position it samples. */
  token: number;
  position: number;
  /** Its outcome, once computed. */
  outcome?: { step: SampledStep } | { error: unknown };
  /** The caller's request for it, when it came before the outcome. */
  waiter?: { resolve(step: SampledStep): void; reject(error: unknown): void; ahead: number };
}

/** One sequence's state in the batcher. */
class SequenceState {
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
   * are queued as soon as their token is known (see the module doc).
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

/** Runs the steps of every sequence open on one session as batched executions. */
export class BatchedDecoder {
  #decoder: DecoderSession;
  #maxBatch: number;
  #prefillBudget: number | undefined;
  #groupBudget: number;
  /** Running estimate of a prompt token's cost (ms), and the last decode step's. */
  #msPerPromptToken = 0;
  #lastDecodeMs = 0;
  /** Open sequences, in opening order. */
  #open = new Set<SequenceState>();
  /** The batch's members, by row, and their shared cache (`_batch_cache.ts`). */
  #members: SequenceState[] = [];
  #cache: BatchCache;
  #ticking = false;
  /** This tick answered a prompt (a first token): its decode step waits for a turn. */
  #answeredPrompt = false;
  #immediate = false;
  /** Macrotask turns of the event loop seen (see {@link BatchedDecoder.#tick}). */
  #turns = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastTickMs = 0;
  #order = 0;
  #disposed = false;
  #stats: BatchStats = {
    ticks: 0,
    decodeRuns: 0,
    decodeRows: 0,
    maxBatch: 0,
    joins: 0,
    reallocations: 0,
    prefillRuns: 0,
  };

  /**
   * @param decoder The session the sequences run on.
   * @param options Batch size and prefill budget.
   */
  constructor(decoder: DecoderSession, options?: BatchedDecoderOptions) {
    this.#decoder = decoder;
    const maxBatch = options?.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError("maxBatch must be an integer ≥ 1");
    }
    // A graph without a mask and positions cannot tell padding from tokens: one row at a time.
    this.#maxBatch = decoder.canBatch ? maxBatch : 1;
    const budget = options?.prefillTokensPerTick;
    if (budget !== undefined && (!Number.isSafeInteger(budget) || budget < 1)) {
      throw new RangeError("prefillTokensPerTick must be an integer ≥ 1");
    }
    this.#prefillBudget = budget;
    const group = options?.prefillGroupTokens ?? budget ?? PREFILL_GROUP_TOKENS;
    if (!Number.isSafeInteger(group) || group < 1) {
      throw new RangeError("prefillGroupTokens must be an integer ≥ 1");
    }
    this.#groupBudget = group;
    this.#cache = new BatchCache(decoder, this.#maxBatch);
  }

  /** The most sequences one execution runs. */
  get maxBatch(): number {
    return this.#maxBatch;
  }

  /** Sequences open now. */
  get openSequences(): number {
    return this.#open.size;
  }

  /** Counters since creation. */
  stats(): BatchStats {
    return { ...this.#stats, reallocations: this.#cache.reallocations };
  }

  /** A fresh sequence with an empty cache. */
  sequence(): BatchedSequence {
    if (this.#disposed) throw new ModelDisposedError();
    const state = new SequenceState();
    this.#open.add(state);
    return new BatchedSequence(this, state);
  }

  /**
   * Fail every waiting step with `ModelDisposedError` and drop every cache; a tick already
   * running completes. Idempotent.
   */
  dispose(): void {
    this.#disposed = true;
    this.#clearTimers();
    for (const state of this.#open) {
      state.pending?.reject(new ModelDisposedError());
      state.pending = undefined;
      state.closed = true;
      state.cache = null;
    }
    this.#open.clear();
    this.#members = [];
    this.#cache.drop();
  }

  /** @internal {@link BatchedSequence.step}. */
  submit(
    state: SequenceState,
    tokens: readonly number[],
    sampling: StepSampling,
    topLogprobs: number,
    ahead: number | boolean = 0,
  ): Promise<SampledStep> {
    if (this.#disposed) return Promise.reject(new ModelDisposedError());
    if (state.closed) return Promise.reject(new Error("the sequence is closed"));
    if (state.failure !== undefined) return Promise.reject(state.failure);
    if (tokens.length === 0) return Promise.reject(new RangeError("a step needs a token"));
    const more = typeof ahead === "number" ? Math.max(0, Math.floor(ahead)) : ahead ? 1 : 0;
    const { promise: answer, resolve, reject } = Promise.withResolvers<SampledStep>();
    const queued = state.aheads[0];
    if (queued) {
      // The step asked for was queued ahead: answer from it (now, or when it is computed).
      if (
        queued.waiter || tokens.length !== 1 || tokens[0] !== queued.token ||
        sampling.position !== queued.position
      ) {
        // Broken promise: the cache already holds the token the step ahead fed.
        const error = new Error("a step ahead was queued for another token or position");
        this.#fail(state, error);
        return Promise.reject(error);
      }
      this.#noteAsked(state, sampling.position, more);
      const waiter = { resolve, reject, ahead: more };
      if (queued.outcome === undefined) queued.waiter = waiter;
      else {
        state.aheads.shift();
        this.#deliver(queued.outcome, waiter);
      }
      this.#extendAhead(state, true);
      return answer;
    }
    if (state.pending) return Promise.reject(new Error("a step of this sequence is pending"));
    this.#noteAsked(state, sampling.position, more);
    state.pending = {
      tokens: [...tokens],
      fed: 0,
      sampling,
      topLogprobs,
      order: this.#order++,
      ahead: more,
      resolve,
      reject,
    };
    this.#schedule();
    return answer;
  }

  /** The caller asked for the step at `position` and promised `ahead` more after it. */
  #noteAsked(state: SequenceState, position: number, ahead: number): void {
    state.asked = position;
    state.promised = Math.max(state.promised, position + ahead);
  }

  /** Hand a step ahead's outcome to the caller's request. */
  #deliver(
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
   */
  #extendAhead(state: SequenceState, schedule: boolean): void {
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
        this.#deliver(outcome, queued.waiter);
      }
    };
    state.pending = {
      tokens: [last.token],
      fed: 0,
      sampling,
      topLogprobs: previous.topLogprobs,
      order: this.#order++,
      ahead: 0,
      resolve: (next) => settle({ step: next }),
      reject: (error) => settle({ error }),
    };
    state.lastSampling = { sampling, topLogprobs: previous.topLogprobs };
    if (schedule) this.#schedule();
  }

  /** @internal {@link BatchedSequence.close}. */
  closeSequence(state: SequenceState): void {
    if (state.closed) return;
    state.closed = true;
    this.#open.delete(state);
    state.cache = null;
    // A step not started yet never will be; its caller has stopped listening.
    state.pending?.reject(new Error("the sequence is closed"));
    state.pending = undefined;
    state.aheads = [];
    // Its rows leave the batch at the next tick (or now, if nobody is left).
    if (this.#members.every((m) => m.closed) && !this.#ticking) {
      this.#members = [];
      this.#cache.clear();
    }
    this.#schedule();
  }

  /**
   * Start a tick at the next macrotask, after a wait for stragglers, or not at all; with
   * `turned` (a tick just ended and the event loop turned while it ran), at once when nobody
   * straggles (see the module doc).
   */
  #schedule(turned = false): void {
    if (this.#ticking || this.#disposed || this.#immediate) return;
    let waiting = false;
    for (const state of this.#open) {
      if (state.pending) {
        waiting = true;
        break;
      }
    }
    if (!waiting) {
      this.#clearTimers();
      return;
    }
    const straggling = this.#members.some((m) => !m.closed && !m.pending);
    if (!straggling && turned) {
      this.#clearTimers();
      void this.#tick();
    } else if (!straggling) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#immediate = true;
      // A macrotask, not a microtask: steps asked for in the same turn (or by messages already
      // queued) join this tick.
      setImmediate(() => {
        this.#immediate = false;
        void this.#tick();
      });
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#tick();
      }, gatherWaitMs(this.#lastTickMs));
    }
  }

  #clearTimers(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#disposed) return;
    this.#ticking = true;
    this.#answeredPrompt = false;
    this.#clearTimers();
    const started = performance.now();
    // Counts the event loop's turn if one happens while this tick runs.
    const turnsBefore = this.#turns;
    setImmediate(() => this.#turns++);
    try {
      this.#stats.ticks++;
      // Prompts first: a client waiting for its first token comes before the running streams'
      // next one (see the module doc). A sequence whose prompt was just read joins this tick's
      // decode step.
      await this.#prefillStep();
      if (this.#answeredPrompt) {
        // Its first token's reply leaves before the next execution is set up (the module doc),
        // and prompts that came while it was read are heard. Those that fit a group are read
        // too, before the decode step, once a tick: the first prompt's own first decode step
        // came between, and clients arriving together behind one got their first tokens a
        // step later (H200, WebGPU, 8 clients: TTFT p50 132 ms, one stream's 39). A longer
        // one waits for its pieces (the running streams' stall stays bounded).
        await nextTurn();
        if (this.#prefillGroup(this.#waitingPrompts()).length > 0) {
          this.#answeredPrompt = false;
          await this.#prefillStep();
          if (this.#answeredPrompt) await nextTurn();
        }
      }
      await this.#decodeStep();
    } catch (error) {
      // Each step fails the sequences its own failures touch; this is for a failure none of
      // them expected. Nothing the tick touched is known to be sound: the batch's members and
      // every waiting step fail (which also keeps the next tick from repeating it). A tick is
      // started with `void`: it must never reject, or the process (the worker) would end.
      this.#failBatch(error, [...this.#open].filter((s) => s.pending !== undefined));
    } finally {
      this.#lastTickMs = performance.now() - started;
      this.#ticking = false;
      this.#schedule(this.#turns !== turnsBefore);
    }
  }

  /** The members that asked for one more token, in one execution. */
  async #decodeStep(): Promise<void> {
    const ready = (s: SequenceState) =>
      !s.closed && s.pending !== undefined && s.length > 0 &&
      s.pending.tokens.length - s.pending.fed === 1;
    // Current members first (nothing moves while the batch is unchanged), then joiners in order.
    const stepping = this.#members.filter(ready);
    const joiners = [...this.#open].filter((s) => s.row < 0 && ready(s))
      .sort((a, b) => a.pending!.order - b.pending!.order);
    for (const s of joiners) {
      if (stepping.length >= this.#maxBatch) break;
      stepping.push(s);
    }
    if (stepping.length === 0) {
      // Nobody to step: the members keep their seats, unless one must read several tokens.
      if (this.#members.some((m) => m.pending && !ready(m))) {
        try {
          this.#setMembers([]);
        } catch (error) {
          this.#failBatch(error, []);
        }
      }
      return;
    }
    let rows: SequenceState[];
    let taken: PendingStep[];
    let logits: Float32Array;
    try {
      // The moves of rows in and out of the batch's cache and its growth allocate (and can fail
      // as the execution can): any failure from here on fails the step's members.
      this.#setMembers(stepping);
      // In the cache's row order (a member that left had the last row moved into its place).
      rows = this.#members;
      this.#cache.reserve(1);
      const batch = rows.length;
      const width = this.#cache.width;
      const inputIds = new BigInt64Array(batch);
      const mask = new BigInt64Array(batch * (width + 1));
      const positions = new BigInt64Array(batch);
      taken = rows.map((s) => s.pending!);
      for (let i = 0; i < batch; i++) {
        const s = rows[i];
        const p = taken[i];
        inputIds[i] = BigInt(p.tokens[p.tokens.length - 1]);
        mask.fill(1n, i * (width + 1) + (width - s.length), (i + 1) * (width + 1));
        positions[i] = BigInt(s.length);
      }
      const started = performance.now();
      const out = await this.#decoder.runRows(inputIds, batch, mask, positions, this.#cache.feed());
      this.#lastDecodeMs = performance.now() - started;
      this.#cache.stepped(1, out.present);
      logits = out.logits;
    } catch (error) {
      // The batch's cache is in an unknown state: every member loses its generation.
      this.#failBatch(error, stepping);
      return;
    }
    const batch = rows.length;
    this.#stats.decodeRuns++;
    this.#stats.decodeRows += batch;
    this.#stats.maxBatch = Math.max(this.#stats.maxBatch, batch);
    const vocab = this.#decoder.shape.vocabSize;
    for (let i = 0; i < batch; i++) {
      const s = rows[i];
      s.length++;
      // Closed (or disposed) while the execution ran: its step was rejected then; nothing to say.
      if (s.pending !== taken[i]) continue;
      s.pending = undefined;
      this.#answer(s, taken[i], logits.subarray(i * vocab, (i + 1) * vocab));
    }
  }

  /**
   * Read the waiting prompts, first come first served: the first one with those after it that
   * have not started either, whole and together, when they fit {@link PREFILL_GROUP_TOKENS};
   * else a piece of the first, alone on its own cache (see the module doc).
   */
  async #prefillStep(): Promise<void> {
    const waiting = this.#waitingPrompts();
    if (waiting.length === 0) return;
    const group = this.#prefillGroup(waiting);
    if (group.length > 1) return await this.#prefillTogether(group);
    const s = waiting[0];
    const p = s.pending!;
    const remaining = p.tokens.length - p.fed;
    let piece: number[];
    let out;
    const started = performance.now();
    try {
      // Alone in its group: whole, on its own cache (nothing to pad or copy).
      piece = p.tokens.slice(
        p.fed,
        p.fed + (group.length === 1 ? remaining : this.#pieceLength(remaining)),
      );
      out = await this.#decoder.run(piece, s.length, s.cache ?? this.#decoder.emptyPast());
    } catch (error) {
      // Only its own cache was touched.
      this.#fail(s, error);
      return;
    }
    this.#notePrefillCost(performance.now() - started, piece.length);
    this.#stats.prefillRuns++;
    if (s.closed || s.pending !== p) return;
    s.cache = out.present;
    s.length += piece.length;
    p.fed += piece.length;
    if (p.fed < p.tokens.length) return; // the rest of the prompt at the next tick
    s.pending = undefined;
    const vocab = this.#decoder.shape.vocabSize;
    this.#answeredPrompt = true;
    this.#answer(s, p, out.logits.subarray((piece.length - 1) * vocab, piece.length * vocab));
  }

  /** The sequences with prompt tokens to read, first come first. */
  #waitingPrompts(): SequenceState[] {
    return [...this.#open].filter((s) =>
      !s.closed && s.row < 0 && s.pending !== undefined &&
      (s.length === 0 || s.pending.tokens.length - s.pending.fed > 1)
    ).sort((a, b) => a.pending!.order - b.pending!.order);
  }

  /**
   * The first waiting prompt and the not-yet-started ones after it (in order, none skipped) that
   * fit one execution of the group budget (`prefillGroupTokens`), each read whole and left-padded
   * to the longest; empty when the first one has started already or is longer than that.
   */
  #prefillGroup(waiting: SequenceState[]): SequenceState[] {
    const group: SequenceState[] = [];
    let width = 0;
    for (const s of waiting) {
      if (s.length > 0 || group.length >= this.#maxBatch) break;
      const widened = Math.max(width, s.pending!.tokens.length);
      if (widened * (group.length + 1) > this.#groupBudget) break;
      group.push(s);
      width = widened;
    }
    return group;
  }

  /** Read each prompt of `group` whole, in one execution, and answer each one's first step. */
  async #prefillTogether(group: SequenceState[]): Promise<void> {
    const batch = group.length;
    const taken = group.map((s) => s.pending!);
    const width = Math.max(...taken.map((p) => p.tokens.length));
    let out;
    const started = performance.now();
    try {
      // Left padding: each row's prompt ends in the last column, so its valid cache slots are
      // the last ones (the layout the batch keeps) and its last logits row is the same for all.
      const inputIds = new BigInt64Array(batch * width);
      const mask = new BigInt64Array(batch * width);
      const positions = new BigInt64Array(batch * width);
      for (let i = 0; i < batch; i++) {
        const tokens = taken[i].tokens;
        const start = i * width + (width - tokens.length);
        for (let j = 0; j < tokens.length; j++) {
          inputIds[start + j] = BigInt(tokens[j]);
          positions[start + j] = BigInt(j);
        }
        mask.fill(1n, start, (i + 1) * width);
      }
      out = await this.#decoder.runRows(
        inputIds,
        batch,
        mask,
        positions,
        this.#decoder.emptyPast(batch),
      );
    } catch (error) {
      for (const s of group) this.#fail(s, error);
      return;
    }
    this.#notePrefillCost(performance.now() - started, batch * width);
    this.#stats.prefillRuns++;
    const vocab = this.#decoder.shape.vocabSize;
    for (let i = 0; i < batch; i++) {
      const s = group[i];
      const p = taken[i];
      // Closed (or disposed) while the execution ran: its step was rejected then.
      if (s.closed || s.pending !== p) continue;
      const length = p.tokens.length;
      try {
        s.cache = this.#decoder.allocatePast(1, length);
        copySlots(this.#decoder, out.present, i, width - length, s.cache, 0, 0, length);
      } catch (error) {
        // Its own cache could not be made (an allocation): the others' are sound.
        this.#fail(s, error);
        continue;
      }
      s.length = length;
      p.fed = length;
      s.pending = undefined;
      const last = (i * width + width - 1) * vocab;
      this.#answeredPrompt = true;
      this.#answer(s, p, out.logits.subarray(last, last + vocab));
    }
  }

  /** Fold an execution of `tokens` prompt tokens that took `ms` into the per-token cost. */
  #notePrefillCost(ms: number, tokens: number): void {
    // A short piece's cost is mostly the execution's fixed cost: it would inflate the estimate.
    if (tokens < MIN_PREFILL_PIECE) return;
    const perToken = ms / tokens;
    this.#msPerPromptToken = this.#msPerPromptToken === 0
      ? perToken
      : this.#msPerPromptToken + PREFILL_COST_SMOOTHING * (perToken - this.#msPerPromptToken);
  }

  /**
   * Prompt tokens to read this tick, of `remaining`: all of them with nobody decoding, else a
   * piece within half a budget of the budget — the tokens that cost about
   * {@link PREFILL_STALL_FACTOR} decode steps, no fewer than {@link MIN_PREFILL_PIECE} — and
   * never shorter than that floor: the prompt is cut into pieces of equal length, as many as
   * the budget goes into it, rounded (130 tokens at a budget of 64 are read as 65 + 65, not
   * 64 + 64 + 2 nor 44 + 43 + 43; 128 at a budget of 100 whole; 190 at 100 as 95 + 95).
   */
  #pieceLength(remaining: number): number {
    if (!this.#members.some((m) => !m.closed)) return remaining;
    let budget = this.#prefillBudget ?? MIN_PREFILL_PIECE;
    if (this.#prefillBudget === undefined && this.#msPerPromptToken > 0) {
      budget = Math.max(
        MIN_PREFILL_PIECE,
        Math.floor(PREFILL_STALL_FACTOR * this.#lastDecodeMs / this.#msPerPromptToken),
      );
    }
    if (remaining <= budget) return remaining;
    // Pieces of equal length, as many as the budget goes into the prompt, rounded: each within
    // half a budget of it (at most 1.5 ×). Never shorter than MIN_PREFILL_PIECE when the budget
    // is the adaptive one: a short piece pays the fixed cost for little, and is too short for
    // the cost estimate to count.
    let pieces = Math.max(1, Math.round(remaining / budget));
    if (this.#prefillBudget === undefined) {
      pieces = Math.min(pieces, Math.max(1, Math.floor(remaining / MIN_PREFILL_PIECE)));
    }
    return Math.ceil(remaining / pieces);
  }

  #answer(s: SequenceState, p: PendingStep, row: Float32Array): void {
    let step: SampledStep;
    try {
      step = sampleRow(row, p.sampling, p.topLogprobs);
    } catch (error) {
      p.reject(error);
      return;
    }
    // The step ahead is queued (synchronously, before anyone hears of the answer), so it is in
    // the next tick.
    s.lastSampling = { sampling: p.sampling, topLogprobs: p.topLogprobs };
    s.last = { token: step.tokenId, position: p.sampling.position };
    p.resolve(step);
    this.#extendAhead(s, false);
  }

  /**
   * The batch's cache is in an unknown state (a step failed part way): every member, and every
   * sequence of `also` (a step's joiners, not all of them seated yet), loses its generation, and
   * the cache starts again from nothing.
   */
  #failBatch(error: unknown, also: Iterable<SequenceState>): void {
    for (const s of new Set([...this.#members, ...also])) this.#fail(s, error);
    this.#members = [];
    this.#cache.drop();
  }

  #fail(s: SequenceState, error: unknown): void {
    s.failure = error;
    s.cache = null;
    s.row = -1;
    s.pending?.reject(error);
    s.pending = undefined;
  }

  /**
   * Make `rows` the batch: members not among them leave it (closed ones are dropped, open ones
   * get their rows copied into a cache of their own), then newcomers' caches are copied in, in
   * order. Each change moves one row (`_batch_cache.ts`); `#members` follows the cache's rows.
   */
  #setMembers(rows: SequenceState[]): void {
    const old = this.#members;
    if (old.length === rows.length && old.every((s, i) => s === rows[i])) return;
    const staying = new Set(rows);
    // From the last row down, so a row moved into a leaver's place has been looked at already.
    for (let row = old.length - 1; row >= 0; row--) {
      const s = old[row];
      if (staying.has(s)) continue;
      const keep = !s.closed && s.failure === undefined;
      const { own, moved } = this.#cache.remove(row, keep);
      s.row = -1;
      if (keep) s.cache = own;
      if (moved >= 0) {
        old[row] = old[moved];
        old[row].row = row;
      }
      old.length = this.#cache.rows;
    }
    for (const s of rows) {
      if (s.row >= 0) continue;
      s.row = this.#cache.add(s.cache!, s.length);
      this.#stats.joins++;
      s.cache = null;
      old[s.row] = s;
    }
    this.#members = old;
  }
}
