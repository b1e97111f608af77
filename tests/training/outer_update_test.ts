/**
 * A round's model travels as its outer update (`training/outer_step.ts`,
 * `training/round_models.ts`): the int8 step from the round's start model. A node holding the
 * start model rebuilds the next one bit for bit from the update, a quarter of the float32
 * weights; a node without it, or given an update that does not give the model's CID, downloads
 * the whole model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { applyOuterUpdate, quantizeOuterUpdate } from "../../training/outer_step.ts";
import { RoundModels } from "../../training/round_models.ts";
import { TrainingError } from "../../training/training_error.ts";
import { TEST_ARCH } from "./_fixtures.ts";

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
