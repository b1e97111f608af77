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
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { assigned, receipt, resigned, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const accuser = Identity.generate();
const WINDOW = 100;
const STAKE = 100_000;
/** The slash multiplier and the token price (1) of the default economics. */
const M = 20;
const N = 8;
const K = 3;

/** A receipt of the pair, and whether it comes with the job's assignment. */
type Step = { r: Receipt; assigned: boolean } | "proof_finished";

/**
 * A fresh ledger fed `steps`, its window closed, then reopened from disk (replayed from
 * genesis): the worker's and the accuser's accounts, live and replayed alike, and the codes of
 * the refusals.
 */
async function settle(worker: Identity, finished: Receipt, steps: Step[]) {
  let outcome: { worker: unknown; accuser: unknown; refused: string[] } | undefined;
  await withLedgerDir(async (dir, clock) => {
    const options = {
      now: () => clock.t,
      economics: { challengeWindowMs: WINDOW },
      checkpointEvery: 0,
    };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.deposit(accuser.publicKey, 1_000);
    const refused: string[] = [];
    const code = (error: { code?: string }) => void refused.push(error.code ?? String(error));
    for (const step of steps) {
      if (step === "proof_finished") {
        await ledger.settleFraud({
          receiptId: receiptId(finished),
          receipt: finished,
          fraudProofHash: "ab".repeat(32),
          validator: accuser.publicKey,
          confirmed: true,
          reason: "fingerprint",
        }).catch(code);
        continue;
      }
      await ledger.recordReceipt(step.r, step.assigned ? assigned(step.r) : {}).catch(code);
    }
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const live = {
      worker: ledger.account(worker.publicKey),
      accuser: ledger.account(accuser.publicKey),
    };
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.deepEqual(
      { worker: ledger.account(worker.publicKey), accuser: ledger.account(accuser.publicKey) },
      live,
      "replayed alike",
    );
    await ledger.close();
    outcome = { ...live, refused };
  });
  return outcome!;
}

function pair(n: number) {
  const worker = Identity.generate();
  const finished = receipt(n, N, worker);
  const cancelled = resigned(finished, {
    tokenCount: K,
    outputHash: "44".repeat(32),
    commitment: { ...finished.commitment, root: "55".repeat(32) },
    end: "cancelled",
  }, worker);
  return { worker, finished, cancelled };
}

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
    const outcome = await settle(worker, finished, steps);
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
    const outcome = await settle(worker, finished, steps);
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
      [{ r: cancelled, assigned: true }, { r: finished, assigned: false }, "proof_finished"],
      [{ r: finished, assigned: false }, { r: cancelled, assigned: true }, "proof_finished"],
    ] as Step[][]
  ) {
    const outcome = await settle(worker, finished, steps);
    const w = outcome.worker as { stake: number; balance: number };
    const a = outcome.accuser as { balance: number };
    assert.equal(w.balance, 0, "the convicted worker is not paid");
    assert.ok(w.stake <= STAKE - M * K, `slashed: ${w.stake}`);
    assert.ok(a.balance > 0, "its accuser is rewarded");
  }
});
