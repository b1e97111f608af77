/**
 * A steering conviction cuts the locks of its pending evidence from the worker's stake at once
 * (`steeringEntry`, `_ledger_steering.ts`): that stake is gone, so it must not stay counted as
 * locked until the evidence's windows close as well. Counted both ways, the worker's free stake
 * was short by those locks, and its next honest receipt refused `insufficient_stake` where a
 * ledger that heard the proofs of that evidence first recorded it (stop 80, ledger item 1).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type Account, freeStake, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

interface Outcome {
  /** The worker right after the settlements, before any window closed. */
  settled: Account;
  /** Whether its honest receipt (lock 800) was recorded then. */
  honest: "recorded" | string;
  /** The worker once every window closed. */
  closed: Account;
  /** The two accusers' accounts then. */
  accusers: [Account, Account];
}

/**
 * A worker staked 1,000: a paid receipt (credit 1), then `caught` (lock 80) and `other` (lock
 * 40) pending, all three steering evidence. The conviction, and (when `proofsFirst`) confirmed
 * proofs of both pending receipts before it; then an honest receipt of 40 tokens (lock 800) for
 * another job. `reopen`: the ledger is reopened (index rebuilt from the log) before that;
 * `checkpointEvery: 1` makes that reopen restore the state from a checkpoint taken after the
 * conviction (its open rows carry what the cut freed of each lock).
 */
function run(proofsFirst: boolean, reopen: boolean, checkpointEvery?: number): Promise<Outcome> {
  let out: Outcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const a1 = Identity.generate();
    const a2 = Identity.generate();
    const options = { now: () => clock.t, checkpointEvery };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.deposit(a1.publicKey, 1_000);
    await ledger.deposit(a2.publicKey, 1_000);
    const paid = receipt(8930, 1, worker);
    await ledger.recordReceipt(paid, assigned(paid));
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    const caught = receipt(8931, 4, worker);
    const other = receipt(8932, 2, worker);
    await ledger.recordReceipt(caught, assigned(caught));
    await ledger.recordReceipt(other, assigned(other));
    const prove = (r: typeof caught, by: Identity, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        receipt: r,
        fraudProofHash: hash.repeat(32),
        validator: by.publicKey,
        confirmed: true,
        reason: "fingerprint_mismatch",
      });
    if (proofsFirst) {
      await prove(caught, a1, "ab");
      await prove(other, a2, "cd");
    }
    await ledger.settleSteering(worker.publicKey, [paid, caught, other].map((r) => receiptId(r)));
    if (reopen) {
      await ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await Ledger.open(dir, owner, options);
    }
    const settled = ledger.account(worker.publicKey);
    const honestReceipt = receipt(8933, 40, worker);
    const honest = await ledger.recordReceipt(honestReceipt, assigned(honestReceipt)).then(
      () => "recorded",
      (e: { code?: string }) => e.code ?? String(e),
    );
    if (!proofsFirst) {
      // The proofs after the conviction: each slashes nothing more, its accuser paid its share.
      await prove(caught, a1, "ab");
      await prove(other, a2, "cd");
    }
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    out = {
      settled,
      honest,
      closed: ledger.account(worker.publicKey),
      accusers: [ledger.account(a1.publicKey), ledger.account(a2.publicKey)],
    };
    await ledger.close();
  }).then(() => out!);
}

Deno.test("ledger steering locks: the conviction's cut of its pending evidence frees those locks at once, so the worker's honest receipt is recorded as where the proofs came first", async () => {
  for (const [reopen, checkpointEvery] of [[false], [true], [true, 1]] as const) {
    const proofsFirst = await run(true, reopen, checkpointEvery);
    const steeringFirst = await run(false, reopen, checkpointEvery);
    // 1,000 less the claw-back (1 + 20) and the two pending locks (80 + 40): nothing locked.
    assert.deepEqual(proofsFirst.settled, { balance: 1, stake: 859, locked: 0 });
    assert.deepEqual(steeringFirst.settled, proofsFirst.settled, `reopen ${reopen}`);
    assert.equal(freeStake(steeringFirst.settled), 859);
    assert.equal(steeringFirst.honest, "recorded", `reopen ${reopen}`);
    assert.equal(proofsFirst.honest, "recorded");
    // Every window closed: the honest receipt paid 40, nothing locked, each accuser paid once.
    assert.deepEqual(proofsFirst.closed, { balance: 41, stake: 859, locked: 0 });
    assert.deepEqual(steeringFirst.closed, proofsFirst.closed, `reopen ${reopen}`);
    assert.deepEqual(steeringFirst.accusers, proofsFirst.accusers, `reopen ${reopen}`);
    assert.deepEqual(proofsFirst.accusers.map((a) => a.balance), [40, 20]);
  }
});
