/**
 * `Ledger.settleStreamFraud` for a peer's stream proof (`protocols/stream_proof.ts`): the accuser
 * that signed it, not this ledger's owner, earns the conviction's share; a refuted one charges the
 * accuser the false-accusation penalty (at most its free stake); one accusation per accuser, job
 * and worker, across a reopen and a replay from genesis.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StreamFraudSettlement } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { assigned, jobIdOf, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { MODEL, openPriced, PRICE, refusedWith, STATE_FILES } from "./_stream_ledger.ts";

const M = DEFAULT_ECONOMICS.slashMultiplier;
const SHARE = DEFAULT_ECONOMICS.validatorRewardShare;
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

/** `accuser`'s proof that `worker` streamed `tokens` wrong tokens of fixture job `n`. */
function accused(
  n: number,
  worker: Identity,
  accuser: Identity,
  tokens: number,
  confirmed = true,
): StreamFraudSettlement {
  return {
    jobId: jobIdOf(n),
    worker: worker.publicKey,
    model: MODEL,
    tokens,
    claimHash: toHex(accuser.publicKey).slice(0, 62) + n.toString(16).padStart(2, "0"),
    accuser: accuser.publicKey,
    confirmed,
    ...(confirmed ? {} : { reason: "not_reproduced" }),
  };
}

