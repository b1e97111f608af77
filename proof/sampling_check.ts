/**
 * The tolerant sampling check: could the job's sampling rule (`inference/sampler.ts`) have
 * produced this token from an honest worker's logits, which differ from the validator's by
 * honest noise only?
 *
 * The rule has discontinuities (argmax and the Gumbel race at near-ties, the top-k and top-p
 * cut-offs), so checking "does `sampleToken` on my logits give the same token" would flag
 * honest workers whose floating point differs slightly. Instead the check computes, from the
 * validator's logits, the tokens honest noise could make the rule pick, and rejects the rest.
 * Honest noise is described by two calibrated numbers (`proof/calibration.ts`):
 *
 * - a **bound** ε on each logit's difference. Two scores `l/T + g` can then swap only when they
 *   are within 2ε/T; an id is possibly kept by top-k when fewer than k ids beat it by more than
 *   2ε, definitely kept when fewer than k ids come within 2ε of it;
 * - an **RMS** σ per logit, for top-p: the mass before an id is a sum over many logits, so its
 *   honest shift is about `(σ/T)·√(Σ pⱼ²(1[j before] − c)²)`, far below the worst case (every
 *   log-weight moved by ε/T the wrong way). The mass bound is the tighter of the two, with
 *   `sigmas` standard deviations; σ = ∞ (the defaults) leaves only the worst case.
 *
 * Rules:
 * - greedy (a temperature below `MIN_SAMPLING_TEMPERATURE`, as the sampler reads it): the
 *   token's logit must be within 2ε of the largest logit;
 * - sampled: the token must be possibly kept by top-k and top-p, and its score
 *   `l/T + g` (the race noise g of `raceNoise(seed, t)`) within 2ε/T of the best score among the
 *   other ids that are definitely kept. An honest worker's token beat all of those on its own
 *   logits, and no score moves by more than ε/T;
 * - at a top-k cut (top-p 1), also within 2ε/T of the kept rival the most favourable honest run
 *   leaves: k ids are kept, the definite ones and `s` of the uncertain ones (possibly but not
 *   definitely kept), so besides the token (one of the `s` when it is uncertain) an honest run
 *   keeps at least the `s` (or `s − 1`) lowest-scoring other uncertain ids, and the token beat
 *   them all;
 * - within 2ε/T of every id surely before it (a logit more than 2ε above its own): the kept ids
 *   are a prefix of the rule order, so a run that keeps the token keeps those; and with top-p,
 *   the ids that may come before the earliest id beating it by more than 2ε/T, those ids left
 *   out, must be able to end an honest run's prefix (k of them, or topP of the mass top-k
 *   keeps), since a run that keeps none of the ids beating it ends its prefix before them.
 *
 * So the accepted set is one token except at genuine near-ties of the rule: two scores within
 * 2ε/T, or an id at a cut-off.
 *
 * @module
 */
import { type GenerationParams, isGreedyTemperature } from "../protocols/job.ts";
import { raceNoise } from "../inference/sampler.ts";

/** Tolerances of the sampling check: how far an honest worker's logits may be from ours. */
export interface SamplingTolerance {
  /** Largest per-logit difference between worker and validator that honest work can show (nats). */
  logitEps: number;
  /**
   * RMS of the honest per-logit difference as it moves sums of probabilities (nats): scales the
   * statistical bound on the top-p mass. `Infinity`: worst case only.
   */
  logitSigma: number;
  /** How many σ the top-p mass may move (the statistical bound's z-level). */
  sigmas: number;
  /** Additive slack on the top-p comparison (float64 summation order). */
  cdfMargin: number;
}

/**
 * Defaults, for a model without a calibration profile: ε = 0.05 logits, worst case only. ε is an
 * order of magnitude above the largest cross-thread and fp16-logit difference measured on the
 * built-in models (docs/PROOF.md), so it holds for hardware nobody measured; the price is a
 * wider accepted set (more near-ties). A calibrated profile replaces ε and σ
 * (`samplingToleranceOf` in `calibration.ts`). δ = 1e-6 covers float64 summation order only.
 */
export const DEFAULT_SAMPLING_TOLERANCE: Readonly<SamplingTolerance> = Object.freeze({
  logitEps: 0.05,
  logitSigma: Infinity,
  sigmas: 8,
  cdfMargin: 1e-6,
});

