/**
 * Equivocation: a worker's two contradicting receipts for one job (or a trainer's for one round)
 * are the same evidence whichever reaches a ledger first, so every ledger books the same cut and
 * pays the accuser the same share.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import {
  announce,
  type Evidence,
  feed,
  parties,
  pledge,
  proof,
  seeded,
  signedProof,
  WINDOW,
} from "./_convergence_world.ts";
import { InsufficientStakeError } from "../../proof/ledger_errors.ts";

const { copier, v1, v2, w1, w2 } = parties;

// Two contradicting receipts a worker signed for one job (or a trainer for one round) are the same
// evidence whichever reaches a ledger first, so every ledger must book the same cut. It used to be
// the lock of the receipt recorded first: a worker that claimed 10 tokens in one receipt and 1,000
// in the other lost 200 where the small one came first and 20,000 where the big one did, and after
// a fraud proof against the small one the big one cost nothing.

const owner = Identity.generate();
const accuser = Identity.generate();
const M = 20;
const SHORT_WINDOW = 100;
const STAKE = 100_000;
/** The worker's stake in the inference test: its other receipt's lock and the larger claim's. */
const WORKER_STAKE = 200 + 20_000;

/** What each ledger does with the evidence, in its own order. */
type Step = "small" | "big" | "proof_small";

/**
 * A fresh ledger where `worker` has another receipt open (10 tokens, its lock 200), fed `steps`
 * in order (the small and the big receipt of one job by `worker`, each with its assignment; a
 * confirmed fraud proof against the small one), then its windows closed and reopened from disk
 * (replayed from genesis): the worker's account, live and replayed.
 */
async function settle(
  steps: Step[],
  worker: Identity,
  small: Receipt,
  big: Receipt,
): Promise<unknown> {
  let outcome: unknown;
  await withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: SHORT_WINDOW },
      checkpointEvery: 0,
    };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, WORKER_STAKE);
    await ledger.deposit(accuser.publicKey, 1_000);
    const other = receipt(5402, 10, worker);
    await ledger.recordReceipt(other, assigned(other));
    for (const step of steps) {
      if (step === "proof_small") {
        await ledger.settleFraud({
          receiptId: receiptId(small),
          receipt: small,
          fraudProofHash: "ab".repeat(32),
          validator: accuser.publicKey,
          confirmed: true,
          reason: "fingerprint",
        }).catch((error) => assert.equal(error.code, "not_pending"));
        continue;
      }
      const r = step === "small" ? small : big;
      await ledger.recordReceipt(r, assigned(r)).catch((error) =>
        assert.ok(["equivocation", "job_already_recorded"].includes(error.code), error.code)
      );
    }
    // Whatever the order, the other receipt's slash is still backed by its lock.
    const before = ledger.account(worker.publicKey);
    assert.ok(before.stake >= before.locked, `${steps.join(" → ")}: ${JSON.stringify(before)}`);
    clock.t += SHORT_WINDOW + 1;
    await ledger.finalizeDue();
    const live = { worker: ledger.account(worker.publicKey) };
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual({ worker: ledger.account(worker.publicKey) }, live, "replayed alike");
    await ledger.close();
    outcome = live;
  });
  return outcome;
}

Deno.test("a worker's two contradicting receipts for one job cost it the same on every ledger, whichever arrives first, and whether a fraud proof convicted the first", async () => {
  const worker = Identity.generate();
  const small = receipt(5401, 10, worker);
  const big = resigned(small, { tokenCount: 1_000, outputHash: "77".repeat(32) }, worker);
  // m × the larger claim (1,000 tokens at price 1): what a ledger that saw only that one would
  // have locked, and paid 1,000 for. The other receipt is paid.
  const expected = { worker: { balance: 10, stake: WORKER_STAKE - M * 1_000, locked: 0 } };
  for (
    const order of [
      ["big", "small"],
      ["small", "big"],
      ["small", "proof_small", "big"],
      ["big", "small", "proof_small"],
    ] as Step[][]
  ) {
    assert.deepEqual(await settle(order, worker, small, big), expected, order.join(" → "));
  }
});

const PER_STEP = 10;
const terms: TrainingRoundTerms = { round: 1, startModel: START, steps: 8 };

