/**
 * A delta far outside its round (review s73 F1): a staked trainer that does no training reports a
 * made-up delta of ±1000 per value (an honest one is about `H × lr`, ~0.01 here), and the
 * coordinator's coin does not draw it (challenge probability 0, the 90 % case at the default).
 * Before, it was averaged in, took the held-out loss from 5.7 to 62 million nats/byte, carried
 * on in the momentum, and was paid. Now it is left out of the mean, recorded with its reason
 * (`delta_too_large`) and unpaid; a model much worse on held-out text than the best the run
 * published is not published and nobody is paid for it (`loss_regression`); and an honest-sized
 * report is paid as before. Each is asserted on this node's ledger: credits, locks, stakes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { RoundModels } from "../../training/round_models.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { reportingTrainer } from "./_reporting_trainer.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { TEST_ARCH, TEST_HYPER, testModelCredit, testSplit } from "./_fixtures.ts";

/** What each trainer holds in this node's ledger before the rounds. */
const STAKE = 1_000_000;
/** The poisoner's made-up delta: ±1000 per value, within the wire's 1024 bound. */
const POISON = (i: number) => (i % 2 === 0 ? 1000 : -1000);

interface PoisonRun {
  /** The coordinator's records and its start model's held-out loss. */
  status: CoordinatorStatus;
  /** The reporter's and (when it joined) the honest-sized reporter's accounts, after finalize. */
  reporter: Account;
  honest: Account;
  /** Their keys, hex. */
  reporterKey: string;
  honestKey: string;
}

/**
 * `rounds` rounds of `steps` steps by a coordinator that evaluates held-out loss, the reporter
 * answering each with `value(i)` per delta value; from round 1 on the reporter counts as
 * convicted by this node's ledger (as a peer's proof after round 0 would make it), and with
 * `honestToo` an honest-sized reporter joins too, before round 0 starts. The ledger's clock moves past the challenge window
 * and the ledger finalizes before the accounts are read.
 */
async function poisonRun(
  value: (i: number) => number,
  options: { rounds?: number; honestToo?: boolean; steps?: number } = {},
): Promise<PoisonRun> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-poison-delta-" });
  const system = new ActorSystem({ name: "poison-delta" });
  try {
    const me = Identity.generate();
    const reporter = Identity.generate();
    const honest = Identity.generate();
    const clock = { t: Date.now() };
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const { ledger } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0 },
    });
    for (const k of [reporter, honest]) {
      await ledger.ask({ type: "deposit", key: k.publicKey, amount: STAKE });
    }
    const rounds = options.rounds ?? 1;
    // Convicted once it has reported (a peer's proof of its round-0 receipt settled here): asked
    // in round 0, never after.
    const sent: TrainingReceipt[] = [];
    const convicted = (key: string) =>
      Promise.resolve(key === toHex(reporter.publicKey) && sent.length > 0);
    const split = await testSplit();
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: me,
          arch: TEST_ARCH,
          seed: 0,
          rounds,
          convicted,
          steps: options.steps ?? 4,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          // Both reporters in round 0 when both join: which rounds each is in does not race.
          minTrainers: options.honestToo ? 2 : 1,
          models,
          validator: "node/training-validator",
          heldOut: split.heldOut,
        }),
    });
    const start = seededGptWeights(TEST_ARCH, 0);
    const shard = { size: 100, root: "cc".repeat(32) };
    const join = (identity: Identity, v?: (i: number) => number) =>
      coordinator.ask({
        type: "join",
        connection: reportingTrainer(identity, start, shard, v ? { value: v, sent } : {}),
        shardSize: shard.size,
        shardRoot: shard.root,
      });
    await join(reporter, value);
    if (options.honestToo) await join(honest);
    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === rounds ? s : undefined;
      },
      "the rounds to end",
      { timeoutMs: 120_000 },
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const account = (k: Identity) => ledger.ask<Account>({ type: "account", key: k.publicKey });
    return {
      status,
      reporter: await account(reporter),
      honest: await account(honest),
      reporterKey: toHex(reporter.publicKey),
      honestKey: toHex(honest.publicKey),
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a delta far past its round's bound is left out of the mean, recorded, and unpaid", async () => {
  const run = await poisonRun(POISON);
  const [record] = run.status.history;
  assert.deepEqual(record.accepted, [], "not averaged");
  assert.equal(record.model, record.startModel, "no model from it");
  assert.equal(record.excluded.length, 1);
  assert.equal(record.excluded[0].key, run.reporterKey);
  assert.match(record.excluded[0].reason, /^delta_too_large: /);
  // Its receipt was never recorded (refused before its challenge): nothing credited, nothing
  // locked, and (no proof of it) nothing slashed.
  assert.deepEqual(run.reporter, { balance: 0, stake: STAKE, locked: 0 });
});

