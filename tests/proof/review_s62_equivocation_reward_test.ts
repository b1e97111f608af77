/**
 * Review s62: a confirmed fraud proof against one of a worker's two contradicting receipts for a
 * job paid its accuser 0, 100 or 300 depending on the order the receipts and the proof came in
 * (the worker lost 600 in all): after the equivocation was settled no confirmed proof was taken,
 * and a proof about the smaller claim was paid the larger claim's share where the larger was
 * recorded. Now the accuser's share is the proved claim's in every order, out of the slash the
 * equivocation took when it came first, once per receipt, and an index built before the rule is
 * rebuilt from the log so an upgraded ledger settles as a fresh one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
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

const { w2, v1, v2 } = parties;
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
