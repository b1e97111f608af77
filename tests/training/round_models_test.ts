/**
 * A round's model (`training/round_models.ts`, `training/outer_step.ts`): known by the id the
 * inference registry gives its directory, travelling as its int8 outer update from the round's
 * start model, and on disk for good before a coordinator's state names it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { GPT_MODEL_SIZES } from "../../inference/model_builder.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { cidOf } from "../../protocols/cid.ts";
import {
  gptModelId,
  gptModelIdOfOnnx,
  type GptWeights,
  seededGptWeights,
  writeTrainedModel,
} from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { TrainingError } from "../../training/training_error.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { applyOuterUpdate, quantizeOuterUpdate } from "../../training/outer_step.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestTrainer } from "./_coordinator_trainers.ts";

// ------------------------------------------------------------------------------------------------
// A round's model is known by the id the inference registry gives its directory
// (`inference/model_identity.ts`): its `model.onnx` with the builder's `config.json` and tokenizer
// files of the architecture. `RoundModels` computes it from the weights, checks a model fetched
// from storage (where only the `model.onnx` is) and one found on disk against it, and so the model
// a round made is the model nodes serve.
// ------------------------------------------------------------------------------------------------

const tmp = await Deno.makeTempDir({ prefix: "veriflow-round-models-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof TrainingError && e.code === code;
}

Deno.test("RoundModels.cidOf(arch, weights) is the id the registry gives the directory writeTrainedModel wrote", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    for (const [arch, seed] of [[TEST_ARCH, 4], [GPT_MODEL_SIZES.brown, 0]] as const) {
      const weights = seededGptWeights(arch, seed);
      const written = await writeTrainedModel(join(tmp, "written"), arch, weights);
      const served = await registry.register(written.dir);
      assert.equal(RoundModels.cidOf(arch, weights), served.cid);
      assert.equal(gptModelId(arch, weights), served.cid);
      assert.equal(written.cid, served.cid);
      assert.equal(written.dir, join(tmp, "written", served.cid));
      const onnx = await Deno.readFile(join(written.dir, "model.onnx"));
      assert.equal(gptModelIdOfOnnx(arch, onnx), served.cid);
      assert.notEqual(served.cid, cidOf(onnx), "the id names more than model.onnx");
    }
  } finally {
    await registry.close();
  }
});

Deno.test({
  name:
    "a round model fetched from storage is taken under its id, and refused under the CID of its model.onnx or as another architecture's",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = join(tmp, "fetched");
    const system = new ActorSystem();
    try {
      const storage = await system.spawn<StorageMessage>({
        name: "node/storage",
        factory: () => new StorageActor({ dir: join(dir, "store") }),
      });
      const models = (name: string) =>
        new RoundModels({ modelsDir: join(dir, name), storage: () => storage });
      const published = await models("coordinator").publish(
        TEST_ARCH,
        seededGptWeights(TEST_ARCH, 5),
      );
      assert.ok(published.file, "its model.onnx is in storage");
      const onnx = await Deno.readFile(join(published.dir, "model.onnx"));

      const got = await models("trainer").get(published.cid, TEST_ARCH, published.file);
      assert.equal(got.fetched?.via, "model");
      assert.equal(textModelId(await readTextModelFiles(got.dir)), published.cid);

      await assert.rejects(
        models("old").get(cidOf(onnx), TEST_ARCH, published.file),
        isCode("model_mismatch"),
      );
      const other = { ...TEST_ARCH, contextLength: TEST_ARCH.contextLength * 2 };
      await assert.rejects(
        models("other-arch").get(published.cid, other, published.file),
        isCode("model_mismatch"),
      );
    } finally {
      await system.shutdown();
    }
  },
});

Deno.test("a round model on disk is taken under its id only while every file of its directory is the model's", async () => {
  const modelsDir = join(tmp, "disk");
  const weights = seededGptWeights(TEST_ARCH, 6);
  const { cid, dir } = await writeTrainedModel(modelsDir, TEST_ARCH, weights);
  const fresh = () => new RoundModels({ modelsDir, storage: () => undefined });

  const found = await fresh().get(cid, TEST_ARCH);
  assert.equal(found.dir, dir);
  assert.equal(found.fetched, undefined, "read from disk");

  // The same files under the CID of model.onnx (where a model was kept before): not that model.
  const onnxCid = cidOf(await Deno.readFile(join(dir, "model.onnx")));
  await Deno.mkdir(join(modelsDir, onnxCid));
  for await (const entry of Deno.readDir(dir)) {
    await Deno.copyFile(join(dir, entry.name), join(modelsDir, onnxCid, entry.name));
  }
  await assert.rejects(fresh().get(onnxCid, TEST_ARCH), isCode("model_unavailable"));

  // Another tokenizer next to the same model.onnx is another model: not taken under this id.
  const tokenizer = join(dir, "tokenizer.json");
  await Deno.writeTextFile(tokenizer, (await Deno.readTextFile(tokenizer)).replace("{", "{ "));
  await assert.rejects(fresh().get(cid, TEST_ARCH), isCode("model_unavailable"));
});

// ------------------------------------------------------------------------------------------------
// A round's model travels as its outer update (`training/outer_step.ts`,
// `training/round_models.ts`): the int8 step from the round's start model. A node holding the start
// model rebuilds the next one bit for bit from the update, a quarter of the float32 weights; a node
// without it, or given an update that does not give the model's CID, downloads the whole model.
// ------------------------------------------------------------------------------------------------

/** `weights` moved by a deterministic pseudo-random step of relative size `size`. */
function nudged(weights: GptWeights, seed: number, size = 0.01): GptWeights {
  let s = seed >>> 0;
  const next = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) - 0.5;
  return new Map(
    [...weights].map(([name, w]) => [name, {
      shape: [...w.shape],
      data: w.data.map((x) => x + size * (Math.abs(x) + 0.01) * next()),
    }]),
  );
}

