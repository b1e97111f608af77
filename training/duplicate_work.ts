/**
 * One piece of training work is paid once: the rule that two reports of a round are the same
 * work. A report whose trajectory (`checkpointsRoot`) or delta (`deltaHash`) another report of
 * the round already has is a copy of that work signed under a second key: a shard of one repeated
 * sample makes the batches independent of the data seed, so every challenge of the copy passes
 * (review s54), its delta would weigh twice in the mean, and every ledger would pay it.
 *
 * Both sides apply this one rule: the coordinator refuses the later report of a round
 * (`_round_run.ts`), and every auditing node refuses an outcome that names the same work twice
 * (`round_audit.ts`, `duplicate_work`): the coordinator is the party that must not be trusted
 * with it (review s71 F1).
 *
 * @example
 * ```ts
 * import { sameWork } from "./duplicate_work.ts";
 * const a = { checkpointsRoot: "aa".repeat(32), deltaHash: "bb".repeat(32) };
 * sameWork(a, { checkpointsRoot: "cc".repeat(32), deltaHash: a.deltaHash }); // true
 * ```
 *
 * @module
 */
import type { TrainingReceipt } from "./training_receipt.ts";

/** The fields of a receipt that name its work. */
export type WorkOf = Pick<TrainingReceipt, "checkpointsRoot" | "deltaHash">;

/**
 * Whether two receipts sign the same work: the same trajectory or the same delta. Either is
 * enough: a copy may keep the trajectory and requantise the delta, or keep the delta and make up
 * a trajectory.
 */
export function sameWork(a: WorkOf, b: WorkOf): boolean {
  return a.checkpointsRoot === b.checkpointsRoot || a.deltaHash === b.deltaHash;
}

/**
 * The first receipt of `receipts` whose work an earlier one already signs ({@link sameWork}):
 * its index and the earlier one's; undefined when every piece of work is named once.
 */
export function firstDuplicateWork(
  receipts: readonly WorkOf[],
): { copy: number; original: number } | undefined {
  for (let copy = 1; copy < receipts.length; copy++) {
    const original = receipts.findIndex((r, i) => i < copy && sameWork(r, receipts[copy]));
    if (original >= 0) return { copy, original };
  }
  return undefined;
}
