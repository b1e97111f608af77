/**
 * `Ledger.settleSteering`: what a steering conviction does to the steerer's receipts, stake and
 * credit, and to everyone else's accounts, also with more pending receipts than one entry lists.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Account, Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import {
  assigned,
  copyDir,
  frameOffsets,
  receipt,
  requester,
  withLedgerDir,
  withoutFsync,
} from "./_ledger_fixtures.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { MAX_ENTRY_BYTES } from "../../proof/ledger_entry.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";

// `Ledger.settleSteering`: a validator's steering conviction treats the receipts in its evidence as
// caught cheats: pending ones are not paid, paid ones are clawed back, and each is slashed `m ×`
// its credit — from the worker's whole stake (locks included, never below zero), once per worker,
// counting only that worker's receipts that are or will be paid. It survives a reopen.

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a steering conviction claws back (1 + m) × the paid evidence's credit and m × the pending evidence's, leaves the pending unpaid, once, and the cut survives a reopen", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const other = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(steerer.publicKey, 1_000_000);
    await ledger.deposit(other.publicKey, 1_000_000);
    const paid = receipt(1, 10, steerer);
    const pending = receipt(2, 7, steerer);
    const unpaid = receipt(3, 5, steerer);
    const someoneElses = receipt(4, 9, other);
    for (const r of [paid, unpaid, someoneElses]) await ledger.recordReceipt(r, assigned(r));
    const [paidId, pendingId, unpaidId, otherId] = [paid, pending, unpaid, someoneElses].map(
      receiptId,
    );
    // `paid` finalizes; `unpaid` is left undecided (not paid); `pending`, recorded after, is
    // still in its window.
    await ledger.leaveUnresolved(unpaidId, "model_unavailable");
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    await ledger.recordReceipt(pending, assigned(pending));
    assert.equal(ledger.receipt(paidId)!.status, "final");
    assert.equal(ledger.receipt(pendingId)!.status, "pending");
    assert.equal(ledger.receipt(unpaidId)!.status, "unpaid");
    const creditOf = (id: string) => ledger.receipt(id)!.credit;
    const before = ledger.account(steerer.publicKey);
    const pendingCredit = creditOf(pendingId);
    const expected = (1 + M) * creditOf(paidId) + M * pendingCredit;
    const cut = await ledger.settleSteering(steerer.publicKey, [
      paidId,
      pendingId,
      unpaidId,
      otherId,
      "no-such-receipt",
      paidId, // listed twice: counted once
    ]);
    assert.ok(creditOf(paidId) > 0 && pendingCredit > 0);
    assert.equal(cut, expected);
    assert.equal(creditOf(pendingId), 0, "the pending evidence is not paid");
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    assert.equal(ledger.account(other.publicKey).stake, 1_000_000, "another worker's receipt");
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
    ledger = await Ledger.open(dir, me, options);
    assert.equal(ledger.account(steerer.publicKey).stake, before.stake - cut);
    assert.equal(ledger.receipt(pendingId)!.credit, 0, "unpaid after a reopen too");
    // When its window closes the pending receipt pays nothing.
    const balance = ledger.account(steerer.publicKey).balance;
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.receipt(pendingId)!.status, "final");
    assert.equal(ledger.account(steerer.publicKey).balance, balance);
    await assert.rejects(
      () => ledger.settleSteering(steerer.publicKey, [paidId]),
      (e) => e instanceof LedgerRejectedError && e.code === "already_settled",
    );
    await ledger.close();
  });
});

Deno.test("a steerer that keeps its stake at its locks is not convicted for free: the cut takes locked stake too, its pending evidence is not paid, and a later slash stops at zero", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const ledger = await Ledger.open(dir, me, { now: () => clock.t });
    const evidence = [receipt(5, 40, steerer), receipt(6, 40, steerer), receipt(7, 40, steerer)];
    // Exactly the stake the three receipts lock: nothing free.
    await ledger.deposit(steerer.publicKey, 3 * M * 40);
    for (const r of evidence) await ledger.recordReceipt(r, assigned(r));
    const before = ledger.account(steerer.publicKey);
    assert.equal(before.stake - before.locked, 0, "nothing free");
    const credits = evidence.map((r) => ledger.receipt(receiptId(r))!.credit);
    const owed = M * credits.reduce((a, b) => a + b, 0);
    const cut = await ledger.settleSteering(steerer.publicKey, evidence.map(receiptId));
    assert.equal(cut, Math.min(before.stake, owed));
    assert.ok(cut > 0, "convicted at a cost");
    const after = ledger.account(steerer.publicKey);
    assert.equal(after.stake, before.stake - cut);
    // A fraud proof later settled on one of them slashes what is left, never below zero.
    await ledger.settleFraud({
      receiptId: receiptId(evidence[0]),
      fraudProofHash: "ab".repeat(32),
      validator: me.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.ok(ledger.account(steerer.publicKey).stake >= 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(steerer.publicKey).balance, 0, "none of the evidence paid");
    await ledger.close();
  });
});

Deno.test("after a steering cut took the stake, a fraud proof on another open receipt slashes what is left and rewards only a share of that: no credit is minted", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const other = Identity.generate(); // another validator, whose fraud proof reaches this ledger
    const steerer = Identity.generate();
    const ledger = await Ledger.open(dir, me, { now: () => clock.t });
    await ledger.deposit(other.publicKey, 1_000);
    const [a, b, x] = [
      receipt(10, 40, steerer),
      receipt(11, 40, steerer),
      receipt(12, 40, steerer),
    ];
    await ledger.deposit(steerer.publicKey, 2 * M * 40); // two receipts' locks, nothing more
    await ledger.recordReceipt(a, assigned(a));
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    for (const r of [b, x]) await ledger.recordReceipt(r, assigned(r));
    const total = () =>
      [steerer, other, me].reduce((sum, who) => {
        const account = ledger.account(who.publicKey);
        return sum + account.stake + account.balance;
      }, 0);
    await ledger.settleSteering(steerer.publicKey, [receiptId(a), receiptId(b)]);
    assert.equal(ledger.account(steerer.publicKey).stake, 0, "the conviction took it all");
    const before = total();
    const entry = await ledger.settleFraud({
      receiptId: receiptId(x),
      fraudProofHash: "cd".repeat(32),
      validator: other.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.deepEqual([entry.body.slashed, entry.body.reward], [0, 0]);
    assert.equal(ledger.account(other.publicKey).balance, 0);
    assert.ok(total() <= before, `credit minted: ${before} → ${total()}`);
    await ledger.close();
  });
});

Deno.test("steering evidence recorded before its assignment is not paid when the assignment comes after the conviction, and was slashed its lock", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(steerer.publicKey, 1_000_000);
    const r = receipt(13, 40, steerer);
    await ledger.recordReceipt(r); // the worker's own announcement came first: credit 0
    const id = receiptId(r);
    const locked = ledger.receipt(id)!.locked;
    assert.ok(locked > 0);
    const cut = await ledger.settleSteering(steerer.publicKey, [id]);
    assert.equal(cut, locked, "slashed as a caught cheat's, credited yet or not");
    // Across a reopen too: the index remembers the evidence.
    await ledger.close();
    ledger = await Ledger.open(dir, me, options);
    await ledger.recordReceipt(r, assigned(r)); // the requester's announcement, later
    assert.equal(ledger.receipt(id)!.credit, 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    assert.equal(ledger.account(steerer.publicKey).balance, 0, "the evidence was paid");
    await ledger.close();
  });
});

// A steering conviction whose evidence holds more pending receipts than one ledger entry can list.
// `Ledger.settleSteering` listed every pending evidence receipt in one `steering` entry
// (`uncredited`, 66 bytes each, beside the paid ones it lists): past about 11,800 the entry was
// over `MAX_ENTRY_BYTES`, refused (`entry_too_large`), so the conviction was never settled: the
// steerer kept its stake and was paid every pending receipt when its window closed, and the
// ValidatorActor, which settles a conviction at its start (`_steering_settlement.ts` rethrows the
// refusal), failed every start. Settled now in several entries, each within the bound, and a crash
// between them is finished by the next settlement with the same outcome.

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/**
 * What a settled conviction must leave, live or reopened: the cut taken once, every pending
 * evidence receipt unpaid (its late assignment too), nothing paid at the window's end.
 */
