/**
 * A trainer takes one round at a time per coordinator (`round_in_progress`). It kept that slot
 * for a round whose coordinator was gone — its connection closed, a restarted coordinator's
 * request lost — so the restarted coordinator's next rounds were refused until the lost round
 * ended. The `round` message now carries the request's signal (the peer service's handler
 * signal: aborted when its connection closes, or the request is cancelled): once nobody waits
 * for a round, its coordinator's slot is free, and a lost round that has not started training
 * is abandoned — nothing is signed for it, so no ledger pays or slashes anything for it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  type ReportBody,
  type RoundBody,
  RoundMessage,
  TRAINING_PROTOCOL,
} from "../../protocols/training_messages.ts";
import { servePeer } from "../../network/peer_services.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainFunction,
} from "../../training/trainer_service.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { standInTraining } from "./_stand_in_train.ts";

/**
 * A trainer whose training (a stand-in for `trainAndSign`: a receipt that is a pure function of
 * the round) waits for `trainGate`, and whose start-model check waits for `modelGate`; it
 * records the rounds it trained (signed a receipt for).
 */
async function fixture(dir: string, gates: { train?: Promise<void>; model?: Promise<void> }) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const signed: number[] = [];
  const entered: number[] = [];
  const train: TrainFunction = async (options) => {
    entered.push(options.round);
    await gates.train;
    signed.push(options.round);
    return standInTraining(options, (i, o) => 1e-3 * Math.sin(i + o.round));
  };
  const system = new ActorSystem({ name: "s53b-lost-round" });
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
        refusedModel: async () => {
          await gates.model;
          return null;
        },
      }),
  });
  /** Round `n`'s request. */
  const bodyOf = (n: number): RoundBody => ({
    round: n,
    startModel: seed.cid,
    startFile: seed.cid,
    arch: TEST_ARCH,
    steps: 3,
    dataSeed: 7,
    hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
    deadline: Date.now() + 60_000,
  });
  /** Ask for round `n` for `coordinator`, waited on while `gone` is not aborted. */
  const ask = async (n: number, coordinator: string, gone?: AbortSignal) => {
    const body = bodyOf(n);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator, gone });
    return { report }; // not the report itself: an async function would wait for it
  };
  /** Until `count` rounds entered training (polled: the stand-in's own record). */
  const training = async (count: number) => {
    while (entered.length < count) await new Promise((resolve) => setTimeout(resolve, 1));
  };
  return { system, round: ask, bodyOf, signed, training };
}

const codeOf = (report: Promise<ReportBody>) =>
  report.then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");

Deno.test("review s53b lost round: once the connection that asked for a round closes, its coordinator's next round (a restarted coordinator's) is taken, not refused round_in_progress; a coordinator still waiting keeps its slot", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-lost-round-" });
  const gate = Promise.withResolvers<void>();
  const { system, round, signed, training } = await fixture(dir, { train: gate.promise });
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    const waited = (await round(0, "c1", new AbortController().signal)).report;
    await training(2);
    // While its connection is open, the coordinator's second round is refused, as before.
    assert.equal(await codeOf((await round(1, "c0")).report), "round_in_progress");
    connection.abort(new Error("connection closed"));
    const next = (await round(1, "c0", new AbortController().signal)).report;
    // The other coordinator, still waiting, keeps its slot.
    assert.equal(await codeOf((await round(1, "c1")).report), "round_in_progress");
    gate.resolve();
    assert.equal((await next).receipt.round, 1, "the restarted coordinator's round is trained");
    assert.equal((await waited).receipt.round, 0);
    // The lost round had started training: it ran to its end (nobody reads its report, so it
    // is paid nowhere; its receipt is its honest run, so nothing slashes it).
    await codeOf(lost);
    assert.deepEqual(signed.toSorted(), [0, 0, 1]);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s53b lost round: a round whose coordinator is gone before it started training is abandoned (round_abandoned): nothing is trained or signed for it, so nothing is paid or slashed for it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-abandoned-" });
  const model = Promise.withResolvers<void>();
  const { system, round, signed } = await fixture(dir, { model: model.promise });
  try {
    const connection = new AbortController();
    const lost = (await round(0, "c0", connection.signal)).report;
    connection.abort(new Error("connection closed"));
    model.resolve();
    assert.equal(await codeOf(lost), "round_abandoned");
    assert.deepEqual(signed, [], "no receipt signed for the lost round");
    // Its slot is free, and the same request again (the coordinator back) is trained anew.
    const back = (await round(0, "c0", new AbortController().signal)).report;
    assert.equal((await back).receipt.round, 0);
    assert.deepEqual(signed, [0]);
  } finally {
    model.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s53b lost round: the same request again over a new connection, after the first closed, shares the running round's report (trained once)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-same-again-" });
  const gate = Promise.withResolvers<void>();
  const { system, round, signed, training } = await fixture(dir, { train: gate.promise });
  try {
    const first = new AbortController();
    const lost = (await round(0, "c0", first.signal)).report;
    await training(1);
    first.abort(new Error("connection closed"));
    const again = (await round(0, "c0", new AbortController().signal)).report;
    assert.equal(again, lost, "the running round's report");
    assert.equal(
      await codeOf((await round(1, "c0")).report),
      "round_in_progress",
      "waited on again",
    );
    gate.resolve();
    await again;
    assert.deepEqual(signed, [0], "trained once");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s53b lost round: over the wire, a coordinator whose connection closed while its round trained (it restarted) has its next round taken over its new connection, not refused round_in_progress", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-wire-" });
  const gate = Promise.withResolvers<void>();
  const { system, bodyOf, signed, training } = await fixture(dir, { train: gate.promise });
  const coordinator = Identity.generate();
  const node = Identity.generate();
  const open: Connection[] = [];
  /** A connection from the coordinator to the trainer's node, served as the node serves peers. */
  const connect = async () => {
    const [a, b] = memoryDuplexPair();
    const [atCoordinator, atTrainer] = await Promise.all([
      Connection.open(a, { identity: coordinator, protocols: [TRAINING_PROTOCOL] }),
      Connection.open(b, { identity: node, protocols: [TRAINING_PROTOCOL] }),
    ]);
    servePeer(atTrainer, coordinator.publicKey, { system, trainer: "node/trainer" });
    open.push(atCoordinator, atTrainer);
    return atCoordinator;
  };
  try {
    const before = await connect();
    const lost = before.request(RoundMessage, bodyOf(0), { timeoutMs: 60_000 })
      .then(() => "reported", (e: { code?: string }) => e.code ?? "thrown");
    await training(1);
    await before.close(); // the coordinator restarts
    await lost;
    const after = await connect();
    const next = after.request(RoundMessage, bodyOf(1), { timeoutMs: 60_000 })
      .then((report) => report.receipt.round, (e: { code?: string }) => e.code ?? "thrown");
    // The lost round still trains when the next is asked for: taken (it enters training), or
    // refused (answered at once).
    await Promise.race([next, training(2)]);
    gate.resolve();
    assert.equal(await next, 1, "the restarted coordinator's next round, trained");
    assert.deepEqual(signed.toSorted(), [0, 1]);
  } finally {
    gate.resolve();
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
