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
import type { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type Account, freeStake, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { assigned, jobIdOf, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { recordSteeringEvidence, settleProof, steeringKeys } from "./_steering_evidence.ts";

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
    const keys = steeringKeys();
    const { owner, worker, a1, a2 } = keys;
    const options = { now: () => clock.t, checkpointEvery };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000);
    const { paid, caught, other } = await recordSteeringEvidence(ledger, clock, keys, 8930);
    const prove = (r: typeof caught, by: Identity, hash: string) =>
      settleProof(ledger, r, by, hash);
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

/** What {@link shortStake} ends with. */
interface ShortOutcome extends Omit<Outcome, "accusers"> {
  /** The two accusers' balances once every window closed. */
  accusers: number[];
  /** The owner's balance then (its share of the stream conviction's cut). */
  owner: number;
  /** `verifyLedger`'s verdict on the log and its checkpoint. */
  verify: [boolean, string];
}

/**
 * Review vled F1: a worker staked 1,000, `caught` (lock 80) and `other` (lock 40) pending, then a
 * stream conviction on another job cuts 900 of the whole stake (100 left, 120 locked): the
 * steering cut that follows takes 100, short of its evidence's locks. `order` is what comes
 * between the stream cut and the deposit of 800 that lets the worker back an honest receipt of
 * lock 800: the steering conviction, and the confirmed proofs of both pending receipts
 * ("proofs") before or after it; `"steer"` alone leaves the proofs for after the honest
 * receipt. `streamLast`: the stream conviction comes after the steering one instead (no proofs).
 * Reopened with an index rebuilt and a checkpoint after every entry when `reopen`.
 */
function shortStake(
  order: "proofs>steer" | "steer" | "steer>stream",
  reopen: boolean,
): Promise<ShortOutcome> {
  let out: ShortOutcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const { owner, worker, a1, a2 } = steeringKeys();
    const options = { now: () => clock.t, checkpointEvery: reopen ? 1 : undefined };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1_000);
    await ledger.deposit(a1.publicKey, 1_000);
    await ledger.deposit(a2.publicKey, 1_000);
    const caught = receipt(8941, 4, worker); // lock 80
    const other = receipt(8942, 2, worker); // lock 40
    await ledger.recordReceipt(caught, assigned(caught));
    await ledger.recordReceipt(other, assigned(other));
    const stream = () =>
      ledger.settleStreamFraud({
        jobId: jobIdOf(8950),
        worker: worker.publicKey,
        model: "bafkreimodel",
        tokens: 45, // 900
        claimHash: "c1".repeat(32),
      });
    const steer = () =>
      ledger.settleSteering(worker.publicKey, [caught, other].map((r) => receiptId(r)));
    const prove = async () => {
      for (const [r, by, hash] of [[caught, a1, "ab"], [other, a2, "cd"]] as const) {
        await settleProof(ledger, r, by, hash);
      }
    };
    if (order === "steer>stream") {
      await steer();
      await stream();
    } else {
      await stream();
      if (order === "proofs>steer") await prove();
      await steer();
    }
    if (reopen) {
      await ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await Ledger.open(dir, owner, options);
    }
    await ledger.deposit(worker.publicKey, 800);
    const settled = ledger.account(worker.publicKey);
    const honestReceipt = receipt(8943, 40, worker); // lock 800
    const honest = await ledger.recordReceipt(honestReceipt, assigned(honestReceipt)).then(
      () => "recorded",
      (e: { code?: string }) => e.code ?? String(e),
    );
    if (order !== "proofs>steer") await prove();
    clock.t += WINDOW + 1;
    await ledger.finalizeDue();
    out = {
      settled,
      honest,
      closed: ledger.account(worker.publicKey),
      accusers: [ledger.account(a1.publicKey).balance, ledger.account(a2.publicKey).balance],
      owner: ledger.account(owner.publicKey).balance,
      verify: [false, ""],
    };
    await ledger.close();
    const verified = await verifyLedger(dir, { owner: owner.publicKey });
    out.verify = [verified.ok, verified.checkpoint.check];
  }).then(() => out!);
}

Deno.test("ledger steering locks: a cut short of its evidence's locks (a stream conviction cut the stake first) still frees them all, so the honest receipt is recorded in every order", async () => {
  // Review vled F1: the conviction freed only what it cut (100 of 120), the other 20 stayed
  // locked though a later proof of that evidence takes nothing more, and the honest receipt
  // (lock 800 of 800) was refused insufficient_stake where the proofs came after the
  // conviction, recorded where they came before.
  for (const reopen of [false, true]) {
    const proofsFirst = await shortStake("proofs>steer", reopen);
    const steeringFirst = await shortStake("steer", reopen);
    const label = `reopen ${reopen}`;
    assert.deepEqual(proofsFirst.settled, { balance: 0, stake: 800, locked: 0 }, label);
    assert.deepEqual(steeringFirst.settled, proofsFirst.settled, label);
    assert.equal(proofsFirst.honest, "recorded", label);
    assert.equal(steeringFirst.honest, "recorded", label);
    // The honest receipt paid 40; 1,000 taken in all (900 + 100); each accuser paid once.
    assert.deepEqual(proofsFirst.closed, { balance: 40, stake: 800, locked: 0 }, label);
    assert.deepEqual(steeringFirst.closed, proofsFirst.closed, label);
    assert.deepEqual(steeringFirst.accusers, proofsFirst.accusers, label);
    assert.deepEqual(proofsFirst.accusers, [40, 10], label);
    for (const o of [proofsFirst, steeringFirst]) assert.deepEqual(o.verify, [true, "matches"]);
  }
});

Deno.test("ledger steering locks: the stream and steering convictions in either order leave nothing locked and take the same", async () => {
  // Review vled F1b: stream then steering left 20 locked (the honest receipt refused), steering
  // then stream none. The two cuts never take more than the stake (1,000) either way.
  for (const reopen of [false, true]) {
    const streamFirst = await shortStake("steer", reopen);
    const streamLast = await shortStake("steer>stream", reopen);
    const label = `reopen ${reopen}`;
    assert.deepEqual(streamLast.settled, { balance: 0, stake: 800, locked: 0 }, label);
    assert.deepEqual(streamFirst.settled, streamLast.settled, label);
    assert.equal(streamFirst.honest, "recorded", label);
    assert.equal(streamLast.honest, "recorded", label);
    assert.deepEqual(streamFirst.closed, streamLast.closed, label);
    // Rewarded alike in all: half of the 1,000. How it splits between the stream conviction's
    // share and the proofs' follows which cut came first (the later one takes what is left).
    const rewards = (o: ShortOutcome) => o.owner + o.accusers[0] + o.accusers[1];
    assert.equal(rewards(streamFirst), 500, label);
    assert.equal(rewards(streamLast), 500, label);
    for (const o of [streamFirst, streamLast]) assert.deepEqual(o.verify, [true, "matches"]);
  }
});
