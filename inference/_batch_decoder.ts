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
 * one of 1 (measured up to 3.25e-6 on the fingerprints of `small` in a worker, 2.73e-6
 * in-thread, the same tokens: `tests/inference/batch_decoder_test.ts`); the validators'
 * calibrated tolerances absorb that (`tests/proof/adversarial_test.ts`, the batch cases). The
 * batch's cache is a `BatchCache` (`_batch_cache.ts`): with the built-in graphs a change of
 * membership copies the one row that joins or leaves, never the batch, and memory is allocated
 * only to grow.
 *
 * **A step boundary** (a *tick*) reads waiting prompts, then runs one batched execution over the
 * members that asked for their next token (prompts first: a client waiting for its first token
 * comes before the running streams' next one, whose gap is the same either way; a sequence whose
 * prompt was just read joins that execution). Short prompts that have not started are read whole
 * and together — first come first, as many as fit one execution of {@link PREFILL_GROUP_TOKENS}
 * tokens ({@link GPU_PREFILL_GROUP_TOKENS} on a GPU provider), left-padded to the longest — so
 * clients that arrive together pay one execution's fixed cost and start together; each gets its
 * own cache. A long prompt (longer than {@link IDLE_PREFILL_PIECE} with nobody decoding, than the
 * tick's budget while streams decode) is read alone, on its own cache, in pieces; long prompts
 * take turns, one piece each, first come first, so one waits for a piece of each other, not for
 * another's whole prefill (`_prefill_planner.ts`). Short prompts go before a long one's next
 * piece, then it reads its next piece before any more of them (they take turns): a short prompt
 * arriving behind a long one waits for the piece being read, not for its whole prefill (which
 * took ~0.8 s behind 450 tokens on `small`), and a stream of short ones cannot starve it. A long
 * prompt cancelled (its sequence closed) stops after the piece being read: an execution cannot be interrupted, so the
 * pieces' length bounds what a cancel wastes. Before another piece of a started prompt a tick
 * waits for a turn of the event loop, so that a cancel or a prompt that came during the last
 * piece is heard before it.
 *
 * **While sequences decode** (one has its prompt read when the tick starts), the tick's prompt
 * work is what its decode step waits for, so it is bounded: a tick reads at most
 * `prefillTokensPerTick` prompt tokens ({@link DEFAULT_PREFILL_TOKENS_PER_TICK}), one group (a
 * group fits that budget) or one piece of a longer prompt, never a second one. Pieces are of
 * equal length, each within half a budget of it, never longer than the tick's budget and, with the
 * adaptive budget, never shorter than {@link MIN_PREFILL_PIECE} (each execution has a fixed cost; a
 * fixed `prefillTokensPerTick` below it makes pieces that size); the adaptive budget is the tokens
 * that cost about {@link PREFILL_STALL_FACTOR} decode steps (it follows the measured cost of a
 * prompt token and of the last decode step). So a joining prompt delays the others' next token by
 * one bounded piece, never by the whole prompt, and a stream of joiners cannot take the decode
 * steps' turn: each tick still decodes. With nobody decoding, a prompt is read whole up to
 * {@link IDLE_PREFILL_PIECE} tokens ({@link GPU_IDLE_PREFILL_PIECE} on a GPU), a longer one in
 * pieces of at most that (measured: no slower than one execution), and short prompts that came
 * while a group was read are read too before the tick's decode step (clients arriving together
 * start together).
 *
 * **Seats.** A sequence holds one of the `maxBatch` seats from the tick its prompt is read until
 * it closes or fails. A fresh sequence beyond the seats waits with its prompt unread — no cache,
 * no first token — until one frees: read, it could not decode (the seated keep their seats), so
 * it would stand still mid-stream, holding a cache, after its prefill stalled the seated.
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
 * **Where the parts are.** This file holds the ticks, the executions and the batch's membership.
 * A sequence's state, its handle and its steps ahead are in `_batched_sequence.ts`; which prompts
 * are read together and how a long one is cut into pieces, with the budgets for both, in
 * `_prefill_planner.ts`; the batch's cache in `_batch_cache.ts`.
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
  type SampledStep,
  sampleRow,
  type StepSampling,
} from "./_decoder_session.ts";
import { ModelDisposedError } from "./errors.ts";
import {
  BatchedSequence,
  deliver,
  extendAhead,
  MAX_RUN_AHEAD,
  noteAsked,
  type PendingStep,
  SequenceState,
} from "./_batched_sequence.ts";
import {
  DEFAULT_PREFILL_TOKENS_PER_TICK,
  GPU_IDLE_PREFILL_PIECE,
  GPU_PREFILL_GROUP_TOKENS,
  IDLE_PREFILL_PIECE,
  idlePrefillPieceFor,
  MIN_PREFILL_PIECE,
  PREFILL_GROUP_TOKENS,
  PREFILL_STALL_FACTOR,
  prefillGroupTokensFor,
  type PrefillPlan,
  PrefillPlanner,
} from "./_prefill_planner.ts";

