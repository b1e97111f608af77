/**
 * A round whose coordinator is gone while it already trains is lost: nobody will ever read its
 * report. Until review s54 it still ran all its H local steps, and a trainer's rounds run one
 * after another in its engine's worker, so every round asked after it — the restarted
 * coordinator's next one, another coordinator's — waited behind up to `MAX_ROUND_STEPS` steps of
 * work nobody pays for, and missed its deadline (unpaid); and one key could queue round after
 * round there by closing its connection once each had entered training. A round now stops at its
 * next step (`round_abandoned`, nothing signed) once it is lost for good: nobody waits for it and
 * its coordinator asked for another round, or nobody waits for it and its deadline has passed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { ReportBody, RoundBody } from "../../protocols/training_messages.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { RoundModels } from "../../training/round_models.ts";
import { WorkerTrainerEngine } from "../../training/trainer_engine.ts";
import {
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainFunction,
} from "../../training/trainer_service.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { standInTraining } from "./_stand_in_train.ts";

const STEPS = 50;

/**
 * A trainer whose training is a stand-in that takes `STEPS` steps, each after the engine's
 * `between` (where a lost round stops) and after the test lets it go (`step()`); it records
 * the steps each round took and the rounds it signed. Its clock is the test's.
 */
async function fixture(dir: string) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const taken = new Map<number, number>();
  const signed: number[] = [];
  let go = Promise.withResolvers<void>();
  const train: TrainFunction = async (options) => {
    for (let step = 0; step < options.steps; step++) {
      await options.between?.();
      await go.promise;
      taken.set(options.round, step + 1);
      options.onStep?.(step, 3);
    }
    signed.push(options.round);
    return standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.round));
  };
  const clock = { now: 1_000_000 };
  const system = new ActorSystem({ name: "s54-lost-round" });
  const ref = await system.spawn<TrainerMessage>({
    name: "node/trainer",
    factory: () =>
      new TrainerService({
        identity: Identity.generate(),
        shard: split.shards[0],
        models,
        train,
        sampleBytes: TEST_HYPER.sampleBytes,
        dataDir: join(dir, "data"),
        now: () => clock.now,
      }),
  });
  const bodyOf = (n: number): RoundBody => ({
    round: n,
    startModel: seed.cid,
    startFile: seed.cid,
    arch: TEST_ARCH,
    steps: STEPS,
    dataSeed: 7,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    deadline: clock.now + 60_000,
  });
  const round = async (n: number, coordinator: string, gone?: AbortSignal) => {
    const { report } = await ref.ask<RoundAccepted>({
      type: "round",
      body: bodyOf(n),
      coordinator,
      gone,
    });
    return { report };
  };
  /** Let every waiting step go, and the next ones wait again. */
  const step = () => {
    const released = go;
    go = Promise.withResolvers<void>();
    released.resolve();
  };
  /** Let the steps run freely from now on. */
  const free = () => {
    const released = go;
    go = Promise.withResolvers<void>();
    go.resolve();
    released.resolve();
  };
  /** Until round `n` took `count` steps (its `step` messages, polled in the mailbox). */
  const until = async (n: number, count: number) => {
    while ((taken.get(n) ?? 0) < count) {
      step();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  return { system, ref, round, step, free, until, taken, signed, clock };
}

const codeOf = (report: Promise<ReportBody>) =>
  report.then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");

Deno.test("review s54 lost round: a round already training whose coordinator is gone and asked for its next round stops at its next step (round_abandoned, nothing signed); the next round is trained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s54-lost-round-" });
  const { system, round, until, free, taken, signed } = await fixture(dir);
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    await until(0, 2);
    connection.abort(new Error("connection closed")); // the coordinator restarts
    const next = (await round(1, "c0", new AbortController().signal)).report;
    free();
    assert.equal(await codeOf(lost), "round_abandoned", "the lost round stopped");
    assert.ok(taken.get(0)! < STEPS, `the lost round took ${taken.get(0)} of ${STEPS} steps`);
    assert.equal((await next).receipt.round, 1);
    assert.deepEqual(signed, [1], "nothing signed for the lost round");
  } finally {
    free();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s54 lost round: a round already training that nobody waits for stops at its next step once its deadline passed (the trainer's clock); before that it goes on, and another coordinator's round is trained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s54-past-deadline-" });
  const { system, round, until, free, taken, signed, clock } = await fixture(dir);
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    const other = (await round(0, "c1", new AbortController().signal)).report;
    await until(0, 2);
    connection.abort(new Error("connection closed")); // gone for good: no next round
    await until(0, 4); // its deadline not passed: it goes on (the same request may come again)
    clock.now += 120_000;
    free();
    assert.equal(await codeOf(lost), "round_abandoned", "the lost round stopped");
    assert.ok(taken.get(0)! < STEPS, `the lost round took ${taken.get(0)} of ${STEPS} steps`);
    assert.equal((await other).receipt.round, 0, "a waited-for round past its deadline goes on");
    assert.equal(taken.get(0)! >= 4, true);
    assert.equal(signed.length, 1, "one receipt: the waited-for round's");
  } finally {
    free();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s54 lost round: a worker engine's round whose signal aborts stops at its next step (round_abandoned), one queued behind it never starts, and the worker goes on to the next round", async () => {
  const split = await testSplit();
  const start = seededGptWeights(TEST_ARCH, 0);
  const round = (n: number, steps: number) => ({
    arch: TEST_ARCH,
    round: n,
    startModel: gptModelId(TEST_ARCH, start),
    start,
    steps,
    dataSeed: 3,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
  });
  const engine = new WorkerTrainerEngine(Identity.generate(), split.shards[0]);
  try {
    const cancel = new AbortController();
    let heard = 0;
    const lost = engine.train(round(0, 150), () => {
      if (++heard === 2) cancel.abort();
    }, cancel.signal).then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    // Queued behind round 0, and lost before it starts: it never starts.
    const queuedCancel = new AbortController();
    let queuedSteps = 0;
    const queued = engine.train(round(1, 2), () => queuedSteps++, queuedCancel.signal)
      .then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    queuedCancel.abort();
    const next = engine.train(round(2, 2));
    next.catch(() => {}); // awaited below; a failure there fails the test, not the runner
    assert.equal(await lost, "round_abandoned");
    assert.equal(await queued, "round_abandoned");
    assert.equal(queuedSteps, 0, "the queued round never started");
    assert.equal((await next).receipt.round, 2, "the worker went on to the next round");
  } finally {
    await engine.close();
  }
});