/** The outcome of checking one position. */
export interface SamplingCheck {
  /** True when the token is consistent with the rule within tolerance (`lo ≤ hi`). */
  ok: boolean;
  /**
   * How far the token is behind: greedy, the largest logit minus its logit; sampled, the best
   * score of another id every honest run keeps (a definitely kept id, or at a top-k cut the
   * uncertain id the most favourable run must keep) minus its score (negative when it wins),
   * Infinity when no honest noise could keep it.
   */
  lo: number;
  /** How far behind honest noise allows: 2ε greedy, 2ε/T sampled. */
  hi: number;
}

/** The part of a job's parameters that decides which token is sampled at a position. */
export type SamplingRule = Pick<GenerationParams, "temperature" | "topK" | "topP" | "seed">;

/**
 * Check that `token` at output position `position` follows the rule from the logits row
 * `logits[offset .. offset+vocabSize)`.
 *
 * @example
 * ```ts
 * import { checkSampledToken } from "./sampling_check.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * checkSampledToken(logits, 1, 0, { temperature: 0, topK: 0, topP: 1, seed: 0 }).ok; // true
 * ```
 */
export function checkSampledToken(
  logits: Float32Array,
  token: number,
  position: number,
  params: SamplingRule,
  tolerance: SamplingTolerance = DEFAULT_SAMPLING_TOLERANCE,
  offset = 0,
  vocabSize: number = logits.length - offset,
): SamplingCheck {
  const eps2 = 2 * tolerance.logitEps;
  if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
    return { ok: false, lo: Infinity, hi: eps2 };
  }
  if (!(logits[offset + token] > -Infinity)) return { ok: false, lo: Infinity, hi: eps2 };
  if (isGreedyTemperature(params.temperature)) {
    let max = -Infinity;
    for (let i = 0; i < vocabSize; i++) {
      const v = logits[offset + i];
      if (v > max) max = v;
    }
    // Equal logits are no gap, +∞ ones included (∞ − ∞ would be NaN, a failure).
    const gap = max === logits[offset + token] ? 0 : max - logits[offset + token];
    return { ok: gap <= eps2, lo: gap, hi: eps2 };
  }
  const race = new ToleratedRace(logits, offset, vocabSize, position, params, tolerance);
  const lo = race.deficit(token);
  return { ok: lo <= race.allowed, lo, hi: race.allowed };
}

/**
 * The ids a validator's check accepts at one position: every token whose check passes. One id
 * except at genuine near-ties; more is room for a worker to steer. For measurements
 * (`bench/detection_bench.ts`) and tests.
 *
 * @example
 * ```ts
 * import { admissibleTokens } from "./sampling_check.ts";
 * const logits = new Float32Array([0, 5, 1]);
 * admissibleTokens(logits, 0, { temperature: 0, topK: 0, topP: 1, seed: 0 }); // [1]
 * ```
 */
export function admissibleTokens(
  logits: Float32Array,
  position: number,
  params: SamplingRule,
  tolerance: SamplingTolerance = DEFAULT_SAMPLING_TOLERANCE,
  offset = 0,
  vocabSize: number = logits.length - offset,
): number[] {
  const ids: number[] = [];
  if (isGreedyTemperature(params.temperature)) {
    for (let id = 0; id < vocabSize; id++) {
      if (checkSampledToken(logits, id, position, params, tolerance, offset, vocabSize).ok) {
        ids.push(id);
      }
    }
    return ids;
  }
  const race = new ToleratedRace(logits, offset, vocabSize, position, params, tolerance);
  for (let id = 0; id < vocabSize; id++) if (race.deficit(id) <= race.allowed) ids.push(id);
  return ids;
}

/**
 * Ids up to this many sort as one float64 each ({@link ruleOrder}): 2^21 ids beside the 32 bits
 * of a logit fill the 53 bits a double holds exactly. Larger vocabularies sort by comparator.
 */
const PACKED_SORT_MAX_IDS = 2 ** 21;

/** Scratch for a float32 logit's bits. */
const logitBits = new Float32Array(1);
const logitBitsU32 = new Uint32Array(logitBits.buffer);

