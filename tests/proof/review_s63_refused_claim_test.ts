/**
 * Stop 63: a receipt refused `job_already_recorded` because another worker's receipt holds its
 * job is kept as its worker's claim for the job (an `unrecorded_claim` entry), so that worker's
 * later, different receipt for the job is its equivocation in every order
 * (`review_s62_redteam_unrecorded_variant_test.ts`). What the entry must not allow: a copier
 * writing entries for nothing (one per job and staked worker, only while the job's receipt is
 * open, only for a worker with the free stake to lock it), a refused receipt touching the worker
 * that holds the job (nothing locked, nothing credited, the holder paid as before), and an index
 * built before it answering without it (format 5: rebuilt once from the log).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import { parties, seeded, WINDOW } from "./review_s62_convergence_world.ts";

const { w1, w3, copier } = parties;
/** w1's honest, assigned receipt holds the job (7 tokens: credit 7, lock 140). */
const held = receipt(6301, 7, w1);
/** The copier's copy of it, bare (the same claim, under its own key: lock 140). */
const copy = receipt(6301, 7, copier);
/** The same claim re-signed by the copier (other fingerprints' last bits). */
const copyAgain = resigned(
  copy,
  { commitment: { ...copy.commitment, root: "45".repeat(32) } },
  copier,
);
/** Another claim of the copier's for the job (100 tokens: lock 2,000). */
const copyBig = resigned(copy, { tokenCount: 100 }, copier);

/** A fresh ledger on the test clock with w1 and the copier pledged, and w1's receipt recorded. */
async function withHeldJob(run: (ledger: Ledger, clock: { t: number }) => Promise<void>) {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(91), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    await ledger.recordPledge(signStakePledge(w1, 100_000, 0));
    await ledger.recordPledge(signStakePledge(copier, 10_000, 0));
    await ledger.recordReceipt(held, assigned(held));
    await run(ledger, clock);
    await ledger.close();
  });
}

/** `ledger.recordReceipt(r)` refused: its code. */
async function refusedCode(ledger: Ledger, r: Receipt): Promise<string | undefined> {
  try {
    await ledger.recordReceipt(r);
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

Deno.test("refused claim: a staked copier's refused receipt writes one entry, locks and credits nothing, and its later other claim for the job is equivocation", async () => {
  await withHeldJob(async (ledger, clock) => {
    const before = ledger.length;
    // Asked first (as the ValidatorActor does), it is refused and nothing is written.
    assert.equal(ledger.receiptRefusal(copy), "job_already_recorded");
    assert.equal(ledger.length, before);
    // Recorded, it is refused all the same (the InferenceActor keeps its own on that code),
    // its claim kept in one entry; no stake locked, no record, nothing credited.
    assert.equal(await refusedCode(ledger, copy), "job_already_recorded");
    assert.equal(ledger.length, before + 1);
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    assert.equal(ledger.receipt(receiptId(copy)), undefined);
    // The same claim signed again: refused, nothing written.
    assert.equal(await refusedCode(ledger, copyAgain), "job_already_recorded");
    assert.equal(ledger.length, before + 1);
    // Another claim: equivocation, the larger claim's lock (2,000) cut from the copier.
    assert.equal(ledger.receiptRefusal(copyBig), "equivocation");
    assert.equal(await refusedCode(ledger, copyBig), "equivocation");
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 8_000, locked: 0 });
    assert.equal(ledger.convicted(copier.publicKey), true);
    // Slashed once for the job: a third claim writes nothing.
    const length = ledger.length;
    const third = resigned(copy, { tokenCount: 200 }, copier);
    assert.equal(await refusedCode(ledger, third), "job_already_recorded");
    assert.equal(ledger.length, length);
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 8_000, locked: 0 });
    // The worker holding the job is paid as if none of this had come.
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(w1.publicKey), { balance: 7, stake: 100_000, locked: 0 });
    assert.equal(ledger.convicted(w1.publicKey), false);
  });
});