Deno.test("a trainer's two receipts for one round cost it the same on every ledger, whichever arrives first, and whether a fraud proof convicted the first", async () => {
  const trainer = Identity.generate();
  const small = trainingReceipt(trainer, 1, 1, "d1");
  const big = trainingReceipt(trainer, 1, 8, "d2");
  const expected = { balance: 0, stake: STAKE - M * 8 * PER_STEP, locked: 0 };
  for (
    const order of [
      ["big", "small"],
      ["small", "big"],
      ["small", "proof_small", "big"],
    ] as Step[][]
  ) {
    await withLedgerDir(async (dir, clock) => {
      const options = {
        now: () => clock.t,
        economics: { challengeWindowMs: SHORT_WINDOW, trainingCreditPerStep: PER_STEP },
      };
      let ledger = await Ledger.open(dir, owner, options);
      await ledger.deposit(trainer.publicKey, STAKE);
      await ledger.deposit(accuser.publicKey, 1_000);
      for (const step of order) {
        if (step === "proof_small") {
          await ledger.settleTrainingFraud({
            receiptId: trainingReceiptId(small),
            fraudProofHash: "cd".repeat(32),
            validator: accuser.publicKey,
            confirmed: true,
            reason: "step_mismatch",
          });
          continue;
        }
        const r = step === "small" ? small : big;
        await ledger.recordTrainingReceipt(r, terms).catch((error) =>
          assert.ok(
            ["equivocation", "round_already_recorded"].includes(error.code),
            error.code,
          )
        );
      }
      clock.t += SHORT_WINDOW + 1;
      await ledger.finalizeDue();
      assert.deepEqual(ledger.account(trainer.publicKey), expected, order.join(" → "));
      await ledger.close();
      ledger = await Ledger.open(dir, owner, options);
      assert.deepEqual(ledger.account(trainer.publicKey), expected, "replayed alike");
      await ledger.close();
    });
  }
});

Deno.test("a confirmed fraud proof about the worker's other, larger claim for a job costs it and rewards its accuser as where that claim was recorded; the claim arriving later adds nothing", async () => {
  const worker = Identity.generate();
  const small = receipt(5403, 10, worker);
  const big = resigned(small, { tokenCount: 1_000, outputHash: "88".repeat(32) }, worker);
  const outcomes: unknown[] = [];
  // Each ledger recorded one of the two claims; the proof (about the big one, and carrying it)
  // reaches both; then the other claim comes to each.
  for (const [recorded, later] of [[big, small], [small, big]]) {
    await withLedgerDir(async (dir, clock) => {
      const options = {
        now: () => clock.t,
        economics: { challengeWindowMs: SHORT_WINDOW },
        checkpointEvery: 0,
      };
      let ledger = await Ledger.open(dir, owner, options);
      await ledger.deposit(worker.publicKey, STAKE);
      await ledger.deposit(accuser.publicKey, 1_000);
      await ledger.recordReceipt(recorded, assigned(recorded));
      await ledger.settleFraud({
        receiptId: receiptId(big),
        receipt: big,
        fraudProofHash: "ef".repeat(32),
        validator: accuser.publicKey,
        confirmed: true,
        reason: "fingerprint",
      });
      await ledger.recordReceipt(later, assigned(later)).catch((error) =>
        assert.equal(error.code, "job_already_recorded")
      );
      clock.t += SHORT_WINDOW + 1;
      await ledger.finalizeDue();
      const live = {
        worker: ledger.account(worker.publicKey),
        accuser: ledger.account(accuser.publicKey),
      };
      await ledger.close();
      ledger = await Ledger.open(dir, owner, options);
      assert.deepEqual(
        {
          worker: ledger.account(worker.publicKey),
          accuser: ledger.account(accuser.publicKey),
        },
        live,
        "replayed alike",
      );
      await ledger.close();
      outcomes.push(live);
    });
  }
  const expected = {
    worker: { balance: 0, stake: STAKE - M * 1_000, locked: 0 },
    accuser: { balance: (M * 1_000) / 2, stake: 1_000, locked: 0 },
  };
  assert.deepEqual(outcomes, [expected, expected]);
});

// A confirmed fraud proof against one of a worker's two contradicting receipts for a job paid its
// accuser 0, 100 or 300 depending on the order the receipts and the proof came in (the worker lost
// 600 in all): after the equivocation was settled no confirmed proof was taken, and a proof about
// the smaller claim was paid the larger claim's share where the larger was recorded. Now the
// accuser's share is the proved claim's in every order, out of the slash the equivocation took when
// it came first, once per receipt, and an index built before the rule is rebuilt from the log so an
// upgraded ledger settles as a fresh one.