function paramsOf(weights: GptWeights): number {
  return [...weights.values()].reduce((n, w) => n + w.data.length, 0);
}

Deno.test("an outer update rebuilds its model bit for bit, within half a step of the float step, at about a quarter of the float32 bytes", () => {
  const start = seededGptWeights(TEST_ARCH, 1);
  const float = nudged(start, 7);
  const { weights, update } = quantizeOuterUpdate(start, float);
  const rebuilt = applyOuterUpdate(start, update);
  for (const [name, w] of weights) {
    assert.deepEqual(rebuilt.get(name)!.data, w.data, `${name} rebuilt bit for bit`);
    // Every value within half a quantization step of the float outer step (scale = max/127).
    const s = start.get(name)!.data;
    const f = float.get(name)!.data;
    const width = w.shape.length >= 2 ? w.data.length / w.shape[0] : w.data.length;
    for (let row = 0; row < w.data.length / width; row++) {
      let max = 0;
      for (let i = row * width; i < (row + 1) * width; i++) {
        max = Math.max(max, Math.abs(s[i] - f[i]));
      }
      for (let i = row * width; i < (row + 1) * width; i++) {
        assert.ok(Math.abs(w.data[i] - f[i]) <= max / 127 / 2 + 1e-6, `${name}[${i}]`);
      }
    }
  }
  const params = paramsOf(start);
  assert.ok(update.length >= params && update.length < params * 1.2, `${update.length} bytes`);
  assert.ok(update.length < (4 * params) / 3, "well under the float32 weights");
});

Deno.test("an outer update that does not fit the start weights is refused as bad_delta", () => {
  const start = seededGptWeights(TEST_ARCH, 1);
  const { update } = quantizeOuterUpdate(start, nudged(start, 3));
  const smaller = new Map([...start].slice(1));
  assert.throws(
    () => applyOuterUpdate(smaller, update),
    (e: unknown) => e instanceof TrainingError && e.code === "bad_delta",
  );
  assert.throws(
    () => applyOuterUpdate(start, update.subarray(0, update.length - 1)),
    (e) => e instanceof TrainingError && e.code === "bad_delta",
  );
});

