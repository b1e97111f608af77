/**
 * A worker's finished receipt over n tokens and its cancelled receipt over the first k < n of
 * them (its requester's client cancelled after the worker's end, review s80 bill F1) are one
 * claim on every ledger, whichever comes first: never equivocation, paid once, the k tokens. A
 * pair that contradicts (a cancelled receipt over more tokens, two cancelled ones, another
 * prompt count) is still equivocation, and a proof that the finished receipt is wrong still
 * convicts its worker after the cancelled one took the job.
 *
 * @module
 */
import assert from "node:assert/strict";
import { resigned } from "./_ledger_fixtures.ts";
import { K, M, N, pair, settle, STAKE, type Step } from "./_cancelled_pair.ts";

Deno.test("a worker's finished receipt and its cancelled one over the first k tokens are one claim: paid k once, whichever reaches the ledger first", async () => {
  const { worker, finished, cancelled } = pair(8101);
  const paidK = { balance: K, stake: STAKE, locked: 0 };
  const orders: [string, Step[]][] = [
    // The worker's own announcement of its finished receipt, then the router's cancelled one
    // with the assignment.
    ["finished, cancelled assigned", [{ r: finished, assigned: false }, {
      r: cancelled,
      assigned: true,
    }]],
    ["cancelled assigned, finished", [{ r: cancelled, assigned: true }, {
      r: finished,
      assigned: false,
    }]],
    // The worker races its finished receipt with the (public) assignment of the cancelled one.
    ["finished assigned, cancelled assigned", [{ r: finished, assigned: true }, {
      r: cancelled,
      assigned: true,
    }]],
    ["cancelled assigned, finished assigned", [{ r: cancelled, assigned: true }, {
      r: finished,
      assigned: true,
    }]],
    ["cancelled, finished assigned", [{ r: cancelled, assigned: false }, {
      r: finished,
      assigned: true,
    }]],
    ["finished assigned, cancelled", [{ r: finished, assigned: true }, {
      r: cancelled,
      assigned: false,
    }]],
  ];
  for (const [label, steps] of orders) {
    const outcome = await settle(worker, steps);
    assert.deepEqual(outcome.worker, paidK, label);
    assert.ok(!outcome.refused.includes("equivocation"), `${label}: ${outcome.refused}`);
  }
});

Deno.test("a contradicting pair is still equivocation: a cancelled receipt over more tokens, two cancelled receipts, another prompt count", async () => {
  const { worker, finished, cancelled } = pair(8102);
  const over = resigned(cancelled, { tokenCount: N + 1 }, worker);
  const twice = resigned(cancelled, { tokenCount: K + 1, outputHash: "66".repeat(32) }, worker);
  const prompt = resigned(cancelled, { promptTokens: 40 }, worker);
  const cases: [string, Step[], number][] = [
    [
      "cancelled over n + 1",
      [{ r: finished, assigned: false }, { r: over, assigned: true }],
      N + 1,
    ],
    ["finished after a cancelled over n + 1", [{ r: over, assigned: true }, {
      r: finished,
      assigned: false,
    }], N + 1],
    ["two cancelled", [{ r: cancelled, assigned: true }, { r: twice, assigned: true }], K + 1],
    ["another prompt count", [{ r: finished, assigned: false }, {
      r: prompt,
      assigned: true,
    }], N],
  ];
  for (const [label, steps, larger] of cases) {
    const outcome = await settle(worker, steps);
    assert.ok(outcome.refused.includes("equivocation"), `${label}: ${outcome.refused}`);
    const { stake, balance } = outcome.worker as { stake: number; balance: number };
    assert.equal(balance, 0, label);
    assert.ok(stake <= STAKE - M * Math.min(larger, N), `${label}: stake ${stake}`);
  }
});

Deno.test("a proof that the finished receipt is wrong convicts its worker after the cancelled one took the job", async () => {
  const { worker, finished, cancelled } = pair(8103);
  for (
    const steps of [
      [{ r: cancelled, assigned: true }, { r: finished, assigned: false }, { proof: finished }],
      [{ r: finished, assigned: false }, { r: cancelled, assigned: true }, { proof: finished }],
    ] as Step[][]
  ) {
    const outcome = await settle(worker, steps);
    const w = outcome.worker as { stake: number; balance: number };
    const a = outcome.accuser as { balance: number };
    assert.equal(w.balance, 0, "the convicted worker is not paid");
    assert.ok(w.stake <= STAKE - M * K, `slashed: ${w.stake}`);
    assert.ok(a.balance > 0, "its accuser is rewarded");
  }
});
