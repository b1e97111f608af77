/**
 * A worker's receipt refused for want of free stake leaves a trace (`unrecorded_claim`,
 * `refused: "insufficient_stake"`): the same contradicting receipts end the same in every order,
 * for inference receipts and for a trainer's training receipts alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type Receipt, receiptId as receiptIdOf } from "../../protocols/receipt.ts";
import { assigned, receipt, requester, withLedgerDir, withoutFsync } from "./_ledger_fixtures.ts";
import {
  type Evidence,
  feed,
  type FeedLog,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./_convergence_world.ts";
import { PER_STEP, permutations, roundTerms } from "./_training_convergence_world.ts";
import { trainingReceipt } from "./_training_receipt.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";

const { v1 } = parties;

// A worker's receipt refused for want of free stake leaves a trace. A worker staked 1,000 signs two
// contradicting receipts for one job, both assigned: 40 tokens (lock 800) and 70 tokens (lock
// 1,400, more than its stake). Small first: recorded, and the big one is its `equivocation`,
// slashed the larger claim's lock, what is left of the stake at most (1,000). Big first, it was
// refused `insufficient_stake` and forgotten (the ledger wrote nothing), so the small one was
// recorded and paid 40, the cheat keeping its stake (3 of 6 orders). A staked key's receipt refused
// for want of stake is now kept as its worker's claim for the job (`unrecorded_claim`, `refused:
// "insufficient_stake"`), then refused as before; a trainer's training receipt for its round slot
// alike (the last two tests; the six orders are `ledger_convergence_test.ts`'s training case 4).

const w = seeded(64);
const other = seeded(65);
/** Another worker, holding the job in one test. */
const w1 = seeded(68);
/** w's two contradicting receipts for job 6401: 40 tokens (lock 800) and 70 (lock 1,400). */
const small = receipt(6401, 40, w);
const big = receipt(6401, 70, w);

type Account = { balance: number; stake: number; locked: number };
type Accounts = { w: Account; requester: Account; other: Account; v1: Account; w1: Account };

/** The ledger's options here: the s62 world's window, default prices (lock = 20 × tokens). */
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW },
  checkpointEvery: 0,
});

/** The accounts the story is about. */
function accountsOf(ledger: Ledger): Accounts {
  return {
    w: ledger.account(w.publicKey),
    requester: ledger.account(requester.publicKey),
    other: ledger.account(other.publicKey),
    v1: ledger.account(v1.publicKey),
    w1: ledger.account(w1.publicKey),
  };
}

/**
 * Feed `order` to a fresh ledger (every window closed after), then open it again twice, from its
 * log with its index and with the index rebuilt: the same accounts each time.
 */
async function settle(order: readonly Evidence[]): Promise<{ end: Accounts; log: FeedLog }> {
  let out: { end: Accounts; log: FeedLog } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const owner = seeded(90);
    let ledger = await Ledger.open(dir, owner, options(clock));
    const log = await feed(ledger, clock, order);
    const end = accountsOf(ledger);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options(clock));
    assert.deepEqual(accountsOf(ledger), end, "replayed alike");
    await ledger.close();
    await Deno.remove(`${dir}/${INDEX_FILE}`);
    ledger = await Ledger.open(dir, owner, options(clock));
    assert.deepEqual(accountsOf(ledger), end, "index rebuilt alike");
    await ledger.close();
    out = { end, log };
  });
  return out!;
}

/** The code `fn` is refused with (undefined: it was not). */
async function codeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    if (error instanceof LedgerError) return error.code;
    throw error;
  }
}

/** `r` as its worker announces it (bare), once its worker has pledged; any refusal is an answer. */
function bare(name: string, r: Receipt): Evidence {
  return {
    name,
    ready: (ledger) => ledger.hasStaked(r.worker),
    deliver: (ledger) => codeOf(() => ledger.recordReceipt(r)),
  };
}

/**
 * `r` as its requester announces it (with its assignment), once its worker has pledged; any
 * refusal, `insufficient_stake` included, is the ledger's answer (the s62 world's `announce`
 * takes only `LedgerRejectedError`s for answers).
 */
function announce(name: string, r: Receipt): Evidence {
  return {
    name,
    ready: (ledger) => ledger.hasStaked(r.worker),
    deliver: (ledger) => codeOf(() => ledger.recordReceipt(r, assigned(r))),
  };
}

