/**
 * Which of a round's deltas do harm, by measured effect (`_round_run.ts`'s loss gate): the
 * held-out loss of the model each accepted delta would make alone (the outer step over that one
 * report, from the round's start, no momentum), against the loss of the round's start model.
 *
 * Each delta alone, not each delta left out (leave-one-out), and not the size of the delta:
 * - By size (the largest root mean square first, the rule before review s74): a poisoner that
 *   scales its delta down but points it against the model was the last to go, after every honest
 *   trainer with a larger delta, and more griefers than the tries left the round unpublished.
 * - Leave-one-out measures what a delta adds to the others' mean, so ten griefers hide each other:
 *   the mean without any one of them still holds the other nine, so leaving one out changes
 *   little. Alone, each is judged on its own, whatever the others sent, so every harmful one is
 *   found at once and the rest are averaged and evaluated once more.
 * - The cost is the same count of evaluations (one per delta, plus the start's), and the outer
 *   step over one delta is cheaper than over the others' mean (which grows with the round: n
 *   steps over n − 1 deltas each); both are small beside the evaluation. Measured on the test
 *   model (64 held-out samples, wasm, a shared 2-core machine, warmed): one evaluation 62 ms (189
 *   to 701 ms while other work loaded the machine to a load average of 10); an outer step 1.6–1.8
 *   ms alone and 2.9–3.7 ms leave-one-out over 11 of 12 deltas.
 *
 * The number of evaluations is bounded: a round seats at most `MAX_OUTCOME_TRAINERS` trainers
 * (`_round_seats.ts`), so at most that many deltas are evaluated, plus the start model, and the
 * time they take by {@link SOLO_JUDGING_BUDGET_FRACTION} of the round's deadline. When the round's
 * mean still fails, the ranking by these losses is searched for the largest passing set
 * ({@link largestPassing}: ⌈log₂ n⌉ evaluations, review s74 verify3: a fixed number of
 * one-at-a-time drops was outlasted by more griefers). Not part of the public API.
 *
 * @module
 */
import type { GptWeights } from "./gpt_weights.ts";
import { outerStep } from "./outer_step.ts";

/**
 * How many times the round's start model's held-out loss the model a delta makes alone may have
 * before the delta is left out as harmful (`loss_regression`), even when the round's mean passes
 * the gate. Set from honest training, at least twice the largest honest rise measured: a false
 * exclusion costs an honest trainer its pay. Measured on the test model (`honest_sim.ts` of review
 * s74 verify3: 2 real trainers, int8 deltas, the coordinator's 64 samples, then the held-out
 * text's first 64 windows, before `held_out_samples.ts` spread them; each delta's own model over
 * the round's start; "genre": each trainer one contiguous half of the documents sorted by Brown
 * genre, "iid": `splitCorpus`'s round-robin), the largest rise per setting, over seeds:
 *
 * | lr   | H | shards | rounds × seeds | largest rise                          |
 * | ---- | - | ------ | -------------- | ------------------------------------- |
 * | 3e-3 | 1 | genre  | 10 × 2         | 0.2 %                                 |
 * | 3e-3 | 1 | iid    | 10 × 1         | none                                  |
 * | 3e-3 | 3 | genre  | 10 × 2         | 0.9 %                                 |
 * | 3e-3 | 8 | genre  | 10 × 2         | 1.0 %                                 |
 * | 0.03 | 1 | genre  | 10 × 2, 30 × 8 | 15.3 % (13.2 % in the review, 30 × 7) |
 * | 0.03 | 1 | iid    | 10 × 2, 30 × 6 | 16.7 %                                |
 * | 0.03 | 3 | genre  | 10 × 2         | 5.4 %                                 |
 * | 0.03 | 3 | iid    | 10 × 1         | 5.4 %                                 |
 * | 0.03 | 8 | genre  | 10 × 2         | 2.5 %                                 |
 * | 0.03 | 8 | iid    | 10 × 1         | 3.2 %                                 |
 *
 * The largest, 16.7 % (lr 0.03, H = 1, even shards, seed 13 of 30 rounds), doubled is 1.333: 1.34.
 * The rise grows with the seeds tried (7.8 %, then 13.2 %, then 16.7 %): the tail is not known
 * well. Under the limit, a delta is judged only as part of the mean (the 1.1 gate,
 * {@link largestPassing}'s ranking): a delta within 1.34 alone whose inclusion keeps the mean
 * within the gate is paid (the honest-noise tolerance; `docs/TRAINING.md`). A poisoner pointing a
 * delta up the held-out gradient past it (37 % alone) is left out even when its mean with four
 * harmless deltas passes the gate (7.6 %).
 */
