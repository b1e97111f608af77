/**
 * A disk that fills up under a ledger, for the ledger's tests and the validator's
 * (`tests/actors/ledger_write_failure_test.ts`): appends to its log write a torn entry and fail.
 *
 * @module
 */
import { LedgerLog } from "../../proof/ledger_log.ts";

/**
 * A disk that fills up under the ledger in `under`: until the returned undo is called, every
 * append to a log there writes half its frame (a torn entry, as a full disk leaves one) and
 * then throws `ENOSPC`; logs elsewhere write as usual.
 */
export function fillDiskUnder(under: string): () => void {
  const append = LedgerLog.prototype.append;
  LedgerLog.prototype.append = async function (this: LedgerLog, frame: Uint8Array) {
    if (!this.path.startsWith(under)) return await append.call(this, frame);
    await append.call(this, frame.subarray(0, frame.length >> 1));
    const error = new Error("No space left on device (os error 28) (simulated)");
    throw Object.assign(error, { code: "ENOSPC" });
  };
  return () => {
    LedgerLog.prototype.append = append;
  };
}
