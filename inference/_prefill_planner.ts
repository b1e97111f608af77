/**
 * How a batch (`_batch_decoder.ts`) reads its prompts (its module doc's "A step boundary"): which
 * waiting prompts are read whole and together in one execution (`group`), how long a piece of a
 * longer one is while others decode (`pieceLength`), the running costs that size a piece
 * (`noteCost`, `noteDecodeCost`), and the budgets behind them. The executions themselves are
 * `BatchedDecoder`'s, which owns one `PrefillPlanner` and re-exports the constants. Not part of
 * the public API.
 *
 * @module
 */
import type { ExecutionProvider } from "./_session.ts";
import type { BatchedDecoderOptions } from "./_batch_decoder.ts";
import type { SequenceState } from "./_batched_sequence.ts";

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
 * group takes ~170 ms. This budget holds while nobody decodes; while streams decode, a group fits
 * the tick's budget ({@link DEFAULT_PREFILL_TOKENS_PER_TICK}). A longer prompt is read alone, in
 * pieces.
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

/**
 * Default most prompt tokens one tick reads while a sequence of the batch is decoding (its
 * pieces and groups are cut to fit; `prefillTokensPerTick` sets it). Each tick runs one decode
 * step, so this bounds what a joining prompt adds to the running streams' gap between two
 * tokens. Measured on `small` (2-core VM, one intra-op thread, two runs): a decode step of 8
 * rows ≈ 11 ms, of 1 row ≈ 3.7 ms; a prompt read alone: 64 tokens ≈ 25–37 ms, 128 ≈ 45 ms, 256
 * ≈ 90 ms, 500 ≈ 245 ms. At 128 a tick's prompt work is at most about four full-batch steps (a
 * 500-token join read whole stalled seven streams ~250 ms, ~25 of their steps), while a piece
 * still amortizes an execution's fixed cost. A piece is usually the adaptive one (about
 * {@link PREFILL_STALL_FACTOR} steps, at least {@link MIN_PREFILL_PIECE}); this caps it, and is
 * at least 1.5 × {@link MIN_PREFILL_PIECE}, so the pieces cut from that floor fit under it.
 */
export const DEFAULT_PREFILL_TOKENS_PER_TICK = 128;

/** The group budget for a session on `provider` (see {@link GPU_PREFILL_GROUP_TOKENS}). */
export function prefillGroupTokensFor(provider: ExecutionProvider): number {
  return provider === "cpu" ? PREFILL_GROUP_TOKENS : GPU_PREFILL_GROUP_TOKENS;
}
/** Weight of the newest measurement in the running per-token prefill cost. */
const PREFILL_COST_SMOOTHING = 0.25;

/** A batch's prompt budgets, and the measured costs that size a prompt's pieces. */
export class PrefillPlanner {
  #maxBatch: number;
  /** Fixed piece budget (`prefillTokensPerTick` given), else undefined: adaptive. */
  #prefillBudget: number | undefined;
  /** Most prompt tokens a tick reads while a sequence decodes. */
  #tickBudget: number;
  #groupBudget: number;
  /** Running estimate of a prompt token's cost (ms), and the last decode step's. */
  #msPerPromptToken = 0;
  #lastDecodeMs = 0;

  /**
   * @param maxBatch The batch's seats: most prompts read together.
   * @param options The batcher's options, whose prefill budgets are checked here.
   */
  constructor(maxBatch: number, options?: BatchedDecoderOptions) {
    this.#maxBatch = maxBatch;
    const budget = options?.prefillTokensPerTick;
    if (budget !== undefined && (!Number.isSafeInteger(budget) || budget < 1)) {
      throw new RangeError("prefillTokensPerTick must be an integer ≥ 1");
    }
    this.#prefillBudget = budget;
    this.#tickBudget = budget ?? DEFAULT_PREFILL_TOKENS_PER_TICK;
    const group = options?.prefillGroupTokens ?? budget ?? PREFILL_GROUP_TOKENS;
    if (!Number.isSafeInteger(group) || group < 1) {
      throw new RangeError("prefillGroupTokens must be an integer ≥ 1");
    }
    this.#groupBudget = group;
  }

  /** Most prompt tokens one tick reads while a sequence decodes. */
  get tokensPerTick(): number {
    return this.#tickBudget;
  }

  /** The last decode step took `ms`: a piece costs about {@link PREFILL_STALL_FACTOR} of them. */
  noteDecodeCost(ms: number): void {
    this.#lastDecodeMs = ms;
  }

  /**
   * The first waiting prompt and the not-yet-started ones after it (in order, none skipped) that
   * fit one execution of the group budget (`prefillGroupTokens`; while a sequence decodes, no
   * more than the tick's budget, {@link PrefillPlanner.tokensPerTick}), each read whole and
   * left-padded to the longest; empty when the first one has started already or is longer than
   * that.
   *
   * @param waiting The prompts that may be read now, first come first.
   * @param decoding Whether a sequence of the batch is decoding.
   */
  group(waiting: SequenceState[], decoding: boolean): SequenceState[] {
    const budget = decoding ? Math.min(this.#groupBudget, this.#tickBudget) : this.#groupBudget;
    const group: SequenceState[] = [];
    let width = 0;
    for (const s of waiting) {
      if (s.length > 0 || group.length >= this.#maxBatch) break;
      const widened = Math.max(width, s.pending!.tokens.length);
      if (widened * (group.length + 1) > budget) break;
      group.push(s);
      width = widened;
    }
    return group;
  }

  /** Fold an execution of `tokens` prompt tokens that took `ms` into the per-token cost. */
  noteCost(ms: number, tokens: number): void {
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
   * 64 + 64 + 2 nor 44 + 43 + 43; 128 at a budget of 100 whole; 190 at 100 as 95 + 95). No
   * piece is longer than the tick's budget ({@link PrefillPlanner.tokensPerTick}): where the
   * rounding would make one longer, the prompt is cut into more pieces.
   *
   * @param remaining The prompt's tokens not read yet.
   * @param decoding Whether a sequence of the batch is decoding.
   */
  pieceLength(remaining: number, decoding: boolean): number {
    if (!decoding) return remaining;
    let budget = this.#prefillBudget ?? MIN_PREFILL_PIECE;
    if (this.#prefillBudget === undefined && this.#msPerPromptToken > 0) {
      budget = Math.max(
        MIN_PREFILL_PIECE,
        Math.floor(PREFILL_STALL_FACTOR * this.#lastDecodeMs / this.#msPerPromptToken),
      );
    }
    budget = Math.min(budget, this.#tickBudget);
    if (remaining <= budget) return remaining;
    // Pieces of equal length, as many as the budget goes into the prompt, rounded: each within
    // half a budget of it (at most 1.5 ×). Never shorter than MIN_PREFILL_PIECE when the budget
    // is the adaptive one: a short piece pays the fixed cost for little, and is too short for
    // the cost estimate to count. Never longer than the tick's budget: that bound is the
    // running streams' promise, the floor only an economy.
    let pieces = Math.max(1, Math.round(remaining / budget));
    if (this.#prefillBudget === undefined) {
      pieces = Math.min(pieces, Math.max(1, Math.floor(remaining / MIN_PREFILL_PIECE)));
    }
    pieces = Math.max(pieces, Math.ceil(remaining / this.#tickBudget));
    return Math.ceil(remaining / pieces);
  }
}
