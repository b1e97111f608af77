/**
 * One challenge's work for the ValidatorActor (`validator_actor.ts`), run outside its mailbox:
 * gather the material (the job, the worker's proof data, the model: network waits, any number
 * at once), then validate on the actor's serial queue (one forward pass at a time, so
 * challenges never starve inference of CPU). The actor learns the result by a `challenged`
 * message and changes its state only there. Not part of the public API.
 *
 * @module
 */
import type { Identity } from "../protocols/identity.ts";
import type { Job } from "../protocols/job.ts";
import { type Receipt, receiptContradiction, receiptId } from "../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../protocols/verdict.ts";
import { toHex } from "../protocols/hash.ts";
import type { ServedProof } from "../proof/served_proof.ts";
import { endChoicesOf, type SteeringRecord } from "../proof/steering.ts";
import {
  emptyValidationStats,
  validateReceipt,
  type ValidationOptions,
  type ValidationResult,
} from "../proof/validation.ts";
import { checkServed } from "./withheld_check.ts";
import { UNREACHABLE } from "./_proof_fetch.ts";
import { proofMayBeExpired } from "../proof/challenge_timing.ts";
import type { ChallengeSource, ValidatorModelSource } from "./validator_messages.ts";

/**
 * The verdict detail that marks a challenge taken over on a peer's "proof withheld" claim
 * (`true`). Signed with the verdict, because the ending differs: undecided here, a takeover
 * clears the challenge (the claim proved nothing), a challenge this validator drew leaves the
 * job unpaid. Kept unsigned beside the verdict (`_challenge_endings.ts`), that difference could
 * be rewritten on disk into paying an undecided job.
 */
export const TAKEOVER_DETAIL = "takeover";

/** Whether `verdict` is of a challenge taken over on a peer's claim ({@link TAKEOVER_DETAIL}). */
export function isTakeover(verdict: Verdict): boolean {
  return verdict.details?.[TAKEOVER_DETAIL] === true;
}

/** What {@link runChallenge} needs besides the receipt and its job. */
export interface RunChallengeOptions {
  /** The validator's models. */
  models: ValidatorModelSource;
  /** The validator identity (signs the verdict). */
  identity: Identity;
  /** Tolerances for validation. */
  validation?: ValidationOptions;
  /** Challenge material beyond the announcement (its `output`). */
  source: ChallengeSource;
  /** End choices per worker over this validator's own verdicts (`proof/steering.ts`). */
  steering: SteeringRecord;
  /** The serial work queue: one validation (one forward pass) at a time. */
  enqueue: <T>(task: () => Promise<T>) => Promise<T>;
  /** The worker's proof data (see `_proof_fetch.ts`'s `proofOf`). */
  proof: () => Promise<ServedProof | typeof UNREACHABLE | undefined>;
  /** Aborts the challenge (the actor stopping). */
  signal: AbortSignal;
  /** Opened on a peer's "proof withheld" claim (see `withheld_check.ts`). */
  takeover: boolean;
  /**
   * The ledger's clock, unix ms (default `Date.now`): when the proof data was asked for decides
   * `proofExpired`.
   */
  now?: () => number;
}

/**
 * Gather the material (the job, the worker's proof data, the model: network waits, any
 * number at once), then validate on the serial queue (one forward pass at a time). Runs
 * outside `receive`; touches no actor state but the steering record, which only the serial
 * queue reads and writes: each validation sees every earlier one's end choices, however many
 * challenges of one worker are open at once. A takeover's receipt was chosen by a peer, so its
 * end choices are neither counted nor tested.
 *
 * @param receipt The challenged receipt.
 * @param job The job it is bound to.
 * @param options Models, identity, queue, steering record and where the proof data comes from.
 * @returns The signed validation result.
 */
