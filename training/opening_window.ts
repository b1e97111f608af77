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
import { DEFAULT_KEEP_EVERY } from "./step_opening.ts";
import { DEFAULT_OPENING_DEADLINE_MS } from "./training_challenge.ts";

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
