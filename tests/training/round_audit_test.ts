/**
 * The audit of a round's outcome (`training/round_audit.ts`): a node redoes the outer step and
 * serves the model only when it gets the same CID; and the audit and the outcome's delivery under a
 * hostile coordinator and a crash.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  signTrainingReceipt,
  type TrainingReceipt,
  trainingReceiptId,
} from "../../training/training_receipt.ts";
import {
  type CoordinatorMessage,
  dataSeedOf,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import {
  type OutcomeBody,
  OutcomeMessage,
  type RoundBody,
} from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { auditRound, type RoundAuditContext } from "../../training/round_audit.ts";
import { RoundModels } from "../../training/round_models.ts";
import { aggregateRound, trainAndSign, type TrainerReport } from "../../training/training_round.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import {
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
} from "../../training/trainer_service.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { eventually } from "../_helpers/wait.ts";
import { spawnStakesLedger } from "./_stakes_ledger.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { trainerConnection } from "./_coordinator_trainers.ts";
import { spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";
import { constantDelta, craftedReceipt, SHARD_ROOT, SHARD_SIZE } from "./_crafted_receipts.ts";

// ------------------------------------------------------------------------------------------------
// The audit of a round's outcome (`training/round_audit.ts`): a node redoes the outer step over the
// deltas the outcome names and serves the model only when it gets the same CID. An honest
// coordinator's two rounds are reproduced (the second from the momentum the first audit carried);
// each way of lying about a round is refused with its reason; a node that missed the round before
// cannot check and says so. As actors: a node's training validator serves only what it reproduced,
// and its trainer will not train from a model the validator refused.
// ------------------------------------------------------------------------------------------------

/** Local steps: the audit does not depend on how far the trainers got. */
const H = 3;

interface Round {
  outcome: OutcomeBody;
  reports: TrainerReport[];
  weights: GptWeights;
  momentum: GptWeights;
}

/** Storage, a coordinator's and a node's round models, and an honest coordinator's rounds. */
async function auditFixture(dir: string, system: ActorSystem) {
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir: join(dir, "store") }),
  });
  // The coordinator's models and the auditor's: separate directories, one storage.
  const coordinator = new RoundModels({ modelsDir: join(dir, "c"), storage: () => storage });
  const auditor = new RoundModels({ modelsDir: join(dir, "a"), storage: () => storage });
  const split = await testSplit();
  const trainers = split.shards.map(() => Identity.generate());
  // Outcomes are signed by their coordinator, and audited only when it is staked in the node's
  // ledger; `liar` is another staked key, which signs outcomes that do not hold.
  const coordinatorKey = Identity.generate();
  const liar = Identity.generate();
  const stakes = await spawnStakesLedger(system, [
    [coordinatorKey.publicKey, 1_000_000],
    [liar.publicKey, 1_000_000],
  ]);

  /** An honest coordinator's round `round` from `start` (with the momentum carried). */
  const honestRound = async (
    round: number,
    start: { cid: string; file?: string; weights: GptWeights },
    momentum?: GptWeights,
  ): Promise<Round> => {
    const reports: TrainerReport[] = [];
    for (const [i, shard] of split.shards.entries()) {
      const { report } = await trainAndSign({
        arch: TEST_ARCH,
        round,
        startModel: start.cid,
        start: start.weights,
        shard,
        steps: H,
        dataSeed: dataSeedOf(round, toHex(trainers[i].publicKey)),
        hyper: TEST_HYPER,
        identity: trainers[i],
      });
      reports.push(report);
    }
    const result = await aggregateRound(reports, {
      arch: TEST_ARCH,
      startModel: start.cid,
      start: start.weights,
      momentum,
      modelsDir: coordinator.modelsDir,
    });
    const model = await coordinator.publish(TEST_ARCH, result.weights);
    const files = await Promise.all(
      reports.map((r) => coordinator.putFile(r.delta, `delta-${r.receipt.deltaHash}`)),
    );
    return {
      outcome: signOutcome({
        round,
        startModel: start.cid,
        ...(start.file ? { startFile: start.file } : {}),
        model: model.cid,
        file: model.file!,
        arch: TEST_ARCH,
        accepted: reports.map((r) => toHex(r.receipt.trainer)),
        reports: reports.map((r, i) => ({ receipt: r.receipt, deltaFile: files[i]! })),
        excluded: [],
      }, coordinatorKey),
      reports,
      weights: result.weights,
      momentum: result.momentum,
    };
  };
  const seed = await coordinator.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  return { storage, coordinator, auditor, split, honestRound, seed, trainers, liar, stakes };
}

