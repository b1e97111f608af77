/**
 * `Ledger.settleStreamFraud`: what a stream conviction (a worker's signed stream of wrong tokens,
 * `protocols/stream_commitment.ts`, checked by this ledger's owner) does to the worker's stake and
 * to the owner's balance, what it refuses, and that it survives a reopen, a rebuilt index and
 * `ledger verify`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Ledger, StreamFraudSettlement } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { toHex } from "../../protocols/hash.ts";
import { assigned, jobIdOf, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { MODEL, openPriced, PRICE, refusedWith, STATE_FILES } from "./_stream_ledger.ts";

// A partial stream has no receipt, so nothing was locked for it: the conviction cuts
// `min(stake, m × tokens × price)` from the worker's whole stake, pays the owner (its checker)
// `validatorRewardShare` of the cut and burns the rest; once per (job, worker); never for a job
// this ledger holds a receipt of the worker's for (its fraud proof convicts it); written even
// for a key without stake (the conviction on record, nothing moved).

const M = DEFAULT_ECONOMICS.slashMultiplier;
const SHARE = DEFAULT_ECONOMICS.validatorRewardShare;

/** The settlement of `worker`'s signed stream of `tokens` tokens of fixture job `n`. */
function streamed(n: number, worker: Identity, tokens: number): StreamFraudSettlement {
  return {
    jobId: jobIdOf(n),
    worker: worker.publicKey,
    model: MODEL,
    tokens,
    claimHash: "c1".repeat(32),
  };
}