Deno.test({
  name:
    "a node holding the start model fetches the next one as its outer update; without it, or with an update that gives another model, it downloads the model",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-outer-update-" });
    const system = new ActorSystem();
    try {
      const storage = await system.spawn<StorageMessage>({
        name: "node/storage",
        factory: () => new StorageActor({ dir: join(dir, "store") }),
      });
      const models = (name: string) =>
        new RoundModels({ modelsDir: join(dir, name), storage: () => storage });
      const coordinator = models("coordinator");
      const start = await coordinator.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 2));
      const step = quantizeOuterUpdate(start.weights, nudged(start.weights, 11));
      const next = await coordinator.publish(TEST_ARCH, step.weights, {
        from: start.cid,
        bytes: step.update,
      });
      assert.equal(next.update?.from, start.cid);
      assert.ok(next.update?.file, "the update is published in storage");
      // Another round's update from the same start: it gives another model.
      const other = quantizeOuterUpdate(start.weights, nudged(start.weights, 12));
      const otherModel = await coordinator.publish(TEST_ARCH, other.weights, {
        from: start.cid,
        bytes: other.update,
      });

      // A trainer that held the start model: the update, checked against the CID.
      const holder = models("holder");
      const got = await holder.get(start.cid, TEST_ARCH, start.file);
      assert.equal(got.fetched?.via, "model");
      const viaUpdate = await holder.get(next.cid, TEST_ARCH, next.file, next.update);
      assert.equal(viaUpdate.cid, next.cid);
      assert.deepEqual(viaUpdate.fetched, { via: "update", bytes: step.update.length });
      const onnx = await Deno.readFile(join(viaUpdate.dir, "model.onnx"));
      const published = await Deno.readFile(join(next.dir, "model.onnx"));
      assert.deepEqual(onnx, published, "the rebuilt model is the published one, byte for byte");
      assert.ok(step.update.length * 3 < published.length, "the update is far smaller");
      // Asked again: held, nothing fetched.
      assert.equal(
        (await holder.get(next.cid, TEST_ARCH, next.file, next.update)).fetched,
        undefined,
      );

      // A wrong update (it gives another model): nothing written for it, the model downloaded.
      const misled = models("misled");
      await misled.get(start.cid, TEST_ARCH, start.file);
      const wrong = await misled.get(next.cid, TEST_ARCH, next.file, otherModel.update);
      assert.equal(wrong.cid, next.cid);
      assert.equal(wrong.fetched?.via, "model");
      await assert.rejects(Deno.stat(join(dir, "misled", otherModel.cid)), Deno.errors.NotFound);

      // A node without the start model: the model itself.
      const late = models("late");
      const downloaded = await late.get(next.cid, TEST_ARCH, next.file, next.update);
      assert.equal(downloaded.fetched?.via, "model");
      assert.equal(downloaded.fetched?.bytes, published.length);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------------------------------------------
// A coordinator's state never names a model that a power cut could take back: the state file is
// fsynced, so every model it names must be on disk for good before it — `model.onnx` renamed into
// place from an fsynced temporary file, the model directory's other files fsynced, the model
// directory and the directory holding it fsynced. Checked on the file operations of a real round,
// recorded through the Deno calls they go through (the test cannot cut the power).
// ------------------------------------------------------------------------------------------------

/** One file operation, in the order it happened. */
type FileEvent =
  | { op: "write"; path: string } // written without fsync (Deno.writeFile / writeTextFile)
  | { op: "sync"; path: string } // fsync of a file or directory opened at `path`
  | { op: "rename"; from: string; to: string; names?: string }; // `names`: the model a state names

/** Record every write, fsync and rename until the returned function restores the Deno calls. */
function recordFileEvents(events: FileEvent[]): () => void {
  const { open, rename, writeFile, writeTextFile } = Deno;
  const stubs = {
    open: async (path: string | URL, options?: Deno.OpenOptions) => {
      const file = await open(path, options);
      const sync = file.sync.bind(file);
      const syncData = file.syncData.bind(file);
      file.sync = () => (events.push({ op: "sync", path: String(path) }), sync());
      file.syncData = () => (events.push({ op: "sync", path: String(path) }), syncData());
      return file;
    },
    rename: (from: string | URL, to: string | URL) => {
      const event: FileEvent = { op: "rename", from: String(from), to: String(to) };
      if (String(to).endsWith("coordinator.json")) {
        event.names = JSON.parse(Deno.readTextFileSync(from)).model.cid;
      }
      events.push(event);
      return rename(from, to);
    },
    writeFile: (path: string | URL, ...rest: unknown[]) => {
      events.push({ op: "write", path: String(path) });
      return (writeFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
    },
    writeTextFile: (path: string | URL, ...rest: unknown[]) => {
      events.push({ op: "write", path: String(path) });
      return (writeTextFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
    },
  };
  Object.assign(Deno, stubs);
  return () => Object.assign(Deno, { open, rename, writeFile, writeTextFile });
}

/**
 * Why model `cid`'s directory was not yet durable at event `before` (undefined: it was).
 */
function notDurable(
  events: FileEvent[],
  before: number,
  modelsDir: string,
  cid: string,
): string | undefined {
  const dir = join(modelsDir, cid);
  const onnx = join(dir, "model.onnx");
  const seen = events.slice(0, before);
  const lastIndex = (test: (e: FileEvent) => boolean) => seen.findLastIndex(test);
  const synced = (path: string, after: number) =>
    seen.some((e, i) => i > after && e.op === "sync" && e.path === path);

  const placed = lastIndex((e) => e.op === "rename" && e.to === onnx);
  if (placed < 0) return "model.onnx was not renamed into place";
  const tmp = (seen[placed] as { from: string }).from;
  if (!seen.slice(0, placed).some((e) => e.op === "sync" && e.path === tmp)) {
    return "model.onnx was renamed into place unsynced";
  }
  if (lastIndex((e) => e.op === "write" && e.path === onnx) > placed) {
    return "model.onnx was overwritten after";
  }
  for (const { name } of Deno.readDirSync(dir)) {
    const path = join(dir, name);
    if (path === onnx) continue;
    const written = lastIndex((e) => e.op === "write" && e.path === path);
    if (!synced(path, written)) return `${name} was not synced after its write`;
  }
  if (!synced(dir, placed)) return "the model directory was not synced after model.onnx";
  const made = seen.findIndex((e) => "path" in e && dirname(e.path) === dir);
  if (!synced(modelsDir, made)) return "the models directory was not synced after the model's";
  return undefined;
}

Deno.test("every model a coordinator's state names was durable on disk before the state that names it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-model-durable-" });
  const system = new ActorSystem({ name: "durable" });
  const events: FileEvent[] = [];
  const restore = recordFileEvents(events);
  try {
    const split = await testSplit();
    const modelsDir = join(dir, "models");
    const models = new RoundModels({ modelsDir, storage: () => undefined });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "t/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: Identity.generate(),
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: 2,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 1,
          models,
          statePath: join(dir, "training", "coordinator.json"),
        }),
    });
    const trainer = Identity.generate();
    const { size, root } = commitShard(split.shards[0], TEST_HYPER.sampleBytes);
    await coordinator.ask({
      type: "join",
      connection: honestTrainer(trainer, split.shards[0], models).connection,
      shardSize: size,
      shardRoot: root,
    });
    const { history } = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === 1 ? s : undefined;
      },
      "round 0 to finish",
      { timeoutMs: 60_000 },
    );
    const [round] = history;
    assert.notEqual(round.model, round.startModel, "the round made a model");

    // The first state to name each model: the seeded one (round 0's announce), round 0's.
    for (const cid of [round.startModel, round.model]) {
      const first = events.findIndex((e) => e.op === "rename" && e.names === cid);
      assert.ok(first >= 0, `a state names ${cid}`);
      assert.equal(notDurable(events, first, modelsDir, cid), undefined, cid);
    }
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
