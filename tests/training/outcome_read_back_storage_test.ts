/**
 * Who pays when storage cannot serve a round outcome's deltas to the training validator's audit of
 * an outcome it read back at start.
 *
 * A peer's outcome kept because the ledger did not answer is read back at the next start and taken
 * through the gate and its audit again (`training/_outcome_audits.ts`); the audit redoes the outer
 * step, and so fetches the round's deltas again from storage (`training/round_audit.ts`,
 * `RoundModels.getFile`). Storage may fail that read: a file not found, an ask past its timeout,
 * or bytes that are not the file asked for. None of these is a verdict on the round's trainers:
 * none of them is slashed or charged here, and nobody is credited for an outcome this node did not
 * check. The written cost (the rule for an audit that ends without a verdict, `round_audit.ts`):
 * the outcome is left unresolved here, not kept again, and the round's honest trainers go unpaid
 * in this ledger alone. Bytes that are not the named delta read as the coordinator's false claim
 * (`delta_mismatch`: the model refused, its signer benched): this node cannot tell them from a
 * wrong file the coordinator named, as its storage verifies every chunk it serves against its id.
 * Each test reads the ledger outcome after the receipts' window closed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AskTimeoutError } from "../../actors/errors.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { onRoundLedger, type RoundLedger } from "./_round_ledger.ts";

/** What storage does with a read of one of the round's delta files. */
type DeltaRead = (file: string) => Promise<Uint8Array>;

/**
 * On a round ledger whose training validator keeps what it keeps beside the ledger
 * ({@link onRoundLedger}): a peer's outcome kept at the gate for a stopped ledger, the training
 * validator restarted, and, while storage answers every read of the round's delta files with
 * `read`, the ledger started again: the outcome read back goes through the gate and its audit
 * again. Resolves once that audit ended with the log line that matches `ended`.
 */
async function readBackWithDeltas(node: RoundLedger, read: DeltaRead, ended: string) {
  await node.stopLedger();
  await node.send(); // a peer's
  await eventually(
    () => node.log.some((l) => l.includes("kept, the ledger did not answer")),
    "the outcome kept at the gate",
  );
  await node.restartTraining();
  const deltas = new Set(node.signed.reports.map((r) => r.deltaFile));
  const getFile = RoundModels.prototype.getFile;
  let reads = 0;
  RoundModels.prototype.getFile = function (file: string) {
    if (!deltas.has(file)) return getFile.call(this, file);
    reads++;
    return read(file);
  };
  try {
    await node.startLedger();
    await eventually(() => node.log.some((l) => l.includes(ended)), "the audit read back to end");
  } finally {
    RoundModels.prototype.getFile = getFile;
  }
  assert.ok(reads > 0, "the audit read back fetched the deltas again");
}

/**
 * After the window: none of the round's trainers credited here (no receipt with a credit, nothing
 * paid), none slashed or charged (its stake whole, nothing locked), and the coordinator's stake
 * whole.
 */
async function assertNobodyPaidNorSlashed(node: RoundLedger): Promise<void> {
  // The audit's verdict (or its end without one) is in: what it credited is in the ledger by now.
  await node.stats();
  const ledger = node.ledger();
  const receipts = node.signed.reports.map((r) => r.receipt);
  for (const [i, receipt] of receipts.entries()) {
    const record = await ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: trainingReceiptId(receipt),
    });
    assert.equal(record?.credit ?? 0, 0, `trainer ${i} credited for an outcome not checked here`);
    assert.notEqual(record?.status, "fraud", `trainer ${i} slashed for storage's failure`);
    assert.deepEqual(
      await ledger.ask<Account>({ type: "account", key: receipt.trainer }),
      { balance: 0, stake: node.stake, locked: 0 } satisfies Account,
      `trainer ${i} neither paid nor slashed nor charged here`,
    );
  }
  assert.deepEqual(
    await ledger.ask<Account>({ type: "account", key: node.signed.coordinator! }),
    { balance: 0, stake: node.stake, locked: 0 } satisfies Account,
    "the coordinator neither paid nor charged",
  );
}

/** Every trainer of the round unpaid here once the window closed (the written cost). */
async function assertUnpaidAfterWindow(node: RoundLedger): Promise<void> {
  await node.closeWindow();
  for (const [i, { receipt }] of node.signed.reports.entries()) {
    const account = await node.ledger().ask<Account>({ type: "account", key: receipt.trainer });
    assert.equal(account.balance, 0, `trainer ${i} paid for an outcome not checked here`);
    assert.equal(account.stake, node.stake, `trainer ${i} slashed for storage's failure`);
  }
}

const onNode = (label: string, test: (node: RoundLedger) => Promise<void>) =>
  onRoundLedger({ name: `read-back-storage-${label}`, resumeOwnProofs: true }, test);

Deno.test("an outcome read back at start whose deltas storage no longer finds is left unresolved here: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNode("not-found", async (node) => {
    await readBackWithDeltas(
      node,
      (file) => Promise.reject(new ChunkNotFoundError(file, "this node and its peers")),
      "not adopted",
    );
    await assertNobodyPaidNorSlashed(node);
    const stats = await node.stats();
    assert.deepEqual(stats.refused, [], "no verdict on the round: its model not refused");
    assert.deepEqual(stats.outcomesRefused, [], "its coordinator not benched");
    assert.deepEqual(stats.unverified, [], "nor taken unchecked");
    await assertUnpaidAfterWindow(node);
  }));

Deno.test("an outcome read back at start whose delta reads time out in storage is left unresolved here: none of its trainers slashed, none credited, its coordinator not benched", () =>
  onNode("timeout", async (node) => {
    await readBackWithDeltas(
      node,
      () => Promise.reject(new AskTimeoutError("node/storage", 60_000)),
      "not adopted",
    );
    await assertNobodyPaidNorSlashed(node);
    const stats = await node.stats();
    assert.deepEqual(stats.refused, [], "no verdict on the round: its model not refused");
    assert.deepEqual(stats.outcomesRefused, [], "its coordinator not benched");
    assert.deepEqual(stats.unverified, [], "nor taken unchecked");
    await assertUnpaidAfterWindow(node);
  }));

Deno.test("an outcome read back at start whose delta reads return bytes that are not the file is refused here as a false claim: none of its trainers slashed, none credited", () =>
  onNode("garbage", async (node) => {
    await readBackWithDeltas(
      node,
      (file) => Promise.resolve(new TextEncoder().encode(`not the bytes of ${file}`)),
      "refused: delta_mismatch",
    );
    await assertNobodyPaidNorSlashed(node);
    const stats = await node.stats();
    assert.deepEqual(
      stats.refused.map((r) => r.reason),
      ["delta_mismatch"],
      "read as the coordinator's false claim (module doc)",
    );
    await assertUnpaidAfterWindow(node);
  }));
