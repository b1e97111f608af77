/**
 * The loss gate against the attacks of review s74 verify3 (`training/_round_run.ts`): a carried
 * momentum that alone breaks the gate, more griefers just under the solo limit than any fixed
 * number of tries, and the griefers a passing round keeps. Each case is asserted on this node's
 * ledger after the challenge window (challenge probability 0: the gate alone decides who is paid).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account } from "../../proof/ledger.ts";
import type { GptWeights } from "../../training/gpt_weights.ts";
import { MAX_HELD_OUT_LOSS_RATIO } from "../../training/_round_run.ts";
import { GATE_STAKE, type GateRounds, gateRounds } from "./_gate_run.ts";
import { testModelCredit } from "./_fixtures.ts";
import { upTheLoss } from "./_up_the_loss.ts";

/** Honest amplitude: RMS 0.014, harmless (its own model within 0.7 % of the start's). */
const HONEST = 0.02;

/**
 * The poisoner's step size: alone, its delta makes the start model's held-out loss 1.149 × (the
 * review's offline search for "just under the 1.15 limit"); in round 0's mean with two honest
 * deltas the model is published (+4.9 %).
 */
const POISON_SIZE = 4.159e-3;

/** A griefer's step size: alone 1.140 × the start, under the 1.15 limit (the review's F-stall). */
const GRIEFER_SIZE = 3.918e-3;

/** A harmless made-up delta of amplitude `size`, its own phase `k` (one piece of work each). */
function noise(size: number, k: number): (i: number) => number {
  return (i) => size * Math.sin(i + 1 + k);
}

/** `account` was paid `rounds` rounds of 4 steps, its stake whole and nothing locked. */
function assertPaid(account: Account, rounds: number): void {
  assert.ok(
    Math.abs(account.balance - rounds * testModelCredit(4)) < 1e-6,
    `paid ${account.balance}, expected ${rounds} × ${testModelCredit(4)}`,
  );
  assert.deepEqual([account.stake, account.locked], [GATE_STAKE, 0]);
}

/** `account` was paid nothing, and lost no stake (left out: no proof, no slash). */
function assertUnpaid(account: Account): void {
  assert.deepEqual(account, { balance: 0, stake: GATE_STAKE, locked: 0 });
}

/**
 * One round of 4 steps: two honest trainers (keys 0 and 1) beside `count` griefers just under the
 * solo limit, each its own delta; the run and its round's record.
 */
async function grieferRound(count: number) {
  const griefers = await Promise.all(
    Array.from(
      { length: count },
      async (_, k) => ({ delta: await upTheLoss(GRIEFER_SIZE, k + 1) }),
    ),
  );
  const run = await gateRounds({
    steps: 4,
    rounds: 1,
    reporters: [{ value: noise(HONEST, 17) }, { value: noise(HONEST, 99) }, ...griefers],
  });
  return { run, record: run.status.history[0] };
}

/** Paid for the one round are exactly the reporters in `accepted`; the others nothing. */
function assertPaidIffAccepted(run: GateRounds, accepted: readonly string[]): void {
  run.keys.forEach((key, i) => {
    if (accepted.includes(key)) assertPaid(run.accounts[i], 1);
    else assertUnpaid(run.accounts[i]);
  });
}

Deno.test("a poisoned round's momentum is reset, not blamed on the honest: every later round of harmless deltas is published and paid", async () => {
  // Before: from round 2 on, the mean with the carried momentum failed the gate, the harmless
  // deltas were left out one by one, and every round after was refused: nobody paid again.
  const poison = await upTheLoss(POISON_SIZE);
  let asked = 0;
  const turncoat = {
    // Round 0: the poison; every later round: harmless made-up work like the others'.
    get delta(): GptWeights | undefined {
      return asked++ === 0 ? poison : undefined;
    },
    value: noise(HONEST, 55),
  };
  const rounds = 4;
  const run = await gateRounds({
    steps: 4,
    rounds,
    reporters: [{ value: noise(HONEST, 17) }, { value: noise(HONEST, 99) }, turncoat],
  });
  for (const record of run.status.history) {
    assert.notEqual(record.model, record.startModel, `round ${record.round} published`);
    assert.deepEqual(record.accepted, run.keys, `round ${record.round}: nobody left out`);
  }
  assert.ok(
    run.status.history.some((r) => r.momentumReset === true),
    "the harmful momentum was reset (said in a round's record)",
  );
  // The poison under the solo limit in a passing round is paid (the honest-noise tolerance).
  for (const account of run.accounts) assertPaid(account, rounds);
});

Deno.test("thirty griefers just under the solo limit beside two honest trainers: the honest are published and paid, the griefers outside the kept best left out unpaid", async () => {
  // Before: eight one-at-a-time drops left 22 griefers, whose mean with the honest still failed
  // the gate: the round was refused and nobody was paid.
  const { run, record } = await grieferRound(30);
  assert.notEqual(record.model, record.startModel, "published");
  assert.deepEqual(record.accepted.slice(0, 2).sort(), run.keys.slice(0, 2).sort());
  assert.ok(
    record.heldOutLoss! <= run.status.initialLoss! * MAX_HELD_OUT_LOSS_RATIO,
    `the published model passes the gate: ${record.heldOutLoss}`,
  );
  // Griefers rank last (each alone is worse than an honest delta alone), so those left out are
  // griefers, each named by its rank outside the kept best.
  const left = record.excludedCounts?.find((c) => c.reason === "loss_regression")?.count ?? 0;
  assert.equal(left, 32 - record.accepted.length);
  assert.ok(left >= 20, `most griefers left out: ${left}`);
  for (const { key, reason } of record.excluded) {
    assert.ok(run.keys.slice(2).includes(key), `${key} is a griefer`);
    assert.match(reason, /^loss_regression: .*ranked \d+ of 32 by its delta alone/);
  }
  // Paid are exactly the deltas in the model.
  assertPaidIffAccepted(run, record.accepted);
});

Deno.test("ten griefers just under the solo limit: those ranked last are left out, and a griefer kept in a mean within the gate is paid (the honest-noise tolerance)", async () => {
  const { run, record } = await grieferRound(10);
  assert.notEqual(record.model, record.startModel, "published");
  assert.ok(record.accepted.includes(run.keys[0]) && record.accepted.includes(run.keys[1]));
  assert.ok(record.heldOutLoss! <= run.status.initialLoss! * MAX_HELD_OUT_LOSS_RATIO);
  const kept = record.accepted.length - 2;
  assert.ok(kept > 0 && kept < 10, `some griefers kept, some left out: ${kept}`);
  assertPaidIffAccepted(run, record.accepted);
});