/**
 * The ids of `logits[offset .. offset+vocabSize)` that are above −∞ (NaN left out), in the
 * sampling rule's order: logit descending, id ascending among equal logits (±0 equal).
 *
 * Built once per checked position, so it sorts numbers, not ids through a comparator: each id
 * becomes one exact float64, its logit's bits flipped so that larger logits sort first (an
 * order-preserving map of floats to unsigned integers), times 2^21, plus the id. Equal logits
 * have equal bits (−0 is first made +0), so ties fall to the id, exactly as the comparator
 * `logits[b] − logits[a] || a − b` orders them.
 */
function ruleOrder(logits: Float32Array, offset: number, vocabSize: number): Int32Array {
  if (vocabSize > PACKED_SORT_MAX_IDS) {
    const order: number[] = [];
    for (let i = 0; i < vocabSize; i++) if (logits[offset + i] > -Infinity) order.push(i);
    order.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
    return Int32Array.from(order);
  }
  const keys = new Float64Array(vocabSize);
  let n = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i];
    if (!(v > -Infinity)) continue;
    logitBits[0] = v === 0 ? 0 : v;
    const bits = logitBitsU32[0];
    // Ascending as unsigned integers in the floats' order: negatives flipped, positives shifted up.
    const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[n++] = (0xffffffff - ascending) * PACKED_SORT_MAX_IDS + i;
  }
  const sorted = keys.subarray(0, n).sort();
  const order = new Int32Array(n);
  for (let j = 0; j < n; j++) order[j] = sorted[j] % PACKED_SORT_MAX_IDS;
  return order;
}

/** A weight sum and its sum of squares. */
interface Mass {
  w: number;
  q: number;
}

/** `rival − score`, with equal scores a tie, infinite ones included (∞ − ∞ would be NaN). */
function behind(rival: number, score: number): number {
  return rival === score ? 0 : rival - score;
}

/**
 * One sampled row as the check sees it: the ids honest noise may keep (possibly) and must keep
 * (definitely) under top-k and top-p, their race scores, the two best scores among the
 * definitely kept, and at a top-k cut the sorted scores of the uncertain ids (possibly but not
 * definitely kept) with the number of them every honest run keeps. Built once per row in
 * O(n log n); {@link ToleratedRace.deficit} is then O(1) per token.
 */