Deno.test({
  name:
    "a worker whose larger contradicting receipt its stake could not back is slashed whether that receipt came first or second (6 orders)",
  fn: async () => {
    const evidence = [
      pledge("pledge w", w, 1_000),
      announce("small", small),
      announce("big", big),
    ];
    let tried = 0;
    await withoutFsync(async () => {
      for (const order of permutations(evidence)) {
        tried++;
        const { end, log } = await settle(order);
        assert.deepEqual(
          end,
          {
            // Slashed the larger claim's lock, what is left of the stake at most; paid nothing.
            w: { balance: 0, stake: 0, locked: 0 },
            requester: { balance: 0, stake: 0, locked: 0 },
            other: { balance: 0, stake: 0, locked: 0 },
            v1: { balance: 0, stake: 0, locked: 0 },
            w1: { balance: 0, stake: 0, locked: 0 },
          },
          `${log.delivered.join(" → ")}\nrefused: ${JSON.stringify(log.refused)}`,
        );
      }
    });
    assert.equal(tried, 6);
  },
});

/**
 * Every order of w's pledge, v1's, both receipts and v1's confirmed proof about `r`: w loses all
 * its stake and v1 earns `reward` in each (120 orders).
 */
async function provedInEveryOrder(r: Receipt, reward: number): Promise<void> {
  const evidence = [
    pledge("pledge w", w, 1_000),
    pledge("pledge v1", v1, 1_000),
    announce("small", small),
    announce("big", big),
    proof(`proof ${r === small ? "small" : "big"}`, signedProof(r, 6401, v1), r, v1, true),
  ];
  let tried = 0;
  await withoutFsync(async () => {
    for (const order of permutations(evidence)) {
      tried++;
      const { end, log } = await settle(order);
      assert.deepEqual(
        { w: end.w, v1: end.v1 },
        {
          w: { balance: 0, stake: 0, locked: 0 },
          v1: { balance: reward, stake: 1_000, locked: 0 },
        },
        `${log.delivered.join(" → ")}\nrefused: ${JSON.stringify(log.refused)}${
          log.neverReady.length > 0 ? `\nnever ready: ${log.neverReady}` : ""
        }`,
      );
    }
  });
  assert.equal(tried, 120);
}

Deno.test({
  name:
    "a confirmed proof about the smaller receipt pays its accuser alike whether the larger was kept for want of stake or came second (120 orders)",
  // Half the proved claim's lock (800).
  fn: () => provedInEveryOrder(small, 400),
});

Deno.test({
  name:
    "a confirmed proof about the larger receipt, kept for want of stake or answered equivocation, pays its accuser alike (120 orders)",
  // Half the proved claim's lock (1,400), what the stake had at most (1,000).
  fn: () => provedInEveryOrder(big, 500),
});

Deno.test({
  name:
    "with another worker's assigned receipt for the job, the worker's two claims end alike in every order, its larger claim refused for want of stake or while the job was held (120 orders)",
  // The claim over the stake is kept under one bound on both paths (`claimKeepable`: counted at
  // the stake), or it was kept where it came before the other's receipt and not after it.
  fn: async () => {
    const holder = receipt(6401, 7, w1);
    const evidence = [
      pledge("pledge w", w, 1_000),
      pledge("pledge w1", w1, 10_000),
      announce("w1", holder),
      bare("small", small),
      bare("big", big),
    ];
    const ends = new Map<string, string[]>();
    await withoutFsync(async () => {
      for (const order of permutations(evidence)) {
        const { end, log } = await settle(order);
        const key = JSON.stringify(end);
        ends.set(key, [...(ends.get(key) ?? []), log.delivered.join(" → ")]);
      }
    });
    assert.deepEqual(
      [...ends.keys()].map((k) => JSON.parse(k)),
      [{
        w: { balance: 0, stake: 0, locked: 0 },
        requester: { balance: 0, stake: 0, locked: 0 },
        other: { balance: 0, stake: 0, locked: 0 },
        v1: { balance: 0, stake: 0, locked: 0 },
        w1: { balance: 7, stake: 10_000, locked: 0 },
      }],
      JSON.stringify([...ends.entries()].map(([k, v]) => [k, v.slice(0, 2)])),
    );
  },
});

