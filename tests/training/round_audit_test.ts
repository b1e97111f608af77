/**
 * The audit of a round's outcome (`training/round_audit.ts`): a node redoes the outer step over
 * the deltas the outcome names and serves the model only when it gets the same CID. An honest
 * coordinator's two rounds are reproduced (the second from the momentum the first audit
 * carried); each way of lying about a round is refused with its reason; a node that missed the
 * round before cannot check and says so. As actors: a node's training validator serves only
 * what it reproduced, and its trainer will not train from a model the validator refused.
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
import { dataSeedOf } from "../../training/round_coordinator.ts";
import { type OutcomeBody, OutcomeMessage } from "../../protocols/training_messages.ts";
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
    // A delta whose receipt this node convicted, averaged in anyway.
    convicted = new Set([trainingReceiptId(r1.outcome.reports[0].receipt)]);
    await refused(r1.outcome, "convicted_included");
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
