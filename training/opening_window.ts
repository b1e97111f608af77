/**
 * How long a trainer has to answer a challenge: a window that grows with the work the challenge
 * asks for, so an honest trainer on a slow or loaded machine is not slashed for slowness.
 *
 * To open step k a trainer recomputes state k from its nearest kept state (every
 * {@link DEFAULT_KEEP_EVERY} steps, and state H) or from the previous opened step's end, then
 * runs step k itself. A fixed 60 s window was not enough under load (stop 76: opening 9 of 20
 * steps, ~19 recomputed, on 2 cores at load 9–11, passed 60 s, and the honest trainer was
 * slashed 40000 `opening_missing`). The window here is
 *
 *   min({@link MAX_OPENING_WINDOW_MS}, base + recomputed × {@link OPENING_MS_PER_STEP})
 *
 * with `base` the old fixed window ({@link DEFAULT_OPENING_DEADLINE_MS}: sealing, signing and
 * sending stay covered as before) and `recomputed` = {@link recomputedSteps} of the challenge.
 * Everything in it is known to the validator, the trainer and any checker from the signed
 * challenge alone (its steps) and protocol constants: nothing rests on the trainer's word, so a
 * trainer cannot buy itself time by claiming to be slow, and a withholding trainer is still
 * convicted once the (bounded) window has passed.
 *
 * @module
 */
import { DEFAULT_ECONOMICS, type EconomicParams } from "../proof/economics.ts";
import { DEFAULT_KEEP_EVERY } from "./step_opening.ts";
import { DEFAULT_OPENING_DEADLINE_MS, TRAINING_CHALLENGE_STEPS } from "./training_challenge.ts";
import { MAX_ROUND_STEPS } from "../protocols/training_messages.ts";

/**
 * Time allowed per step a challenge makes the trainer run. Measured in stop 76 with `tiny` on
 * the 2 shared cores at load average 9–11: one step's re-run took up to 4.3 s (250 ms unloaded),
 * and an honest opening of ~19 recomputed steps took over 60 s (> 3.2 s a step). 5 s is above
 * the worst step measured there, about 20 times a `tiny` step on an idle machine.
 */
export const OPENING_MS_PER_STEP = 5_000;

/**
 * The longest window any challenge gets. A receipt stays unpaid (held `challenged`) while its
 * challenge runs, and a withholding trainer's conviction waits this long at most; the trainer
 * keeps its trace for the challenge window plus this (`DEFAULT_TRACE_RETAIN_MS`). At the
 * defaults (9 steps, kept every 16) a challenge asks at most 9 × 16 = 144 steps, 60 + 720 s
 * uncapped: 10 min still leaves 3.75 s a step for that worst case, and every challenge of a
 * receipt of H ≤ 100 steps (at most 100 re-run) gets its whole window (≤ 60 + 500 s).
 */
export const MAX_OPENING_WINDOW_MS = 10 * 60_000;

/** Options of {@link openingWindowMs}. */
export interface OpeningWindowOptions {
  /** Fixed part of the window, ms; default {@link DEFAULT_OPENING_DEADLINE_MS}. */
  baseMs?: number;
  /** Allowance per step the trainer runs, ms; default {@link OPENING_MS_PER_STEP}. */
  perStepMs?: number;
  /** Cap on the window, ms; default {@link MAX_OPENING_WINDOW_MS}. */
  maxMs?: number;
  /** Spacing of the trainer's kept states; default {@link DEFAULT_KEEP_EVERY}. */
  keepEvery?: number;
}

/**
 * Steps a trainer runs to open `steps` (ascending), kept states every `keepEvery`: per opened
 * step k, from the nearer of its kept state (⌊k / keepEvery⌋ · keepEvery) and the previous
 * opened step's end, up to state k, plus step k itself. An upper bound of what
 * `buildStepOpenings` runs (it skips a step whose end is kept, and reuses states other
 * challenges of the receipt recomputed).
 *
 * @example
 * ```ts
 * import { recomputedSteps } from "./opening_window.ts";
 * recomputedSteps([0, 5, 19], 16); // 1 + 5 + 4 = 10
 * ```
 */
export function recomputedSteps(
  steps: readonly number[],
  keepEvery: number = DEFAULT_KEEP_EVERY,
): number {
  const every = Math.max(1, Math.floor(keepEvery));
  let total = 0;
  let previousEnd = -1;
  for (const k of steps) {
    const kept = Math.floor(k / every) * every;
    const from = previousEnd <= k ? Math.max(kept, previousEnd) : kept;
    total += k - from + 1;
    previousEnd = k + 1;
  }
  return total;
}

