/**
 * How a batch (`_batch_decoder.ts`) reads its prompts (its module doc's "A step boundary"): what
 * the next prompt execution reads (`plan`): short prompts that have not started, whole and
 * together (`group`), or a piece of a long one (`pieceLength`), the two taking turns, and long
 * ones one piece each in turn (`served`); the running costs that size a piece (`noteCost`,
 * `noteDecodeCost`), and the budgets behind them. The executions themselves are
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
 * pieces, and so is one longer than {@link IDLE_PREFILL_PIECE} while nobody decodes.
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
 * With nobody decoding, a prompt longer than this is read in pieces of at most this many tokens
 * (of equal length), one an execution. An onnxruntime execution cannot be interrupted, so its
 * length bounds both what a cancel wastes and how long a prompt arriving behind it waits for its
 * turn (read whole, a 2,000-token prompt aborted 1 ms after it was sent still held the model
 * ~4.5 s, and a short prompt behind it waited as long). Pieces cost no more than one execution
 * here: one execution over n tokens computes n × n attention scores and n-row intermediates,
 * a piece only its rows against the cache. Measured on the 2-core VM (one intra-op thread, load
 * ~10–11, medians of 3–5 runs, a prompt read alone on its own cache):
 *
 * | ms (× one execution)     | one run | pieces ≤ 256 | ≤ 128        | ≤ 64         |
 * | ------------------------ | ------- | ------------ | ------------ | ------------ |
 * | `small`, 450 tokens      | 769     | 493 (0.64×)  | 596 (0.77×)  | 817 (1.06×)  |
 * | the same, an earlier run | 570     | 541 (0.95×)  | 499 (0.88×)  | 603 (1.06×)  |
 * | 4,096 context, 2,000     | 6,152   | 3,596 (0.58×)| 4,650 (0.76×)| 4,820 (0.78×)|
 *
 * At 256 the longest piece took ~0.3 s on `small` and ~0.8 s at 2,000 positions (at 128:
 * 0.46 s, for a 30 % larger total; at 512: 1.2 s, total 4.0 s): the cheapest total in two of
 * the three rows and within 10 % of the cheapest in the third, and a prompt no longer than this
 * (a usual chat turn) is still read in one execution. Below 128 each piece's fixed cost shows
 * (64: more than one execution on `small`).
 */
export const IDLE_PREFILL_PIECE = 256;
/**
 * The idle piece on a GPU provider: the group's budget there ({@link GPU_PREFILL_GROUP_TOKENS}).
 * An execution of 1,024 prompt tokens cost about one of 128 (H200, WebGPU, `small`), so pieces
 * of 256 would multiply a long prompt's fixed costs; one execution of this budget is what a
 * cancel waits for there. (Not measured on a GPU for this bound: no device was lent.)
 */
export const GPU_IDLE_PREFILL_PIECE = GPU_PREFILL_GROUP_TOKENS;

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

/** The idle piece for a session on `provider` (see {@link GPU_IDLE_PREFILL_PIECE}). */
export function idlePrefillPieceFor(provider: ExecutionProvider): number {
  return provider === "cpu" ? IDLE_PREFILL_PIECE : GPU_IDLE_PREFILL_PIECE;
}

/**
 * What one prompt execution reads: prompts that have not started, each whole (`whole`, one or
 * more, left-padded to the longest when several), or the next piece of one prompt (`piece`).
 */
export type PrefillPlan =
  | { kind: "whole"; group: SequenceState[]; passes: boolean }
  | { kind: "piece"; sequence: SequenceState; tokens: number };

/** Weight of the newest measurement in the running per-token prefill cost. */
const PREFILL_COST_SMOOTHING = 0.25;

/**
 * A batch's prompt budgets, whose prompt is read next (short ones and a long one take turns, and
 * long ones among themselves), and the measured costs that size a prompt's pieces.
 */
