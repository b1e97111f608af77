/**
 * Review s45: the RoundCoordinator under faults and hostile trainers, with fake trainers whose
 * reports are crafted (a signed receipt on the announced terms and a small int8 delta), so no
 * training runs. No real-time sleep races a deadline: the rounds' deadlines are far away and the
 * tests only poll for an effect.
 */
import { sha256Hex } from "../../protocols/hash.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  MAX_OUTCOME_TRAINERS,
  type OutcomeBody,
  OutcomeMessage,
  type ReportBody,
  type RoundBody,
  type TrainingGossip,
} from "../../protocols/training_messages.ts";
import { decodeRoundDelivery, encodeRoundDelivery } from "../../training/round_delivery.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
  type RoundCoordinatorOptions,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { type GptWeights, gptWeightShapes, seededGptWeights } from "../../training/gpt_weights.ts";
import { type CoordinatorRun, CoordinatorState } from "../../training/coordinator_state.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "../../training/outer_step.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { trainerConnection } from "./_coordinator_trainers.ts";

const FAR_DEADLINE_MS = 600_000;
const H = 2;
const SHARD_ROOT = "ab".repeat(32);
const SHARD_SIZE = 100;

/** A delta of `value` everywhere, in the architecture's shapes, encoded. */
function constantDelta(value: number): Uint8Array {
  const delta: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(TEST_ARCH)) {
    const n = shape.reduce((a, b) => a * b, 1);
    delta.set(name, { shape, data: new Float32Array(n).fill(value) });
  }
  return encodeInt8Delta(quantizeDelta(delta));
}

/** The report a trainer would send for `body`: its receipt on exactly the announced terms. */
function craftedReport(identity: Identity, body: RoundBody, delta: Uint8Array): ReportBody {
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: body.round,
    startModel: body.startModel,
    steps: body.steps,
    dataSeed: body.dataSeed,
    hyper: body.hyper,
    samplesRoot: "01".repeat(32),
    sampleCount: body.steps * body.hyper.batchSize,
    // Each trainer's own (made-up) work: a round pays one piece of work once (`duplicate_work`).
    checkpointsRoot: sha256Hex(identity.publicKey),
    shardRoot: SHARD_ROOT,
    shardSize: SHARD_SIZE,
    losses: Array.from({ length: body.steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, identity);
  return { receipt, delta };
}

/** Trainers crafted so far: each one's delta differs a little from the others'. */
let crafted = 0;

/** A trainer that answers every round with a crafted report. */
function craftedTrainer(identity: Identity): { connection: Connection } {
  const delta = constantDelta(0.01 * (1 + crafted++ / 1000));
  return trainerConnection(
    identity,
    (body) => Promise.resolve(craftedReport(identity, body, delta)),
  );
}

async function withCoordinator(
  options: Partial<RoundCoordinatorOptions>,
  models: (dir: string) => RoundModels,
  run: (
    coordinator: Awaited<ReturnType<ActorSystem["spawn"]>>,
    lines: string[],
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-" });
  const system = new ActorSystem({ name: "t" });
  const lines: string[] = [];
  try {
    const roundModels = models(dir);
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: 1,
          models: roundModels,
          log: (line) => lines.push(line),
          ...options,
        }),
    });
    const trainer = craftedTrainer(Identity.generate());
    await coordinator.ask({
      type: "join",
      connection: trainer.connection,
      shardSize: SHARD_SIZE,
      shardRoot: SHARD_ROOT,
    });
    await run(coordinator, lines);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function finishedRounds(
  coordinator: Awaited<ReturnType<ActorSystem["spawn"]>>,
  lines: string[],
  what: string,
): Promise<CoordinatorStatus> {
  return await eventually(
    async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length >= 1 ? s : undefined;
    },
    `${what}\n${lines.join("\n")}`,
    { timeoutMs: 20_000 },
  );
}

Deno.test("s45: a failed conviction lookup (the ValidatorActor restarting) does not stop the coordinator's rounds for good", async () => {
  let lookups = 0;
  await withCoordinator(
    {
      // The first lookup fails as an ask to a restarting actor does; later ones answer.
      convicted: () => {
        lookups++;
        return lookups === 1
          ? Promise.reject(new Error("actor validator stopped"))
          : Promise.resolve(false);
      },
    },
    (dir) => new RoundModels({ modelsDir: dir, storage: () => undefined }),
    async (coordinator, lines) => {
      const status = await finishedRounds(coordinator, lines, "a round after the failed lookup");
      assert.equal(status.history[0].accepted.length, 1);
    },
  );
});

