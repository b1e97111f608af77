/**
 * The audit of a round's outcome: a node does not take the coordinator's word for the next
 * model. The outcome names every delta that went in (the trainer's signed receipt and the
 * storage file of its bytes, in the order they were averaged); the auditor fetches the start
 * model and the deltas, checks each against its receipt, redoes the outer step with the
 * momentum it carried from the rounds it audited before (none for a round from a genesis model:
 * see {@link RoundAuditContext.isGenesis}), and compares the model CID. A node serves and passes
 * on only a model it could reproduce (or, having missed earlier rounds, could not check: then it
 * says so). A round from a genesis model is always checkable, so it is never taken unchecked.
 * Which outcomes are audited at all is the TrainingValidator's gate: signed by a coordinator
 * staked in the node's ledger (`signed_outcome.ts`); the audit itself does not read the
 * signature, so a failure here is that coordinator's claim.
 *
 * What fails, and why:
 *
 * | reason                | the outcome…                                                    |
 * | --------------------- | --------------------------------------------------------------- |
 * | `no_reports`          | names no delta                                                  |
 * | `accepted_mismatch`   | lists other trainers than its receipts are from                 |
 * | `duplicate_report`    | names one trainer (or one receipt) twice: its delta would       |
 * |                       | weigh double in the mean                                        |
 * | `receipt_mismatch`    | carries a receipt of another round or start model               |
 * | `seed_mismatch`       | carries a receipt on another data seed than the round's for     |
 * |                       | its trainer (`dataSeedOf`): batches of the trainer's choosing   |
 * | `steps_mismatch`      | carries receipts on different step counts H (a round announces  |
 * |                       | one H; each ledger credits a receipt by its own steps), or on   |
 * |                       | another H than the round before it that this node audited (a    |
 * |                       | run keeps one H)                                                |
 * | `hyper_mismatch`      | carries receipts on different hyper-parameters (a round         |
 * |                       | announces one set to all its trainers)                          |
 * | `receipt_invalid`     | carries a receipt its trainer did not sign (checked before      |
 * |                       | anything is fetched for the outcome)                            |
 * | `duplicate_work`      | names one piece of work twice under two keys (the same          |
 * |                       | `checkpointsRoot` or `deltaHash`: `duplicate_work.ts`), as the  |
 * |                       | coordinator's own round refuses it: a sybil's copy would be     |
 * |                       | paid and weigh double in the mean                               |
 * | `delta_size_mismatch` | carries a receipt whose `deltaBytes` is not the delta size of   |
 * |                       | the outcome's `arch` (checked before anything is fetched: no    |
 * |                       | delta of that model has another size)                           |
 * | `delta_too_large`     | averages a delta with a value past the round's bound            |
 * |                       | (`roundDeltaBound`: H × lr × Adam's largest step × a margin,    |
 * |                       | from the terms its receipts sign), or with a tensor whose root  |
 * |                       | mean square is past `DELTA_RMS_FACTOR` of it                    |
 * |                       | (`roundDeltaLimits`), as the coordinator's round refuses it: no |
 * |                       | H AdamW steps give it, and averaged in it wrecks the model      |
 * |                       | (review s73 F1)                                                 |
 * | `delta_mismatch`      | names a file that is not the delta its receipt signs, or a      |
 * |                       | delta that does not fit the start weights (as the coordinator   |
 * |                       | refuses it: `aggregateRound`); the deltas are fetched           |
 * |                       | {@link AUDIT_FETCH_BATCH} at a time, each checked against its   |
 * |                       | receipt as it comes, and the audit stops at the first that is   |
 * |                       | not                                                             |
 * | `aggregate_mismatch`  | names a model the outer step over those deltas does not give    |
 *
 * The outcome does not carry the hyper-parameters or the H the round announced, so a round whose
 * every receipt departs from them in the same way is not caught here (for H, unless this node
 * audited the round before it: a round from a genesis model has none); its coordinator refuses
 * such a report (`hyper_mismatch`, `steps_mismatch`).
 *
 * **A delta this node's ledger convicted** is not a failure of the outcome (review s73 F6). The
 * model is what the deltas the coordinator averaged give, convicted one included, so the audit
 * reproduces it as published — the only check the CID allows: the outer step without that delta
 * gives another model, one nobody published, and its momentum would not be the one the next
 * round's outcome is built on. The round is adopted and its momentum kept, and the convicted
 * receipts are named in the result ({@link RoundAudit} `convicted`): they earn nothing (the
 * ledger credits no receipt it settled as fraud), every other receipt is credited. Before, the
 * outcome was refused: no trainer of the round was paid here, no momentum was kept, and every
 * later round of that coordinator went unverified and unpaid — one lazy trainer cost every honest
 * one. A coordinator that averaged a delta it knew was convicted gains nothing by it (the delta
 * earns nothing, and its size is bounded, `delta_too_large`); its signed outcome naming the
 * convicted receipt is the evidence, and the validator records it against that coordinator
 * (`_outcome_gate.ts`, `convictedIncluded`) without refusing the round its honest trainers made.
 *
 * The outer step is float32 arithmetic in a fixed order (`outer_step.ts`), so an honest
 * coordinator's model is reproduced bit for bit, and its CID with it.
 *
 * @module
 */