export class PrefillPlanner {
  #maxBatch: number;
  /** Fixed piece budget (`prefillTokensPerTick` given), else undefined: adaptive. */
  #prefillBudget: number | undefined;
  /** Most prompt tokens a tick reads while a sequence decodes. */
  #tickBudget: number;
  #groupBudget: number;
  /** Longest piece with nobody decoding ({@link IDLE_PREFILL_PIECE}). */
  #idlePiece: number;
  /**
   * Short prompts just went before a long one's next piece: the long one reads next (they take
   * turns, so a stream of short ones cannot hold it back).
   */
  #longTurn = false;
  /**
   * Submission order of the long prompt whose piece was read last: the next piece goes to the
   * next long prompt after it (first come first, wrapping round), so long prompts take turns
   * among themselves and one waits for a piece of each other, never for another's whole prefill
   * (read first come first, a 257-token prompt behind a 3,000-token one got its first token
   * after the other's whole prefill, 2.9–4.8 s on the 4,096-context model, against 0.57 s for a
   * 256-token one). They are those that may be read now, so the turns are bounded by the seats.
   */
  #lastLongOrder = -Infinity;
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
    const idle = options?.prefillIdlePieceTokens ?? IDLE_PREFILL_PIECE;
    if (!Number.isSafeInteger(idle) || idle < 1) {
      throw new RangeError("prefillIdlePieceTokens must be an integer ≥ 1");
    }
    this.#idlePiece = idle;
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
   * What the next prompt execution reads, of `waiting` (first come first): the short prompts
   * that have not started ({@link PrefillPlanner.group}), whole and together, before the next
   * piece of a long one (a prompt that has started, or one too long to be read whole), so a short
   * prompt never waits for a long one's whole prefill, only for the piece being read; but once
   * short prompts went before a long one, the long one's piece is next (they take turns: see
   * {@link PrefillPlanner.served}). Long prompts are read in pieces
   * ({@link PrefillPlanner.pieceLength}), one piece each in turn, first come first (a long prompt
   * waits for a piece of each other one, not for its whole prefill). Undefined when nothing waits.
   *
   * @param waiting The prompts that may be read now, first come first.
   * @param decoding Whether a sequence of the batch is decoding.
   */
  plan(waiting: SequenceState[], decoding: boolean): PrefillPlan | undefined {
    const group = this.group(waiting, decoding);
    const longs = waiting.filter((s) => !this.#short(s, decoding));
    const long = longs.find((s) => s.pending!.order > this.#lastLongOrder) ?? longs[0];
    if (group.length > 0 && (long === undefined || !this.#longTurn)) {
      return { kind: "whole", group, passes: long !== undefined };
    }
    if (long === undefined) return undefined;
    const p = long.pending!;
    return {
      kind: "piece",
      sequence: long,
      tokens: this.pieceLength(p.tokens.length - p.fed, decoding),
    };
  }

  /**
   * `plan` is being read: after short prompts passed a long one, the long one's turn comes; after
   * a long one's piece, the next long one's.
   */
  served(plan: PrefillPlan): void {
    this.#longTurn = plan.kind === "whole" && plan.passes;
    if (plan.kind === "piece") this.#lastLongOrder = plan.sequence.pending!.order;
  }

  /**
   * The short prompts of `waiting` that have not started, first come first, as many as fit one
   * execution of the group budget (`prefillGroupTokens`; while a sequence decodes, no more than
   * the tick's budget, {@link PrefillPlanner.tokensPerTick}), each read whole and left-padded to
   * the longest. Short: within that budget, and with nobody decoding no longer than the idle
   * piece ({@link IDLE_PREFILL_PIECE}); a longer prompt is read in pieces, and is no member.
   *
   * @param waiting The prompts that may be read now, first come first.
   * @param decoding Whether a sequence of the batch is decoding.
   */
  group(waiting: SequenceState[], decoding: boolean): SequenceState[] {
    const budget = this.#groupBudgetNow(decoding);
    const group: SequenceState[] = [];
    let width = 0;
    for (const s of waiting) {
      if (!this.#short(s, decoding)) continue;
      if (group.length >= this.#maxBatch) break;
      const widened = Math.max(width, s.pending!.tokens.length);
      if (widened * (group.length + 1) > budget) break;
      group.push(s);
      width = widened;
    }
    return group;
  }

  #groupBudgetNow(decoding: boolean): number {
    return decoding ? Math.min(this.#groupBudget, this.#tickBudget) : this.#groupBudget;
  }

  /** Whether `s` has not started and is read whole (see {@link PrefillPlanner.group}). */
  #short(s: SequenceState, decoding: boolean): boolean {
    if (s.length > 0) return false;
    const limit = decoding
      ? this.#groupBudgetNow(true)
      : Math.min(this.#groupBudgetNow(false), this.#idlePiece);
    return s.pending!.tokens.length <= limit;
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
   * Prompt tokens to read this tick, of `remaining`. With nobody decoding, all of them up to the
   * idle piece ({@link IDLE_PREFILL_PIECE}), else as many pieces of equal length as it takes to
   * keep each within it (a cancel, or a prompt arriving, waits for no more than one). While a
   * sequence decodes, a piece within half a budget of the budget — the tokens that cost about
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
    if (!decoding) return Math.ceil(remaining / Math.ceil(remaining / this.#idlePiece));
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
