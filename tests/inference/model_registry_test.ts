import assert from "node:assert/strict";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { BUILDER_VERSION, buildGptModel, buildMlpModel } from "../../inference/model_builder.ts";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { TextModel } from "../../inference/text_model.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { ModelLoadError, UnknownModelError, WrongModelKindError } from "../../inference/errors.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-registry-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

Deno.test("register reads metadata without loading; get loads lazily once and reuses the session", async () => {
  const text = await buildGptModel({ size: "tiny", outDir: `${tmp}/text` });
  const tensor = await buildMlpModel({ outDir: `${tmp}/mlp` });
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    const meta = await registry.register(text.dir);
    assert.equal(meta.cid, text.cid);
    assert.equal(meta.kind, "text");
    assert.equal(meta.vocabSize, 260);
    assert.equal(meta.contextLength, 256);
    assert.equal(meta.sizeBytes, text.sizeBytes);
    assert.equal(meta.loaded, false);
    assert.equal((await registry.register(text.dir)).cid, text.cid, "idempotent");
    const tmeta = await registry.register(tensor.dir);
    assert.equal(tmeta.kind, "tensor");
    assert.deepEqual(registry.list().map((m) => m.cid), [text.cid, tensor.cid]);

    const [a, b] = await Promise.all([registry.get(text.cid), registry.get(text.cid)]);
    assert.ok(a instanceof TextModel);
    assert.equal(a, b, "concurrent first uses share one load");
    assert.equal(await registry.getText(text.cid), a);
    const info = registry.info(text.cid)!;
    assert.equal(info.loaded, true);
    assert.equal(info.executionProvider, "cpu");
    assert.ok((await registry.getTensor(tensor.cid)) instanceof TensorModel);
  } finally {
    await registry.close();
  }
});

Deno.test("unknown CIDs and wrong kinds fail with typed errors", async () => {
  const tensor = await buildMlpModel({ outDir: `${tmp}/mlp2`, seed: 9 });
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    await registry.register(tensor.dir);
    await assert.rejects(registry.get("bafkreinotregistered"), UnknownModelError);
    await assert.rejects(registry.getText(tensor.cid), WrongModelKindError);
  } finally {
    await registry.close();
  }
});

Deno.test("a model file changed after registration refuses to load under its old CID", async () => {
  const built = await buildGptModel({ size: "tiny", outDir: `${tmp}/mutable`, seed: 4 });
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    await registry.register(built.dir);
    await buildGptModel({ size: "tiny", outDir: `${tmp}/mutable`, seed: 5 });
    await assert.rejects(
      registry.get(built.cid),
      (e: unknown) => (e as { code?: string }).code === "model_load_failed",
    );
  } finally {
    await registry.close();
  }
});

Deno.test("ensureBuiltinModel builds once into a dir named by the CID and reuses or repairs it", async () => {
  const models = `${tmp}/models`;
  const dir = await ensureBuiltinModel(models, "tiny", 0);
  const cid = dir.split("/").pop()!;
  assert.ok(cid.startsWith("bafkrei"));
  const first = (await Deno.stat(`${dir}/model.onnx`)).mtime;
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.deepEqual((await Deno.stat(`${dir}/model.onnx`)).mtime, first, "cache hit, no rebuild");
  // Corrupt it: the next call notices (bytes no longer match the CID) and rebuilds.
  await Deno.writeFile(`${dir}/model.onnx`, new Uint8Array([1, 2, 3]));
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  assert.equal(model.info.cid, cid);
  await model.dispose();
  const entries = [...Deno.readDirSync(models)].map((e) => e.name).sort();
  assert.deepEqual(
    entries,
    [cid, `builtin-tiny-seed0-v${BUILDER_VERSION}.cid`].sort(),
    "no staging dirs left",
  );
});

Deno.test("a tokenizer.json that cannot be read fails the registration instead of making the model a tensor model", async () => {
  const dir = `${tmp}/unreadable-tokenizer`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/model.onnx`, "bytes are not read until the model loads");
  // A link to itself: stat fails with a loop error, not "not found", even for root.
  await Deno.symlink(`${dir}/tokenizer.json`, `${dir}/tokenizer.json`);
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    await assert.rejects(registry.register(dir), ModelLoadError);
    assert.deepEqual(registry.list(), []);
  } finally {
    await registry.close();
  }
});