Deno.test("a peer's confirmed stream proof cuts the worker as the owner's own claim would, and pays its accuser the share, not the owner", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, liar, accuser] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, 10_000);
      await ledger.deposit(accuser.publicKey, 10_000);
      const slashed = M * 12 * PRICE;
      assert.equal(await ledger.settleStreamFraud(accused(1, liar, accuser, 12)), slashed);
      assert.deepEqual(ledger.account(liar.publicKey), {
        balance: 0,
        stake: 10_000 - slashed,
        locked: 0,
      });
      assert.deepEqual(ledger.account(accuser.publicKey), {
        balance: slashed * SHARE,
        stake: 10_000,
        locked: 0,
      });
      assert.equal(ledger.account(me.publicKey).balance, 0, "the owner only checked it");
      const entry = ledger.entries().find((e) => e.kind === "stream_fraud")!;
      assert.equal(entry.body.validator, toHex(accuser.publicKey));
      assert.equal(ledger.convicted(liar.publicKey), true);
      // Settled once per job and worker, whoever accuses next.
      await assert.rejects(
        () => ledger.settleStreamFraud(accused(1, liar, Identity.generate(), 12)),
        refusedWith("already_settled"),
      );
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a refuted stream proof charges its accuser the false-accusation penalty and convicts nobody; the same accuser is not heard again on that stream, another accuser still convicts", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, worker, liar, honest] = Array.from({ length: 4 }, Identity.generate);
    const ledger = await openPriced(dir, me, clock);
    try {
      for (const key of [worker, liar, honest]) await ledger.deposit(key.publicKey, 10_000);
      assert.equal(
        await ledger.settleStreamFraud(accused(2, worker, liar, 12, false)),
        PENALTY,
      );
      assert.deepEqual(ledger.account(liar.publicKey), {
        balance: 0,
        stake: 10_000 - PENALTY,
        locked: 0,
      });
      assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
      assert.equal(ledger.streamFraudSettled(jobIdOf(2), worker.publicKey), false);
      assert.equal(ledger.convicted(worker.publicKey), false);
      const entry = ledger.entries().find((e) => e.kind === "false_accusation")!;
      assert.equal(entry.body.validator, toHex(liar.publicKey));
      assert.equal(entry.body.penalty, PENALTY);
      // Re-rolled by the same accuser, refuted or "confirmed": refused, nothing written.
      const length = ledger.length;
      for (const confirmed of [false, true]) {
        await assert.rejects(
          () => ledger.settleStreamFraud(accused(2, worker, liar, 9, confirmed)),
          refusedWith("repeated_accusation"),
        );
      }
      assert.equal(ledger.length, length);
      assert.equal(ledger.account(liar.publicKey).stake, 10_000 - PENALTY);
      // Another accuser's confirmed proof of the same stream still convicts.
      const slashed = M * 12 * PRICE;
      assert.equal(await ledger.settleStreamFraud(accused(2, worker, honest, 12)), slashed);
      assert.equal(ledger.account(honest.publicKey).balance, slashed * SHARE);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a refuted stream proof's penalty is at most its accuser's free stake: what its receipts lock is not touched; an accuser with none is charged nothing, on record", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, worker, busy, broke] = Array.from({ length: 4 }, Identity.generate);
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(worker.publicKey, 10_000);
      // Its one open receipt locks 50 (10 tokens × 0.25 × m); 30 of its stake is free.
      await ledger.deposit(busy.publicKey, M * 10 * PRICE + 30);
      const held = receipt(3, 10, busy);
      await ledger.recordReceipt(held, assigned(held));
      assert.equal(await ledger.settleStreamFraud(accused(4, worker, busy, 5, false)), 30);
      assert.deepEqual(ledger.account(busy.publicKey), {
        balance: 0,
        stake: M * 10 * PRICE,
        locked: M * 10 * PRICE,
      });
      assert.equal(await ledger.settleStreamFraud(accused(4, worker, broke, 5, false)), 0);
      assert.equal(ledger.account(broke.publicKey).stake, 0);
      await assert.rejects(
        () => ledger.settleStreamFraud(accused(4, worker, broke, 5, false)),
        refusedWith("repeated_accusation"),
      );
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a worker accusing its own stream is refused (self_accusation); a refutation of the owner's own claim is a RangeError (its router's claims accuse nobody); both write nothing", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, worker] = [Identity.generate(), Identity.generate()];
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(worker.publicKey, 10_000);
      const length = ledger.length;
      for (const confirmed of [true, false]) {
        await assert.rejects(
          () => ledger.settleStreamFraud(accused(5, worker, worker, 8, confirmed)),
          refusedWith("self_accusation"),
        );
      }
      await assert.rejects(
        () => ledger.settleStreamFraud(accused(5, worker, me, 8, false)),
        RangeError,
      );
      const { accuser: _, ...own } = accused(5, worker, me, 8, false);
      await assert.rejects(() => ledger.settleStreamFraud(own), RangeError);
      assert.equal(ledger.length, length);
      assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a peer's confirmed stream proof against this ledger's owner convicts it here too: its ledger agrees with every other", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, accuser] = [Identity.generate(), Identity.generate()];
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(me.publicKey, 10_000);
      const slashed = M * 4 * PRICE;
      assert.equal(await ledger.settleStreamFraud(accused(6, me, accuser, 4)), slashed);
      assert.equal(ledger.account(me.publicKey).stake, 10_000 - slashed);
      assert.equal(ledger.account(accuser.publicKey).balance, slashed * SHARE);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("stream accusations survive a reopen and a replay from genesis: the same stakes and balances, a refuted accuser still repeated, ledger verify passes", async () => {
  await withLedgerDir(async (dir, clock) => {
    const [me, worker, liar, honest] = Array.from({ length: 4 }, Identity.generate);
    let ledger = await openPriced(dir, me, clock);
    const accounts = () => [worker, liar, honest].map((k) => ledger.account(k.publicKey));
    let before;
    try {
      for (const key of [worker, liar, honest]) await ledger.deposit(key.publicKey, 10_000);
      await ledger.settleStreamFraud(accused(7, worker, liar, 6, false));
      await ledger.settleStreamFraud(accused(7, worker, honest, 6));
      await ledger.settleStreamFraud(accused(8, worker, liar, 6, false));
      before = accounts();
    } finally {
      await ledger.close();
    }
    for (const fromGenesis of [false, true]) {
      if (fromGenesis) {
        for (const file of STATE_FILES) await Deno.remove(`${dir}/${file}`).catch(() => {});
      }
      ledger = await openPriced(dir, me, clock);
      try {
        assert.deepEqual(accounts(), before, `accounts (from genesis: ${fromGenesis})`);
        await assert.rejects(
          () => ledger.settleStreamFraud(accused(8, worker, liar, 3, false)),
          refusedWith("repeated_accusation"),
        );
        await assert.rejects(
          () => ledger.settleStreamFraud(accused(7, worker, Identity.generate(), 6)),
          refusedWith("already_settled"),
        );
      } finally {
        await ledger.close();
      }
    }
    const report = await verifyLedger(dir, { owner: me.publicKey });
    assert.equal(report.ok, true, JSON.stringify(report.damage));
  });
});
