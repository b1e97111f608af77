/**
 * The cancelled pair (a worker's finished receipt over n and its `cancelled` one over k < n for
 * the same job: one claim, paid k once) in every order of the same signed messages, with a third
 * claim, a proof, a late assignment or a window's close between them (review s81 vpair, F1-F5;
 * the review's probes, each failing on ecdfafbb): the same messages end the same on every ledger,
 * replayed from the log and with the index rebuilt, and across a checkpoint.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Receipt } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import type { Identity } from "../../protocols/identity.ts";
import { assigned, resigned, withLedgerDir } from "./_ledger_fixtures.ts";
import {
  type Acc,
  K,
  M,
  N,
  owner,
  pair,
  pairLedgerOptions,
  settle,
  STAKE,
  type Step,
  WINDOW,
} from "./_cancelled_pair.ts";

/** Paid the k tokens once, nothing slashed or locked. */
const PAID_K: Acc = { balance: K, stake: STAKE, locked: 0 };
/** Slashed by the pair's larger claim (the finished one's n tokens), paid nothing. */
const SLASHED_N: Acc = { balance: 0, stake: STAKE - M * N, locked: 0 };

/** Each order's outcome, then that they are all `expected`. */
async function allEnd(worker: Identity, orders: [string, Step[]][], expected: Acc) {
  const outcomes = [];
  for (const [label, steps] of orders) {
    const o = await settle(worker, steps);
    assert.deepEqual(o.worker, expected, `${label}: ${o.refused}`);
    outcomes.push(o);
  }
  return outcomes;
}

Deno.test("cancelled pair: the two bare receipts, then the assignment with either, pay k once (F3)", async () => {
  const { worker, finished, cancelled } = pair(8801);
  await allEnd(worker, [
    ["bare F, bare C, F+asg", [
      { r: finished, assigned: false },
      { r: cancelled, assigned: false },
      { r: finished, assigned: true },
    ]],
    ["bare F, bare C, C+asg", [
      { r: finished, assigned: false },
      { r: cancelled, assigned: false },
      { r: cancelled, assigned: true },
    ]],
    ["bare C, bare F, F+asg", [
      { r: cancelled, assigned: false },
      { r: finished, assigned: false },
      { r: finished, assigned: true },
    ]],
  ], PAID_K);
});

Deno.test("cancelled pair: a second finished receipt is equivocation against the pair in every order, slashed by the larger claim (F1)", async () => {
  const { worker, finished, cancelled } = pair(8802);
  // Another finished answer for the same job: other output, 6 tokens (still > k).
  const other = resigned(finished, { tokenCount: 6, outputHash: "77".repeat(32) }, worker);
  const outcomes = await allEnd(worker, [
    ["F, F', C+asg", [{ r: finished, assigned: false }, { r: other, assigned: false }, {
      r: cancelled,
      assigned: true,
    }]],
    ["C+asg, F, F'", [{ r: cancelled, assigned: true }, { r: finished, assigned: false }, {
      r: other,
      assigned: false,
    }]],
    ["F, C+asg, F'", [{ r: finished, assigned: false }, { r: cancelled, assigned: true }, {
      r: other,
      assigned: false,
    }]],
  ], SLASHED_N);
  for (const o of outcomes) assert.ok(o.refused.includes("equivocation"), `${o.refused}`);
});

Deno.test("cancelled pair: a second cancelled receipt over another count is equivocation in every order, slashed by the larger claim (F1)", async () => {
  const { worker, finished, cancelled } = pair(8803);
  const twice = resigned(cancelled, { tokenCount: K + 2, outputHash: "66".repeat(32) }, worker);
  await allEnd(worker, [
    ["C+asg, C'+asg, F", [{ r: cancelled, assigned: true }, { r: twice, assigned: true }, {
      r: finished,
      assigned: false,
    }]],
    ["F, C+asg, C'+asg", [{ r: finished, assigned: false }, { r: cancelled, assigned: true }, {
      r: twice,
      assigned: true,
    }]],
    ["C'+asg, F, C+asg", [{ r: twice, assigned: true }, { r: finished, assigned: false }, {
      r: cancelled,
      assigned: true,
    }]],
  ], SLASHED_N);
});

Deno.test("cancelled pair: a proof of either half slashes the pair by its larger claim whichever holds the job, its accuser paid its share of the proved claim (F5)", async () => {
  const { worker, finished, cancelled } = pair(8804);
  const proofOf = (r: Receipt, order: "FC" | "F+C" | "C+F" | "C+pF"): Step[] =>
    order === "FC"
      ? [{ r: finished, assigned: true }, { r: cancelled, assigned: false }, { proof: r }]
      : order === "F+C"
      ? [{ r: finished, assigned: false }, { r: cancelled, assigned: true }, { proof: r }]
      : order === "C+F"
      ? [{ r: cancelled, assigned: true }, { r: finished, assigned: false }, { proof: r }]
      : [{ r: cancelled, assigned: true }, { proof: r }, { r: finished, assigned: false }];
  for (const [proved, share] of [[cancelled, M * K / 2], [finished, M * N / 2]] as const) {
    const outcomes = await allEnd(worker, [
      ["F+asg, C, proof", proofOf(proved, "FC")],
      ["F, C+asg, proof", proofOf(proved, "F+C")],
      ["C+asg, F, proof", proofOf(proved, "C+F")],
      // The proof before the finished half: what the pair's larger claim adds, cut when it comes.
      ["C+asg, proof, F", proofOf(proved, "C+pF")],
    ], SLASHED_N);
    for (const o of outcomes) assert.equal(o.accuser.balance, share);
  }
});