/** The job's two contradicting claims of w2: 10 tokens (locks 200) and 30 (locks 600). */
const small = receipt(6205, 10, w2);
const big = resigned(small, { tokenCount: 30, outputHash: "77".repeat(32) }, w2);
const pledges = [
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
  pledge("pledge v2", v2, 1_000),
];
const s = announce("small", small, true);
const b = announce("big", big, true);

function proofOn(r: Receipt, by = v1, n = 6205): Evidence {
  return proof(
    `proof on ${r.tokenCount} by ${by === v1 ? "v1" : "v2"}`,
    signedProof(r, n, by),
    r,
    by,
    true,
  );
}

const open = (dir: string, clock: { t: number }) =>
  Ledger.open(dir, seeded(90), { now: () => clock.t, economics: { challengeWindowMs: WINDOW } });

/** w2's, v1's and v2's accounts once `order` is fed to a fresh ledger, and the refusals. */
async function outcome(order: Evidence[]) {
  let out: Record<string, unknown> = {};
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const log = await feed(ledger, clock, order);
    out = {
      w2: ledger.account(w2.publicKey),
      v1: ledger.account(v1.publicKey),
      v2: ledger.account(v2.publicKey),
      refused: log.refused,
    };
    await ledger.close();
  });
  return out;
}

const account = (balance: number, stake: number) => ({ balance, stake, locked: 0 });

Deno.test("a proof against one of two contradicting claims earns the proved claim's share in every order", async () => {
  for (const [r, share] of [[small, 100], [big, 300]] as const) {
    const pr = proofOn(r);
    const orders: Record<string, Evidence[]> = {
      "small → big → proof": [...pledges, s, b, pr],
      "small → proof → big": [...pledges, s, pr, b],
      "big → small → proof": [...pledges, b, s, pr],
      "big → proof → small": [...pledges, b, pr, s],
      "small → proof": [...pledges, s, pr],
      "big → proof": [...pledges, b, pr],
    };
    for (const [name, order] of Object.entries(orders)) {
      const end = await outcome(order) as Record<string, unknown>;
      const what = `proof on the ${r.tokenCount}-token claim, ${name}`;
      assert.deepEqual(end.v1, account(share, 1_000), `${what}: the accuser's share`);
      if (order.includes(s) && order.includes(b)) {
        // Both claims heard: the worker loses the larger claim's lock (600), whatever the order.
        assert.deepEqual(end.w2, account(0, 99_400), `${what}: the worker's stake`);
      }
    }
  }
});

Deno.test("after an equivocation only one confirmed proof is rewarded: nobody is paid twice", async () => {
  for (
    const [name, order] of Object.entries({
      "small → big → v1 on small → v2 on small": [
        ...pledges,
        s,
        b,
        proofOn(small),
        proofOn(small, v2),
      ],
      "small → big → v1 on small → v2 on big": [...pledges, s, b, proofOn(small), proofOn(big, v2)],
      "small → v1 on small → big → v2 on big": [...pledges, s, proofOn(small), b, proofOn(big, v2)],
    })
  ) {
    const end = await outcome(order) as Record<string, Record<string, unknown>>;
    assert.deepEqual(end.v1, account(100, 1_000), `${name}: the first accuser's share`);
    assert.deepEqual(end.v2, account(0, 1_000), `${name}: the second is not paid`);
    assert.deepEqual(end.w2, account(0, 99_400), `${name}: the worker`);
    assert.equal(Object.values(end.refused).filter((c) => c === "not_pending").length, 1, name);
  }
});

Deno.test("the reward after an equivocation replays from disk, and an index from before the rule is rebuilt", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await open(dir, clock);
    // Inside the window (no `feed`: it closes every window at the end).
    for (const e of [...pledges, s, b]) {
      assert.equal(await e.deliver(ledger), e === b ? "equivocation" : undefined, e.name);
    }
    await ledger.close();

    // A node upgraded after the equivocation: its index is of the format before the rule
    // (no table of unrewarded slashes). The log says the job was slashed, no accuser paid.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("DROP TABLE unrewarded; UPDATE meta SET v = 2 WHERE k = 'format';");
    db.close();
    ledger = await open(dir, clock);
    const settled = await ledger.settleFraud({
      receiptId: receiptId(small),
      receipt: small,
      fraudProofHash: signedProof(small, 6205, v1),
      validator: v1.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    });
    assert.equal(settled.body.slashed, 0, "the equivocation took the slash already");
    assert.equal(settled.body.reward, 100);
    const before = [w2, v1].map((p) => ledger.account(p.publicKey));
    await ledger.close();

    // Replayed from the log (the index lost too): the same accounts, and a second proof is
    // still refused.
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await open(dir, clock);
    assert.deepEqual([w2, v1].map((p) => ledger.account(p.publicKey)), before);
    assert.deepEqual(before, [account(0, 99_400), account(100, 1_000)]);
    await assert.rejects(
      ledger.settleFraud({
        receiptId: receiptId(big),
        receipt: big,
        fraudProofHash: signedProof(big, 6205, v2),
        validator: v2.publicKey,
        confirmed: true,
        reason: "fingerprint_mismatch",
      }),
      (e: Error & { code?: string }) => e.code === "not_pending",
    );
    await ledger.close();
  });
});

