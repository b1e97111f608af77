/**
 * What every view of the validator calls its receipts: those this ledger recorded, one per job.
 * `ValidatorStats.received` counts every receipt handed in, copies of one job's (it comes from its
 * router and again in each announcement) and refused ones (by the intake, by the ledger, or lost
 * to a ledger write that failed) among them; the heartbeat (`node/heartbeat.ts`), the dashboard's
 * snapshot (`node/dashboard_sources.ts`, drawn by `server/dashboard/app.js`) and `cli.ts status`
 * all show these figures, so a ledger that records nothing never reads as one that recorded
 * everything (review s71, finding 1).
 *
 * @module
 */
import type { ValidatorStats } from "./validator_messages.ts";

/** The validator's receipts as the views show them. */
export interface RecordedReceipts {
  /** Receipts recorded here: `received − copies − refused`, one per job. */
  recorded: number;
  /** Recorded receipts that came from peers. */
  fromPeers: number;
  /** This node's own among the recorded (`ValidatorStats.own`). */
  own: number;
  /** Copies of receipts already recorded, shown apart. */
  copies: number;
  /** Receipts not recorded, copies aside; shown apart. */
  refused: number;
}

/** The counters {@link recordedReceipts} reads. */
export type ReceiptCounts = Pick<
  ValidatorStats,
  "received" | "fromPeers" | "copies" | "copiesFromPeers" | "refused" | "refusedFromPeers" | "own"
>;

/**
 * The receipts `stats` recorded, one per job, with the copies and refusals counted apart.
 *
 * @example
 * ```ts
 * import { recordedReceipts } from "./recorded_receipts.ts";
 * const r = recordedReceipts({
 *   received: 5, fromPeers: 2, copies: 1, copiesFromPeers: 0, refused: 3, refusedFromPeers: 1,
 *   own: 1,
 * });
 * console.assert(r.recorded === 1 && r.fromPeers === 1 && r.refused === 3);
 * ```
 */
export function recordedReceipts(stats: ReceiptCounts): RecordedReceipts {
  return {
    recorded: stats.received - stats.copies - stats.refused,
    fromPeers: stats.fromPeers - stats.copiesFromPeers - stats.refusedFromPeers,
    own: stats.own,
    copies: stats.copies,
    refused: stats.refused,
  };
}
