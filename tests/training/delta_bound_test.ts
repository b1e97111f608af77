/**
 * The round's bound on a trainer's delta (`roundDeltaBound`, `training/int8_delta.ts`; review s73
 * F1) and its limit on each tensor's root mean square (`roundDeltaLimits`, half the bound): what
 * they are, that honest deltas of the test model stay well inside them, and that a validator's
 * audit applies them too — a coordinator that averages a delta past either has its outcome
 * refused (`delta_too_large`) and nobody is credited for that outcome in the auditing ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  decodeFittingDelta,
  DELTA_BOUND_MARGIN,
  DELTA_RMS_FACTOR,
  MAX_DELTA_VALUE,
  roundDeltaBound,
  roundDeltaLimits,
} from "../../training/int8_delta.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { aggregateRound, trainAndSign } from "../../training/training_round.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { constantDelta, craftedReceipt, HYPER } from "./_crafted_receipts.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** Local steps of the rounds here. */
const H = 3;

Deno.test("a round's delta bound is H × lr × Adam's largest step × the margin, within the wire's", () => {
  const defaults = DEFAULT_LOCAL_HYPER_PARAMS;
  // At β1 = 0.9, β2 = 0.95 Adam's normalised step is at most about 1.
  assert.ok(Math.abs(roundDeltaBound(50, defaults) - 50 * 3e-3 * DELTA_BOUND_MARGIN) < 1e-12);
  // At β2 = 0.999 it can reach (1 − β1) / √(1 − β2) ≈ 3.16: the bound grows with it.
  const slow = roundDeltaBound(50, { ...defaults, beta2: 0.999 });
  assert.ok(Math.abs(slow - 50 * 3e-3 * (0.1 / Math.sqrt(0.001)) * DELTA_BOUND_MARGIN) < 1e-9);
  // Never more than the wire's bound, and terms that give none fall back to it.
  assert.equal(roundDeltaBound(1e9, defaults), MAX_DELTA_VALUE);
  assert.equal(roundDeltaBound(50, { ...defaults, beta2: 1 }), MAX_DELTA_VALUE);
});

Deno.test("honest deltas of the test model stay under half the round's bound", async () => {
  const split = await testSplit();
  const start = seededGptWeights(TEST_ARCH, 0);
  const bound = roundDeltaBound(H, { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER });
  for (const shard of split.shards) {
    const identity = Identity.generate();
    const { report } = await trainAndSign({
      arch: TEST_ARCH,
      round: 0,
      startModel: "test",
      start,
      shard,
      steps: H,
      dataSeed: dataSeedOf(0, toHex(identity.publicKey)),
      hyper: TEST_HYPER,
      identity,
    });
    let max = 0;
    let worstRms = 0;
    // Within the round's limits, values and tensors' RMS both (the one function every node uses).
    const limits = roundDeltaLimits(H, { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER });
    for (const t of decodeFittingDelta(report.delta, start, limits).values()) {
      let squares = 0;
      for (const x of t.data) {
        max = Math.max(max, Math.abs(x));
        squares += x * x;
      }
      worstRms = Math.max(worstRms, Math.sqrt(squares / t.data.length));
    }
    // Measured: about 1.02 × H × lr, a quarter of the bound; the worst tensor's RMS 0.24 of it.
    assert.ok(max > 0 && max < bound / 2, `max |Δ| ${max}, bound ${bound}`);
    assert.ok(worstRms < limits.maxRms! * 0.6, `worst tensor RMS ${worstRms}, ${limits.maxRms}`);
  }
});

Deno.test("a delta with every value within the bound but a tensor's RMS past half of it is too large", () => {
  const start = seededGptWeights(TEST_ARCH, 0);
  const limits = roundDeltaLimits(H, HYPER);
  assert.equal(limits.maxRms, DELTA_RMS_FACTOR * roundDeltaBound(H, HYPER));
  // Three quarters of the bound everywhere: every value passes the value bound alone.
  const pushed = constantDelta(0.75 * limits.maxValue);
  decodeFittingDelta(pushed, start, limits.maxValue);
  assert.throws(
    () => decodeFittingDelta(pushed, start, limits),
    (e: Error & { code?: string }) =>
      e.code === "delta_too_large" && /root mean square/.test(e.message),
  );
  // A quarter of it (an honest delta's largest value, everywhere) passes both.
  decodeFittingDelta(constantDelta(0.25 * limits.maxValue), start, limits);
});

