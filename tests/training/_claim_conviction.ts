/**
 * The ledger outcome of a true `opening_missing` claim on a `claimNode` (`_claim_node.ts`): the withholding
 * trainer convicted here — its receipt `fraud`, its locked stake slashed, nothing paid. The s59
 * and s60 tests whose takeover found the ledger down (or restarting) read it the same way.
 */
import assert from "node:assert/strict";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { type ClaimNode, TRAINER_STAKE } from "./_claim_node.ts";

/**
 * A bounded wait for the takeover's own proof (the trainer's deadline is on the wall clock) to
 * settle: until `fraud()`; past the limit it returns, and the ledger tells.
 */
export async function takeoverSettled(fraud: () => Promise<boolean>): Promise<void> {
  await eventually(fraud, "the takeover's own proof to settle", { timeoutMs: 10_000 }).catch(
    () => {},
  );
}

/**
 * After the window (closed here): `record`'s receipt `fraud` on `n` (else fail with `notFraud`),
 * and its trainer's locked stake slashed, nothing paid.
 */
export async function assertWithholderSlashed(
  n: ClaimNode,
  record: ReceiptRecord,
  trainer: Uint8Array,
  notFraud = "the withholding trainer was paid here",
): Promise<void> {
  await n.closeWindow();
  assert.equal((await n.record(record.receiptId)).status, "fraud", notFraud);
  assert.deepEqual(
    await n.account(trainer),
    {
      balance: 0,
      stake: TRAINER_STAKE - record.locked,
      locked: 0,
    } satisfies Account,
  );
}
