/**
 * Review s45: the round audit and the outcome's delivery under a hostile coordinator and a crash.
 * Crafted receipts and small constant deltas, so no training runs; clocks are injected, no
 * real-time sleep races a deadline (the rounds' deadlines are far away, the tests poll for an
 * effect).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor, ActorContext } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  type OutcomeBody,
  OutcomeMessage,
  type RoundBody,
} from "../../protocols/training_messages.ts";
import { type GptWeights, gptWeightShapes, seededGptWeights } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  type CoordinatorMessage,
  dataSeedOf,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { aggregateRound } from "../../training/training_round.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
} from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { trainerConnection } from "./_coordinator_trainers.ts";
import { spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

const H = 2;
const SHARD_ROOT = "ab".repeat(32);
const SHARD_SIZE = 100;
const STAKE = 10_000_000;
const HYPER = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER };

/** A delta of `value` everywhere, in the architecture's shapes, encoded. */
function constantDelta(value: number): Uint8Array {
  const delta: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(TEST_ARCH)) {
    const n = shape.reduce((a, b) => a * b, 1);
    delta.set(name, { shape, data: new Float32Array(n).fill(value) });
  }
  return encodeInt8Delta(quantizeDelta(delta));
}

/** A receipt signed by `identity` for `round` from `startModel`, claiming `steps` steps. */
function craftedReceipt(
  identity: Identity,
  round: number,
  startModel: string,
  steps: number,
  delta: Uint8Array,
): TrainingReceipt {
  return signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round,
    startModel,
    steps,
    dataSeed: dataSeedOf(round, toHex(identity.publicKey)),
    hyper: HYPER,
    samplesRoot: "01".repeat(32),
    sampleCount: steps * HYPER.batchSize,
    checkpointsRoot: "02".repeat(32),
    shardRoot: SHARD_ROOT,
    shardSize: SHARD_SIZE,
    losses: Array.from({ length: steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, identity);
}

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
    /** The coordinator's signed outcome of `round` from `start` over `claims`, as it averaged them. */
    async round(
      round: number,
      start: { cid: string; file?: string; weights: GptWeights },
      momentum: GptWeights | undefined,
      claims: [Identity, number, number][],
    ) {
      const reports = claims.map(([id, steps, v]) => {
        const delta = constantDelta(v);
        return { receipt: craftedReceipt(id, round, start.cid, steps, delta), delta };
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
    const r0 = await n.round(0, n.seed, undefined, [[n.honest, H, 0.01], [n.colluder, 40, -0.01]]);
    const stats = await n.audit(r0.outcome, n.colluder);
    const paid = await n.paid(n.colluder);
    assert.ok(
      paid <= H * DEFAULT_ECONOMICS.trainingCreditPerStep,
      `the colluder is paid ${paid} for a round of H = ${H}`,
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
    const r0 = await n.round(0, n.seed, undefined, [[n.honest, H, 0.01], [n.colluder, H, -0.01]]);
    const s0 = await n.audit(r0.outcome, n.colluder);
    assert.deepEqual(s0.adopted, [r0.model.cid]);
    // Round 1 from its model: the honest report "never came", the colluder's claims 40 steps.
    const r1 = await n.round(1, r0.model, r0.momentum, [[n.colluder, 40, 0.01]]);
    const s1 = await n.audit(r1.outcome, n.colluder);
    const paid = await n.paid(n.colluder);
    assert.ok(
      paid <= 2 * H * DEFAULT_ECONOMICS.trainingCreditPerStep,
      `the colluder is paid ${paid} for two rounds of H = ${H}`,
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
            steps: H,
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
            steps: H,
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
