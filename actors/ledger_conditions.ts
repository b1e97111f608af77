/**
 * The validator's ledger as conditions of the node, for `/healthz` (`server/health_routes.ts`),
 * as the prover's proof store is (`proofStoreConditions` in `prover_actor.ts`): a ledger write
 * that failed for a cause other than the ledger's refusal (a disk error, a file that cannot be
 * written: `ValidatorStats.ledgerWriteFault`, `_ledger_write_faults.ts`) is the `degraded`
 * condition `ledger_write_failed` until the ledger is reopened or a write succeeds — the node
 * still serves jobs, but its ledger records none of their receipts; the validator reopens the
 * ledger from disk by itself on a backoff timer (`_ledger_reopen.ts`), so the condition clears
 * without a restart once the disk is fixed: when that reopen succeeds, whether or not a receipt
 * comes. A validator that does not answer within 2 s (wedged, or down between a crash and its
 * restart) is one condition too.
 *
 * @module
 */
import type { ActorRef } from "./actor_ref.ts";
import {
  ledgerWritesFailing,
  type ValidatorMessage,
  type ValidatorStats,
} from "./validator_messages.ts";
import { HEALTH_ASK_TIMEOUT_MS, unansweredCondition } from "./_unanswered_condition.ts";
import { PendingAsks } from "./pending_asks.ts";

/** The stable code of a ledger that cannot write (the receipts it loses are refused with it). */
export const LEDGER_WRITE_FAILED = "ledger_write_failed";

/** A condition of the node's ledger (see `server/health_routes.ts`'s `HealthCondition`). */
export interface LedgerCondition {
  /** `ledger`; `validator` when the validator itself did not answer. */
  component: "ledger" | "validator";
  /** Always `degraded`: the node serves, and records nothing in its ledger meanwhile. */
  status: "degraded";
  /** `ledger_write_failed`; the ask's error code when the validator did not answer. */
  code: string;
  /** The ledger's directory, the cause, and what to do. */
  message: string;
  /** Unix ms (the ledger's clock) of the first failure since a write last succeeded. */
  since: number;
}

/**
 * The ledger's faults as conditions of the node, for `/healthz`: none while it writes or the node
 * runs no validator. `asks`, kept by the caller across checks, sends no new ask while the last is
 * unanswered (health probes come every second, and a validator busy with a long challenge would
 * get one `stats` more per probe in front of its work: `pending_asks.ts`, review verify4 F3).
 *
 * @example
 * ```ts ignore
 * const conditions = () => ledgerConditions(system.lookup<ValidatorMessage>("node/validator"));
 * ```
 */
export async function ledgerConditions(
  validator: ActorRef<ValidatorMessage> | undefined,
  asks: PendingAsks = new PendingAsks(),
): Promise<LedgerCondition[]> {
  if (validator === undefined) return [];
  let stats: ValidatorStats;
  try {
    stats = await asks.ask<ValidatorMessage, ValidatorStats>(
      validator,
      "stats",
      { type: "stats" },
      HEALTH_ASK_TIMEOUT_MS,
    );
  } catch (error) {
    return [unansweredCondition("validator", "the validator", error, Date.now())];
  }
  const fault = stats.ledgerWriteFault;
  // Reopened from disk since the failure (`_ledger_reopen.ts`): the ledger takes writes again, so
  // the node is not degraded for it; waiting for the next write kept a node whose disk was fixed
  // `degraded` for as long as no receipt came (review s72). A write that fails again raises it.
  if (!ledgerWritesFailing(fault)) return [];
  return [{
    component: "ledger",
    status: "degraded",
    code: LEDGER_WRITE_FAILED,
    message: fault.message,
    since: fault.since,
  }];
}
