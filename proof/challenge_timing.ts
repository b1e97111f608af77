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
 * How far two nodes' clocks may differ. (A receipt signed ahead of a ledger's clock is taken:
 * its worker only makes itself answerable for it for longer.)
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
