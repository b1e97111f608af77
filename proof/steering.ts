/**
 * The steering test: a sequential test over one worker's end choices (`end_choices.ts`) in
 * every receipt one validator has checked, convicting a worker that keeps passing over ends
 * the job's sampling rule gives it.
 *
 * Under honest noise a passed event and a taken event are equally likely, so the share of
 * passed among a worker's events is ½. The evidence against that is a mixture of likelihood
 * ratios, one for each alternative share q in {@link STEERING_ALTERNATIVES}:
 *
 * ```
 * M = mean over q of (2q)^passed · (2(1 − q))^taken
 * ```
 *
 * Each term is a martingale with mean 1 while the share is ½ (and a supermartingale below it),
 * so their mean is too, and by Ville's inequality an honest worker's M ever reaches
 * {@link STEERING_EVIDENCE_LIMIT} with probability at most its inverse (10⁻⁶), however many
 * receipts are checked and however often M is looked at. A worker that passes over every end
 * it can is convicted after 26 passed events; one that also takes some, to hide, after more,
 * and it gains less the more it takes (each taken end loses the rest of that job's tokens).
 *
 * A validator counts only its own validations: it knows it challenged by its own coin, so
 * its sample of the worker's receipts is not chosen by anyone (a validator could pick which of
 * its verdicts to publish; nobody else's count is taken). The conviction is therefore this
 * validator's, like a withheld proof: it settles its open challenge as a fault and routes
 * around the worker (`actors/validator_actor.ts`).
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { EndChoices } from "./end_choices.ts";

/** Alternative shares of passed events the test weighs equally (a steerer's is near 1). */
export const STEERING_ALTERNATIVES: readonly number[] = Object.freeze([0.6, 0.75, 0.9]);

/** Evidence at which a worker is convicted of steering: 10⁶ (false conviction ≤ 10⁻⁶). */
export const STEERING_EVIDENCE_LIMIT = 1e6;

/**
 * The evidence `M` (see the module doc) that a worker with these end choices steers: 1 with
 * none, below 1 when it takes ends as often as it passes them.
 *
 * @example
 * ```ts
 * import { steeringEvidence } from "./steering.ts";
 * steeringEvidence({ passed: 0, taken: 0 }); // 1
 * steeringEvidence({ passed: 26, taken: 0 }) > 1e6; // true
 * steeringEvidence({ passed: 26, taken: 26 }) < 1; // true
 * ```
 */
export function steeringEvidence(choices: EndChoices): number {
  const logs = STEERING_ALTERNATIVES.map((q) =>
    choices.passed * Math.log(2 * q) + choices.taken * Math.log(2 * (1 - q))
  );
  const top = Math.max(...logs);
  const sum = logs.reduce((s, l) => s + Math.exp(l - top), 0);
  return Math.exp(top + Math.log(sum / logs.length));
}

/** Whether these end choices convict a worker of steering ({@link STEERING_EVIDENCE_LIMIT}). */
export function isSteering(choices: EndChoices): boolean {
  return steeringEvidence(choices) >= STEERING_EVIDENCE_LIMIT;
}

/** The verdict details that carry a validation's end choices. */
export const END_CHOICE_DETAILS = { passed: "endPassed", taken: "endTaken" } as const;

/** A verdict's end choices, if it carries them. */
export function endChoicesOf(verdict: Verdict): EndChoices | undefined {
  const passed = verdict.details?.[END_CHOICE_DETAILS.passed];
  const taken = verdict.details?.[END_CHOICE_DETAILS.taken];
  if (!Number.isSafeInteger(passed) || !Number.isSafeInteger(taken)) return undefined;
  if ((passed as number) < 0 || (taken as number) < 0) return undefined;
  return { passed: passed as number, taken: taken as number };
}

/**
 * `validator`'s own inference verdicts among `verdicts` that carry end choices: the worker (hex
 * key), the receipt id and the choices of each. What a validator's record and its evidence at a
 * conviction are made of.
 */
export function* ownEndChoices(
  verdicts: Iterable<Verdict>,
  validator: Uint8Array,
): Generator<{ worker: string; receiptId: string; choices: EndChoices }> {
  const me = toHex(validator);
  for (const verdict of verdicts) {
    if (verdict.subject !== "inference" || toHex(verdict.validator) !== me) continue;
    const choices = endChoicesOf(verdict);
    if (choices) yield { worker: toHex(verdict.target), receiptId: verdict.subjectId, choices };
  }
}

/** Workers a {@link SteeringRecord} keeps at most (the oldest unconvicted are forgotten). */
export const MAX_STEERING_WORKERS = 100_000;

/**
 * One validator's end choices per worker, summed over its own verdicts. Rebuilt from the
 * verdicts its ledger recorded ({@link SteeringRecord.fromVerdicts}), so it survives restarts.
 */
export class SteeringRecord {
  readonly #byWorker = new Map<string, EndChoices>();
  readonly #limit: number;

  /**
   * An empty record.
   * @param limit Workers kept at most (default {@link MAX_STEERING_WORKERS}).
   */
  constructor(limit = MAX_STEERING_WORKERS) {
    this.#limit = limit;
  }

  /**
   * The record of `validator`'s own verdicts among `verdicts` (for example a ledger's, at
   * start): each verdict's end choices added to its target's.
   */
  static fromVerdicts(
    verdicts: Iterable<Verdict>,
    validator: Uint8Array,
    limit?: number,
  ): SteeringRecord {
    const record = new SteeringRecord(limit);
    for (const { worker, choices } of ownEndChoices(verdicts, validator)) {
      record.add(worker, choices);
    }
    return record;
  }

  /** The worker's (hex key) end choices so far. */
  of(worker: string): EndChoices {
    const choices = this.#byWorker.get(worker);
    return choices ? { ...choices } : { passed: 0, taken: 0 };
  }

  /**
   * Add one verdict's end choices to the worker's (hex key). A convicted worker's record is kept
   * as it was at the conviction: the test rejects once the evidence ever reaches the limit (Ville's
   * bound is on ever reaching it), so ends taken afterwards do not clear it. Summed on, a steerer
   * convicted here took a few ends, fell back under the limit, and was paid for steering again.
   */
  add(worker: string, choices: EndChoices): void {
    if (choices.passed === 0 && choices.taken === 0) return;
    const sum = this.of(worker);
    if (isSteering(sum)) return;
    sum.passed += choices.passed;
    sum.taken += choices.taken;
    this.#byWorker.delete(worker); // re-inserted last: the least recently seen go first
    this.#byWorker.set(worker, sum);
    for (const [key, held] of this.#byWorker) {
      if (this.#byWorker.size <= this.#limit) break;
      if (!isSteering(held)) this.#byWorker.delete(key);
    }
  }

  /** The workers (hex keys) whose end choices convict them ({@link isSteering}). */
  convicted(): string[] {
    return [...this.#byWorker].filter(([, choices]) => isSteering(choices)).map(([key]) => key);
  }

  /** Workers with any end choice recorded. */
  get size(): number {
    return this.#byWorker.size;
  }
}