Deno.test("refused claim: nothing is written for a key without stake, or once the job's receipt has closed; a claim locking more than the whole stake is kept, counted at the stake", async () => {
  await withHeldJob(async (ledger, clock) => {
    const before = ledger.length;
    // No stake at all.
    assert.equal(await refusedCode(ledger, receipt(6301, 7, w3)), "job_already_recorded");
    assert.equal(ledger.length, before);
    // Staked, but for less than this receipt would lock (100 tokens: 2,000 > 1,000): kept since
    // stop 64, counted at the stake (its slash is the stake at most), as where it came before the
    // job's receipt (refused `insufficient_stake`, kept: `review_s64_stake_refused_claim_test.ts`);
    // before, it was kept in that order and not in this one. The stake then keeps no other claim.
    await ledger.recordPledge(signStakePledge(w3, 1_000, 0));
    const staked = ledger.length;
    assert.equal(await refusedCode(ledger, receipt(6301, 100, w3)), "job_already_recorded");
    assert.equal(ledger.length, staked + 1);
    // The job's receipt final: its window is over, nothing more is kept for the job.
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const closed = ledger.length;
    assert.deepEqual(ledger.account(w3.publicKey), { balance: 0, stake: 1_000, locked: 0 });
    assert.equal(await refusedCode(ledger, copy), "job_already_recorded");
    assert.equal(ledger.length, closed);
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 10_000, locked: 0 });
  });
});

Deno.test("refused claim: an index of format 4 (built before the entry existed) is rebuilt from the log", async () => {
  await withLedgerDir(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: WINDOW } };
    let ledger = await Ledger.open(dir, seeded(92), options);
    await ledger.recordPledge(signStakePledge(w1, 100_000, 0));
    await ledger.recordPledge(signStakePledge(copier, 10_000, 0));
    await ledger.recordReceipt(held, assigned(held));
    assert.equal(await refusedCode(ledger, copy), "job_already_recorded");
    await ledger.close();
    // As an index of format 4 would have it: no row for the kept claim, no table of the locks.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec(
      "DELETE FROM unrecorded_claims; DROP TABLE refused_claims; UPDATE meta SET v = 4 WHERE k = 'format';",
    );
    db.close();
    ledger = await Ledger.open(dir, seeded(92), options);
    assert.equal(await refusedCode(ledger, copyBig), "equivocation");
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 8_000, locked: 0 });
    await ledger.close();
  });
});

Deno.test("refused claim: a proof about the variant of a receipt the job was taken from slashes its worker once, and leaves the holder's own equivocation to be slashed", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(93), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    const { v2 } = parties;
    for (const [who, amount] of [[w1, 100_000], [copier, 10_000], [v2, 1_000]] as const) {
      await ledger.recordPledge(signStakePledge(who, amount, 0));
    }
    // The copier's copy first (bare), then w1's assigned receipt takes the job from it.
    assert.equal(await refusedCode(ledger, copy), undefined);
    await ledger.recordReceipt(held, assigned(held));
    // A confirmed proof about the copier's other claim (100 tokens: lock 2,000), never seen here.
    await ledger.settleFraud({
      receiptId: receiptId(copyBig),
      receipt: copyBig,
      fraudProofHash: "ab".repeat(32),
      validator: v2.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 8_000, locked: 0 });
    assert.deepEqual(ledger.account(v2.publicKey), { balance: 1_000, stake: 1_000, locked: 0 });
    // The other claim coming now is settled already: not slashed again.
    assert.equal(await refusedCode(ledger, copyBig), "job_already_recorded");
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 8_000, locked: 0 });
    // w1's own second claim for the job is still its equivocation (the larger lock: 2,000).
    assert.equal(
      await refusedCode(ledger, resigned(held, { tokenCount: 100 }, w1)),
      "equivocation",
    );
    assert.deepEqual(ledger.account(w1.publicKey), { balance: 0, stake: 98_000, locked: 0 });
    await ledger.close();
  });
});

Deno.test("refused claim: the claims a key gets kept inside their windows lock, together, no more than its free stake (a copier cannot keep one for every job for one stake)", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(94), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    await ledger.recordPledge(signStakePledge(w1, 100_000, 0));
    // Stake for two copies' locks (140 each), not three.
    await ledger.recordPledge(signStakePledge(copier, 300, 0));
    const copyOf = async (n: number) => {
      const worker = receipt(n, 7, w1);
      await ledger.recordReceipt(worker, assigned(worker));
      const before = ledger.length;
      assert.equal(await refusedCode(ledger, receipt(n, 7, copier)), "job_already_recorded");
      return ledger.length - before;
    };
    assert.equal(await copyOf(6311), 1);
    assert.equal(await copyOf(6312), 1);
    assert.equal(await copyOf(6313), 0, "a third kept claim would lock 420 of 300");
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 300, locked: 0 });
    // Once those jobs' windows are over, its stake keeps claims for new jobs again.
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.equal(await copyOf(6314), 1);
    await ledger.close();
  });
});
