/**
 * A round's model is known by the id the inference registry gives its directory
 * (`inference/model_identity.ts`): its `model.onnx` with the builder's `config.json` and tokenizer
 * files of the architecture. `RoundModels` computes it from the weights, checks a model fetched
 * from storage (where only the `model.onnx` is) and one found on disk against it, and so the
 * model a round made is the model nodes serve.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
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
  seededGptWeights,
  writeTrainedModel,
} from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { TrainingError } from "../../training/training_error.ts";
import { TEST_ARCH } from "./_fixtures.ts";

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