Deno.test("the refused receipt sent again once the stake backs it is recorded, not taken for equivocation", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(91), options(clock));
    await ledger.recordPledge(signStakePledge(w, 1_000, 0));
    // Asked first: refused for want of stake, and asking writes nothing.
    const before = ledger.length;
    assert.equal(ledger.receiptRefusal(big, assigned(big)), "insufficient_stake");
    assert.equal(ledger.length, before);
    // Recorded: refused all the same, and kept as w's claim for the job (one entry).
    assert.equal(
      await codeOf(() => ledger.recordReceipt(big, assigned(big))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, before + 1);
    assert.equal(ledger.receipt(receiptIdOf(big)), undefined);
    // Asked again, and sent again before the pledge: the same answer, nothing more written.
    assert.equal(ledger.receiptRefusal(big, assigned(big)), "insufficient_stake");
    assert.equal(
      await codeOf(() => ledger.recordReceipt(big, assigned(big))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, before + 1);
    clock.t += 10;
    // More stake (a pledge is recorded once per key: a deposit tops it up).
    await ledger.deposit(w.publicKey, 1_000);
    assert.equal(ledger.receiptRefusal(big, assigned(big)), undefined);
    const rec = await ledger.recordReceipt(big, assigned(big));
    assert.equal(rec.status, "pending");
    assert.equal(rec.credit, 70);
    assert.deepEqual(ledger.account(w.publicKey), { balance: 0, stake: 2_000, locked: 1_400 });
    // Its other claim is then equivocation, as for any recorded receipt: the larger lock.
    assert.equal(await codeOf(() => ledger.recordReceipt(small, assigned(small))), "equivocation");
    assert.deepEqual(ledger.account(w.publicKey), { balance: 0, stake: 600, locked: 0 });
    await ledger.close();
  });
});

Deno.test("a refused receipt is kept only for a staked key, once per job, and the kept claims' locks (each capped at the stake) stay within the stake", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(92), options(clock));
    // A key that never staked: refused, nothing written.
    const start = ledger.length;
    const never = receipt(6402, 70, other);
    assert.equal(
      await codeOf(() => ledger.recordReceipt(never, assigned(never))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, start);
    await ledger.recordPledge(signStakePledge(w, 1_000, 0));
    const kept = ledger.length;
    // Lock 1,400 over a stake of 1,000: counted as 1,000, kept.
    assert.equal(
      await codeOf(() => ledger.recordReceipt(big, assigned(big))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, kept + 1);
    // Another job's refused receipt while that claim's window is open: past the stake, not kept.
    const another = receipt(6403, 60, w);
    assert.equal(
      await codeOf(() => ledger.recordReceipt(another, assigned(another))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, kept + 1);
    // Its window over, the stake backs a claim again.
    clock.t += WINDOW + 1;
    assert.equal(
      await codeOf(() => ledger.recordReceipt(another, assigned(another))),
      "insufficient_stake",
    );
    assert.equal(ledger.length, kept + 2);
    // The other job's claim never hurt w's honest work: a receipt its free stake backs is
    // recorded and paid as ever.
    const honest = receipt(6404, 40, w);
    const rec = await ledger.recordReceipt(honest, assigned(honest));
    assert.equal(rec.status, "pending");
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(w.publicKey), { balance: 40, stake: 1_000, locked: 0 });
    await ledger.close();
  });
});

const t = seeded(66);
/** t's two contradicting receipts for round 9: 4 steps (lock 80) and 7 steps (lock 140). */
const smallRound = trainingReceipt(t, 9, 4, "d1");
const bigRound = trainingReceipt(t, 9, 7, "d2");
const trainingOptions = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WINDOW, trainingCreditPerStep: PER_STEP },
  checkpointEvery: 0,
});

Deno.test("a trainer's receipt refused for want of stake is kept, its other receipt for the round then its equivocation, after an index rebuild too", async () => {
  await withLedgerDir(async (dir, clock) => {
    const owner = seeded(93);
    let ledger = await Ledger.open(dir, owner, trainingOptions(clock));
    await ledger.recordPledge(signStakePledge(t, 100, 0));
    const before = ledger.length;
    const record = (r: TrainingReceipt) =>
      codeOf(() => ledger.recordTrainingReceipt(r, roundTerms(9), { credited: true }));
    assert.equal(await record(bigRound), "insufficient_stake");
    assert.equal(ledger.length, before + 1);
    assert.equal(await record(bigRound), "insufficient_stake");
    assert.equal(ledger.length, before + 1);
    await ledger.close();
    await Deno.remove(`${dir}/${INDEX_FILE}`);
    ledger = await Ledger.open(dir, owner, trainingOptions(clock));
    assert.equal(await record(smallRound), "equivocation");
    // The larger claim's lock, what is left of the stake at most: all 100; nothing paid.
    assert.deepEqual(ledger.account(t.publicKey), { balance: 0, stake: 0, locked: 0 });
    // The round is settled: neither receipt is recorded and paid later.
    assert.equal(await record(smallRound), "round_already_recorded");
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(t.publicKey), { balance: 0, stake: 0, locked: 0 });
    await ledger.close();
  });
});