class ToleratedRace {
  /** Largest deficit honest noise explains: 2ε/T. */
  readonly allowed: number;
  readonly #possible: Uint8Array; // by id
  readonly #score: Float64Array; // by id, −Infinity where not possibly kept
  readonly #best: { id: number; score: number }[]; // two best definitely kept
  // At a top-k cut without top-p: the slots k − |definite| an honest run fills from the
  // uncertain ids (0 otherwise), their scores ascending, and each uncertain id's index there.
  readonly #slots: number;
  readonly #uncertain: Float64Array;
  readonly #uncertainAt = new Map<number, number>();
  // By id: the best race score among the ids that beat it by more than 2ε (surely before it in
  // every honest order, so kept wherever it is: the kept set is a prefix of that order).
  readonly #surelyBeforeBest: Float64Array;
  // Top-p: what the mass rule ({@link ToleratedRace.#canReachTopP}) reads.
  readonly #mass?: {
    topP: number;
    topK: number; // 0 without a top-k cut
    keptByK: number; // ranks [0, keptByK) are kept by every honest run's top-k
    maybeByK: number; // ranks [0, maybeByK) are kept by some honest run's top-k
    order: Int32Array;
    tieEnd: Int32Array;
    w: Float64Array; // weights by rank
    wAll: Float64Array; // prefix sums of w by rank
    qAll: Float64Array; // prefix sums of w² by rank
  };
  readonly #t: number;
  readonly #tol: SamplingTolerance;

  constructor(
    logits: Float32Array,
    offset: number,
    vocabSize: number,
    position: number,
    params: SamplingRule,
    tol: SamplingTolerance,
  ) {
    this.#t = params.temperature;
    this.#tol = tol;
    this.allowed = (2 * tol.logitEps) / params.temperature;
    // Rule order (step 2), for the cut-offs.
    const order = ruleOrder(logits, offset, vocabSize);
    const n = order.length;
    const l = new Float64Array(n);
    for (let j = 0; j < n; j++) l[j] = logits[offset + order[j]];
    // aboveEnd[j]: ranks [0, aboveEnd) beat rank j by more than 2ε (surely before it);
    // tieEnd[j]: ranks [0, tieEnd) are not surely after it (beat it, or within 2ε of it).
    const eps2 = 2 * tol.logitEps;
    const aboveEnd = new Int32Array(n);
    const tieEnd = new Int32Array(n);
    for (let j = 0, a = 0, b = 0; j < n; j++) {
      while (a < n && l[a] > l[j] + eps2) a++;
      while (b < n && l[b] >= l[j] - eps2) b++;
      aboveEnd[j] = a;
      tieEnd[j] = b;
    }
    // Top-k: possibly kept when fewer than k ids surely beat it; definitely when fewer than k
    // ids can beat it at all.
    const possible = new Uint8Array(n).fill(1);
    const definite = new Uint8Array(n).fill(1);
    const cutK = params.topK > 0 && n > params.topK;
    if (cutK) {
      for (let j = 0; j < n; j++) {
        possible[j] = aboveEnd[j] < params.topK ? 1 : 0;
        definite[j] = tieEnd[j] - 1 < params.topK ? 1 : 0;
      }
    }
    if (params.topP < 1 && n > 0) {
      const w = l.map((v) => Math.exp((v - l[0]) / params.temperature));
      // The ids top-k possibly and definitely keeps are prefixes of the rule order.
      const keptByK = definite.indexOf(0) < 0 ? n : definite.indexOf(0);
      const maybeByK = possible.indexOf(0) < 0 ? n : possible.indexOf(0);
      this.#cutTopP(params.topP, w, aboveEnd, tieEnd, possible, definite);
      const ones = new Uint8Array(n).fill(1);
      const { wPos: wAll, qPos: qAll } = prefixSums(w, ones, ones);
      const topK = cutK ? params.topK : 0;
      this.#mass = { topP: params.topP, topK, keptByK, maybeByK, order, tieEnd, w, wAll, qAll };
    }
    // Race scores (steps 6–7) of the ids possibly kept; the two best definitely kept.
    const noise = raceNoise(params.seed, position);
    this.#possible = new Uint8Array(vocabSize);
    this.#score = new Float64Array(vocabSize).fill(-Infinity);
    this.#surelyBeforeBest = new Float64Array(vocabSize).fill(-Infinity);
    const best = [{ id: -1, score: -Infinity }, { id: -1, score: -Infinity }];
    // Scores by rank up to the last possible one (the possible ids are a prefix of the rule
    // order, and every rank surely before one of them is below it), with their running best:
    // `bestBefore[a]` is the best score among ranks [0, a).
    let span = 0;
    for (let j = 0; j < n; j++) if (possible[j]) span = j + 1;
    const rankScore = new Float64Array(span);
    const bestBefore = new Float64Array(span + 1).fill(-Infinity);
    for (let j = 0; j < span; j++) {
      rankScore[j] = l[j] / params.temperature + noise(order[j]);
      bestBefore[j + 1] = Math.max(bestBefore[j], rankScore[j]);
    }
    for (let j = 0; j < n; j++) {
      if (!possible[j]) continue;
      const id = order[j];
      const score = rankScore[j];
      this.#possible[id] = 1;
      this.#score[id] = score;
      this.#surelyBeforeBest[id] = bestBefore[aboveEnd[j]];
      if (!definite[j]) continue;
      if (score > best[0].score) best.unshift({ id, score });
      else if (score > best[1].score) best.splice(1, 0, { id, score });
    }
    this.#best = best.slice(0, 2);
    // Every honest run keeps exactly k ids, the definite ones among them, so it fills the other
    // k − |definite| slots from the uncertain ids. With top-p as well the kept set is a prefix
    // of those k whose length honest noise moves, so no count of uncertain ids is sure: the
    // rule there stays the definite rival alone (more permissive, still sound).
    const uncertain: { id: number; score: number }[] = [];
    let definiteCount = 0;
    if (cutK && params.topP >= 1) {
      for (let j = 0; j < n; j++) {
        if (definite[j]) definiteCount++;
        else if (possible[j]) uncertain.push({ id: order[j], score: this.#score[order[j]] });
      }
      uncertain.sort((a, b) => a.score - b.score || a.id - b.id);
      uncertain.forEach(({ id }, at) => this.#uncertainAt.set(id, at));
    }
    this.#slots = uncertain.length > 0 ? params.topK - definiteCount : 0;
    this.#uncertain = Float64Array.from(uncertain, (u) => u.score);
  }

  /**
   * How far `token`'s score is behind the best score of another id every honest run keeps
   * (negative when ahead); Infinity when honest noise cannot keep it.
   */
  deficit(token: number): number {
    if (!this.#possible[token]) return Infinity;
    const rival = this.#best[0].id === token ? this.#best[1] : this.#best[0];
    const score = this.#score[token];
    const deficit = Math.max(
      behind(rival.score, score),
      behind(this.#slotRival(token), score),
      behind(this.#surelyBeforeBest[token], score),
    );
    return deficit <= this.allowed && !this.#canReachTopP(token) ? Infinity : deficit;
  }

  /**
   * The mass rule of a top-p cut: whether an honest run can keep `token` and none of the ids H
   * whose scores beat its score by more than 2ε/T. Keeping none of H, the kept prefix ends
   * before the earliest of them, h, so it holds only ids F outside H that honest noise may order
   * before h (a logit at least h's − 2ε). A prefix ends there either at top-k (F holds at least
   * k ids) or at top-p, once its mass reaches topP of what top-k kept. What top-k kept besides
   * the prefix holds the ids it keeps in every run that are outside F, and at least k − |F| ids
   * (it keeps exactly k), no lighter than the lightest it may keep: F's share against the
   * heavier of those two bounds must reach topP under honest noise. When neither can, no honest
   * run picks the token. Without it a tied run of tail ids at the cut, none of them definitely
   * kept, let a worker pick the head or any of them that beat the definite rival, though an
   * honest run keeps nearly all of them and so their best
   * (`tests/proof/sampling_check_test.ts`).
   */
  #canReachTopP(token: number): boolean {
    const m = this.#mass;
    if (m === undefined) return true;
    const bar = this.#score[token] + this.allowed;
    let first = -1; // the earliest rank in H
    for (let j = 0; j < m.order.length; j++) {
      if (this.#score[m.order[j]] > bar) {
        first = j;
        break;
      }
    }
    if (first < 0) return true;
    const end = m.tieEnd[first]; // F: ranks [0, end) outside H
    let count = end;
    let w = m.wAll[end];
    let q = m.qAll[end];
    // Outside F but kept by top-k in every run: ranks [end, keptByK), and H's ranks below both.
    let rw = m.keptByK > end ? m.wAll[m.keptByK] - m.wAll[end] : 0;
    let rq = m.keptByK > end ? m.qAll[m.keptByK] - m.qAll[end] : 0;
    for (let j = first; j < end; j++) {
      if (this.#score[m.order[j]] > bar) {
        count--;
        w -= m.w[j];
        q -= m.w[j] * m.w[j];
        if (j < m.keptByK) {
          rw += m.w[j];
          rq += m.w[j] * m.w[j];
        }
      }
    }
    if (m.topK > 0 && count >= m.topK) return true;
    const lightest = m.topK - count; // top-k keeps at least this many ids beyond the prefix
    if (m.topK > 0 && lightest <= m.maybeByK) {
      const lw = m.wAll[m.maybeByK] - m.wAll[m.maybeByK - lightest];
      if (lw > rw) {
        rw = lw;
        rq = m.qAll[m.maybeByK] - m.qAll[m.maybeByK - lightest];
      }
    }
    const most = this.#shifted({ w, q }, { w: rw, q: rq }, 1);
    return most >= m.topP - this.#tol.cdfMargin;
  }

  /**
   * The score the token must beat among the uncertain ids an honest run keeps besides it, in
   * the run most favourable to it: the one that keeps the lowest-scoring others. Those are `s`
   * ids, or `s − 1` when the token is uncertain itself and takes a slot; the best of them is
   * the `s`-th (or `s − 1`-th) lowest score among the uncertain ids other than the token.
   * −Infinity when no other uncertain id need be kept.
   */
  #slotRival(token: number): number {
    const at = this.#uncertainAt.get(token);
    const others = at === undefined ? this.#slots : this.#slots - 1;
    if (others < 1) return -Infinity;
    // The others-th lowest (1-based) with the token's own entry, at index `at`, left out.
    const index = at === undefined || at >= others ? others - 1 : others;
    // Fewer uncertain ids than slots cannot happen in exact arithmetic (an honest run keeps k
    // possible ids); should rounding at the 2ε edges make it so, assume no such rival.
    return index < this.#uncertain.length ? this.#uncertain[index] : -Infinity;
  }

  /**
   * Narrow `possible`/`definite` (by rank) by the top-p cut: an id is kept when the mass
   * strictly before it in rule order is below topP.
   */
  #cutTopP(
    topP: number,
    w: Float64Array,
    aboveEnd: Int32Array,
    tieEnd: Int32Array,
    possible: Uint8Array,
    definite: Uint8Array,
  ): void {
    const n = w.length;
    const margin = this.#tol.cdfMargin;
    const { wPos, qPos, wDef, qDef } = prefixSums(w, possible, definite);
    const keepP = new Uint8Array(n);
    const keepD = new Uint8Array(n);
    for (let j = 0; j < n; j++) {
      if (!possible[j]) continue;
      // Least mass before j: the ids surely before and surely kept, over all possibly kept.
      const a = aboveEnd[j];
      const minS = { w: wDef[a], q: qDef[a] };
      const minBefore = this.#shifted(minS, { w: wPos[n] - minS.w, q: qPos[n] - minS.q }, -1);
      // Most mass before j: every id possibly before, over those surely kept after, and j.
      const b = tieEnd[j];
      const maxS = { w: wPos[b] - w[j], q: qPos[b] - w[j] * w[j] };
      const maxR = { w: wDef[n] - wDef[b] + w[j], q: qDef[n] - qDef[b] + w[j] * w[j] };
      const maxBefore = this.#shifted(maxS, maxR, 1);
      keepP[j] = minBefore < topP + margin ? 1 : 0;
      keepD[j] = definite[j] && maxBefore < topP - margin ? 1 : 0;
    }
    possible.set(keepP);
    definite.set(keepD);
  }

  /**
   * The share `c = S/(S + R)` of weight set S, moved by honest noise in direction `dir` (−1
   * down, +1 up): the tighter of the worst case (S's log-weights all move by ε/T one way, R's
   * the other) and `sigmas` standard deviations of its linearised shift,
   * `(σ/T)·√((1 − c)²·Σ_S p² + c²·Σ_R p²)`.
   */
  #shifted(s: Mass, r: Mass, dir: -1 | 1): number {
    const total = s.w + r.w;
    if (!(total > 0)) return dir < 0 ? 0 : 1;
    const tol = this.#tol;
    // `S·u / (S·u + R/u)` with u = e^{dir·ε/T}, written so that u overflowing at a small T
    // gives 0 or 1 rather than ∞/∞.
    const worst = s.w <= 0
      ? 0
      : r.w <= 0
      ? 1
      : s.w / (s.w + r.w * Math.exp((-2 * dir * tol.logitEps) / this.#t));
    if (!Number.isFinite(tol.logitSigma)) return worst;
    const c = s.w / total;
    const sd = (tol.logitSigma / this.#t) * Math.sqrt((1 - c) ** 2 * s.q + c * c * r.q) / total;
    const stat = c + dir * tol.sigmas * sd;
    return dir < 0 ? Math.max(worst, stat) : Math.min(worst, stat);
  }
}

/** Prefix sums of `w` and `w²` over the entries flagged in `possible` and in `definite`. */
function prefixSums(w: Float64Array, possible: Uint8Array, definite: Uint8Array) {
  const n = w.length;
  const wPos = new Float64Array(n + 1);
  const qPos = new Float64Array(n + 1);
  const wDef = new Float64Array(n + 1);
  const qDef = new Float64Array(n + 1);
  for (let j = 0; j < n; j++) {
    const x = w[j];
    wPos[j + 1] = wPos[j] + (possible[j] ? x : 0);
    qPos[j + 1] = qPos[j] + (possible[j] ? x * x : 0);
    wDef[j + 1] = wDef[j] + (definite[j] ? x : 0);
    qDef[j + 1] = qDef[j] + (definite[j] ? x * x : 0);
  }
  return { wPos, qPos, wDef, qDef };
}