/**
 * The answer window of a challenge of `steps` (see the module doc for the arithmetic).
 *
 * @example
 * ```ts
 * import { openingWindowMs } from "./opening_window.ts";
 * openingWindowMs([0, 5, 19]); // 60_000 + 10 × 5_000 = 110_000
 * ```
 */
export function openingWindowMs(
  steps: readonly number[],
  options: OpeningWindowOptions = {},
): number {
  const base = options.baseMs ?? DEFAULT_OPENING_DEADLINE_MS;
  const perStep = options.perStepMs ?? OPENING_MS_PER_STEP;
  const max = options.maxMs ?? MAX_OPENING_WINDOW_MS;
  return Math.min(max, base + recomputedSteps(steps, options.keepEvery) * perStep);
}

/**
 * The longest answer window any challenge of a receipt of `steps` (H) steps can get: the window
 * of {@link openingWindowMs} for the worst draw of {@link TRAINING_CHALLENGE_STEPS} steps. The
 * steps a challenge makes the trainer re-run ({@link recomputedSteps}) are disjoint stretches of
 * the H steps, each at most `keepEvery` long, so at most min(H, opened × keepEvery): a draw that
 * puts each opened step just before a kept state reaches it.
 *
 * @example
 * ```ts
 * import { worstOpeningWindowMs } from "./opening_window.ts";
 * worstOpeningWindowMs(50); // 60_000 + 50 × 5_000 = 310_000
 * ```
 */
export function worstOpeningWindowMs(
  steps: number,
  options: OpeningWindowOptions = {},
): number {
  const base = options.baseMs ?? DEFAULT_OPENING_DEADLINE_MS;
  const perStep = options.perStepMs ?? OPENING_MS_PER_STEP;
  const max = options.maxMs ?? MAX_OPENING_WINDOW_MS;
  const every = Math.max(1, Math.floor(options.keepEvery ?? DEFAULT_KEEP_EVERY));
  const opened = Math.min(steps, TRAINING_CHALLENGE_STEPS);
  return Math.min(max, base + Math.min(steps, opened * every) * perStep);
}

/**
 * The longest a challenge of a round of `steps` (H) steps takes from its receipt's recording to
 * its verdict: the longest answer window ({@link worstOpeningWindowMs}) and the challenger's re-run
 * of the opened steps, {@link OPENING_MS_PER_STEP} each (the allowance a loaded machine's step
 * was measured under). The coordinator records every report before it draws the challenges, so a
 * receipt's challenge window starts before that.
 */
export function roundAnswerMs(steps: number, options: OpeningWindowOptions = {}): number {
  const perStep = options.perStepMs ?? OPENING_MS_PER_STEP;
  return worstOpeningWindowMs(steps, options) +
    Math.min(steps, TRAINING_CHALLENGE_STEPS) * perStep;
}

/**
 * Why a coordinator's rounds of `steps` (H, `training.coordinator.steps`) cannot be challenged
 * inside the challenge window of `params` (the node's ledger's), as one line of the configuration
 * refusal, naming the setting and the largest H that fits; undefined when they can. A challenge's
 * verdict (a fraud proof) must reach every ledger inside the receipt's window: past it, every
 * ledger but the challenger's own refuses the proof (`challenge_window_closed`), so a lazy or
 * withholding trainer convicted there keeps its stake everywhere else (review s79 trainnet F1).
 * Pay no longer depends on it: a round's credit pays a receipt that closed unpaid and was never
 * convicted (`training_late_credit`, `proof/_ledger_training.ts`).
 */
export function roundAnswerRefusal(
  steps: number,
  params: Readonly<EconomicParams> = DEFAULT_ECONOMICS,
): string | undefined {
  const window = params.challengeWindowMs;
  const answer = roundAnswerMs(steps);
  if (answer <= window) return undefined;
  let fits = 0;
  for (let h = 1; h <= MAX_ROUND_STEPS && roundAnswerMs(h) <= window; h++) fits = h;
  const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
  return `H = ${steps}: a challenge of a round's receipt may take ${seconds(answer)} ` +
    `(an answer window of up to ${seconds(worstOpeningWindowMs(steps))} for the steps the ` +
    `trainer re-runs, and the opened steps' re-run), past the ${
      seconds(window)
    } challenge window ` +
    `in which a conviction settles in every ledger: set training.coordinator.steps to at most ` +
    `${fits}`;
}