export const MAX_SOLO_LOSS_RATIO = 1.34;

/**
 * The share of a round's deadline (`roundDeadlineMs`) the solo judging may take, after the
 * collection deadline. Each judgment is an outer step and a held-out evaluation, and their cost
 * grows with seats × model size: measured (review s74 verify3, 64 samples, wasm, a loaded 2-core
 * machine) 204 ms a seat on the default training model (256 seats ≈ 55 s) and 1.65 s on the
 * largest accepted architecture, 4×128 (≈ 443 s against the default 120 s deadline). Half the
 * deadline keeps a round within 1.5 × its deadline plus the few evaluations of the search
 * ({@link largestPassing}): at the default 120 s, 60 s judges every seat of the default model and
 * about 36 at 4×128. Past it the seats not yet judged are not judged alone (see
 * {@link soloLosses}).
 */
export const SOLO_JUDGING_BUDGET_FRACTION = 0.5;

/** The held-out losses {@link soloLosses} measured. */
export interface SoloLosses {
  /** The round's start model's loss (undefined: not measured: no attribution possible). */
  start: number | undefined;
  /**
   * Each delta's own model's loss, in the deltas' order (undefined: not finite, or not judged:
   * see `judged`).
   */
  solo: (number | undefined)[];
  /** Whether each delta was judged alone (false: the time budget ran out before its turn). */
  judged: boolean[];
}

/** How {@link soloLosses} spends its time. */
export interface SoloJudging {
  /**
   * The order the deltas are judged in (indices into `deltas`): drawn from the round's seed, so
   * which seats a spent budget leaves unjudged is no trainer's choice and an auditor can redo it.
   * Default: the deltas' order.
   */
  order?: readonly number[];
  /** Milliseconds the judging may take, counted from its start (default: no limit). */
  budgetMs?: number;
  /** The clock (default `Date.now`; tests inject one). */
  now?: () => number;
}

/**
 * The held-out loss of the round's start model and of the model each delta makes alone (the outer
 * step over it, no momentum: the momentum is the run's, not the trainer's doing). One evaluation
 * each, one after another (the evaluator is one engine); at most `deltas.length + 1` in all. Once
 * `budgetMs` has passed (checked before each delta), the deltas not yet judged are left unjudged
 * (`judged` false): they are neither left out alone nor ranked by their own loss.
 */
export async function soloLosses(
  start: GptWeights,
  deltas: readonly GptWeights[],
  evaluate: (weights: GptWeights) => Promise<number | undefined>,
  judging: SoloJudging = {},
): Promise<SoloLosses> {
  const now = judging.now ?? Date.now;
  const began = now();
  const solo: (number | undefined)[] = deltas.map(() => undefined);
  const judged = deltas.map(() => false);
  const startLoss = await evaluate(start);
  if (startLoss === undefined) return { start: undefined, solo, judged };
  for (const i of judging.order ?? deltas.keys()) {
    if (judging.budgetMs !== undefined && now() - began > judging.budgetMs) break;
    const { weights } = outerStep(start, [deltas[i]]);
    const finite = [...weights.values()].every((t) => t.data.every(Number.isFinite));
    solo[i] = finite ? await evaluate(weights) : undefined;
    judged[i] = true;
  }
  return { start: startLoss, solo, judged };
}

/**
 * Why a delta whose own model has held-out loss `solo` does harm against a start of loss
 * `start`, or undefined: it does not (within {@link MAX_SOLO_LOSS_RATIO}).
 */
export function soloHarm(solo: number | undefined, start: number): string | undefined {
  if (solo !== undefined && solo <= start * MAX_SOLO_LOSS_RATIO) return undefined;
  return `its delta alone gives held-out loss ${
    solo === undefined ? "not finite" : `${solo.toPrecision(4)} nats/byte`
  }, over ${MAX_SOLO_LOSS_RATIO} × the round's start ${start.toPrecision(4)}`;
}

/**
 * The largest `k` in `[0, count)` for which `passes(k)` holds, where `passes(count)` is known to
 * fail, by binary search: at most ⌈log₂ count⌉ calls (8 for 256 seats). Assumes that keeping
 * fewer of the best-ranked deltas does not make the mean worse; where that does not hold, it
 * still returns a `k` that passes (or 0), never one that fails. `passes(0)` is never called.
 */
export async function largestPassing(
  count: number,
  passes: (k: number) => Promise<boolean>,
): Promise<number> {
  let lo = 0; // passes, or nothing kept
  let hi = count; // fails
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (await passes(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