import type { OutcomeBody } from "../protocols/training_messages.ts";
import { toHex } from "../protocols/hash.ts";
import type { GptWeights } from "./gpt_weights.ts";
import type { RoundModels } from "./round_models.ts";
import { dataSeedOf, sameHyperParams } from "./round_coordinator.ts";
import { aggregateRound } from "./training_round.ts";
import { TrainingError } from "./training_error.ts";
import { trainingReceiptId, verifyTrainingReceipt } from "./training_receipt.ts";
import { firstDuplicateWork } from "./duplicate_work.ts";
import { gptDeltaBytes } from "./delta_bytes.ts";
import { decodeFittingDelta, type DeltaLimits, roundDeltaLimits } from "./int8_delta.ts";

/**
 * Deltas fetched at once by an audit. Each is at most a report's 960 KiB
 * (`MAX_REPORT_DELTA_BYTES`), but a file of a hostile outcome may be anything up to the storage's
 * 64 MiB, and an outcome names up to 256 of them: all at once held gigabytes on every auditing
 * node (review s71 F4). Four keep an audit's memory to a few files while the fetches still
 * overlap; a mismatch ends the audit before the next batch is asked for.
 */
export const AUDIT_FETCH_BATCH = 4;

/** What {@link auditRound} found. */
export type RoundAudit =
  /**
   * Reproduced: the model, the momentum the next round's audit starts from, and the deltas
   * (checked against their receipts, in the outcome's order: a challenge after the round needs
   * them and need not fetch them again).
   */
  | {
    ok: true;
    verified: true;
    dir: string;
    momentum: GptWeights;
    deltas: Uint8Array[];
    /** Ids of the receipts averaged here that this node's ledger convicted: paid nothing. */
    convicted: string[];
  }
  /** Not checkable here (earlier rounds not seen): served on the coordinator's word. */
  | { ok: true; verified: false; why: string }
  /** Not what the deltas give: not served, not passed on. */
  | { ok: false; reason: string; detail: string };

/** What an audit needs from the node. */
export interface RoundAuditContext {
  /** Round models and files (start weights, deltas; the reproduced model is written there). */
  models: RoundModels;
  /**
   * The momentum after the round that produced model `cid`, when this node audited that round
   * (undefined: not seen). Round 0 starts from none.
   */
  momentumAfter(cid: string): GptWeights | undefined;
  /**
   * The H of the round that produced model `cid`, when this node audited that round (undefined:
   * not seen). A run keeps one H (its coordinator refuses to resume on another), so a round from
   * that model is on it too.
   */
  stepsAfter?(cid: string): number | undefined;
  /**
   * Whether `cid` is a genesis model of `arch` (a coordinator's seeded first start model): no
   * round made it, so a round from it starts with no momentum whatever its number — a
   * coordinator whose round 0 made no model runs round 1 from it. Absent: only round 0 does.
   */
  isGenesis?(cid: string, arch: OutcomeBody["arch"]): boolean;
  /**
   * Whether this node's ledger settled a fraud proof against this receipt. Per receipt, not per
   * trainer: a trainer convicted while a round was under way may be in it with honest work;
   * the delta that is known to be lazy must not be.
   */
  convicted(receiptId: string): Promise<boolean>;
}