Deno.test("s45: a storage failure while a round's deltas are stored loses that round only: the next round still runs", async () => {
  let failed = false;
  await withCoordinator(
    {},
    (dir) => {
      const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
      const put = models.putFile.bind(models);
      models.putFile = (bytes: Uint8Array, name: string) => {
        if (name.startsWith("delta-") && !failed) {
          failed = true;
          return Promise.reject(new Error("put_bytes timed out"));
        }
        return put(bytes, name);
      };
      return models;
    },
    async (coordinator, lines) => {
      const status = await finishedRounds(coordinator, lines, "a round after the failed store");
      assert.ok(failed, "the store failed once");
      // Round 0 was lost (its number announced and saved as taken); round 1 made the model.
      assert.equal(status.history[0].round, 1);
      assert.equal(status.history[0].accepted.length, 1);
    },
  );
});

Deno.test("s45: a new run beside a moved-aside state does not remove the momentum file the old state names, even when its own momentum had the same bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-aside-" });
  try {
    const path = join(dir, "training", "coordinator.json");
    const run: CoordinatorRun = {
      arch: TEST_ARCH,
      seed: 0,
      steps: H,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
    };
    const snapshot = (round: number, seed: number) => ({
      round,
      model: { cid: "bafy-old-model" },
      momentum: seededGptWeights(TEST_ARCH, seed),
      history: [],
      convicted: [],
    });
    // The old run, after a round: its state names momentum file H1.
    await new CoordinatorState(path, run).save(snapshot(1, 8));
    // Moved aside as a refusal advises (its model could not be loaded, say), and the same run
    // started over: the same seeds and trainers give the same first round, the same momentum.
    await Deno.rename(path, `${path}.old`);
    const fresh = new CoordinatorState(path, run);
    assert.equal(await fresh.load(), undefined);
    await fresh.save(snapshot(1, 8)); // the very bytes of H1
    await fresh.save(snapshot(2, 9)); // its next round replaces them
    // Back to the old run, as the refusal promised: "renaming it back resumes this run".
    await Deno.rename(path, `${path}.new`);
    await Deno.rename(`${path}.old`, path);
    const back = await new CoordinatorState(path, run).load();
    assert.equal(back?.round, 1);
    assert.ok(back?.momentum !== undefined, "the old state's momentum is there");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s45: a round with more trainers joined than an outcome may list still gives an outcome every node (and the coordinator's own restart) can read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s45-many-" });
  const system = new ActorSystem({ name: "t" });
  const lines: string[] = [];
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const gossip: TrainingGossip[] = [];
    await system.spawn<{ type: string; gossip: TrainingGossip }>({
      name: "t/network",
      factory: () => ({
        receive: (message: { type: string; gossip: TrainingGossip }) => {
          if (message.type === "publish_training") gossip.push(message.gossip);
        },
      }),
    });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: H,
          hyper: TEST_HYPER,
          roundDeadlineMs: FAR_DEADLINE_MS,
          minTrainers: MAX_OUTCOME_TRAINERS + 1,
          models,
          network: "t/network",
          log: (line) => lines.push(line),
        }),
    });
    // Connections this node dialled, or from keys it already has, are not bounded by the
    // connection table's 256: a large network's coordinator can have more trainers joined.
    for (let i = 0; i <= MAX_OUTCOME_TRAINERS; i++) {
      await coordinator.ask({
        type: "join",
        connection: craftedTrainer(Identity.generate()).connection,
        shardSize: SHARD_SIZE,
        shardRoot: SHARD_ROOT,
      });
    }
    const outcome = await eventually(
      () => gossip.find((g) => g.kind === "outcome")?.body as OutcomeBody | undefined,
      "the round's outcome",
      { timeoutMs: 60_000 },
    ).catch((error) => assert.fail(`${(error as Error).message}\n${lines.slice(-5).join("\n")}`));
    const parsed = OutcomeMessage.schema.safeParse(outcome);
    if (!parsed.success) {
      assert.fail(`every node refuses the outcome: ${parsed.error.issues[0]?.message}`);
    }
    assert.equal(outcome.accepted.length, MAX_OUTCOME_TRAINERS, "as many as an outcome lists");
    // What a restart reads back when the round was saved as finished before its outcome went out.
    decodeRoundDelivery(encodeRoundDelivery({
      terms: { round: outcome.round, startModel: outcome.startModel, steps: H },
      credit: [],
      outcome,
    }));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