Deno.test("a round's outcome is audited by redoing the outer step: honest rounds reproduced, every lie refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-audit-" });
  const system = new ActorSystem({ name: "round-audit" });
  try {
    const { auditor, coordinator, honestRound, seed, trainers } = await auditFixture(dir, system);
    const momenta = new Map<string, GptWeights>();
    let convicted = new Set<string>();
    const context: RoundAuditContext = {
      models: auditor,
      momentumAfter: (cid) => momenta.get(cid),
      convicted: (receiptId) => Promise.resolve(convicted.has(receiptId)),
    };

    const r0 = await honestRound(0, seed);
    const audit0 = await auditRound(r0.outcome, context);
    assert.ok(audit0.ok && audit0.verified, `round 0 reproduced: ${JSON.stringify(audit0)}`);
    momenta.set(r0.outcome.model, audit0.momentum);

    const r1 = await honestRound(
      1,
      { cid: r0.outcome.model, file: r0.outcome.file, weights: r0.weights },
      r0.momentum,
    );
    const audit1 = await auditRound(r1.outcome, context);
    assert.ok(audit1.ok && audit1.verified, "round 1 reproduced from the carried momentum");

    // A node that did not see round 0 cannot check round 1: it says so.
    const blind = await auditRound(r1.outcome, { ...context, momentumAfter: () => undefined });
    assert.ok(blind.ok && !blind.verified, "not checkable without the round before");

    const refused = async (outcome: OutcomeBody, reason: string) => {
      const audit = await auditRound(outcome, context);
      assert.ok(!audit.ok, `refused: ${reason}`);
      assert.equal(audit.reason, reason);
    };
    // Another model than the deltas give: the start model relabelled as the round's.
    await refused({ ...r1.outcome, model: seed.cid, file: seed.file! }, "aggregate_mismatch");
    // One delta silently left out (the list of trainers trimmed with it).
    await refused(
      {
        ...r1.outcome,
        accepted: r1.outcome.accepted.slice(1),
        reports: r1.outcome.reports.slice(1),
      },
      "aggregate_mismatch",
    );
    // The trainers listed are not those whose receipts are given.
    await refused(
      { ...r1.outcome, accepted: [...r1.outcome.accepted].reverse() },
      "accepted_mismatch",
    );
    // A delta file that is not the one its receipt signs (the other trainer's bytes).
    await refused(
      {
        ...r1.outcome,
        reports: [
          { ...r1.outcome.reports[0], deltaFile: r1.outcome.reports[1].deltaFile },
          r1.outcome.reports[1],
        ],
      },
      "delta_mismatch",
    );
    // A receipt of round 0 passed off as round 1's.
    await refused(
      {
        ...r1.outcome,
        reports: [r0.outcome.reports[0], r1.outcome.reports[1]],
      },
      "receipt_mismatch",
    );
    // A receipt its trainer signed on terms of its own: a data seed of its choosing, or other
    // hyper-parameters than the other trainers of the round (one set is announced to all).
    const offTerms = (i: number, change: Partial<TrainingReceipt>): OutcomeBody => {
      const { sig: _sig, trainer: _trainer, ...unsigned } = r1.outcome.reports[i].receipt;
      const receipt = signTrainingReceipt({ ...unsigned, ...change }, trainers[i]);
      const reports = r1.outcome.reports.map((r, j) => j === i ? { ...r, receipt } : r);
      return { ...r1.outcome, reports };
    };
    await refused(offTerms(1, { dataSeed: 42 }), "seed_mismatch");
    const { hyper } = r1.outcome.reports[1].receipt;
    await refused(
      offTerms(1, { hyper: { ...hyper, learningRate: 10 * hyper.learningRate } }),
      "hyper_mismatch",
    );
    // One trainer's delta averaged twice (2/3 of the mean), the model the one that gives.
    const favoured = await aggregateRound([r1.reports[0], r1.reports[0], r1.reports[1]], {
      arch: TEST_ARCH,
      startModel: r0.outcome.model,
      start: r0.weights,
      momentum: r0.momentum,
      modelsDir: coordinator.modelsDir,
    });
    const favouredModel = await coordinator.publish(TEST_ARCH, favoured.weights);
    const doubled: OutcomeBody = {
      ...r1.outcome,
      model: favouredModel.cid,
      file: favouredModel.file!,
      accepted: [0, 0, 1].map((i) => r1.outcome.accepted[i]),
      reports: [0, 0, 1].map((i) => r1.outcome.reports[i]),
    };
    await refused(doubled, "duplicate_report");
    assert.equal(OutcomeMessage.schema.safeParse(doubled).success, false, "nor does it parse");
    // A delta whose receipt this node convicted, averaged in: the round is still reproduced (its
    // momentum kept for the next), and the convicted receipt is named to be left unpaid.
    const convictedId = trainingReceiptId(r1.outcome.reports[0].receipt);
    convicted = new Set([convictedId]);
    const withConvicted = await auditRound(r1.outcome, context);
    assert.ok(withConvicted.ok && withConvicted.verified, "reproduced, a conviction or not");
    assert.deepEqual(withConvicted.convicted, [convictedId]);
    convicted = new Set();
    await refused({ ...r1.outcome, accepted: [], reports: [] }, "no_reports");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node's training validator serves only an outcome it reproduced, and its trainer will not train from a refused model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-audit-actors-" });
  const system = new ActorSystem({ name: "round-audit-actors" });
  try {
    const { auditor, honestRound, seed, split, liar } = await auditFixture(dir, system);
    const served: string[] = [];
    const validator = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: Identity.generate(),
          models: auditor,
          ledger: "node/validator",
          serve: (modelDir) => Promise.resolve(void served.push(modelDir)),
        }),
    });
    const r0 = await honestRound(0, seed);
    // A (staked) coordinator that publishes the start model again as the round's result.
    const lie = signOutcome({ ...r0.outcome, model: seed.cid, file: seed.file! }, liar);
    await validator.tell({ type: "outcome", body: lie, origin: "peer" });
    await validator.tell({ type: "outcome", body: r0.outcome, origin: "peer" });
    const stats = await eventually(
      async () => {
        const s = await validator.ask<TrainingValidatorStats>({ type: "stats" });
        return s.adopted.length === 1 && s.refused.length === 1 ? s : undefined;
      },
      "both outcomes audited",
    );
    assert.deepEqual(stats.refused, [{ model: seed.cid, reason: "aggregate_mismatch" }]);
    assert.deepEqual(stats.adopted, [r0.outcome.model]);
    assert.deepEqual(stats.unverified, []);
    assert.deepEqual(served, [join(auditor.modelsDir, r0.outcome.model)], "only the honest one");
    const standing = (model: string) =>
      validator.ask<string | null>({ type: "model_standing", model });
    assert.equal(await standing(seed.cid), "aggregate_mismatch");
    assert.equal(await standing(r0.outcome.model), null);

    // The node's trainer is asked to train from the refused model: it will not.
    let trained = 0;
    const trainer = await system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity: Identity.generate(),
          shard: split.shards[0],
          models: auditor,
          train: () => {
            trained++;
            return Promise.reject(new Error("must not train"));
          },
          refusedModel: standing,
        }),
    });
    const { report } = await trainer.ask<RoundAccepted>({
      type: "round",
      coordinator: "c0ffee",
      body: {
        round: 1,
        startModel: seed.cid,
        startFile: seed.file!,
        arch: TEST_ARCH,
        steps: H,
        dataSeed: 1,
        hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
        deadline: Date.now() + 60_000,
      },
    });
    await assert.rejects(report, (e: { code?: string }) => e.code === "start_model_refused");
    assert.equal(trained, 0, "no step was taken from the refused model");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a forged copy of an honest outcome (its model's CID, a report dropped) relayed first does not shut the genuine one out: it is audited and served, and the model stands", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-audit-copies-" });
  const system = new ActorSystem({ name: "round-audit-copies" });
  try {
    const { auditor, honestRound, seed, liar } = await auditFixture(dir, system);
    const validator = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: Identity.generate(),
          models: auditor,
          ledger: "node/validator",
        }),
    });
    const { outcome } = await honestRound(0, seed);
    // A relay cannot alter a signed outcome; another staked key signs a copy with the honest
    // model's CID and a report dropped.
    const forged = signOutcome({
      ...outcome,
      accepted: outcome.accepted.slice(0, 1),
      reports: outcome.reports.slice(0, 1),
    }, liar);
    const stats = () => validator.ask<TrainingValidatorStats>({ type: "stats" });
    await validator.tell({ type: "outcome", body: forged, origin: "peer" });
    await eventually(async () => (await stats()).refused.length === 1, "the copy refused");
    await validator.tell({ type: "outcome", body: outcome, origin: "coordinator" });
    await eventually(async () => (await stats()).adopted.length === 1, "the genuine one served");
    assert.deepEqual((await stats()).adopted, [outcome.model]);
    assert.deepEqual((await stats()).refused, [], "the refused copy no longer speaks for it");
    assert.equal(await validator.ask({ type: "model_standing", model: outcome.model }), null);
    // The forged copy again, now the model is proven: skipped, the model stands.
    await validator.tell({ type: "outcome", body: forged, origin: "peer" });
    assert.equal(await validator.ask({ type: "model_standing", model: outcome.model }), null);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a coordinator whose round 0 made no model runs round 1 from the genesis model with no momentum: both honest rounds are reproduced, and a fake 'round 1' from the genesis model is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-audit-genesis-" });
  const system = new ActorSystem({ name: "round-audit-genesis" });
  try {
    const { auditor, coordinator, honestRound, seed, liar } = await auditFixture(dir, system);
    const served: string[] = [];
    const validator = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: Identity.generate(),
          models: auditor,
          ledger: "node/validator",
          serve: (modelDir) => Promise.resolve(void served.push(modelDir)),
        }),
    });
    const stats = () => validator.ask<TrainingValidatorStats>({ type: "stats" });
    // Round 0 yielded nothing: the coordinator runs round 1 from the seeded model, no momentum.
    const r1 = await honestRound(1, seed);
    const r2 = await honestRound(
      2,
      { cid: r1.outcome.model, file: r1.outcome.file, weights: r1.weights },
      r1.momentum,
    );
    for (const [i, { outcome }] of [r1, r2].entries()) {
      await validator.tell({ type: "outcome", body: outcome, origin: "peer" });
      await eventually(async () => (await stats()).adopted.length === i + 1, `round ${i + 1}`);
    }
    assert.deepEqual((await stats()).adopted, [r1.outcome.model, r2.outcome.model]);
    assert.deepEqual((await stats()).unverified, [], "both reproduced, from the genesis model on");

    // A "round 1" from the genesis model whose model is not the aggregate of anything.
    const fake = await coordinator.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 12345));
    const lie = signOutcome({ ...r1.outcome, model: fake.cid, file: fake.file! }, liar);
    await validator.tell({ type: "outcome", body: lie, origin: "peer" });
    await eventually(async () => (await stats()).refused.length === 1, "the fake audited");
    assert.deepEqual((await stats()).refused, [{ model: fake.cid, reason: "aggregate_mismatch" }]);
    assert.equal(served.length, 2, "the fake is not served");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a round the coordinator ran without the momentum it carried (reset after a round refused for its loss, or by the loss gate) is still reproduced, and its own momentum is kept for the next audit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-audit-reset-" });
  const system = new ActorSystem({ name: "round-audit-reset" });
  try {
    const { auditor, honestRound, seed } = await auditFixture(dir, system);
    const momenta = new Map<string, GptWeights>();
    const context: RoundAuditContext = {
      models: auditor,
      momentumAfter: (cid) => momenta.get(cid),
      convicted: () => Promise.resolve(false),
    };
    const r0 = await honestRound(0, seed);
    const audit0 = await auditRound(r0.outcome, context);
    assert.ok(audit0.ok && audit0.verified);
    momenta.set(r0.outcome.model, audit0.momentum);
    // Round 1 was refused for its loss (no outcome, this node never sees it) and the coordinator
    // reset its momentum: round 2 starts from round 0's model with none.
    const start = { cid: r0.outcome.model, file: r0.outcome.file, weights: r0.weights };
    const r2 = await honestRound(2, start, undefined);
    const audit2 = await auditRound(r2.outcome, context);
    assert.ok(audit2.ok && audit2.verified, `reproduced: ${JSON.stringify(audit2)}`);
    assert.deepEqual(audit2.momentum, r2.momentum, "the coordinator's new momentum is kept");
    // The round that kept it is reproduced as before (the carried momentum is tried first).
    const kept = await honestRound(2, start, r0.momentum);
    const auditKept = await auditRound(kept.outcome, context);
    assert.ok(auditKept.ok && auditKept.verified);
    assert.deepEqual(auditKept.momentum, kept.momentum);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// The round audit and the outcome's delivery under a hostile coordinator and a crash. Crafted
// receipts and small constant deltas, so no training runs; clocks are injected, no real-time sleep
// races a deadline (the rounds' deadlines are far away, the tests poll for an effect).
// ------------------------------------------------------------------------------------------------

const H_HOSTILE = 2;
const STAKE = 10_000_000;

/** An auditing node (a real ledger and training validator), and a hostile coordinator's rounds. */
async function auditingNode(dir: string, system: ActorSystem) {
  const clock = { t: Date.now() };
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
    challenge: { challengeProbability: 0 },
  });
  const coordinator = Identity.generate(); // hostile
  const honest = Identity.generate();
  const colluder = Identity.generate();
  for (const key of [coordinator, honest, colluder]) {
    await ledger.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
  }
  const seedWeights = seededGptWeights(TEST_ARCH, 0);
  const seed = { ...await models.publish(TEST_ARCH, seedWeights), weights: seedWeights };
  let audits = 0;
  return {
    ledger,
    training,
    honest,
    colluder,
    seed,
    /**
     * The coordinator's signed outcome of `round` from `start` over `claims` (a key, its steps,
     * its delta's value and, for a copy, the key whose trajectory it signs), as it averaged them.
     */
    async round(
      round: number,
      start: { cid: string; file?: string; weights: GptWeights },
      momentum: GptWeights | undefined,
      claims: [Identity, number, number, Identity?][],
    ) {
      const reports = claims.map(([id, steps, v, copied]) => {
        const delta = constantDelta(v);
        return { receipt: craftedReceipt(id, round, start.cid, steps, delta, copied), delta };
      });
      const result = await aggregateRound(reports, {
        arch: TEST_ARCH,
        startModel: start.cid,
        start: start.weights,
        momentum,
        modelsDir: join(dir, "c"),
      });
      const model = await models.publish(TEST_ARCH, result.weights);
      const files = await Promise.all(
        reports.map((r) => models.putFile(r.delta, `delta-${r.receipt.deltaHash}.bin`)),
      );
      const outcome: OutcomeBody = signOutcome({
        round,
        startModel: start.cid,
        ...(start.file ? { startFile: start.file } : {}),
        model: model.cid,
        file: model.file ?? model.cid,
        arch: TEST_ARCH,
        accepted: reports.map((r) => toHex(r.receipt.trainer)),
        reports: reports.map((r, i) => ({ receipt: r.receipt, deltaFile: files[i]! })),
        excluded: [],
      }, coordinator);
      return { outcome, model: { ...model, weights: result.weights }, momentum: result.momentum };
    },
    /**
     * Audit `outcome` (relayed by a peer); once audited, its receipts credited when it held
     * (`last`'s stake locked), the stats.
     */
    async audit(outcome: OutcomeBody, last: Identity): Promise<TrainingValidatorStats> {
      audits++;
      const before = (await ledger.ask<Account>({ type: "account", key: last.publicKey })).locked;
      await training.tell({ type: "outcome", body: outcome, origin: "ab".repeat(32) });
      return await eventually(async () => {
        const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
        const locked = (await ledger.ask<Account>({ type: "account", key: last.publicKey }))
          .locked;
        return s.refused.length + s.adopted.length >= audits &&
            (s.adopted.length < audits || locked > before)
          ? s
          : undefined;
      }, "the outcome audited");
    },
    /** What `who` was paid once every window closed. */
    async paid(who: Identity): Promise<number> {
      clock.t += 24 * 60 * 60 * 1000;
      await ledger.ask({ type: "finalize" });
      return (await ledger.ask<Account>({ type: "account", key: who.publicKey })).balance;
    },
  };
}

