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
 * Oldest a receipt may be, by the end its worker signed (`timings.startedAt + totalMs`), when a
 * ledger first records it. Its challenge window opens when it is recorded, so a challenge can
 * ask for its proof data up to the window and the proof deadline later; a worker keeps that
 * data for those plus this age and {@link CLOCK_SKEW_MS} (`DEFAULT_PROOF_RETENTION_MS`). An
 * older receipt is refused (`receipt_stale`): not paid here, and never challenged for proof
 * data its worker may rightly have deleted. Before this rule, anyone holding a receipt could
 * replay it to a ledger that had not seen it after 21 minutes and get its honest worker
 * slashed for withholding (a review at stop 34); so could a pledge that arrived that late.
 */
export const MAX_RECEIPT_AGE_MS = 5 * 60_000;
/** How far nodes' clocks may differ, for {@link MAX_RECEIPT_AGE_MS}. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The least proof data a worker may be configured to keep (`proofs.retentionMs`): a receipt is
 * recorded at most {@link MAX_RECEIPT_AGE_MS} after it was signed, and challenged for its proof
 * until its window and the deadline have passed. 16 minutes at the default window.
 */
export const MIN_PROOF_RETENTION_MS: number = MAX_RECEIPT_AGE_MS +
  DEFAULT_ECONOMICS.challengeWindowMs + PROOF_DEADLINE_MS;