Deno.test("a stream conviction cuts m × the streamed tokens' reward at the model's price from the stake, pays the owner its share, burns the rest, and moves no balance of the worker", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const bystander = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, 10_000);
      await ledger.deposit(bystander.publicKey, 10_000);
      const owner = ledger.account(me.publicKey);
      // 13 tokens × 0.25 = 3.25 credits of work; m × that is cut, the owner gets half.
      const slashed = M * 13 * PRICE;
      const reward = slashed * SHARE;
      assert.equal(await ledger.settleStreamFraud(streamed(1, liar, 13)), slashed);
      assert.deepEqual(ledger.account(liar.publicKey), {
        balance: 0,
        stake: 10_000 - slashed,
        locked: 0,
      });
      assert.deepEqual(ledger.account(me.publicKey), {
        ...owner,
        balance: owner.balance + reward,
      });
      assert.deepEqual(ledger.account(bystander.publicKey), {
        balance: 0,
        stake: 10_000,
        locked: 0,
      });
      assert.equal(ledger.streamFraudSettled(jobIdOf(1), liar.publicKey), true);
      assert.equal(ledger.streamFraudSettled(jobIdOf(1), bystander.publicKey), false);
      assert.equal(ledger.streamFraudSettled(jobIdOf(2), liar.publicKey), false);
      // Convicted, as a worker with a slashed receipt is (the network routes around it).
      assert.equal(ledger.convicted(liar.publicKey), true);
      assert.equal(ledger.convicted(bystander.publicKey), false);
      const entry = ledger.entries().find((e) => e.kind === "stream_fraud")!;
      assert.deepEqual(entry.body, {
        jobId: jobIdOf(1),
        worker: toHex(liar.publicKey),
        validator: toHex(me.publicKey),
        model: MODEL,
        claim: "c1".repeat(32),
        tokens: 13,
        slashed,
        reward,
      });
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a stream conviction takes at most the whole stake, locked stake included (nothing backs a stream), never below zero; a slash of a locking receipt after it takes what is left", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      // Exactly the stake its one open receipt locks (10 tokens at 0.25 × m = 50): nothing free.
      await ledger.deposit(liar.publicKey, M * 10 * PRICE);
      const held = receipt(2, 10, liar);
      await ledger.recordReceipt(held, assigned(held));
      const before = ledger.account(liar.publicKey);
      assert.equal(before.stake, before.locked, "nothing free");
      const owner = ledger.account(me.publicKey).balance;
      // 400 tokens: m × 100 = 2,000 owed, far more than the stake.
      const slashed = await ledger.settleStreamFraud(streamed(3, liar, 400));
      assert.equal(slashed, before.stake, "the whole stake, its locked part included");
      const reward = slashed * SHARE;
      assert.equal(ledger.account(liar.publicKey).stake, 0);
      assert.equal(ledger.account(me.publicKey).balance, owner + reward);
      // The receipt's fraud proof finds nothing left to slash: its accuser earns nothing minted.
      await ledger.settleFraud({
        receiptId: ledger.receiptOfJob(jobIdOf(2))!,
        fraudProofHash: "ab".repeat(32),
        validator: me.publicKey,
        confirmed: true,
        reason: "fingerprint_mismatch",
      });
      assert.equal(ledger.account(liar.publicKey).stake, 0, "never below zero");
      assert.equal(ledger.account(me.publicKey).balance, owner + reward, "no share of nothing");
      // A second conviction (another job) with nothing left: on record, nothing moved.
      assert.equal(await ledger.settleStreamFraud(streamed(4, liar, 5)), 0);
      assert.equal(ledger.account(me.publicKey).balance, owner + reward);
      assert.equal(ledger.entries().at(-1)!.body.reward, 0);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a stream conviction is settled once per job and worker: a second is already_settled and moves nothing; another job or another worker of the job settles", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const second = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, 10_000);
      await ledger.deposit(second.publicKey, 10_000);
      const slashed = await ledger.settleStreamFraud(streamed(5, liar, 8));
      const after = { liar: ledger.account(liar.publicKey), me: ledger.account(me.publicKey) };
      const length = ledger.length;
      await assert.rejects(
        () => ledger.settleStreamFraud({ ...streamed(5, liar, 40), claimHash: "d2".repeat(32) }),
        refusedWith("already_settled"),
      );
      assert.equal(ledger.length, length, "nothing written");
      assert.deepEqual(ledger.account(liar.publicKey), after.liar);
      assert.deepEqual(ledger.account(me.publicKey), after.me);
      // The same worker's other job, and a second worker's stream of the same job (the job was
      // taken over by a worker that lied too), are other convictions.
      assert.equal(await ledger.settleStreamFraud(streamed(6, liar, 8)), slashed);
      assert.equal(await ledger.settleStreamFraud(streamed(5, second, 8)), slashed);
      assert.equal(ledger.account(liar.publicKey).stake, 10_000 - 2 * slashed);
      assert.equal(ledger.account(second.publicKey).stake, 10_000 - slashed);
      assert.equal(ledger.account(me.publicKey).balance, 3 * slashed * SHARE);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("the owner cannot convict itself of a stream (self_accusation): its own stake would pay it", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(me.publicKey, 10_000);
      const length = ledger.length;
      await assert.rejects(
        () => ledger.settleStreamFraud(streamed(7, me, 10)),
        refusedWith("self_accusation"),
      );
      assert.equal(ledger.length, length);
      assert.deepEqual(ledger.account(me.publicKey), { balance: 0, stake: 10_000, locked: 0 });
      assert.equal(ledger.streamFraudSettled(jobIdOf(7), me.publicKey), false);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a stream conviction settles whatever receipt of the worker's for the job this ledger holds (recorded, or kept as its claim): a receipt announced before the claim's check does not shield the stream; the receipt is judged on its own", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const worker = Identity.generate();
    const copier = Identity.generate();
    const resumer = Identity.generate();
    const liar = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      for (const key of [worker, copier, resumer, liar]) {
        await ledger.deposit(key.publicKey, 10_000);
      }
      // The worker's own receipt holds job 8, unassigned (announced by the worker itself).
      const held = receipt(8, 10, worker);
      await ledger.recordReceipt(held);
      // The copier's receipt for job 8 is refused and kept as its claim for the job.
      await assert.rejects(
        () => ledger.recordReceipt(receipt(8, 10, copier)),
        refusedWith("job_already_recorded"),
      );
      // Failed before stop 68's review: both were refused `receipt_recorded`, the streams
      // unconvicted.
      for (const key of [worker, copier]) {
        const slashed = await ledger.settleStreamFraud(streamed(8, key, 10));
        assert.equal(slashed, M * 10 * PRICE);
        assert.equal(ledger.account(key.publicKey).stake, 10_000 - slashed);
      }
      // The worker's receipt is judged on its own: unassigned, it earns nothing.
      assert.equal(ledger.receipt(ledger.receiptOfJob(jobIdOf(8))!)?.credit, 0);
      // Job 9 was resumed by another worker, whose receipt holds it: the lost worker that
      // streamed wrong tokens before it is convicted too.
      const resumed = receipt(9, 12, resumer);
      await ledger.recordReceipt(resumed, assigned(resumed));
      const slashed = await ledger.settleStreamFraud(streamed(9, liar, 6));
      assert.equal(slashed, M * 6 * PRICE);
      assert.equal(ledger.account(liar.publicKey).stake, 10_000 - slashed);
    } finally {
      await ledger.close();
    }
  });
});
Deno.test("a stream conviction of a key with no stake here is on record (slashed 0, reward 0) and settled once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const stranger = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      const accounts = ledger.workingSet().accounts;
      assert.equal(await ledger.settleStreamFraud(streamed(10, stranger, 20)), 0);
      assert.equal(ledger.entries().at(-1)!.kind, "stream_fraud");
      assert.equal(ledger.streamFraudSettled(jobIdOf(10), stranger.publicKey), true);
      assert.deepEqual(ledger.account(stranger.publicKey), { balance: 0, stake: 0, locked: 0 });
      assert.deepEqual(ledger.account(me.publicKey), { balance: 0, stake: 0, locked: 0 });
      assert.equal(ledger.workingSet().accounts, accounts, "no account made for nothing");
      await assert.rejects(
        () => ledger.settleStreamFraud(streamed(10, stranger, 20)),
        refusedWith("already_settled"),
      );
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a key convicted of pledge equivocation keeps only its locks: a stream conviction cuts nothing and pays nothing (the cut would be undone, the reward minted)", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const cheat = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.recordPledge(signStakePledge(cheat, 10_000, 1));
      const held = receipt(11, 10, cheat);
      await ledger.recordReceipt(held, assigned(held));
      await ledger.recordPledge(signStakePledge(cheat, 20_000, 2));
      assert.equal(ledger.pledgeEquivocated(cheat.publicKey), true);
      const before = ledger.account(cheat.publicKey);
      assert.equal(await ledger.settleStreamFraud(streamed(12, cheat, 20)), 0);
      assert.deepEqual(ledger.account(cheat.publicKey), before);
      assert.equal(ledger.account(me.publicKey).balance, 0);
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a stream conviction survives a reopen, a replay from genesis and a rebuilt index: the same stake and balances, still already_settled, and ledger verify passes", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    let ledger = await openPriced(dir, me, clock);
    await ledger.deposit(liar.publicKey, 10_000);
    const slashed = await ledger.settleStreamFraud(streamed(13, liar, 30));
    const reward = slashed * SHARE;
    assert.ok(slashed > 0);
    const expected = {
      liar: ledger.account(liar.publicKey),
      me: ledger.account(me.publicKey),
    };
    assert.deepEqual(expected.liar, { balance: 0, stake: 10_000 - slashed, locked: 0 });
    assert.equal(expected.me.balance, reward);
    const assertSettled = async (ledger: Ledger, why: string) => {
      assert.deepEqual(ledger.account(liar.publicKey), expected.liar, why);
      assert.deepEqual(ledger.account(me.publicKey), expected.me, why);
      assert.equal(ledger.streamFraudSettled(jobIdOf(13), liar.publicKey), true, why);
      assert.equal(ledger.convicted(liar.publicKey), true, why);
      await assert.rejects(
        () => ledger.settleStreamFraud(streamed(13, liar, 30)),
        refusedWith("already_settled"),
        why,
      );
    };
    await ledger.close();
    // From the checkpoint written on close.
    ledger = await openPriced(dir, me, clock);
    try {
      await assertSettled(ledger, "reopened");
    } finally {
      await ledger.close();
    }
    // With the checkpoint and the index gone: every entry replayed from genesis.
    for (const file of STATE_FILES) {
      await Deno.remove(`${dir}/${file}`).catch(() => {});
    }
    ledger = await openPriced(dir, me, clock);
    try {
      await assertSettled(ledger, "replayed from genesis, index rebuilt");
    } finally {
      await ledger.close();
    }
    const report = await verifyLedger(dir, { owner: me.publicKey });
    assert.equal(report.ok, true, JSON.stringify(report.damage));
  });
});

