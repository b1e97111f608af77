/**
 * The round's loss gate and delta limits against a staked trainer the coin does not draw
 * (challenge probability 0, the 90 % case at the default), review s73 F1 and F2:
 *
 * - F1: a delta with every value just under the round's bound passed it, and the gate compared
 *   each round with its own start, so 1.5× compounded: held-out loss 5.7 → 22.8 over 5 rounds,
 *   published and paid every round. Now the RMS limit leaves it out (`delta_too_large`), and a
 *   delta within both limits that still pushes against the model is held to the run's best loss.
 * - F2: one such delta beside honest ones failed the gate for the whole round, every trainer
 *   excluded, nobody paid, round after round. Now the delta that does harm alone is left out
 *   (`loss_regression`, `training/_delta_attribution.ts`) and the honest rest published and paid.
 *
 * Each is asserted on this node's ledger after the challenge window: credits, stakes, locks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Account } from "../../proof/ledger.ts";
import { roundDeltaBound } from "../../training/int8_delta.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { MAX_HELD_OUT_LOSS_RATIO } from "../../training/_round_run.ts";
import { CoordinatorState } from "../../training/coordinator_state.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import { GATE_STAKE, gateRounds } from "./_gate_run.ts";
import { TEST_ARCH, TEST_HYPER, testModelCredit } from "./_fixtures.ts";

/** What each trainer holds in this node's ledger before the rounds. */
const STAKE = GATE_STAKE;

/** A made-up delta of `fraction` × the round's bound per value, alternating in sign. */
function againstTheModel(steps: number, fraction: number): (i: number) => number {
  const bound = roundDeltaBound(steps, { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER });
  return (i) => (i % 2 === 0 ? 1 : -1) * fraction * bound;
}

interface GateRun {
  status: CoordinatorStatus;
  /** The pusher's account (when there is one) and each honest-sized reporter's, finalized. */
  pusher?: Account;
  honest: Account[];
  pusherKey?: string;
  honestKeys: string[];
}

/**
 * `rounds` rounds of `steps` steps by a coordinator that evaluates held-out loss; `honest`
 * honest-sized reporters (the fixture's small made-up deltas) and, with `pusher`, one reporter
 * answering each round with `pusher(i)` per value. Everyone joins before round 0.
 */
async function gateRun(
  options: {
    steps: number;
    rounds: number;
    honest: number;
    pusher?: (i: number) => number;
    /** Where the coordinator saves its state (absent: not saved). */
    statePath?: string;
  },
): Promise<GateRun> {
  const pushed = options.pusher === undefined ? 0 : 1;
  const run = await gateRounds({
    steps: options.steps,
    rounds: options.rounds,
    reporters: [
      ...(options.pusher === undefined ? [] : [{ value: options.pusher }]),
      ...Array.from({ length: options.honest }, () => ({})),
    ],
    statePath: options.statePath,
  });
  return {
    status: run.status,
    pusher: pushed ? run.accounts[0] : undefined,
    honest: run.accounts.slice(pushed),
    pusherKey: pushed ? run.keys[0] : undefined,
    honestKeys: run.keys.slice(pushed),
  };
}

/** `account` was paid `rounds` rounds of `steps` steps, its stake whole and nothing locked. */
function assertPaid(account: Account, rounds: number, steps: number): void {
  assert.ok(
    Math.abs(account.balance - rounds * testModelCredit(steps)) < 1e-6,
    `paid ${account.balance}, expected ${rounds} × ${testModelCredit(steps)}`,
  );
  assert.deepEqual([account.stake, account.locked], [STAKE, 0]);
}

Deno.test("a delta with every value just under the round's bound is left out every round and unpaid; the honest one beside it is paid", async () => {
  const run = await gateRun({ steps: 4, rounds: 3, honest: 1, pusher: againstTheModel(4, 0.99) });
  const initial = run.status.initialLoss!;
  for (const record of run.status.history) {
    assert.deepEqual(record.accepted, run.honestKeys, `round ${record.round}`);
    assert.deepEqual(record.excluded.map((e) => e.key), [run.pusherKey]);
    assert.match(record.excluded[0].reason, /^delta_too_large: .*root mean square/);
    assert.notEqual(record.model, record.startModel, "the honest delta is published");
    assert.ok(record.heldOutLoss! <= MAX_HELD_OUT_LOSS_RATIO * initial, `${record.heldOutLoss}`);
  }
  assert.deepEqual(run.pusher, { balance: 0, stake: STAKE, locked: 0 });
  assertPaid(run.honest[0], 3, 4);
});