Deno.test("cancelled pair: the cancelled receipt after the finished one's window closed paid n takes the difference back (F4)", async () => {
  const { worker, finished, cancelled } = pair(8805);
  await allEnd(worker, [
    ["F+asg, close, C+asg", [{ r: finished, assigned: true }, "close", {
      r: cancelled,
      assigned: true,
    }]],
    ["F+asg, close, C", [{ r: finished, assigned: true }, "close", {
      r: cancelled,
      assigned: false,
    }]],
    ["C+asg, F+asg", [{ r: cancelled, assigned: true }, { r: finished, assigned: true }]],
    ["C+asg, close, F+asg", [{ r: cancelled, assigned: true }, "close", {
      r: finished,
      assigned: true,
    }]],
  ], PAID_K);
});

Deno.test("cancelled pair: every order of F, C+asg, F+asg, C pays k once, with the index rebuilt before each step", async () => {
  const { worker, finished, cancelled } = pair(8807);
  const items: Step[] = [
    { r: finished, assigned: false },
    { r: cancelled, assigned: true },
    { r: finished, assigned: true },
    { r: cancelled, assigned: false },
  ];
  const names = ["F", "C+asg", "F+asg", "C"];
  const perms = (xs: number[]): number[][] =>
    xs.length <= 1
      ? [xs]
      : xs.flatMap((x) => perms(xs.filter((y) => y !== x)).map((p) => [x, ...p]));
  for (const p of perms([0, 1, 2, 3])) {
    for (const rebuild of [false, true]) {
      const o = await settle(worker, p.map((i) => items[i]), rebuild);
      const label = p.map((i) => names[i]).join(">") + (rebuild ? " (rebuilt)" : "");
      assert.deepEqual(o.worker, PAID_K, label);
    }
  }
});

Deno.test("cancelled pair: a cancelled receipt that signs anything else differently (seed, model, input, parameters, commitment width, prompt count) is equivocation, in either order (F2)", async () => {
  const { worker, finished } = pair(8808);
  const cut = {
    tokenCount: K,
    outputHash: "44".repeat(32),
    commitment: { ...finished.commitment, root: "55".repeat(32) },
    end: "cancelled" as const,
  };
  const variants: [string, Partial<Receipt>][] = [
    ["another seed", { params: { ...finished.params!, seed: 7 } }],
    ["another temperature", { params: { ...finished.params!, temperature: 0.5 } }],
    ["another model", { model: "bafkreiothermodel" }],
    ["another input", { inputHash: "99".repeat(32) }],
    ["another width", { commitment: { ...cut.commitment, tokenBytes: 4 } }],
    ["another prompt count", { promptTokens: 40 }],
  ];
  for (const [what, change] of variants) {
    const other = resigned(finished, { ...cut, ...change }, worker);
    await allEnd(worker, [
      [`F, C (${what})+asg`, [{ r: finished, assigned: false }, { r: other, assigned: true }]],
      [`C (${what})+asg, F`, [{ r: other, assigned: true }, { r: finished, assigned: false }]],
    ], SLASHED_N);
  }
});

Deno.test("cancelled pair: what the pair keeps survives a checkpoint and a rebuilt index (its k, its other half)", async () => {
  const { worker, finished, cancelled } = pair(8809);
  const other = resigned(finished, { tokenCount: 6, outputHash: "77".repeat(32) }, worker);
  await withLedgerDir(async (dir, clock) => {
    const options = pairLedgerOptions(clock, 1);
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.recordReceipt(finished);
    await assert.rejects(() => ledger.recordReceipt(cancelled), { code: "job_already_recorded" });
    await ledger.checkpoint();
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, options);
    // Its k: the assignment with the finished receipt pays 3, not 8.
    await ledger.recordReceipt(finished, assigned(finished));
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, options);
    // Its other half: a third claim is equivocation, slashed by the larger claim.
    await assert.rejects(() => ledger.recordReceipt(other), { code: "equivocation" });
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), SLASHED_N);
    await ledger.close();
  });
  await withLedgerDir(async (dir, clock) => {
    const options = pairLedgerOptions(clock, 1);
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.recordReceipt(finished, assigned(finished));
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    await assert.rejects(() => ledger.recordReceipt(cancelled), { code: "job_already_recorded" });
    await ledger.checkpoint();
    const live = ledger.account(worker.publicKey);
    assert.deepEqual(live, PAID_K, "the difference taken back");
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(ledger.account(worker.publicKey), live);
    await ledger.close();
    await Deno.remove(join(dir, "checkpoint.cbor"));
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(ledger.account(worker.publicKey), live, "replayed from genesis");
    await ledger.close();
  });
});
