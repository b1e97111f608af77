/**
 * The node's signed hello (`node/node_hello.ts`): what it advertises, and that its slots are the
 * jobs the InferenceActor really runs side by side, as the router reads them.
 */
import assert from "node:assert/strict";
import { nodeHello } from "../../node/node_hello.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
} from "../../inference/inference_port.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { chooseWorker } from "../../network/worker_choice.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { DEFAULT_GENERATION_PARAMS, type TextJob } from "../../protocols/job.ts";
import { hasCapacity } from "../../protocols/peer_hello.ts";
import { ScriptedModel, type ScriptedModelOptions, StaticModels } from "../server/_fixtures.ts";

// What the node's signed hello says, and how often it reads each fact (`node/node_hello.ts`).

Deno.test("the hello reads the load on every call and the storage use at most every 30 s", async () => {
  let running = 0;
  const port = {
    models: () => Promise.resolve([{ cid: "bafk-m", name: "m", kind: "text" }]),
    stats: () =>
      Promise.resolve({ ...emptyInferenceStats(), activeJobs: running, queuedJobs: 1, slots: 8 }),
  } as unknown as InferencePort;
  let reads = 0;
  let used = 100;
  const storage = {
    ask: () => {
      reads++;
      return Promise.resolve({
        ok: true,
        value: { usedBytes: used, quotaBytes: null, objectCount: 0, pinCount: 0, replicaCount: 0 },
      });
    },
  } as unknown as ActorRef<StorageMessage>;
  const clock = { t: 0 };
  const describe = nodeHello({
    roles: { inference: true, storage: true, prover: true, validator: false },
    inference: () => port,
    storage: () => storage,
    queueLimit: 64,
  }, () => clock.t);
  const first = await describe();
  assert.deepEqual(first.roles, ["inference", "storage", "prover"]);
  assert.deepEqual(first.models, ["bafk-m"]);
  assert.deepEqual(first.load, { running: 0, queued: 1, slots: 8, queueLimit: 64 });
  assert.deepEqual(first.storage, { usedBytes: 100, quotaBytes: null });
  running = 3;
  used = 500;
  clock.t = 29_999;
  const second = await describe();
  assert.equal(second.load?.running, 3, "the load is read every time");
  assert.equal(second.storage?.usedBytes, 100, "the storage reading is reused");
  clock.t = 30_000;
  assert.equal((await describe()).storage?.usedBytes, 500);
  assert.equal(reads, 2);
});

// The slots a node's signed hello advertises (`node/node_hello.ts`) are the jobs its InferenceActor
// really runs side by side, and the router's choice (`network/worker_choice.ts`) sends a job where
// it starts at once rather than where it queues.
//
// The actor runs exactly a model's batch seats per model (`batchCapacity`: the
// built-in model seats 8 sequences per worker; a graph that cannot batch, one), not the node's
// `inference.concurrency` (4 by default), but the hello still said `slots: concurrency`: a worker
// running 4 of its 8 seats looked full to its routers, and one whose only seat was taken looked
// like it had 3 free, so routers sent it jobs that waited in its queue for a whole generation
// while another worker had free seats.

/** The node's shipped defaults (`inference.concurrency`, `inference.queueLimit`). */
const defaults = parseNodeConfig({}).inference;

const roles = { inference: true, storage: false, prover: false, validator: false };

/** A scripted model that reports its batch seats, as `TextModel` does. */
class SeatedModel extends ScriptedModel {
  readonly batchCapacity: number;
  constructor(seats: number, options: ScriptedModelOptions) {
    super(options);
    this.batchCapacity = seats;
  }
}

/** An InferenceActor as `node/_node_children.ts` spawns it, its local port, and the hello the node sends. */
async function worker(system: ActorSystem, name: string, models: StaticModels) {
  const ref: ActorRef<InferenceMessage> = await system.spawn<InferenceMessage>({
    name,
    factory: () =>
      new InferenceActor({
        models,
        concurrency: defaults.concurrency,
        queueLimit: defaults.queueLimit,
      }),
  });
  const port = new LocalInferencePort({ inference: ref, models });
  // What `node/_node_children.ts` hands `nodeHello` (before review s58, also `slots: concurrency`).
  const describe = nodeHello({
    roles,
    inference: () => port,
    storage: () => undefined,
    queueLimit: defaults.queueLimit,
  });
  return { port, describe };
}

let nonce = 0;

function job(model: string, prompt = "Hello"): TextJob {
  return {
    kind: "text",
    model,
    prompt,
    params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 16, temperature: 0, stop: [] },
    nonce: `s58-${++nonce}`,
  };
}