// A worker convicted for a receipt a ledger never recorded (another worker's receipt holds the job)
// was cut that receipt's lock there, and its bigger variant for the same job was refused
// (`job_already_recorded`): its equivocation never settled there. Where its own receipt held the
// job, the same evidence convicted it and slashed the bigger claim's lock for the equivocation (as
// the first tests here make every order of two claims end). The worker ended 140 short on one
// ledger and 14,000 on the other. Now a worker's claim for a job another's receipt holds is kept
// (the second receipt of a double assignment, one convicted unrecorded, one the job was taken
// from), and another claim of that worker for the job is its equivocation, as where its receipt
// held the job (docs/PROOF.md, "Same evidence, any order, same ledger"). The last test closes the
// last orders: the bigger variant refused before the ledger knew any claim of its worker's for the
// job is kept as its worker's claim (an `unrecorded_claim` entry).

/** A job its requester assigned to w1 and w2; w2 cheated, and signed a 700-token variant too. */
const g1 = receipt(6295, 7, w1);
const g2 = receipt(6295, 7, w2);
const g2big = resigned(g2, { tokenCount: 700 }, w2);
const variantPledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
];
const a1 = announce("w1", g1, true);
const a2 = announce("w2", g2, true);
const a2big = announce("w2 big", g2big, false);
const byV1 = proof("v1 on w2", signedProof(g2, 6295, v1), g2, v1, true);

/**
 * Where the job's evidence ends: w2 loses the bigger claim's lock (14,000) once, v1 earns its
 * share of the claim it proved (7 tokens: 140 locked, half of it), and neither worker of a job
 * assigned twice is paid.
 */
const END = {
  w1: account(0, 100_000),
  w2: account(0, 86_000),
  v1: account(70, 1_000),
};

/** w2's and v1's accounts on `ledger` (w1's receipt still locks its stake inside its window). */
function cheatAndAccuser(ledger: Ledger) {
  return { w2: ledger.account(w2.publicKey), v1: ledger.account(v1.publicKey) };
}

/** The accounts of the job's parties on `ledger`. */
function accounts(ledger: Ledger) {
  return {
    w1: ledger.account(w1.publicKey),
    w2: ledger.account(w2.publicKey),
    v1: ledger.account(v1.publicKey),
  };
}

/** Where `order` ends on a fresh ledger, and again replayed from its log (the index lost). */
async function after(order: Evidence[]) {
  let live: ReturnType<typeof accounts> | undefined;
  let replayed: ReturnType<typeof accounts> | undefined;
  await withLedgerDir(async (dir, clock) => {
    let ledger = await open(dir, clock);
    await feed(ledger, clock, order);
    live = accounts(ledger);
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await open(dir, clock);
    replayed = accounts(ledger);
    await ledger.close();
  });
  return { live, replayed };
}

Deno.test("unrecorded variant: a worker convicted for a receipt never recorded here is slashed for its bigger variant, as where its receipt held the job", async () => {
  for (
    const [name, order] of Object.entries({
      "w2 holds, proof, variant": [a2, a1, byV1, a2big],
      "w1 holds, proof, variant": [a1, a2, byV1, a2big],
      "w2 holds, variant, proof": [a2, a1, a2big, byV1],
      "w1 holds, w2's receipt known, variant, proof": [a1, a2, a2big, byV1],
      "proof first, w1 holds, variant": [byV1, a1, a2, a2big],
    })
  ) {
    const { live, replayed } = await after([...variantPledges, ...order]);
    assert.deepEqual(live, END, name);
    assert.deepEqual(replayed, END, `${name}, replayed from the log`);
  }
});