Deno.test("a trainer's refused receipt sent again once its stake backs it is recorded, and its other receipt is then its equivocation", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(94), trainingOptions(clock));
    await ledger.recordPledge(signStakePledge(t, 100, 0));
    const record = (r: TrainingReceipt) =>
      codeOf(() => ledger.recordTrainingReceipt(r, roundTerms(9), { credited: true }));
    assert.equal(await record(bigRound), "insufficient_stake");
    await ledger.deposit(t.publicKey, 100);
    assert.equal(await record(bigRound), undefined);
    assert.equal(ledger.receipt(trainingReceiptId(bigRound))?.status, "pending");
    assert.deepEqual(ledger.account(t.publicKey), { balance: 0, stake: 200, locked: 140 });
    assert.equal(await record(smallRound), "equivocation");
    assert.deepEqual(ledger.account(t.publicKey), { balance: 0, stake: 60, locked: 0 });
    await ledger.close();
  });
});

/**
 * w's big receipt refused and kept, then recorded bare once a deposit backs it, then its small
 * one (equivocation: 1,400 cut); w3's assigned receipt takes the job from it; then w's third
 * claim for the job (100 tokens, lock 2,000). `asFormat7`: before w3's receipt, the index is put
 * back as index format 7 built it (the kept claim's row left beside the record). Returns w's
 * account and the third claim's answer.
 */
async function thirdClaimAfterTakeover(asFormat7: boolean) {
  const w3 = seeded(67);
  const third = receipt(6401, 100, w);
  const taker = receipt(6401, 7, w3);
  let out: { answer: string | undefined; w: Account } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const owner = seeded(95);
    let ledger = await Ledger.open(dir, owner, options(clock));
    await ledger.recordPledge(signStakePledge(w, 1_000, 0));
    await ledger.recordPledge(signStakePledge(w3, 10_000, 0));
    assert.equal(await codeOf(() => ledger.recordReceipt(big)), "insufficient_stake");
    await ledger.deposit(w.publicKey, 1_000);
    assert.equal(await codeOf(() => ledger.recordReceipt(big)), undefined);
    assert.equal(await codeOf(() => ledger.recordReceipt(small)), "equivocation");
    assert.deepEqual(ledger.account(w.publicKey), { balance: 0, stake: 600, locked: 0 });
    await ledger.close();
    if (asFormat7) {
      const db = new DatabaseSync(join(dir, INDEX_FILE));
      db.prepare(
        "INSERT INTO unrecorded_claims (job, worker, receipt, output_hash, tokens, locked, equivocated) VALUES (?, ?, ?, ?, ?, ?, 0)",
      ).run(big.jobId, toHex(w.publicKey), receiptIdOf(big), big.outputHash, 70, 1_400);
      db.exec("UPDATE meta SET v = 7 WHERE k = 'format';");
      db.close();
    }
    ledger = await Ledger.open(dir, owner, options(clock));
    assert.equal(await codeOf(() => ledger.recordReceipt(taker, assigned(taker))), undefined);
    const answer = await codeOf(() => ledger.recordReceipt(third));
    out = { answer, w: ledger.account(w.publicKey) };
    await ledger.close();
  });
  return out!;
}

Deno.test("a kept claim recorded later is its record: a job taken from it keeps its equivocation mark, and the worker's third claim is not slashed again", async () => {
  // Its claim row left beside its record, the takeover kept the row's (unmarked) claim, and the
  // third claim was slashed again: 600 more.
  assert.deepEqual(await thirdClaimAfterTakeover(false), {
    answer: "job_already_recorded",
    w: { balance: 0, stake: 600, locked: 0 },
  });
});

Deno.test("an index of format 7 (a kept claim's row beside its later record) is rebuilt from the log", async () => {
  assert.deepEqual(await thirdClaimAfterTakeover(true), {
    answer: "job_already_recorded",
    w: { balance: 0, stake: 600, locked: 0 },
  });
});