Deno.test("an outcome that names one trainer's work twice, the copy under a sybil's key, is refused by every auditing node (duplicate_work): the sybil is not paid, the skewed model not adopted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s71-copy-" });
  const system = new ActorSystem({ name: "audit-copied-work" });
  try {
    const n = await auditingNode(dir, system);
    const sybil = Identity.generate();
    await n.ledger.ask({ type: "deposit", key: sybil.publicKey, amount: STAKE });
    // The sybil signs the honest trainer's trajectory and delta under its own key and seed: the
    // honest delta weighs 2/3 of the mean instead of 1/2.
    const r0 = await n.round(0, n.seed, undefined, [
      [n.honest, H_HOSTILE, 0.01],
      [n.colluder, H_HOSTILE, 0.03],
      [sybil, H_HOSTILE, 0.01, n.honest],
    ]);
    const stats = await n.audit(r0.outcome, sybil);
    assert.deepEqual(stats.adopted, [], "the skewed model is not adopted");
    assert.deepEqual(stats.refused, [{ model: r0.model.cid, reason: "duplicate_work" }]);
    assert.equal(await n.paid(sybil), 0, "the copy earns nothing");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** `trainer` joins `coordinator`, answering each round with a receipt it signs over `delta`. */
async function joinTrainer(
  coordinator: ActorRef<CoordinatorMessage>,
  trainer: Identity,
  delta: Uint8Array,
): Promise<void> {
  const { connection } = trainerConnection(trainer, (body: RoundBody) =>
    Promise.resolve({
      receipt: craftedReceipt(trainer, body.round, body.startModel, body.steps, delta),
      delta,
    }));
  await coordinator.ask({ type: "join", connection, shardSize: SHARD_SIZE, shardRoot: SHARD_ROOT });
}

Deno.test("an outcome whose receipts claim different step counts (a colluder's inflated H beside an honest trainer's) is refused: no ledger credits the inflated steps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-audit-" });
  const system = new ActorSystem({ name: "audit-steps" });
  try {
    const n = await auditingNode(dir, system);
    // The round announced H = 2: the honest trainer did 2 steps; the colluder's receipt claims 40.
    const r0 = await n.round(0, n.seed, undefined, [[n.honest, H_HOSTILE, 0.01], [
      n.colluder,
      40,
      -0.01,
    ]]);
    const stats = await n.audit(r0.outcome, n.colluder);
    const paid = await n.paid(n.colluder);
    assert.ok(
      paid <= H_HOSTILE * DEFAULT_ECONOMICS.trainingCreditPerStep,
      `the colluder is paid ${paid} for a round of H = ${H_HOSTILE}`,
    );
    assert.deepEqual(stats.refused, [{ model: r0.model.cid, reason: "steps_mismatch" }]);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a round whose only receipt claims another H than the round before it on the same run (the honest trainers left out) is refused: its colluder is not paid the inflated steps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-audit-chain-" });
  const system = new ActorSystem({ name: "audit-steps-chain" });
  try {
    const n = await auditingNode(dir, system);
    // Round 0 on H = 2, honest: audited, reproduced, both paid 2 steps.
    const r0 = await n.round(0, n.seed, undefined, [[n.honest, H_HOSTILE, 0.01], [
      n.colluder,
      H_HOSTILE,
      -0.01,
    ]]);
    const s0 = await n.audit(r0.outcome, n.colluder);
    assert.deepEqual(s0.adopted, [r0.model.cid]);
    // Round 1 from its model: the honest report "never came", the colluder's claims 40 steps.
    const r1 = await n.round(1, r0.model, r0.momentum, [[n.colluder, 40, 0.01]]);
    const s1 = await n.audit(r1.outcome, n.colluder);
    const paid = await n.paid(n.colluder);
    assert.ok(
      paid <= 2 * H_HOSTILE * DEFAULT_ECONOMICS.trainingCreditPerStep,
      `the colluder is paid ${paid} for two rounds of H = ${H_HOSTILE}`,
    );
    assert.deepEqual(s1.refused, [{ model: r1.model.cid, reason: "steps_mismatch" }]);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A validator behind a tap that holds the first outcome the coordinator hands it, as a node
 * whose process dies while its validator still audits its own outcome: the outcome is never
 * passed on. Its answer (`{ result }`) says when the coordinator waits on that hand-off.
 */
class OutcomeHoldingTap implements Actor<TrainingValidatorMessage> {
  readonly outcomes: OutcomeBody[] = [];
  readonly reached = Promise.withResolvers<void>();
  readonly release = Promise.withResolvers<void>();
  /** Whether the coordinator awaits the held hand-off's result. */
  awaited = false;
  #holding = true;

  async receive(
    message: TrainingValidatorMessage,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<unknown> {
    if (message.type === "outcome") {
      this.outcomes.push(message.body);
      if (this.#holding) {
        this.#holding = false;
        this.reached.resolve();
        const release = this.release.promise;
        // deno-lint-ignore no-this-alias
        const tap = this;
        const result = {
          then(onFulfilled: (v: void) => unknown, onRejected?: (e: unknown) => unknown) {
            tap.awaited = true;
            return release.then(onFulfilled, onRejected);
          },
        };
        return { result };
      }
    }
    return await ctx.system.lookup<TrainingValidatorMessage>(TRAINING_VALIDATOR)!.ask(message);
  }
}

Deno.test("a crash after the coordinator handed its outcome to the validator, before the validator passed it on, does not lose it: the restart sends it again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-delivery-" });
  const system = new ActorSystem({ name: "delivery" });
  const tap = new OutcomeHoldingTap();
  try {
    const clock = { t: Date.now() };
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const { ledger } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0 },
    });
    const trainer = Identity.generate();
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    await system.spawn<TrainingValidatorMessage>({ name: "node/tap", factory: () => tap });
    const statePath = join(dir, "training", "coordinator.json");
    const delta = constantDelta(0.01);
    const start = async (lines: string[]) => {
      const coordinator = await system.spawn<CoordinatorMessage>({
        name: "node/coordinator",
        factory: () =>
          new RoundCoordinator({
            identity: me,
            arch: TEST_ARCH,
            seed: 0,
            rounds: 1,
            steps: H_HOSTILE,
            hyper: TEST_HYPER,
            roundDeadlineMs: 600_000,
            minTrainers: 1,
            models,
            validator: "node/tap",
            statePath,
            log: (line) => lines.push(line),
          }),
      });
      await joinTrainer(coordinator, trainer, delta);
      return coordinator;
    };
    const saved = async () => JSON.parse(await Deno.readTextFile(statePath));
    await start([]);
    await tap.reached.promise; // round 0's outcome handed over
    // The coordinator goes as far as it goes on its own: it waits on the hand-off, or it has
    // cleared what the round owes from its state.
    await eventually(
      async () => tap.awaited || (await saved()).delivery === undefined,
      "the coordinator done with the hand-off",
    );
    // The process dies: the held audit never ends, nothing was passed on.
    const stopping = system.stop("node/coordinator");
    tap.release.resolve();
    await stopping;

    const lines: string[] = [];
    await start(lines);
    await eventually(() => tap.outcomes.length >= 2, "round 0's outcome sent again");
    assert.deepEqual(tap.outcomes.map((o) => o.round), [0, 0]);
    assert.ok(
      lines.some((l) => l.includes("round 0 had finished: its credit and outcome go out again")),
      lines.join("\n"),
    );
  } finally {
    tap.release.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a held-out loss that is not a number (a held-out set with no whole sample) never reaches an outcome: every node can read it, and the coordinator's restart reads its state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-nan-" });
  const system = new ActorSystem({ name: "nan-loss" });
  const published: OutcomeBody[] = [];
  try {
    await system.spawn<{ type: string; gossip: { kind: string; body: unknown } }>({
      name: "node/network",
      factory: () => ({
        receive: (m) => {
          if (m.gossip?.kind === "outcome") published.push(m.gossip.body as OutcomeBody);
        },
      }),
    });
    const me = Identity.generate();
    const trainer = Identity.generate();
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const statePath = join(dir, "training", "coordinator.json");
    const delta = constantDelta(0.01);
    // One document shorter than a sample: 0 samples, and a mean loss of 0 / 0.
    const heldOut = { documents: [{ id: "short", bytes: new Uint8Array(10).fill(97) }] };
    const lines: string[] = [];
    const start = async (rounds: number) => {
      const coordinator = await system.spawn<CoordinatorMessage>({
        name: "node/coordinator",
        factory: () =>
          new RoundCoordinator({
            identity: me,
            arch: TEST_ARCH,
            seed: 0,
            rounds,
            steps: H_HOSTILE,
            hyper: TEST_HYPER,
            roundDeadlineMs: 600_000,
            minTrainers: 1,
            models,
            network: "node/network",
            heldOut,
            statePath,
            log: (line) => lines.push(line),
          }),
      });
      await joinTrainer(coordinator, trainer, delta);
      return coordinator;
    };
    await start(1);
    await eventually(() => published.length >= 1, "round 0's outcome");
    const parsed = OutcomeMessage.schema.safeParse(published[0]);
    assert.ok(
      parsed.success,
      `every node refuses the outcome: held-out loss ${published[0].heldOutLoss}`,
    );
    await system.stop("node/coordinator");
    // Its state (what the round owes among it) reads back.
    const restarted = await start(2);
    const status = await eventually(async () => {
      const s = await restarted.ask<{ history: unknown[] }>({ type: "status" });
      return s.history.length >= 2 ? s : undefined;
    }, "round 1 after the restart");
    assert.equal(status.history.length, 2, lines.join("\n"));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