Deno.test("unrecorded variant: a receipt the job was taken from (an assigned receipt of another worker came after it) still settles its worker's other claims", async () => {
  for (
    const [name, order] of Object.entries({
      "variant, w1 takes the job, w2, proof": [a2big, a1, a2, byV1],
      "variant, w2, w1, proof": [a2big, a2, a1, byV1],
      "variant, proof, w1, w2": [a2big, byV1, a1, a2],
    })
  ) {
    const { live, replayed } = await after([...variantPledges, ...order]);
    assert.deepEqual(live?.w2, END.w2, name);
    assert.deepEqual(live?.v1, END.v1, name);
    assert.deepEqual(replayed, live, `${name}, replayed from the log`);
  }
});

Deno.test("unrecorded variant: the worker is slashed once for the job; a third claim and a second proof are refused", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of [...variantPledges, a1, a2, byV1]) await e.deliver(ledger);
    assert.equal(await a2big.deliver(ledger), "equivocation");
    assert.deepEqual(cheatAndAccuser(ledger), { w2: END.w2, v1: END.v1 });
    const g2huge = resigned(g2, { tokenCount: 2_000 }, w2);
    assert.equal(await announce("w2 huge", g2huge, false).deliver(ledger), "job_already_recorded");
    const onBig = proof("v1 on big", signedProof(g2big, 6295, v1), g2big, v1, true);
    assert.equal(await onBig.deliver(ledger), "not_pending");
    assert.deepEqual(cheatAndAccuser(ledger), { w2: END.w2, v1: END.v1 });
    await ledger.close();
  });
  // The same claim re-signed (other fingerprints) is not equivocation.
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    const g2b = resigned(g2, { commitment: { ...g2.commitment, root: "45".repeat(32) } }, w2);
    for (const e of [...variantPledges, a1, a2, byV1]) await e.deliver(ledger);
    assert.equal(await announce("w2 again", g2b, false).deliver(ledger), "job_already_recorded");
    assert.deepEqual(ledger.account(w2.publicKey), account(0, 100_000 - 140));
    await ledger.close();
  });
});

Deno.test("unrecorded variant: an index of format 3 is rebuilt from the log", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await open(dir, clock);
    for (const e of [...variantPledges, a1, a2, byV1]) await e.deliver(ledger);
    await ledger.close();
    // A node upgraded after the proof: its index is of format 3 (its table of receipts
    // convicted unrecorded kept no claim).
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec(
      "DROP TABLE unrecorded_claims; CREATE TABLE unrecorded (job TEXT NOT NULL, worker TEXT NOT NULL, receipt TEXT NOT NULL, PRIMARY KEY (job, worker)) WITHOUT ROWID; UPDATE meta SET v = 3 WHERE k = 'format';",
    );
    db.close();
    ledger = await open(dir, clock);
    assert.equal(await a2big.deliver(ledger), "equivocation");
    assert.deepEqual(cheatAndAccuser(ledger), { w2: END.w2, v1: END.v1 });
    assert.equal(ledger.receipt(receiptId(g2))?.status, "fraud");
    await ledger.close();
  });
});

Deno.test("unrecorded variant: a variant refused before its worker's other receipt came is its equivocation too (its claim kept: `unrecorded_claim`)", async () => {
  for (
    const [name, order] of Object.entries({
      "w1 holds, variant, w2's receipt, proof": [a1, a2big, a2, byV1],
      "w1 holds, variant, proof, w2's receipt": [a1, a2big, byV1, a2],
    })
  ) {
    const { live, replayed } = await after([...variantPledges, ...order]);
    assert.deepEqual(live, END, name);
    assert.deepEqual(replayed, END, `${name}, replayed from the log`);
  }
});

/** Every order of `items` (n! of them). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((tail) => [item, ...tail])
  );
}

Deno.test("unrecorded variant: in all 24 orders of the job's four pieces of evidence every party ends the same, the honest holder of a job assigned twice included (stop 63: w1 was paid where w2's assignment came only with a receipt its own bare variant's record refused)", async () => {
  const names = new Map([[a1, "w1"], [a2, "w2"], [a2big, "w2 big"], [byV1, "proof"]]);
  const orders = permutations([a1, a2, a2big, byV1]);
  assert.equal(orders.length, 24);
  for (const order of orders) {
    const name = order.map((e) => names.get(e)).join(", ");
    const { live, replayed } = await after([...variantPledges, ...order]);
    assert.deepEqual(live, END, name);
    assert.deepEqual(replayed, END, `${name}, replayed from the log`);
  }
});

// A worker's kept claim is bounded by its whole stake now (`stakeCovers`), but what its other claim
// for the job adds to the equivocation slash is still bounded by its free stake when that claim
// comes (`equivocationSlash`, `proof/_ledger_amounts.ts`), which its receipt for another job locks
// or not by the order a ledger heard them. So the same three receipts end differently: the copier's
// own receipt heard before its second claim shields its stake (slashed 140, paid 10); heard after,
// the slash takes the whole stake and the receipt is refused for want of stake (slashed 300, paid
// nothing).

/**
 * `r` announced by its requester (with its assignment), a refusal for want of stake answered as
 * `insufficient_stake` (the world's `announce` rethrows it: its receipts never lack stake).
 */
