/**
 * Review s62 (red team of commit 73eb603): a proof about a receipt this ledger never recorded,
 * because another worker's receipt holds its job, settles against the receipt it carries. Any key
 * can sign a receipt for a job recorded here, a key with no stake too: the ledger would never
 * record that receipt (its worker has no stake to lock), yet it took it as a fraud proof's
 * subject, so every proof about one was checked (a forward pass each) and settled, slashing
 * nothing, rewarding nothing, costing its accuser nothing, and writing a ledger entry and index
 * rows. One staked accuser and free keys bought any number of re-executions. Now such a receipt
 * is a subject only where it could have been recorded: its worker has the free stake to lock it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Ledger } from "../../proof/ledger.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  announce,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./review_s62_convergence_world.ts";

const { w1, w2, v1 } = parties;

const open = (dir: string, clock: { t: number }) =>
  Ledger.open(dir, seeded(90), { now: () => clock.t, economics: { challengeWindowMs: WINDOW } });

Deno.test("a receipt of a key with no stake for a job another receipt holds is no fraud proof's subject: nothing to check, nothing written", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const held = receipt(6290, 7, w1);
    for (
      const e of [pledge("w1", w1, 100_000), pledge("v1", v1, 1_000), announce("w1", held, true)]
    ) {
      assert.equal(await e.deliver(ledger), undefined, e.name);
    }
    const before = ledger.length;
    // Free keys, none pledged, each signing a made-up receipt for the job w1's receipt holds.
    for (let seed = 40; seed < 45; seed++) {
      const free = seeded(seed);
      const madeUp = receipt(6290, 1_000, free);
      assert.equal(ledger.fraudSubject(madeUp), undefined, `key ${seed}: worth no check`);
      const byV1 = proof(`v1 on key ${seed}`, signedProof(madeUp, 6290, v1), madeUp, v1, true);
      assert.equal(await byV1.deliver(ledger), "unknown_receipt", `key ${seed}`);
      assert.equal(ledger.receipt(receiptId(madeUp)), undefined);
    }
    assert.equal(ledger.length, before, "no entry written for them");
    assert.deepEqual(ledger.account(v1.publicKey), { balance: 0, stake: 1_000, locked: 0 });
    await ledger.close();
  });
});

Deno.test("a staked worker's receipt for a job another receipt holds is still a subject, and its conviction slashes it once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const held = receipt(6291, 7, w1);
    const second = receipt(6291, 7, w2);
    for (
      const e of [
        pledge("w1", w1, 100_000),
        pledge("w2", w2, 100_000),
        pledge("v1", v1, 1_000),
        announce("w1", held, true),
      ]
    ) assert.equal(await e.deliver(ledger), undefined, e.name);
    assert.notEqual(ledger.fraudSubject(second), undefined);
    const byV1 = proof("v1 on w2", signedProof(second, 6291, v1), second, v1, true);
    assert.equal(await byV1.deliver(ledger), undefined);
    assert.deepEqual(ledger.account(w2.publicKey), { balance: 0, stake: 100_000 - 140, locked: 0 });
    assert.deepEqual(ledger.account(v1.publicKey), { balance: 70, stake: 1_000, locked: 0 });
    await ledger.close();
  });
});
