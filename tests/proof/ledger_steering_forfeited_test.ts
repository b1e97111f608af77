/**
 * A steering conviction of a worker also convicted of pledge equivocation (review vled, "not
 * demonstrated" 3). `steeringEntry` cuts the stake without the guard a stream conviction has
 * (`_ledger_stream_fraud.ts`): a forfeited account keeps no stake but its locks (`#hold`,
 * `ledger_state.ts`), so the cut is undone and only the locks the conviction frees leave. Every
 * order of the second pledge, the conviction and the proofs of its pending evidence ends as the
 * proofs alone do: the worker at zero, nothing locked, each accuser paid its share of the lock it
 * proved, nothing minted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { orders } from "./_ledger_order_run.ts";
import { recordSteeringEvidence, settleProof, steeringKeys } from "./_steering_evidence.ts";

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

type Step = "forfeit" | "steer" | "proofs";

interface End {
  worker: Account;
  accusers: number[];
  owner: Account;
  verified: boolean;
}

/**
 * A worker pledged 1,000: a paid receipt (credit 1), then `caught` (lock 80) and `other` (lock
 * 40) pending, all steering evidence, and `kept` (lock 60) pending, not evidence; `steps` in order (its second, different pledge; this
 * ledger's steering conviction; a1's and a2's confirmed proofs of the three pending receipts),
 * then every window closes.
 */
function run(steps: readonly Step[]): Promise<End> {
  let out: End | undefined;
  return withLedgerDir(async (dir, clock) => {
    const keys = steeringKeys();
    const { owner, worker, a1, a2 } = keys;
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.recordPledge(signStakePledge(worker, 1_000, 1));
    const { paid, caught, other } = await recordSteeringEvidence(ledger, clock, keys, 8960);
    const kept = receipt(8963, 3, worker);
    await ledger.recordReceipt(kept, assigned(kept));
    const act: Record<Step, () => Promise<unknown>> = {
      forfeit: () => ledger.recordPledge(signStakePledge(worker, 1_000_000, 2)),
      steer: () =>
        ledger.settleSteering(worker.publicKey, [paid, caught, other].map((r) => receiptId(r))),
      proofs: async () => {
        for (
          const [r, by, hash] of [[caught, a1, "ab"], [other, a2, "cd"], [kept, a2, "ef"]] as const
        ) {
          await settleProof(ledger, r, by, hash);
        }
      },
    };
    // Each settled: a refusal throws (a conviction refused would end as the proofs alone too).
    for (const step of steps) await act[step]();
    assert.equal(ledger.pledgeEquivocated(worker.publicKey), steps.includes("forfeit"));
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    out = {
      worker: ledger.account(worker.publicKey),
      accusers: [ledger.account(a1.publicKey).balance, ledger.account(a2.publicKey).balance],
      owner: ledger.account(owner.publicKey),
      verified: false,
    };
    await ledger.close();
    out.verified = (await verifyLedger(dir, { owner: owner.publicKey })).ok;
  }).then(() => out!);
}

Deno.test("ledger steering of a worker convicted of pledge equivocation: every order ends as the proofs alone, the worker at zero and each accuser paid its share once", async () => {
  // Without the conviction: the proofs slash the three locks (80, 40, 60), each accuser paid
  // half. The conviction's cut (21 clawed back + 120) leaves `kept`'s lock backing its proof.
  const alone = await run(["forfeit", "proofs"]);
  assert.deepEqual(alone.worker, { balance: 0, stake: 0, locked: 0 });
  assert.deepEqual(alone.accusers, [40, 50]);
  const disagree: string[] = [];
  for (const order of orders<Step>(["forfeit", "steer", "proofs"])) {
    const end = await run(order);
    assert.equal(end.verified, true, order.join(">"));
    if (JSON.stringify(end) !== JSON.stringify(alone)) {
      disagree.push(`${order.join(">")}: ${JSON.stringify(end)}`);
    }
  }
  assert.deepEqual(disagree, []);
});
