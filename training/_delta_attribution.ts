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
 * (`_round_seats.ts`), so at most that many deltas are evaluated, plus the start model. Not part
 * of the public API.
 *
 * @module
 */
import type { GptWeights } from "./gpt_weights.ts";
import { outerStep } from "./outer_step.ts";

/**
 * How many times the round's start model's held-out loss the model a delta makes alone may have
 * before the delta is left out as harmful (`loss_regression`), even when the round's mean passes
 * the gate. Measured on the test model (2 trainers, the coordinator's 64 samples; each delta's own
 * model over the round's start): at the default lr 3e-3 the largest rise was 1.0 % (H = 4, 15
 * rounds; at most 0.4 % at H = 50 over 10 rounds, none at H = 1, 8, 24 over 5); at lr 0.03 it was
 * 7.8 % (H = 1, 15 rounds), 5.3 % (H = 3), 2.1 % (H = 8, both 15 rounds), 2.3 % (H = 24) and
 * 2.6 % (H = 50, both 10 rounds). 1.15 is about twice the largest honest rise; a poisoner pointing
 * a delta of RMS 0.0053 up the held-out gradient makes 1.22 alone, while the round's mean of it
 * and two harmless deltas of RMS 0.014 (1.07) passes the 1.1 gate.
 */
export const MAX_SOLO_LOSS_RATIO = 1.15;

/** The held-out losses {@link soloLosses} measured. */
export interface SoloLosses {
  /** The round's start model's loss (undefined: not measured: no attribution possible). */
  start: number | undefined;
  /** Each delta's own model's loss, in the deltas' order (undefined: not finite). */
  solo: (number | undefined)[];
}

/**
 * The held-out loss of the round's start model and of the model each delta makes alone (the outer
 * step over it, no momentum: the momentum is the run's, not the trainer's doing). One evaluation
 * each, one after another (the evaluator is one engine); `deltas.length + 1` in all.
 */
export async function soloLosses(
  start: GptWeights,
  deltas: readonly GptWeights[],
  evaluate: (weights: GptWeights) => Promise<number | undefined>,
): Promise<SoloLosses> {
  const startLoss = await evaluate(start);
  if (startLoss === undefined) return { start: undefined, solo: deltas.map(() => undefined) };
  const solo: (number | undefined)[] = [];
  for (const delta of deltas) {
    const { weights } = outerStep(start, [delta]);
    const finite = [...weights.values()].every((t) => t.data.every(Number.isFinite));
    solo.push(finite ? await evaluate(weights) : undefined);
  }
  return { start: startLoss, solo };
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