Deno.test("a creeping push within both limits is held to the run's best loss: never published, never paid", async () => {
  // Half the bound per value, all against the model: within the value and the RMS limit. Its
  // round-0 model is 12 % worse than the seed's, and each round from a model it made was worse
  // again (5.7 → 12.1 over 5 rounds before, each published and paid).
  const run = await gateRun({ steps: 4, rounds: 3, honest: 0, pusher: againstTheModel(4, 0.49) });
  for (const record of run.status.history) {
    assert.equal(record.model, record.startModel, `round ${record.round} publishes nothing`);
    assert.deepEqual(record.accepted, []);
    assert.deepEqual(record.excluded.map((e) => e.key), [run.pusherKey]);
    assert.match(record.excluded[0].reason, /^loss_regression: .*× the run's best/);
  }
  assert.equal(run.status.model, run.status.history[0].startModel, "the run stays on its seed");
  assert.deepEqual(run.pusher, { balance: 0, stake: STAKE, locked: 0 });
});

Deno.test("one griefing trainer beside honest ones: its delta is left out and unpaid, the honest ones published and paid every round", async () => {
  // H = 50: the bound is 0.6, so half of it is a large push; alone it broke every round before.
  const run = await gateRun({ steps: 50, rounds: 2, honest: 3, pusher: againstTheModel(50, 0.49) });
  const initial = run.status.initialLoss!;
  for (const record of run.status.history) {
    assert.deepEqual(record.accepted, run.honestKeys, `round ${record.round}`);
    assert.notEqual(record.model, record.startModel);
    assert.ok(record.heldOutLoss! <= MAX_HELD_OUT_LOSS_RATIO * initial, `${record.heldOutLoss}`);
    assert.deepEqual(record.excluded.map((e) => e.key), [run.pusherKey]);
    assert.match(
      record.excluded[0].reason,
      /^loss_regression: .*× the run's best.*its delta alone gives/,
    );
  }
  assert.deepEqual(run.pusher, { balance: 0, stake: STAKE, locked: 0 });
  for (const account of run.honest) assertPaid(account, 2, 50);
});

Deno.test("honest-sized rounds are unaffected: every report averaged and paid each round", async () => {
  const run = await gateRun({ steps: 4, rounds: 2, honest: 3 });
  for (const record of run.status.history) {
    assert.deepEqual(record.accepted, run.honestKeys);
    assert.deepEqual(record.excluded, []);
    assert.notEqual(record.model, record.startModel);
  }
  for (const account of run.honest) assertPaid(account, 2, 4);
});

Deno.test("a coordinator saves the lowest loss it published as the gate's reference, and the griefer's rounds do not raise it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-loss-reference-run-" });
  try {
    const statePath = join(dir, "coordinator.json");
    const run = await gateRun({
      steps: 50,
      rounds: 2,
      honest: 1,
      pusher: againstTheModel(50, 0.49),
      statePath,
    });
    const saved = JSON.parse(await Deno.readTextFile(statePath));
    const published = run.status.history.filter((r) => r.model !== r.startModel);
    assert.equal(published.length, 2, "the honest delta's rounds are published");
    const lowest = Math.min(run.status.initialLoss!, ...published.map((r) => r.heldOutLoss!));
    assert.equal(saved.bestLoss, lowest);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the loss gate's reference is saved with the coordinator's state, and a state saved without it gets the best published loss", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-loss-reference-" });
  try {
    const path = join(dir, "training", "coordinator.json");
    const run = {
      arch: TEST_ARCH,
      seed: 0,
      steps: 4,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
    };
    const record = (round: number, published: boolean, heldOutLoss?: number) => ({
      round,
      startModel: `m${round}`,
      model: published ? `m${round + 1}` : `m${round}`,
      accepted: [],
      excluded: [],
      excludedCounts: [],
      ...(heldOutLoss === undefined ? {} : { heldOutLoss }),
    });
    const state = new CoordinatorState(path, run);
    await state.save({
      round: 2,
      model: { cid: "m2" },
      history: [record(0, true, 4.1), record(1, true, 4.4)],
      convicted: [],
      initialLoss: 5.7,
      bestLoss: 4.1,
    });
    assert.equal((await new CoordinatorState(path, run).load())?.bestLoss, 4.1);
    // Written before the reference was kept: the lowest of the first loss and the published
    // rounds' (a round that published nothing carries no loss of a model of the run).
    const old = JSON.parse(await Deno.readTextFile(path));
    delete old.bestLoss;
    old.history = [record(0, true, 4.4), record(1, true, 3.9), record(2, false)];
    await Deno.writeTextFile(path, JSON.stringify(old));
    assert.equal((await new CoordinatorState(path, run).load())?.bestLoss, 3.9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