function assignedAnnouncement(name: string, r: Receipt): Evidence {
  const inner = announce(name, r, true);
  return {
    ...inner,
    deliver: (ledger) =>
      inner.deliver(ledger).catch((error) => {
        if (error instanceof InsufficientStakeError) return "insufficient_stake";
        throw error;
      }),
  };
}

/** The copier's account, and the refusals, once `order` was handled (every window over). */
async function afterFreeStake(order: Evidence[]) {
  let end: Record<string, unknown> | undefined;
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(93), {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
    });
    const log = await feed(ledger, clock, order);
    end = { copier: ledger.account(copier.publicKey), refused: log.refused };
    await ledger.close();
  });
  return end!;
}

Deno.test({
  name:
    "R2 equivocation free stake: a copier's kept claim, its other claim and its own receipt for another job end the same whichever of the last two a ledger hears first",
  // Open (stop 63): what the larger claim adds to the equivocation slash comes from free stake
  // (`equivocationSlash`), which the copier's own receipt for another job (lock 200) takes or
  // not by arrival order: own first, slashed 140, stake 160, paid 10; big first, slashed 300,
  // stake 0, the own receipt refused `insufficient_stake`. Taking the slash from the whole stake
  // instead still ends 10 paid in one order and refused in the other; no order-free rule is
  // settled yet.
  //
  // Why it stays ignored (stop 77, G3): the end hangs on whether the own receipt (lock 200) is
  // recorded before the equivocation, and a ledger settles each as it comes. Heard first, the
  // receipt is honest work its lock backs and is paid at its window; heard after a conviction
  // that took the stake, it cannot be recorded (no stake backs its lock). Order-free needs one of:
  // (a) the same slash in both orders taking the whole stake, and then the receipt recorded first
  // ending unpaid — finality hanging on the worker's stake at the window's close, which changes
  // the `final` transition for every receipt whose worker's stake a conviction cut below its lock
  // (steering cuts, pledge-equivocation forfeiture) and, since a `final` entry carries no amount,
  // the replay of every existing log (balances recomputed otherwise, checkpoints failing
  // `ledger verify`): a format change (the credit written in the entry) not made this stop;
  // (b) the slash taking only free stake in both orders — but heard first, the equivocation finds
  // 300 free (nothing locked yet) and cannot know a receipt will come to lock 200 of it; (c)
  // deferring the equivocation's part beyond the contradicted claim's lock to the window's close,
  // in a canonical order of the evidence: a new entry kind as well. None was built.
  ignore: true,
  fn: async () => {
    // w1's honest assigned receipt holds job 6361 (7 tokens). The copier (300 staked) copies it
    // bare (kept as its claim, lock 140), signs another claim for the job (100 tokens, lock
    // 2,000: its equivocation) and an honest receipt of its own for job 6362 (10 tokens, lock 200).
    const held = receipt(6361, 7, w1);
    const copy = receipt(6361, 7, copier);
    const copyBig = resigned(copy, { tokenCount: 100 }, copier);
    const own = receipt(6362, 10, copier);
    const story = [
      pledge("pledge w1", w1, 100_000),
      pledge("pledge copier", copier, 300),
      announce("w1", held, true),
      announce("copier copy", copy, false),
    ];
    const ownFirst = await afterFreeStake([
      ...story,
      assignedAnnouncement("copier own", own),
      announce("copier big", copyBig, false),
    ]);
    const bigFirst = await afterFreeStake([
      ...story,
      announce("copier big", copyBig, false),
      assignedAnnouncement("copier own", own),
    ]);
    // Today: own first, stake 160 and balance 10 (the slash takes 140: nothing free beyond the
    // own receipt's lock); big first, stake 0 (the slash takes 300) and the own receipt refused
    // `insufficient_stake`, unpaid.
    assert.deepEqual(
      bigFirst.copier,
      ownFirst.copier,
      `the same receipts end differently: ${JSON.stringify({ ownFirst, bigFirst })}`,
    );
  },
});
