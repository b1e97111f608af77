/**
 * The clock of the challenge game, in one place: how long a challenged worker has to answer,
 * how old a receipt may be when a ledger first records it, how far nodes' clocks may differ,
 * and so how long a worker keeps its proof data (`actors/prover_actor.ts`) and the least an
 * operator may configure (`node/config.ts`).
 *
 * @module
 */
import { DEFAULT_ECONOMICS } from "./economics.ts";

/**
 * How long a challenged worker has to serve its proof data (default of
 * `ValidatorActorOptions.proofDeadlineMs`): long enough for a loaded peer or a restart,
 * far inside the 10-minute challenge window.
 */
export const PROOF_DEADLINE_MS = 60_000;
/**
 * The longest an honest path may take from a worker signing a receipt (the end it signs:
 * `timings.startedAt + totalMs`) to a ledger first recording it: a slow relay, a receipt that
 * waited for its worker's pledge. Its challenge window opens when it is recorded, so a challenge
 * can ask for its proof data up to the window and the proof deadline after that. A receipt older
 * than this (allowing for {@link CLOCK_SKEW_MS}: {@link STALE_RECEIPT_AGE_MS} by the ledger's
 * clock) is refused (`receipt_stale`): not paid there, and never challenged for proof data its
 * worker may rightly have deleted. Before this rule, anyone holding a receipt could replay it to
 * a ledger that had not seen it after 21 minutes and get its honest worker slashed for
 * withholding (a review at stop 34); so could a pledge that arrived that late.
 */
export const MAX_RECEIPT_AGE_MS = 5 * 60_000;
/**
 * How far two nodes' clocks may differ. A receipt signed more than this ahead of a ledger's clock
 * is refused there (`receipt_from_future`), not taken: its worker deletes its proof data by its
 * own clock (the end it signed plus its retention), so a ledger whose clock is behind would hold
 * it answerable after the data is rightly gone, and slash it for withholding (review s75, F1: a
 * ledger 30 min slow took a receipt "signed ahead" and burned 160 of an honest worker's stake).
 * A ledger with a slow clock loses its own pay-outs; it never slashes for it.
 */
export const CLOCK_SKEW_MS = 150_000;
/**
 * The age, by a ledger's clock, past which a receipt is refused as stale: {@link
 * MAX_RECEIPT_AGE_MS} and the {@link CLOCK_SKEW_MS} a worker's clock may be behind it (7.5 min).
 */
export const STALE_RECEIPT_AGE_MS: number = MAX_RECEIPT_AGE_MS + CLOCK_SKEW_MS;

/**
 * How long a worker keeps the proof data of each job (`proofs.retentionMs`), at the least and by
 * default: a ledger records a receipt up to {@link STALE_RECEIPT_AGE_MS} after its signed end by
 * its own clock, which may be {@link CLOCK_SKEW_MS} ahead of the worker's — at most
 * {@link MAX_RECEIPT_AGE_MS} + 2 × skew after the worker signed it, by the worker's clock — and
 * challenges it for its proof until its window and the deadline have passed. 21 minutes at the
 * default window. Keeping less would let an honest worker be slashed for withholding.
 */
export const MIN_PROOF_RETENTION_MS: number = MAX_RECEIPT_AGE_MS + 2 * CLOCK_SKEW_MS +
  DEFAULT_ECONOMICS.challengeWindowMs + PROOF_DEADLINE_MS;

/**
 * How far a ledger allows its own clock to be behind the worker's when it decides whether missing
 * proof data is withholding: twice {@link CLOCK_SKEW_MS}, one skew more than the model assumes.
 * The model alone (one skew) leaves no room at all: a ledger 5 min slow recorded a receipt at 7
 * min by its clock (12 real), took a liar's "withheld" claim over 30 s before its window closed
 * (21.5 real), after the worker's 21-min retention, and slashed it (review s75, B6).
 */
export const EXPIRY_CLOCK_MARGIN_MS: number = 2 * CLOCK_SKEW_MS;

/**
 * Whether a worker asked for the proof data of a receipt at `askedAt` (the ledger's clock) may
 * rightly have deleted it before the deadline for its answer: the worker deletes by its own
 * clock, at the end it signed (`signedEnd`, its clock) plus {@link MIN_PROOF_RETENTION_MS}, the
 * least any worker keeps; the ledger allows its clock to be {@link EXPIRY_CLOCK_MARGIN_MS} behind
 * the worker's. Missing data asked for then ends `inconclusive / proof_expired` (nobody pays),
 * not `fault`.
 *
 * The worker's clock decides when data is gone, and the ledger cannot read it; so the ledger's
 * clock, less the margin, decides whether missing data is the worker's fault. It does not open a
 * hole for a worker that withholds: a ledger asks for its own draws at intake, at most
 * {@link STALE_RECEIPT_AGE_MS} (7.5 min) after the signed end by its clock, and a takeover until
 * the window's end (17.5 min at most); this returns true only for an ask after 15 min
 * (21 − 1 − 5), so a withholding worker is still a fault on every draw opened at intake and every
 * takeover in the first 7.5 min of any window. It escapes the slash only on an ask later than 15
 * min: a takeover in the last (at most 2.5) minutes of a window that opened more than 5 min after
 * the signed end (cleared there, as if no claim had come: paid as the receipts no one drew are),
 * or a draw a restart opened that late (unpaid).
 *
 * @param signedEnd The end the worker signed (`timings.startedAt + totalMs`), its clock, ms.
 * @param askedAt When the ledger asked for the proof data, its clock, ms.
 * @returns True when missing data is not evidence of withholding.
 */
export function proofMayBeExpired(signedEnd: number, askedAt: number): boolean {
  return askedAt + PROOF_DEADLINE_MS + EXPIRY_CLOCK_MARGIN_MS > signedEnd + MIN_PROOF_RETENTION_MS;
}
