/**
 * A cancelled pair's `reclaimed` (the n−k a finished receipt paid final before its cancelled half
 * came) taken from a worker whose account was forfeited (pledge equivocation) ends at 0 in either
 * order: `#move` holds a forfeited account at 0 after every change (review s81 vcancel, its note
 * on `proof/ledger_state.ts`; it is not left negative). Entries applied to the state directly.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LedgerState } from "../../proof/ledger_state.ts";
import type { LedgerEntry, LedgerEntryKind } from "../../proof/ledger_entry.ts";

const WORKER = "ab".repeat(32);

function entry(kind: LedgerEntryKind, body: Record<string, unknown>): LedgerEntry {
  return {
    seq: 0,
    prev: "0".repeat(64),
    at: 0,
    kind,
    body,
    signer: new Uint8Array(32),
  } as unknown as LedgerEntry;
}

for (const forfeitFirst of [true, false]) {
  Deno.test(`a reclaim from a forfeited account ends at 0 (${forfeitFirst ? "forfeited, then reclaimed" : "reclaimed, then forfeited"})`, () => {
    const state = new LedgerState();
    state.apply(entry("training_late_credit", { receiptId: "paid", worker: WORKER, credit: 10 }));
    assert.equal(state.account(WORKER).balance, 10);
    const forfeit = () =>
      state.apply(entry("pledge_equivocation", {
        key: WORKER,
        amount: 5,
        pledge: { v: 1, issuedAt: 1, sig: new Uint8Array(64) },
      }));
    // The finished half closed already: its record is gone, the n−k taken back.
    const reclaim = () =>
      state.apply(entry("cancelled_pair", { receiptId: "closed", worker: WORKER, reclaimed: 3 }));
    if (forfeitFirst) {
      forfeit();
      reclaim();
    } else {
      reclaim();
      assert.equal(state.account(WORKER).balance, 7);
      forfeit();
    }
    assert.deepEqual({ ...state.account(WORKER) }, { balance: 0, stake: 0, locked: 0 });
  });
}