Deno.test("a stream settlement that names no job, key, claim or token count is a RangeError, and writes nothing", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const liar = Identity.generate();
    const ledger = await openPriced(dir, me, clock);
    try {
      await ledger.deposit(liar.publicKey, 10_000);
      const length = ledger.length;
      const good = streamed(14, liar, 10);
      for (
        const bad of [
          { ...good, tokens: 0 },
          { ...good, tokens: 2.5 },
          { ...good, jobId: "job 14" },
          { ...good, claimHash: "" },
          { ...good, worker: new Uint8Array(31) },
          { ...good, model: "" },
        ]
      ) {
        await assert.rejects(() => ledger.settleStreamFraud(bad), RangeError);
      }
      assert.equal(ledger.length, length);
      assert.equal(ledger.account(liar.publicKey).stake, 10_000);
      assert.equal(await ledger.settleStreamFraud(good), M * 10 * PRICE, "the writer goes on");
    } finally {
      await ledger.close();
    }
  });
});

Deno.test("a worker convicted of streaming a job's tokens wrong is not paid for the job: its receipt for it, recorded before the conviction or after, assigned then or later, earns nothing; another worker's receipt for the job is paid", async () => {
  await withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const [before, after, late, other] = [0, 1, 2, 3].map(() => Identity.generate());
    const ledger = await openPriced(dir, me, clock);
    try {
      for (const key of [before, after, late, other]) {
        await ledger.deposit(key.publicKey, 10_000);
      }
      // Recorded assigned, then convicted: a worker whose connection dropped after a last token
      // it made up gets its assignment, and its receipt is asked for later.
      const first = receipt(20, 10, before);
      await ledger.recordReceipt(first, assigned(first));
      await ledger.settleStreamFraud(streamed(20, before, 10));
      // Convicted, then its receipt comes assigned.
      await ledger.settleStreamFraud(streamed(21, after, 10));
      const second = receipt(21, 10, after);
      await ledger.recordReceipt(second, assigned(second));
      // Recorded unassigned, convicted, then the assignment comes.
      const third = receipt(22, 10, late);
      await ledger.recordReceipt(third);
      await ledger.settleStreamFraud(streamed(22, late, 10));
      await ledger.recordReceipt(third, assigned(third));
      // Another worker's receipt, for a job nobody was convicted on.
      const fourth = receipt(23, 10, other);
      await ledger.recordReceipt(fourth, assigned(fourth));
      // Replayed from genesis (no checkpoint, no index), the credits are the same.
      await ledger.close();
      for (const file of STATE_FILES) await Deno.remove(`${dir}/${file}`).catch(() => {});
      const replayed = await openPriced(dir, me, clock);
      try {
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await replayed.finalizeDue();
        // Failed before: the first two were paid 10 × PRICE each, the third as much.
        for (const key of [before, after, late]) {
          assert.equal(replayed.account(key.publicKey).balance, 0, "a convicted worker was paid");
        }
        assert.equal(replayed.account(other.publicKey).balance, 10 * PRICE);
      } finally {
        await replayed.close();
      }
    } finally {
      await ledger.close().catch(() => {});
    }
  });
});