async function assertSettled(
  ledger: Ledger,
  steerer: Identity,
  expected: { stake: number; locked: number },
  ids: string[],
  late: Receipt[],
  clock: { t: number },
): Promise<void> {
  assert.deepEqual(ledger.account(steerer.publicKey), { balance: 0, ...expected });
  assert.equal(ledger.steeringSettled(steerer.publicKey), true);
  const credited = ids.filter((id) => ledger.receipt(id)!.credit !== 0);
  assert.deepEqual(credited.slice(0, 3), [], `${credited.length} pending evidence credited`);
  // The requester's announcement comes after the conviction: still not paid.
  for (const r of late) await ledger.recordReceipt(r, assigned(r));
  for (const r of late) assert.equal(ledger.receipt(receiptId(r))!.credit, 0);
  await assert.rejects(() => ledger.settleSteering(steerer.publicKey, ids), {
    code: "already_settled",
  });
  clock.t += WINDOW + 1;
  await withoutFsync(() => ledger.finalizeDue());
  assert.equal(ledger.receipt(ids[0])!.status, "final");
  assert.equal(ledger.receipt(ids.at(-1)!)!.status, "final");
  assert.equal(ledger.account(steerer.publicKey).balance, 0, "no evidence receipt paid");
  assert.equal(ledger.account(steerer.publicKey).stake, expected.stake);
  // Each lock released once: freed at the conviction, not again at its window's end.
  assert.equal(ledger.account(steerer.publicKey).locked, 0);
}

