/**
 * Review s62 (red team of commit 73eb603): a worker convicted for a receipt a ledger never
 * recorded (another worker's receipt holds the job) was cut that receipt's lock there, and its
 * bigger variant for the same job was refused (`job_already_recorded`): its equivocation never
 * settled there. Where its own receipt held the job, the same evidence convicted it and slashed
 * the bigger claim's lock for the equivocation (as review s54 made every order of two claims
 * end). The worker ended 140 short on one ledger and 14,000 on the other. Now a worker's claim
 * for a job another's receipt holds is kept (the second receipt of a double assignment, one
 * convicted unrecorded, one the job was taken from), and another claim of that worker for the
 * job is its equivocation, as where its receipt held the job (docs/PROOF.md, "Same evidence, any
 * order, same ledger"). Stop 63 closed the last orders (the last test): the bigger variant refused
 * before the ledger knew any claim of its worker's for the job is kept as its worker's claim
 * (an `unrecorded_claim` entry).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
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
} from "./review_s62_convergence_world.ts";

const { w1, w2, v1 } = parties;
/** A job its requester assigned to w1 and w2; w2 cheated, and signed a 700-token variant too. */
const g1 = receipt(6295, 7, w1);
const g2 = receipt(6295, 7, w2);
const g2big = resigned(g2, { tokenCount: 700 }, w2);
const pledges = [
  pledge("pledge w1", w1, 100_000),
  pledge("pledge w2", w2, 100_000),
  pledge("pledge v1", v1, 1_000),
];
const a1 = announce("w1", g1, true);
const a2 = announce("w2", g2, true);
const a2big = announce("w2 big", g2big, false);
const byV1 = proof("v1 on w2", signedProof(g2, 6295, v1), g2, v1, true);

/** An account as `Ledger.account` reports it. */
const account = (balance: number, stake: number) => ({ balance, stake, locked: 0 });

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

/** Opens the ledger in `dir` on the test clock. */
function open(dir: string, clock: { t: number }) {
  return Ledger.open(dir, seeded(90), {
    now: () => clock.t,
    economics: { challengeWindowMs: WINDOW },
  });
}

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
    const { live, replayed } = await after([...pledges, ...order]);
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
    const { live, replayed } = await after([...pledges, ...order]);
    assert.deepEqual(live?.w2, END.w2, name);
    assert.deepEqual(live?.v1, END.v1, name);
    assert.deepEqual(replayed, live, `${name}, replayed from the log`);
  }
});

Deno.test("unrecorded variant: the worker is slashed once for the job; a third claim and a second proof are refused", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await open(dir, clock);
    for (const e of [...pledges, a1, a2, byV1]) await e.deliver(ledger);
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
    for (const e of [...pledges, a1, a2, byV1]) await e.deliver(ledger);
    assert.equal(await announce("w2 again", g2b, false).deliver(ledger), "job_already_recorded");
    assert.deepEqual(ledger.account(w2.publicKey), account(0, 100_000 - 140));
    await ledger.close();
  });
});

Deno.test("unrecorded variant: an index of format 3 is rebuilt from the log", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await open(dir, clock);
    for (const e of [...pledges, a1, a2, byV1]) await e.deliver(ledger);
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
    const { live, replayed } = await after([...pledges, ...order]);
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
    const { live, replayed } = await after([...pledges, ...order]);
    assert.deepEqual(live, END, name);
    assert.deepEqual(replayed, END, `${name}, replayed from the log`);
  }
});