Deno.test("a validator refuses an outcome that averaged a delta past the round's bound, and credits nobody for it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-delta-bound-" });
  const system = new ActorSystem({ name: "delta-bound" });
  const clock = { t: 1_000_000 };
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storage });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0, now: () => clock.t, serve: () => Promise.resolve() },
    });
    const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const firstCoordinator = Identity.generate();
    const bound = roundDeltaBound(H, HYPER);
    /** `coordinator`'s signed outcome of round 0 averaging one crafted delta of `value`. */
    const outcomeOf = async (value: number, coordinator = firstCoordinator) => {
      const trainer = Identity.generate();
      for (const k of [coordinator, trainer]) {
        await ledger.ask({ type: "deposit", key: k.publicKey, amount: 1_000_000 });
      }
      const delta = constantDelta(value);
      const receipt = craftedReceipt(trainer, 0, seed.cid, H, delta);
      const result = await aggregateRound([{ receipt, delta }], {
        arch: TEST_ARCH,
        startModel: seed.cid,
        start: seededGptWeights(TEST_ARCH, 0),
        modelsDir: models.modelsDir,
      });
      const model = await models.publish(TEST_ARCH, result.weights);
      const outcome: OutcomeBody = {
        round: 0,
        startModel: seed.cid,
        startFile: seed.file!,
        model: model.cid,
        file: model.file!,
        arch: TEST_ARCH,
        accepted: [toHex(trainer.publicKey)],
        reports: [{ receipt, deltaFile: (await models.putFile(delta, `d-${value}`))! }],
        excluded: [],
      };
      await training.ask({
        type: "outcome",
        body: signOutcome(outcome, coordinator),
        origin: "ee".repeat(32),
      });
      const stats = await eventually(
        async () => {
          const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
          const done = s.adopted.includes(model.cid) ||
            s.refused.some((r) => r.model === model.cid);
          return done ? s : undefined;
        },
        "the outcome audited",
        { timeoutMs: 60_000 },
      );
      return { trainer, receiptId: trainingReceiptId(receipt), model: model.cid, stats };
    };
    // Within the limits (the wire's 1024 would take all three): reproduced, adopted, credited.
    const inside = await outcomeOf(bound / 4);
    assert.ok(inside.stats.adopted.includes(inside.model));
    await eventually(
      async () => {
        const rec = await ledger.ask<{ credit: number } | undefined>({
          type: "receipt_status",
          receiptId: inside.receiptId,
        });
        return (rec?.credit ?? 0) > 0;
      },
      "the receipt within the bound credited",
    );
    // Ten times the bound: refused, its receipt never recorded here, its trainer paid nothing.
    const outside = await outcomeOf(10 * bound);
    assert.deepEqual(
      outside.stats.refused.find((r) => r.model === outside.model),
      { model: outside.model, reason: "delta_too_large" },
    );
    assert.equal(
      await ledger.ask({ type: "receipt_status", receiptId: outside.receiptId }),
      undefined,
    );
    // Every value within the bound, but every tensor's RMS past half of it: refused the same way
    // (the coordinator's own rule, one function: review s73 F1's delta just under the bound).
    // Another coordinator's: the first one's refused outcome benched it on this node.
    const pushed = await outcomeOf(0.99 * bound, Identity.generate());
    assert.deepEqual(
      pushed.stats.refused.find((r) => r.model === pushed.model),
      { model: pushed.model, reason: "delta_too_large" },
    );
    assert.equal(
      await ledger.ask({ type: "receipt_status", receiptId: pushed.receiptId }),
      undefined,
    );
    await ledger.ask({ type: "finalize" });
    for (const { trainer } of [outside, pushed]) {
      const paid = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
      assert.deepEqual(paid, { balance: 0, stake: 1_000_000, locked: 0 });
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