Deno.test("a steering conviction over more pending receipts than one entry can list is settled: none of them paid, the cut taken once, the same after a reopen and an index rebuild", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    // No checkpoints: the crash image below is the log cut at an entry's end.
    const options = { now: () => clock.t, checkpointEvery: 0 };
    // Pending receipts whose verdicts passed over an end: with the 4,096 listed by id, this
    // many put the one `steering` entry of before over MAX_ENTRY_BYTES.
    const count = Math.ceil(MAX_ENTRY_BYTES / 66) - 4096 + 300;
    let ledger = await Ledger.open(dir, me, options);
    const ids: string[] = [];
    // The last few are announced without their assignment; it comes after the conviction.
    const late: Receipt[] = [];
    await withoutFsync(async () => {
      await ledger.deposit(steerer.publicKey, 1e12);
      for (let n = 0; n < count; n++) {
        const r = receipt(20_000 + n, 1, steerer);
        const unassigned = n >= count - 3;
        if (unassigned) late.push(r);
        ids.push((await ledger.recordReceipt(r, unassigned ? {} : assigned(r))).receiptId);
      }
    });
    const before = ledger.account(steerer.publicKey);
    const locked = ids.reduce((sum, id) => sum + ledger.receipt(id)!.locked, 0);
    assert.equal(locked, count * DEFAULT_ECONOMICS.defaultTokenPrice * M);
    assert.equal(before.locked, locked);
    const cut = await withoutFsync(() => ledger.settleSteering(steerer.publicKey, ids));
    assert.equal(cut, locked, "m × each pending receipt's reward");
    // The cut took every pending lock: released at the conviction, not at the windows' end
    // (stop 80: counted locked as well, the steerer's free stake was short by all of them).
    const expected = { stake: before.stake - cut, locked: 0 };
    // Each entry readable at the next open.
    for (const entry of ledger.entries()) {
      assert.ok(JSON.stringify(entry.body).length < MAX_ENTRY_BYTES, entry.kind);
    }
    await ledger.close();
    const image = await copyDir(dir);
    try {
      // Reopened, and with the history index rebuilt from the log.
      ledger = await Ledger.open(dir, me, options);
      await ledger.close();
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(`${dir}/index.sqlite${suffix}`).catch(() => {});
      }
      ledger = await Ledger.open(dir, me, options);
      const t0 = clock.t;
      try {
        await assertSettled(ledger, steerer, expected, ids, late, clock);
      } finally {
        await ledger.close();
      }
      const report = await verifyLedger(dir, { owner: me.publicKey });
      assert.equal(report.ok, true, JSON.stringify(report.damage));

      // A crash after the conviction's first entry, before its last: the log ends there (the
      // index rebuilt from it). The next settlement (the ValidatorActor's start) finishes it:
      // the same outcome as uninterrupted.
      const bytes = await Deno.readFile(`${image}/ledger.log`);
      const offsets = [...frameOffsets(bytes), bytes.length];
      const kinds = offsets.slice(0, -1).map((o, i) =>
        (decodeCbor(bytes.subarray(o + 4, offsets[i + 1])) as { kind: string }).kind
      );
      const first = kinds.indexOf("steering");
      assert.ok(first >= 0 && kinds.lastIndexOf("steering") > first, "settled in several entries");
      await Deno.truncate(`${image}/ledger.log`, offsets[first + 1]);
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(`${image}/index.sqlite${suffix}`).catch(() => {});
      }
      clock.t = t0;
      ledger = await Ledger.open(image, me, options);
      try {
        assert.equal(ledger.steeringSettled(steerer.publicKey), false);
        assert.equal(
          await withoutFsync(() => ledger.settleSteering(steerer.publicKey, ids)),
          cut,
        );
        await assertSettled(ledger, steerer, expected, ids, late, clock);
      } finally {
        await ledger.close();
      }
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

