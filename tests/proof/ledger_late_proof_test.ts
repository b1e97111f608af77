/**
 * Fraud proofs about receipts a ledger has closed, inside their window: every ledger books the
 * same accusations whatever the order they come in.
 *
 * - A receipt whose challenge here ended undecided (`unresolved`: not paid, its lock released)
 *   still takes a peer's checked fraud proof, as it would have while pending. Every other
 *   ledger settles that proof; this one used to refuse it (`not_pending`), so the cheat kept here
 *   the stake it lost everywhere else.
 * - A receipt already slashed still takes a refuted proof: its accuser pays here as in the
 *   ledgers that checked that proof before the confirmed one (it used to pay only there).
 */
import assert from "node:assert/strict";
import { assigned, receipt as fixtureReceipt } from "./_ledger_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();
const WINDOW = 100;

Deno.test("ledger: an unresolved receipt is slashed by a peer's confirmed proof inside its window, a refuted one costs its accuser, and past the window nothing settles; all of it survives a restart", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const options = { now: () => clock.t, economics: { challengeWindowMs: WINDOW } };
  try {
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.deposit(accuser.publicKey, 1_000);
    const [cheat, honest, late] = [
      fixtureReceipt(31, 4, worker),
      fixtureReceipt(32, 4, worker),
      fixtureReceipt(33, 4, worker),
    ];
    for (const r of [cheat, honest, late]) {
      await ledger.recordReceipt(r, assigned(r));
      await ledger.openChallenge(receiptId(r));
      await ledger.leaveUnresolved(receiptId(r), "restarted");
    }
    const lock = ledger.receipt(receiptId(cheat))!.locked;
    assert.ok(lock > 0);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 1_000, locked: 0 });
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "unpaid");

    const settle = (r: typeof cheat, confirmed: boolean, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash.repeat(32),
        validator: accuser.publicKey,
        confirmed,
        reason: confirmed ? "fingerprint_mismatch" : "refuted",
      });
    await settle(cheat, true, "71");
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "fraud");
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1_000 - lock,
      locked: 0,
    });
    const reward = lock * DEFAULT_ECONOMICS.validatorRewardShare;
    assert.deepEqual(ledger.account(accuser.publicKey), {
      balance: reward,
      stake: 1_000,
      locked: 0,
    });
    await assert.rejects(() => settle(cheat, true, "72"), LedgerRejectedError, "settled once");

    await settle(honest, false, "73");
    assert.equal(ledger.receipt(receiptId(honest))!.status, "unpaid", "the work stays unpaid");
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    assert.equal(ledger.account(accuser.publicKey).stake, 1_000 - penalty);

    clock.t += WINDOW + 1;
    await assert.rejects(
      () => settle(late, true, "74"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "challenge_window_closed",
    );
    assert.deepEqual(await ledger.finalizeDue(), [], "nothing unpaid is paid at the window's end");

    const accounts = [worker, accuser].map((k) => ledger.account(k.publicKey));
    const statuses = [cheat, honest, late].map((r) => ledger.receipt(receiptId(r))!.status);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual([worker, accuser].map((k) => ledger.account(k.publicKey)), accounts);
    assert.deepEqual(
      [cheat, honest, late].map((r) => ledger.receipt(receiptId(r))!.status),
      statuses,
    );
    assert.deepEqual(statuses, ["fraud", "unpaid", "unpaid"]);
    await ledger.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ledger: a refuted proof that comes after the receipt was slashed still costs its accuser; a second confirmed one settles nothing", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: 1_000 };
  const options = { now: () => clock.t, economics: { challengeWindowMs: WINDOW } };
  const liar = Identity.generate();
  try {
    const ledger = await Ledger.open(dir, owner, options);
    for (const key of [worker, accuser, liar]) await ledger.deposit(key.publicKey, 1_000);
    const cheat = fixtureReceipt(41, 4, worker);
    await ledger.recordReceipt(cheat, assigned(cheat));
    const settle = (by: Identity, confirmed: boolean, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(cheat),
        fraudProofHash: hash.repeat(32),
        validator: by.publicKey,
        confirmed,
        reason: confirmed ? "fingerprint_mismatch" : "refuted",
      });
    await settle(accuser, true, "81");
    const worker1 = ledger.account(worker.publicKey);
    await settle(liar, false, "82");
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    assert.equal(ledger.account(liar.publicKey).stake, 1_000 - penalty);
    assert.equal(ledger.receipt(receiptId(cheat))!.status, "fraud");
    await assert.rejects(
      () => settle(Identity.generate(), true, "83"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "not_pending",
    );
    assert.deepEqual(ledger.account(worker.publicKey), worker1, "slashed once");
    clock.t += WINDOW + 1;
    const late = Identity.generate();
    await ledger.deposit(late.publicKey, 1_000);
    await assert.rejects(
      () => settle(late, false, "84"),
      (e: unknown) => e instanceof LedgerRejectedError && e.code === "challenge_window_closed",
    );
    await ledger.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
