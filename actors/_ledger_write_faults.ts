/**
 * The ValidatorActor's ledger writes that fail for a cause other than the ledger's refusal: a
 * disk error, a file that cannot be written (review s70: an immutable `ledger.log` had every
 * receipt answered as refused, nothing logged, `/healthz` ok). A refusal (`LedgerRejectedError`,
 * `InsufficientStakeError`: the ledger's answer about what it was handed) is the caller's to
 * handle, as before; any other failure is the machine's condition: kept in the validator's stats
 * (`ValidatorStats.ledgerWriteFault`, the `ledger_write_failed` condition on `/healthz`:
 * `ledger_conditions.ts`), logged once (`error: ledger: …`, again only for another cause), and
 * cleared, with one line, by the next write that succeeds.
 *
 * A write that fails leaves the ledger refusing every later one (`ledger_poisoned`: the log may
 * hold a torn entry) until it is reopened from disk: the same failure, by its cause, so it is not
 * logged again. A write whose entry reached the log before the history index failed (a full disk
 * between the two) fails `ledger_index_failed`: its entry is recorded and counts once, so the
 * condition never says "nothing is recorded" (review s72); its cause (`disk_full`) is the fault's.
 * Where the failure is not swallowed (a challenge's ending, a settlement), the actor crashes and
 * its supervisor reopens the ledger; where it is (the receipt intake, peers' verdicts), the
 * failure arms the actor's reopen (`_ledger_reopen.ts`: from disk, on a timer with backoff, by a
 * self-message): `/healthz`'s condition holds until that reopen succeeds
 * (`LedgerWriteFault.reopenedAt`), the fault until a write succeeds after it.
 *
 * The parts call {@link observedLedgerWrite} around a ledger write whose failure they swallow,
 * or {@link ledgerWriteFailed} with what a swallowing catch caught. Not part of the public API.
 *
 * @module
 */
import {
  InsufficientStakeError,
  LedgerError,
  LedgerRejectedError,
} from "../proof/ledger_errors.ts";
import { LEDGER_WRITE_FAILED } from "./ledger_conditions.ts";
import { LEDGER_REOPEN_FIRST_MS, LEDGER_REOPEN_MAX_MS } from "./_ledger_reopen.ts";
import type { ValidatorCore } from "./_validator_core.ts";

/** Codes of ledger errors that wrap the failure that caused them (`causeOf`). */
const WRAPPING_CODES: ReadonlySet<string> = new Set(["ledger_poisoned", "ledger_index_failed"]);

/** Whether `error` is the ledger's refusal of what it was handed (not a failure to write). */
export function isLedgerRefusal(error: unknown): boolean {
  return error instanceof LedgerRejectedError || error instanceof InsufficientStakeError;
}

/**
 * Run ledger write `write`: a failure other than a refusal is recorded ({@link ledgerWriteFailed})
 * and thrown on, as it came; a success clears a fault held.
 */
export async function observedLedgerWrite<T>(
  core: ValidatorCore,
  write: () => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await write();
  } catch (error) {
    if (!isLedgerRefusal(error)) ledgerWriteFailed(core, error);
    throw error;
  }
  ledgerWriteSucceeded(core);
  return result;
}

/**
 * A ledger write failed with `error`, not a refusal: held as the validator's ledger fault, and
 * logged unless a fault of the same cause is held already.
 */
export function ledgerWriteFailed(core: ValidatorCore, error: unknown): void {
  const cause = causeOf(error);
  const code = codeOf(cause);
  const held = core.stats.ledgerWriteFault;
  const dir = core.options.ledgerDir;
  const reason = cause instanceof Error ? cause.message : String(cause);
  core.stats.ledgerWriteFault = {
    cause: code,
    // Said as it is: the write that failed may have recorded its entry (it reached the log, then
    // the history index failed: `ledger_index_failed`), the ones refused after it did not.
    message: `the ledger in ${dir} could not write (${code}: ${reason}): receipts are refused ` +
      `${LEDGER_WRITE_FAILED}; the write that failed may still be recorded (an entry that ` +
      `reached the log before the failure counts, once), the ones refused after it are not; ` +
      `after a failed write the ledger takes none until it is reopened from disk, which it ` +
      `tries by itself every ` +
      `${seconds(LEDGER_REOPEN_FIRST_MS)} to ${seconds(LEDGER_REOPEN_MAX_MS)} (doubling): ` +
      `check the disk (space, permissions, the mount); once a write succeeds, one line says so`,
    since: held?.since ?? core.now(),
    failures: (held?.failures ?? 0) + 1,
    reopens: held?.reopens ?? 0,
  };
  // One reopen armed at a time, whatever the traffic (`_ledger_reopen.ts`).
  core.ledgerReopen().failed();
  if (held?.cause === code) return;
  core.log(`error: ledger: ${core.stats.ledgerWriteFault.message}`);
}

/** A ledger write succeeded: a fault held is cleared, with one line. */
export function ledgerWriteSucceeded(core: ValidatorCore): void {
  const held = core.stats.ledgerWriteFault;
  if (held === undefined) return;
  delete core.stats.ledgerWriteFault;
  core.ledgerReopen().succeeded();
  core.log(
    `ledger: writes to ${core.options.ledgerDir} succeed again (${held.failures} failed since ` +
      `the first, ${held.cause}; ${held.reopens} reopens from disk); receipts are recorded`,
  );
}

/** `ms` as the operator reads it (`60 s`). */
function seconds(ms: number): string {
  return `${ms / 1_000} s`;
}

/**
 * What made the write fail: a poisoned ledger's refusal names the first failure as its cause, and
 * so does an entry recorded whose index failed (`ledger_index_failed`): one fault, one cause.
 */
function causeOf(error: unknown): unknown {
  if (error instanceof LedgerError && WRAPPING_CODES.has(error.code) && error.cause) {
    return error.cause;
  }
  return error;
}

/** The OS's code of `error` (`EIO`), else its own code, else its name. */
function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && code !== "") return code;
  return error instanceof Error ? error.name : "unknown";
}