export async function runChallenge(
  receipt: Receipt,
  job: Job,
  options: RunChallengeOptions,
): Promise<ValidationResult> {
  const { models, identity, source, steering, enqueue, signal, takeover } = options;
  const validation = takeover
    ? { ...options.validation, details: { [TAKEOVER_DETAIL]: true } }
    : options.validation;
  // A receipt that contradicts its own job is judged without a model or proof data (fraud
  // kind `receipt`); without the model nothing else can be concluded here (`inconclusive`)
  // — except, for a peer's "proof withheld" claim taken over, whether the worker serves.
  const contradicts = receiptContradiction(receipt, job) !== null;
  // A takeover asks the worker whatever the model: at once, before the model loads. It can open
  // at the end of the receipt's window, and the worker keeps its data only for the window and
  // the deadline from then (`MIN_PROOF_RETENTION_MS`): a fetch started after a slow load could
  // find it rightly deleted, and slash the honest worker (review, stop 45).
  // When the worker was asked, by this ledger's clock: missing data asked for after its worker
  // may rightly have deleted it is not withholding (`proofMayBeExpired`, review s75 F1).
  let askedAt = Number.NEGATIVE_INFINITY;
  const ask = () => {
    askedAt = (options.now ?? Date.now)();
    return options.proof();
  };
  const early = takeover && !contradicts && receipt.kind === "text" ? ask() : undefined;
  early?.catch(() => {}); // awaited below; a load that throws first must not leave it unhandled
  const got = contradicts ? undefined : await models.get(receipt.model);
  const model = got?.info.cid === receipt.model ? got : undefined;
  const availabilityOnly = takeover && !contradicts && model === undefined;
  const fetched = receipt.kind === "text" && (model !== undefined || availabilityOnly)
    ? await (early ?? ask())
    : undefined;
  const served = fetched === UNREACHABLE ? undefined : fetched;
  const output = await source.output?.(receipt);
  // The receipt cannot finalize while this challenge is open (see `finalize`), so a challenge
  // that waited past the window still settles; the queue is bounded per worker instead.
  return await enqueue(async () => {
    signal.throwIfAborted();
    const material = {
      job,
      receipt,
      proof: served?.proof,
      proofSig: served?.sig,
      output,
      // This validator had no route to anyone, or no dial free for the worker, for the whole
      // deadline: its own gap, not the worker's failure.
      workerUnreachable: fetched === UNREACHABLE,
      proofExpired: served === undefined &&
        proofMayBeExpired(receipt.timings.startedAt + receipt.timings.totalMs, askedAt),
    };
    if (availabilityOnly) return checkServed(material, identity, { ...validation, signal });
    const worker = toHex(receipt.worker);
    const result = await validateReceipt(material, model, identity, {
      ...validation,
      steering: takeover ? undefined : steering.of(worker),
      countEndChoices: !takeover,
      signal,
    });
    const ends = endChoicesOf(result.verdict);
    if (ends && !takeover) steering.add(worker, ends);
    return result;
  });
}

/**
 * The result of a challenge that failed (an exception, the actor stopping): this validator's
 * own gap, signed as `inconclusive / validator_error`, so the job is left unpaid and nobody is
 * slashed (a takeover's is cleared instead: see {@link TAKEOVER_DETAIL}).
 *
 * @param receipt The challenged receipt.
 * @param reason What went wrong (its first 200 characters go into the verdict).
 * @param identity The validator identity (signs the verdict).
 * @param takeover Whether the challenge was taken over on a peer's claim.
 * @returns The signed verdict, with empty validation stats.
 */
export function failedChallenge(
  receipt: Receipt,
  reason: string,
  identity: Identity,
  takeover: boolean,
): ValidationResult {
  const verdict = signVerdict({
    v: 1,
    subject: "inference",
    subjectId: receiptId(receipt),
    target: receipt.worker,
    outcome: "inconclusive",
    reason: "validator_error",
    details: { message: reason.slice(0, 200), ...(takeover ? { [TAKEOVER_DETAIL]: true } : {}) },
    issuedAt: Date.now(),
  }, identity);
  return { verdict, stats: emptyValidationStats() };
}