/** Audit `outcome`; see the module doc. */
export async function auditRound(
  outcome: OutcomeBody,
  context: RoundAuditContext,
): Promise<RoundAudit> {
  const fail = (reason: string, detail: string): RoundAudit => ({ ok: false, reason, detail });
  const { reports } = outcome;
  if (reports.length === 0) return fail("no_reports", "the outcome names no delta");
  const trainers = reports.map((r) => toHex(r.receipt.trainer));
  if (trainers.join() !== outcome.accepted.join()) {
    return fail("accepted_mismatch", "the accepted trainers are not the receipts' trainers");
  }
  // A round takes one report per trainer: a delta named twice would count twice in the mean.
  // (A receipt names its trainer, so a receipt named twice is a trainer named twice.)
  if (new Set(trainers).size !== trainers.length) {
    return fail("duplicate_report", "a trainer's report is named twice");
  }
  for (const { receipt } of reports) {
    if (receipt.round !== outcome.round || receipt.startModel !== outcome.startModel) {
      return fail("receipt_mismatch", "a receipt of another round or start model");
    }
    const trainer = toHex(receipt.trainer);
    if (receipt.dataSeed !== dataSeedOf(receipt.round, trainer)) {
      return fail(
        "seed_mismatch",
        `the receipt of ${trainer.slice(0, 16)} is on a seed of its own`,
      );
    }
    // One round, one H: each ledger credits a receipt by its own steps, so one receipt
    // claiming more steps than the others (a colluder's, beside honest trainers' on the
    // announced H) would be paid for work the round never asked for.
    if (receipt.steps !== reports[0].receipt.steps) {
      return fail(
        "steps_mismatch",
        `the receipt of ${trainer.slice(0, 16)} claims ${receipt.steps} steps, not ${
          reports[0].receipt.steps
        }`,
      );
    }
    if (!sameHyperParams(receipt.hyper, reports[0].receipt.hyper)) {
      return fail(
        "hyper_mismatch",
        `the receipt of ${trainer.slice(0, 16)} is on other hyper-parameters`,
      );
    }
  }
  // The round before it on this run (audited here) says what H is: an outcome that leaves
  // out every receipt on it (a trainer it claims never reported) cannot bring in another.
  const before = context.stepsAfter?.(outcome.startModel);
  if (before !== undefined && reports[0].receipt.steps !== before) {
    return fail(
      "steps_mismatch",
      `its receipts claim ${reports[0].receipt.steps} steps, the round before it was on ${before}`,
    );
  }
  // The outcome's signer is a staked coordinator (the validator checks that before the audit),
  // but its word is not its trainers': before anything is fetched for it (the start model, a
  // delta file per report, of the signer's choosing), each receipt must be its trainer's.
  const forged = reports.findIndex(({ receipt }) => !verifyTrainingReceipt(receipt).ok);
  if (forged >= 0) {
    return fail("receipt_invalid", `report ${forged}'s receipt is not signed by its trainer`);
  }
  // One piece of work signed under two keys (a sybil's copy): the rule the coordinator's round
  // applies. A copy is validly signed, so this comes after the signatures: forged receipts are
  // `receipt_invalid` whatever they name.
  const copied = firstDuplicateWork(reports.map((r) => r.receipt));
  if (copied !== undefined) {
    return fail(
      "duplicate_work",
      `the report of ${trainers[copied.copy].slice(0, 16)} is the same work as ` +
        `${trainers[copied.original].slice(0, 16)}'s`,
    );
  }
  // Every delta of the outcome's model has one size: a receipt claiming another cannot be
  // honest, and it must not cost a fetch (review s71 F4).
  const deltaBytes = gptDeltaBytes(outcome.arch);
  const oversized = reports.findIndex(({ receipt }) => receipt.deltaBytes !== deltaBytes);
  if (oversized >= 0) {
    return fail(
      "delta_size_mismatch",
      `report ${oversized}'s receipt claims a delta of ${
        reports[oversized].receipt.deltaBytes
      } bytes; a delta of this model is ${deltaBytes}`,
    );
  }
  // Reproduced with the rest, credited without them (see the module doc).
  const convicted: string[] = [];
  for (const { receipt } of reports) {
    const id = trainingReceiptId(receipt);
    if (await context.convicted(id)) convicted.push(id);
  }
  // What decides "no momentum" is whether the coordinator can have any, not the round's
  // number: nothing before round 0, and nothing on a genesis model, which no round made. Any
  // other start model was made by a round this node must have audited to know its momentum.
  let momentum: GptWeights | undefined;
  if (outcome.round > 0) {
    momentum = context.momentumAfter(outcome.startModel);
    const genesis = context.isGenesis?.(outcome.startModel, outcome.arch) ?? false;
    if (momentum === undefined && !genesis) {
      return { ok: true, verified: false, why: "the round that made its start model was not seen" };
    }
  }
  const start = await context.models.get(outcome.startModel, outcome.arch, outcome.startFile);
  // The round's limits, the coordinator's own rule: its receipts share H and the hyper-parameters.
  const { steps, hyper } = reports[0].receipt;
  const bound = roundDeltaLimits(steps, hyper);
  const deltas: Uint8Array[] = [];
  for (let from = 0; from < reports.length; from += AUDIT_FETCH_BATCH) {
    const batch = reports.slice(from, from + AUDIT_FETCH_BATCH);
    const fetched = await Promise.all(batch.map((r) => context.models.getFile(r.deltaFile)));
    // Checked as it comes: the first file that is not its receipt's delta ends the audit before
    // another is fetched.
    const wrong = batch.findIndex((r, i) =>
      !verifyTrainingReceipt(r.receipt, { delta: fetched[i] }).ok
    );
    if (wrong >= 0) {
      const trainer = toHex(batch[wrong].receipt.trainer).slice(0, 16);
      return fail("delta_mismatch", `the delta of ${trainer} is refused (delta_mismatch)`);
    }
    for (const [i, delta] of fetched.entries()) {
      const large = deltaTooLarge(delta, start.weights, bound);
      if (large !== undefined) {
        const trainer = toHex(batch[i].receipt.trainer).slice(0, 16);
        return fail("delta_too_large", `the delta of ${trainer}: ${large}`);
      }
    }
    deltas.push(...fetched);
  }
  const redo = (carried: GptWeights | undefined) =>
    aggregateRound(
      reports.map((r, i) => ({ receipt: r.receipt, delta: deltas[i] })),
      {
        arch: outcome.arch,
        startModel: outcome.startModel,
        start: start.weights,
        momentum: carried,
        modelsDir: context.models.modelsDir,
      },
    ).catch((error) => error as Error);
  let result = await redo(momentum);
  // The coordinator drops its momentum when the round's mean with it fails the loss gate, and
  // after a round refused for its loss (review s74 verify3 F1: `_round_run.ts`); neither is in
  // the outcome, and this node never sees a refused round. So a model the carried momentum does
  // not give is redone without it: one more outer step, no evaluation. It decides nothing the
  // coordinator could not already do (a run may start without momentum), and the momentum kept
  // is the one the coordinator carries on.
  if (
    momentum !== undefined && !(result instanceof Error) && result.refused.length === 0 &&
    result.cid !== outcome.model
  ) {
    const without = await redo(undefined);
    if (!(without instanceof Error) && without.cid === outcome.model) result = without;
  }
  if (result instanceof Error) {
    // Only the round's own fault (its deltas give no finite step, none fits) is the outcome's;
    // anything else (this node failing to write the model it reproduced) ends the audit without
    // a verdict: failed, it benched an honest coordinator for this node's disk error.
    if (!(result instanceof TrainingError)) throw result;
    return fail("delta_mismatch", result.message);
  }
  if (result.refused.length > 0) {
    const { report, reason } = result.refused[0];
    return fail(
      "delta_mismatch",
      `the delta of ${toHex(report.receipt.trainer).slice(0, 16)} is refused (${reason})`,
    );
  }
  if (result.cid !== outcome.model) {
    return fail("aggregate_mismatch", `the deltas give ${result.cid}, not ${outcome.model}`);
  }
  return {
    ok: true,
    verified: true,
    dir: result.dir,
    momentum: result.momentum,
    deltas,
    convicted,
  };
}

/**
 * Why `delta` is past the round's `bound` (a value, or a tensor's root mean square), or undefined
 * (within it, or refused for its form: the outer step refuses that one as `delta_mismatch`).
 */
function deltaTooLarge(
  delta: Uint8Array,
  start: GptWeights,
  bound: DeltaLimits,
): string | undefined {
  try {
    decodeFittingDelta(delta, start, bound);
    return undefined;
  } catch (error) {
    return error instanceof TrainingError && error.code === "delta_too_large"
      ? error.message
      : undefined;
  }
}