Deno.test("a poisoner convicted after round 0 leaves nothing in round 1's model: honest reports only, the loss near the start's", async () => {
  const run = await poisonRun(POISON, { rounds: 2, honestToo: true });
  const [r0, r1] = run.status.history;
  // Round 0 left the poison out and averaged the honest report alone; round 1 did not ask the
  // (now convicted) poisoner. Neither model carries the poison, in its weights or its momentum.
  assert.deepEqual(r0.accepted, [run.honestKey]);
  assert.deepEqual(r0.excluded.map((e) => e.key), [run.reporterKey]);
  assert.match(r0.excluded[0].reason, /^delta_too_large: /);
  assert.deepEqual(r1.accepted, [run.honestKey]);
  const initial = run.status.initialLoss!;
  for (const r of [r0, r1]) {
    assert.ok(r.heldOutLoss !== undefined && r.heldOutLoss < 1.01 * initial, `${r.heldOutLoss}`);
  }
  assert.deepEqual(run.reporter, { balance: 0, stake: STAKE, locked: 0 });
  assert.ok(
    Math.abs(run.honest.balance - 2 * testModelCredit(4)) < 1e-6,
    `the honest-sized report is paid in both rounds: ${run.honest.balance}`,
  );
  assert.deepEqual([run.honest.stake, run.honest.locked], [STAKE, 0]);
});

Deno.test("an honest-sized report is averaged and paid as before", async () => {
  const run = await poisonRun((i) => 1e-3 * Math.sin(i + 1));
  const [record] = run.status.history;
  assert.deepEqual(record.accepted, [run.reporterKey]);
  assert.deepEqual(record.excluded, []);
  assert.notEqual(record.model, record.startModel);
  assert.ok(record.heldOutLoss! < 1.01 * run.status.initialLoss!, `${record.heldOutLoss}`);
  assert.deepEqual(run.reporter, { balance: testModelCredit(4), stake: STAKE, locked: 0 });
});

Deno.test("a model much worse on held-out text than the run's best is not published, and nobody is paid for it", async () => {
  // Within the limits of a long round (H = 50: 0.6 per value, 0.3 RMS per tensor), the largest
  // change a delta may make, all of it against the model: a step the size checks let through.
  const run = await poisonRun((i) => (i % 2 === 0 ? 0.29 : -0.29), { steps: 50 });
  const [record] = run.status.history;
  assert.equal(record.model, record.startModel, "the round ends on its start model");
  assert.deepEqual(record.accepted, []);
  assert.equal(record.heldOutLoss, undefined, "no model, no loss of one");
  assert.equal(record.excluded.length, 1);
  assert.equal(record.excluded[0].key, run.reporterKey);
  assert.match(record.excluded[0].reason, /^loss_regression: /);
  assert.match(record.excluded[0].reason, /× the run's best/);
  // Recorded and locked before its challenge, never credited: the window's end releases the
  // lock with no credit, and no proof slashed anything.
  assert.deepEqual(run.reporter, { balance: 0, stake: STAKE, locked: 0 });
});