Deno.test("a node with the shipped defaults advertises as many slots as its InferenceActor runs side by side", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s58-slots-" });
  const system = new ActorSystem({ name: "s58-hello" });
  let model: TextModel | undefined;
  const handles: InferenceHandle[] = [];
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    // The built-in model with its default batch (8 seats per worker), in-thread: one worker's.
    model = await TextModel.load(dir, { intraOpThreads: 1 });
    const { port, describe } = await worker(system, "inference", new StaticModels([model]));
    const before = await describe();
    // Jobs nobody reads hold their slot (the stream is pull-driven): all that start, run.
    const seats = model.batchCapacity;
    for (let i = 0; i < seats + 1; i++) {
      handles.push(await port.submit(job(model.info.cid, `${i}`)));
    }
    const stats = await port.stats();
    assert.equal(stats.activeJobs, seats, "the actor runs every seat's job");
    assert.equal(stats.queuedJobs, 1, "the one beyond the seats waits");
    const after = await describe();
    assert.deepEqual(
      { idle: before.load?.slots, busy: after.load },
      {
        idle: seats,
        busy: { running: seats, queued: 1, slots: seats, queueLimit: defaults.queueLimit },
      },
      `the actor runs ${seats} jobs side by side; the hello advertised ${after.load?.slots} slots`,
    );
  } finally {
    for (const handle of handles) handle.cancel();
    await system.shutdown();
    await model?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a model that seats one job per worker is advertised with one slot, so a router does not send a second job to wait there", async () => {
  const system = new ActorSystem({ name: "s58-one-seat" });
  const solo = new SeatedModel(1, { gated: true, name: "solo" });
  try {
    const { port, describe } = await worker(system, "inference", new StaticModels([solo]));
    const running = await port.submit(job(solo.info.cid));
    const load = (await describe()).load!;
    assert.equal(load.slots, 1, `one seat, advertised as ${load.slots} slots`);
    // With no queue places (queueLimit 0), it has no room left for a router.
    assert.equal(hasCapacity({ ...load, queueLimit: 0 }), false);
    running.cancel();
  } finally {
    solo.release(1e6);
    await system.shutdown();
  }
});

Deno.test("a router given two workers' hellos sends the job to the one with a free seat, not to the one where it would queue", async () => {
  const system = new ActorSystem({ name: "s58-route" });
  // Worker A serves a model that batches 8 (the built-in's default) and runs 5 jobs: 3 seats free.
  // Worker B serves the same model id on a graph that cannot batch (1 seat) and runs 1: full.
  const wide = new SeatedModel(8, { gated: true, name: "m" });
  const narrow = new SeatedModel(1, { gated: true, name: "m" });
  assert.equal(wide.info.cid, narrow.info.cid);
  const model = wide.info.cid;
  try {
    const a = await worker(system, "a", new StaticModels([wide]));
    const b = await worker(system, "b", new StaticModels([narrow]));
    for (let i = 0; i < 5; i++) await a.port.submit(job(model));
    await b.port.submit(job(model));
    const candidates = await Promise.all(
      [["a", a], ["b", b]].map(async ([key, w]) => {
        const hello = await (w as typeof a).describe();
        return {
          key: key as string,
          port: (w as typeof a).port,
          models: hello.models,
          convicted: false,
          load: hello.load,
          inFlight: 0,
        };
      }),
    );
    const chosen = chooseWorker(candidates, { model })!;
    const places: number[] = [];
    await chosen.port.submit(job(model), { onQueued: (p) => places.push(p) });
    assert.deepEqual(
      { worker: chosen.key, queuedAt: places },
      { worker: "a", queuedAt: [] },
      `hellos: a ${JSON.stringify(candidates[0].load)}, b ${JSON.stringify(candidates[1].load)}`,
    );
  } finally {
    wide.release(1e6);
    narrow.release(1e6);
    await system.shutdown();
  }
});

Deno.test("a node serving two models advertises the sum of their seats, and only of the models it serves", async () => {
  const system = new ActorSystem({ name: "s58-two-models" });
  const wide = new SeatedModel(8, { gated: true, name: "wide" });
  const solo = new SeatedModel(1, { gated: true, name: "solo" });
  try {
    const { describe } = await worker(system, "both", new StaticModels([wide, solo]));
    assert.equal((await describe()).load?.slots, 9);
    // A catalog that lists one of the two (the other's pool given up: `offeredModels`).
    const ref = await system.spawn<InferenceMessage>({
      name: "one-listed",
      factory: () => new InferenceActor({ models: new StaticModels([wide, solo]) }),
    });
    const port = new LocalInferencePort({ inference: ref, models: new StaticModels([solo]) });
    assert.equal((await port.stats()).slots, 1);
  } finally {
    wide.release(1e6);
    solo.release(1e6);
    await system.shutdown();
  }
});
