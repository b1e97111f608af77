/**
 * An undecided challenge (`leaveUnresolved`) keeps its receipt's lock until the receipt's window
 * ends: a peer's confirmed proof can still convict the receipt inside the window, and its slash
 * must come out of stake no other receipt was recorded against (review s79, F1). Inference and
 * training receipts, each checked again after a reopen from disk.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import type { LedgerEntry } from "../../proof/ledger_entry.ts";
import { LedgerState } from "../../proof/ledger_state.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

/** A 4-token receipt at price 1 earns 4 and locks 20 × 4 (the default economics). */
const LOCK = 80;
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** Reopen the ledger at `dir`, its index lost (so it is rebuilt from the log) when `dropIndex`. */
async function reopen(
  ledger: Ledger,
  dir: string,
  owner: Identity,
  clock: { t: number },
  dropIndex = false,
): Promise<Ledger> {
  await ledger.close();
  if (dropIndex) await Deno.remove(join(dir, INDEX_FILE));
  return await Ledger.open(dir, owner, { now: () => clock.t });
}

/** The code of the refusal `fn` throws, or "ok". */
async function outcome(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

Deno.test("ledger unresolved lock: an undecided challenge keeps the lock, so a second receipt on that stake is refused and the convicted first slashes it", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const accuser = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, LOCK); // backs exactly one 4-token receipt
    await ledger.deposit(accuser.publicKey, 1_000);
    const r1 = receipt(7911, 4, worker);
    const r2 = receipt(7912, 4, worker);
    await ledger.recordReceipt(r1, assigned(r1));
    await ledger.openChallenge(receiptId(r1));
    await ledger.leaveUnresolved(receiptId(r1), "model_unavailable");
    assert.equal(ledger.receipt(receiptId(r1))?.status, "unpaid");
    ledger = await reopen(ledger, dir, owner, clock);
    // As on every ledger that did not challenge r1: its lock takes all the stake.
    assert.equal(
      await outcome(() => ledger.recordReceipt(r2, assigned(r2))),
      "insufficient_stake",
    );
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: LOCK, locked: LOCK });
    await ledger.settleFraud({
      receiptId: receiptId(r1),
      receipt: r1,
      fraudProofHash: "b1".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.deepEqual(ledger.account(accuser.publicKey), {
      balance: LOCK / 2,
      stake: 1_000,
      locked: 0,
    });
    ledger = await reopen(ledger, dir, owner, clock, true);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.equal(ledger.receipt(receiptId(r1))?.status, "fraud");
    await ledger.close();
  }));

Deno.test("ledger unresolved lock: an undecided receipt's lock is released unpaid when its window ends, and after a reopen", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, LOCK);
    const r1 = receipt(7913, 4, worker);
    const r2 = receipt(7914, 4, worker);
    await ledger.recordReceipt(r1, assigned(r1));
    await ledger.openChallenge(receiptId(r1));
    await ledger.leaveUnresolved(receiptId(r1), "model_unavailable");
    // Restored from a checkpoint that holds it open, unpaid, then from the log alone.
    await ledger.checkpoint();
    ledger = await reopen(ledger, dir, owner, clock);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: LOCK, locked: LOCK });
    ledger = await reopen(ledger, dir, owner, clock, true);
    clock.t += WINDOW + 1;
    // Released, not paid: not among the receipts finalized.
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.equal(ledger.receipt(receiptId(r1))?.status, "unpaid");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: LOCK, locked: 0 });
    ledger = await reopen(ledger, dir, owner, clock, true);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: LOCK, locked: 0 });
    assert.equal(ledger.receipt(receiptId(r1))?.status, "unpaid");
    // The stake is free again: the next receipt is backed.
    assert.equal(await outcome(() => ledger.recordReceipt(r2, assigned(r2))), "ok");
    await ledger.close();
  }));

Deno.test("ledger unresolved lock: a training receipt's undecided challenge keeps its lock until its window ends", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const trainer = Identity.generate();
    const accuser = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(accuser.publicKey, 1_000);
    const t1 = trainingReceipt(trainer, 1, 2);
    const t2 = trainingReceipt(trainer, 2, 2);
    const terms = (round: number) => ({ round, startModel: START, steps: 2 });
    // Stake for exactly one such receipt: learn its lock on a throwaway ledger first.
    await withLedgerDir(async (probeDir) => {
      const probe = await Ledger.open(probeDir, owner, { now: () => clock.t });
      await probe.deposit(trainer.publicKey, 1e9);
      await probe.recordTrainingReceipt(t1, terms(1));
      await ledger.deposit(trainer.publicKey, probe.receipt(trainingReceiptId(t1))!.locked);
      await probe.close();
    });
    const lock = ledger.account(trainer.publicKey).stake;
    await ledger.recordTrainingReceipt(t1, terms(1));
    await ledger.openChallenge(trainingReceiptId(t1));
    await ledger.leaveUnresolved(trainingReceiptId(t1), "checkpoint_unavailable");
    ledger = await reopen(ledger, dir, owner, clock, true);
    assert.equal(
      await outcome(() => ledger.recordTrainingReceipt(t2, terms(2))),
      "insufficient_stake",
    );
    assert.deepEqual(ledger.account(trainer.publicKey), { balance: 0, stake: lock, locked: lock });
    await ledger.settleTrainingFraud({
      receiptId: trainingReceiptId(t1),
      trainingReceipt: t1,
      fraudProofHash: "b3".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "step_mismatch",
    });
    assert.deepEqual(ledger.account(trainer.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.equal(ledger.account(accuser.publicKey).balance, lock / 2);
    ledger = await reopen(ledger, dir, owner, clock, true);
    assert.deepEqual(ledger.account(trainer.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.equal(ledger.account(accuser.publicKey).balance, lock / 2);
    await ledger.close();
  }));

Deno.test("ledger unresolved lock: an `unresolved` entry written before the lock was kept (no `held`) still releases it at once when replayed", () => {
  const state = new LedgerState();
  const entry = (seq: number, kind: LedgerEntry["kind"], body: Record<string, unknown>) =>
    ({
      seq,
      prev: "",
      at: 0,
      kind,
      body,
      signer: new Uint8Array(),
      sig: new Uint8Array(),
    }) as LedgerEntry;
  state.apply(entry(1, "stake", { key: "aa", amount: LOCK }));
  state.apply(
    entry(2, "receipt", {
      receiptId: "r1",
      worker: "aa",
      credit: 4,
      locked: LOCK,
      pendingUntil: 5_000,
    }),
  );
  state.apply(entry(3, "challenge", { receiptId: "r1" }));
  state.apply(entry(4, "unresolved", { receiptId: "r1", reason: "model_unavailable" }));
  assert.deepEqual(state.account("aa"), { balance: 0, stake: LOCK, locked: 0 });
  assert.equal(state.open("r1"), undefined);
  assert.deepEqual(state.takeDue(10_000), []);
});