// The "invalid / steering" row of docs/PROOF.md's "challenge ends" table says the validator gets
// nothing — the steering cut and the convicting receipt's fault are burned, as a withheld proof's
// slash is. The first tests here pin the steerer's stake and credit; this pins everyone's accounts:
// the cut leaves the ledger (no key's balance or stake grows), also after a reopen.

const STAKE = 1_000_000;

Deno.test("a steering conviction and the fault of the receipt that completes it reward no one: the owner, the requester and the other workers keep their accounts, and the cut is burned", () =>
  withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const steerer = Identity.generate();
    const other = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, options);
    for (const key of [owner, steerer, other]) await ledger.deposit(key.publicKey, STAKE);
    const paid = receipt(501, 10, steerer);
    const pending = receipt(502, 7, steerer);
    const convicting = receipt(503, 6, steerer);
    const honest = receipt(504, 9, other);
    for (const r of [paid, honest]) await ledger.recordReceipt(r, assigned(r));
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    for (const r of [pending, convicting]) await ledger.recordReceipt(r, assigned(r));
    const keys = [owner, steerer, other, requester].map((k) => k.publicKey);
    const before: Account[] = keys.map((k) => ledger.account(k));
    const total = (accounts: Account[]) =>
      accounts.reduce((sum, a) => sum + a.balance + a.stake, 0);

    // The receipt that completes the evidence ends in a fault; the evidence is settled.
    await ledger.openChallenge(receiptId(convicting));
    const faultSlash = ledger.receipt(receiptId(convicting))!.locked;
    await ledger.settleFault(receiptId(convicting), owner.publicKey, "steering");
    const cut = await ledger.settleSteering(steerer.publicKey, [
      receiptId(paid),
      receiptId(pending),
      receiptId(convicting),
    ]);
    assert.ok(cut > 0 && faultSlash > 0);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();

    const check = (l: Ledger) => {
      const after = keys.map((k) => l.account(k));
      assert.deepEqual(after[0], before[0], "the owner, who convicted, earns nothing");
      assert.deepEqual(after[2], before[2], "another worker is untouched");
      assert.deepEqual(after[3], before[3], "the requester is untouched");
      assert.deepEqual(after[1], {
        balance: before[1].balance,
        stake: before[1].stake - faultSlash - cut,
        locked: 0,
      }, "the steerer: the pending evidence unpaid, its stake cut");
      assert.equal(total(after), total(before) - faultSlash - cut, "the cut left the ledger");
    };
    check(ledger);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    check(ledger);
    await ledger.close();
  }));