// A sequence's handle and its run-ahead bound (`_batched_sequence.ts`), and the prompt budgets
// (`_prefill_planner.ts`), importable from here as before.
export {
  BatchedSequence,
  DEFAULT_PREFILL_TOKENS_PER_TICK,
  GPU_IDLE_PREFILL_PIECE,
  GPU_PREFILL_GROUP_TOKENS,
  IDLE_PREFILL_PIECE,
  idlePrefillPieceFor,
  MAX_RUN_AHEAD,
  MIN_PREFILL_PIECE,
  PREFILL_GROUP_TOKENS,
  PREFILL_STALL_FACTOR,
  prefillGroupTokensFor,
};

/**
 * Default most sequences in one execution. Measured on the `small` model, one intra-op thread
 * (2-core VM): a step of 8 rows costs 2× a step of 1 for 4× the tokens; 16 rows add ~20 % more
 * tokens/s for twice the per-token latency of 8. Further sequences wait for a seat.
 */
export const DEFAULT_MAX_BATCH = 8;

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

/**
 * Whether `s` holds one of the batch's seats: open and started (its prompt read, or being read
 * in pieces). A seat is freed when its sequence closes or fails.
 */
function holdsSeat(s: SequenceState): boolean {
  return !s.closed && s.failure === undefined && s.length > 0;
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
   * Most prompt tokens a tick reads while a sequence of the batch decodes (a prompt is read in
   * pieces of at most this, one per tick, and a group of prompts read together fits it); when
   * set, also the pieces' fixed budget (pieces of equal length, each within half of this of it).
   * Default {@link DEFAULT_PREFILL_TOKENS_PER_TICK}, with adaptive pieces under it (a piece
   * costs about {@link PREFILL_STALL_FACTOR} decode steps, and is at least
   * {@link MIN_PREFILL_PIECE} tokens). With nobody decoding, see `prefillIdlePieceTokens`.
   */
  prefillTokensPerTick?: number;
  /**
   * Most tokens (padding included) of one execution reading prompts that have not started,
   * whole and together; default {@link PREFILL_GROUP_TOKENS}, `prefillTokensPerTick` when that
   * is set (the model runtime passes {@link prefillGroupTokensFor} its session's provider).
   */
  prefillGroupTokens?: number;
  /**
   * With nobody decoding, the longest prompt piece: a longer prompt is read in pieces of at most
   * this (its cancel, and a prompt arriving behind it, waits for one); default
   * {@link IDLE_PREFILL_PIECE} (the model runtime passes {@link idlePrefillPieceFor} its
   * session's provider).
   */
  prefillIdlePieceTokens?: number;
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

/** Runs the steps of every sequence open on one session as batched executions. */
export class BatchedDecoder {
  #decoder: DecoderSession;
  #maxBatch: number;
  #prefill: PrefillPlanner;
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
    this.#prefill = new PrefillPlanner(this.#maxBatch, options);
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
      noteAsked(state, sampling.position, more);
      const waiter = { resolve, reject, ahead: more };
      if (queued.outcome === undefined) queued.waiter = waiter;
      else {
        state.aheads.shift();
        deliver(queued.outcome, waiter);
      }
      extendAhead(state, () => this.#order++, () => this.#schedule());
      return answer;
    }
    if (state.pending) return Promise.reject(new Error("a step of this sequence is pending"));
    noteAsked(state, sampling.position, more);
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
    // A step waits for a tick, unless it is a fresh prompt beyond the seats (a tick could not
    // read it: it waits for a close or a failure to free a seat, and each reschedules).
    let waiting = false;
    for (const state of this.#open) {
      if (state.pending && holdsSeat(state)) {
        waiting = true;
        break;
      }
    }
    if (!waiting) waiting = this.#waitingPrompts().length > 0;
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
      // Whether this tick's decode step makes a running stream wait: then its prompt work is
      // bounded by the tick's budget (see the module doc).
      const decoding = this.#decoding();
      // Prompts first: a client waiting for its first token comes before the running streams'
      // next one (see the module doc). A sequence whose prompt was just read joins this tick's
      // decode step.
      await this.#prefillStep(decoding);
      if (this.#answeredPrompt) {
        // Its first token's reply leaves before the next execution is set up (the module doc),
        // and prompts that came while it was read are heard. With nobody decoding, those that
        // fit a group are read too, before the decode step, once a tick: the first prompt's own
        // first decode step came between, and clients arriving together behind one got their
        // first tokens a step later (H200, WebGPU, 8 clients: TTFT p50 132 ms, one stream's
        // 39). With streams decoding, a second group would double their stall: it waits for
        // the next tick.
        await nextTurn();
        const more = decoding ? undefined : this.#prefill.plan(this.#waitingPrompts(), false);
        if (more?.kind === "whole") {
          this.#answeredPrompt = false;
          await this.#read(more);
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
      this.#prefill.noteDecodeCost(performance.now() - started);
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
   * One prompt execution, as the planner says (see the module doc): the short prompts that have
   * not started, whole and together, else (or, once they passed it, in turn with them) the next
   * piece of a long one, alone on its own cache.
   */
  async #prefillStep(decoding: boolean): Promise<void> {
    let plan = this.#prefill.plan(this.#waitingPrompts(), decoding);
    if (plan?.kind === "piece" && plan.sequence.length > 0) {
      // Another piece of a started prompt: first a turn of the event loop, so that a cancel or a
      // prompt that came while the last piece ran (an execution holds the thread: onnxruntime-node
      // runs it in a `setImmediate`) is heard before this one, which nothing interrupts. Without
      // it the tick that read the last piece set this one up at once, and a cancel cost two
      // pieces, a prompt arriving behind one waited for two.
      await nextTurn();
      plan = this.#prefill.plan(this.#waitingPrompts(), decoding);
    }
    if (plan !== undefined) await this.#read(plan);
  }

  async #read(plan: PrefillPlan): Promise<void> {
    this.#prefill.served(plan);
    if (plan.kind === "whole" && plan.group.length > 1) {
      return await this.#prefillTogether(plan.group);
    }
    // One prompt whole (nothing to pad or copy), or a piece of one, on its own cache.
    const s = plan.kind === "whole" ? plan.group[0] : plan.sequence;
    const p = s.pending!;
    const length = plan.kind === "whole" ? p.tokens.length - p.fed : plan.tokens;
    let piece: number[];
    let out;
    const started = performance.now();
    try {
      piece = p.tokens.slice(p.fed, p.fed + length);
      out = await this.#decoder.run(piece, s.length, s.cache ?? this.#decoder.emptyPast());
    } catch (error) {
      // Only its own cache was touched.
      this.#fail(s, error);
      return;
    }
    this.#prefill.noteCost(performance.now() - started, piece.length);
    this.#stats.prefillRuns++;
    // Cancelled (closed) while the piece was read: nothing more of it is read, since a closed
    // sequence waits for nothing (so a cancel costs at most the piece being read).
    if (s.closed || s.pending !== p) return;
    s.cache = out.present;
    s.length += piece.length;
    p.fed += piece.length;
    if (p.fed < p.tokens.length) return; // the rest of the prompt at its next turn
    s.pending = undefined;
    const vocab = this.#decoder.shape.vocabSize;
    this.#answeredPrompt = true;
    this.#answer(s, p, out.logits.subarray((piece.length - 1) * vocab, piece.length * vocab));
  }

  /**
   * The sequences with prompt tokens to read now, first come first: those that hold a seat, and
   * fresh ones while seats are free (one each). A fresh sequence beyond the seats waits with its
   * prompt unread, no cache and no first token, until one frees: read now, it could not decode
   * (the seated keep their seats), so it would stand still mid-stream while its prompt's cache
   * is held and its prefill stalls the seated.
   */
  #waitingPrompts(): SequenceState[] {
    let free = this.#maxBatch;
    for (const s of this.#open) if (holdsSeat(s)) free--;
    const waiting = [...this.#open].filter((s) =>
      !s.closed && s.row < 0 && s.pending !== undefined &&
      (s.length === 0 || s.pending.tokens.length - s.pending.fed > 1)
    ).sort((a, b) => a.pending!.order - b.pending!.order);
    return waiting.filter((s) => holdsSeat(s) || free-- > 0);
  }

  /** Whether a sequence is generating: its prompt read, its next step a decode step. */
  #decoding(): boolean {
    for (const s of this.#open) {
      if (
        holdsSeat(s) && (s.pending === undefined || s.pending.tokens.length - s.pending.fed <= 1)
      ) return true;
    }
    return false;
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
    this.#prefill.noteCost(performance.now() - started, batch * width);
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
    extendAhead(s, () => this.#order++);
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
