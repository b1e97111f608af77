/**
 * The model registry (`inference/model_registry.ts`): what it loads and serves, a load failure
 * reaching its callers typed, a `--model` path with no model there, and `unknown_model` saying
 * where the list is.
 */
import assert from "node:assert/strict";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { BUILDER_VERSION, buildGptModel, buildMlpModel } from "../../inference/model_builder.ts";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { TextModel } from "../../inference/text_model.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { ModelLoadError, UnknownModelError, WrongModelKindError } from "../../inference/errors.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { cidOf, matchesCid } from "../../protocols/cid.ts";
import { join } from "node:path";
import { assert as assertTrue, assertRejects } from "../server/_assert.ts";

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

Deno.test("ensureBuiltinModel builds once into a dir named by the CID of its model.onnx and reuses or repairs it", async () => {
  const models = `${tmp}/models`;
  const dir = await ensureBuiltinModel(models, "tiny", 0);
  const cid = dir.split("/").pop()!;
  assert.ok(matchesCid(cid, await Deno.readFile(`${dir}/model.onnx`)));
  const first = (await Deno.stat(`${dir}/model.onnx`)).mtime;
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.deepEqual((await Deno.stat(`${dir}/model.onnx`)).mtime, first, "cache hit, no rebuild");
  // Corrupt it: the next call notices (bytes no longer match the CID) and rebuilds.
  await Deno.writeFile(`${dir}/model.onnx`, new Uint8Array([1, 2, 3]));
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.ok(matchesCid(cid, await Deno.readFile(`${dir}/model.onnx`)), "repaired");
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  // The directory is named by its model.onnx; the model by all its files.
  assert.equal(model.info.cid, textModelId(await readTextModelFiles(dir)));
  assert.notEqual(model.info.cid, cid);
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

/** A copy of the model directory `src` at `dst`, every file byte for byte. */
async function copyModel(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const entry of Deno.readDir(src)) {
    await Deno.copyFile(`${src}/${entry.name}`, `${dst}/${entry.name}`);
  }
}

/** `tokenizer.json` in `dir` with one more space in it: still valid, and another file. */
async function touchTokenizer(dir: string): Promise<void> {
  const text = await Deno.readTextFile(`${dir}/tokenizer.json`);
  await Deno.writeTextFile(`${dir}/tokenizer.json`, text.replace("{", "{ "));
}

Deno.test("two directories with the same model.onnx and different tokenizer.json files register as two models", async () => {
  const built = await buildGptModel({ size: "tiny", outDir: `${tmp}/same-onnx-a`, seed: 6 });
  await copyModel(built.dir, `${tmp}/same-onnx-b`);
  await touchTokenizer(`${tmp}/same-onnx-b`);
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    const a = await registry.register(built.dir);
    const b = await registry.register(`${tmp}/same-onnx-b`);
    assert.equal(a.cid, built.cid);
    assert.notEqual(a.cid, b.cid, "another tokenizer, another model");
    assert.notEqual(a.cid, cidOf(await Deno.readFile(`${built.dir}/model.onnx`)));
    assert.equal(b.cid, textModelId(await readTextModelFiles(`${tmp}/same-onnx-b`)));
    assert.deepEqual(registry.list().map((m) => m.cid), [a.cid, b.cid]);
    // Each loads, under its own id.
    assert.equal((await registry.getText(b.cid)).info.cid, b.cid);
  } finally {
    await registry.close();
  }
});

for (
  const [what, change] of [
    ["tokenizer.json was edited", touchTokenizer],
    ["config.json was edited", async (dir: string) => {
      const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      await Deno.writeTextFile(
        `${dir}/config.json`,
        JSON.stringify({ ...config, eos_token_id: 10 }),
      );
    }],
    [
      "tokenizer_config.json was removed",
      (dir: string) => Deno.remove(`${dir}/tokenizer_config.json`),
    ],
  ] as const
) {
  Deno.test(`a model whose ${what} after registration refuses to load under its old id`, async () => {
    const dir = `${tmp}/changed-${what.replaceAll(/\W+/g, "-")}`;
    await buildGptModel({ size: "tiny", outDir: dir, seed: 7 });
    const registry = new ModelRegistry({ intraOpThreads: 1 });
    try {
      const { cid } = await registry.register(dir);
      await change(dir);
      await assert.rejects(
        registry.get(cid),
        (e: unknown) => e instanceof ModelLoadError && /changed since registration/.test(e.message),
      );
    } finally {
      await registry.close();
    }
  });
}

Deno.test("a tensor model's id is the CID of its model.onnx, whatever else its directory holds", async () => {
  const built = await buildMlpModel({ outDir: `${tmp}/mlp-id`, seed: 3 });
  const onnx = cidOf(await Deno.readFile(`${built.dir}/model.onnx`));
  assert.equal(built.cid, onnx);
  // Its config says tensor: a tokenizer next to it decides nothing and is not named.
  await Deno.writeTextFile(`${built.dir}/tokenizer.json`, "{}");
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    const meta = await registry.register(built.dir);
    assert.equal(meta.kind, "tensor");
    assert.equal(meta.cid, onnx);
    assert.equal((await registry.register(`${built.dir}/model.onnx`)).cid, onnx, "bare file");
    assert.equal((await registry.getTensor(onnx)).info.cid, onnx);
  } finally {
    await registry.close();
  }
});

// Whatever makes a model fail to load reaches the registry's callers typed, as `model_load_failed`:
// the InferenceActor and the validators then refuse what needed the model instead of crashing on an
// untyped error from a file (or an option) an operator supplied.

const tmpLoadFailure = await Deno.makeTempDir({ prefix: "veriflow-registry-load-failure-test-" });

Deno.test.afterAll(() => Deno.remove(tmpLoadFailure, { recursive: true }));

function isLoadFailure(e: unknown): boolean {
  assert.ok(e instanceof ModelLoadError, `${(e as Error)?.constructor?.name}: ${e}`);
  assert.equal(e.code, "model_load_failed");
  return true;
}

Deno.test("TextModel.load wraps an untyped failure while loading (a RangeError from the session options) as model_load_failed, with the cause", async () => {
  const dir = join(tmpLoadFailure, "text");
  await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
  const error = await TextModel.load(dir, { intraOpThreads: -1 }).catch((e) => e);
  isLoadFailure(error);
  assert.ok(error.cause instanceof RangeError);
});

Deno.test("ModelRegistry.get reports any load failure as model_load_failed, a tensor model's untyped one included; the failure answers for failedLoadRetryMs, then the next get tries again", async () => {
  const dir = join(tmpLoadFailure, "mlp");
  await buildMlpModel({ seed: 0, outDir: dir });
  let clock = 0;
  const registry = new ModelRegistry({
    intraOpThreads: -1,
    failedLoadRetryMs: 1_000,
    now: () => clock,
  });
  try {
    const { cid } = await registry.register(join(dir, "model.onnx"));
    const first = await registry.get(cid).catch((e) => e);
    isLoadFailure(first);
    assert.ok(first.cause instanceof RangeError, `${first.cause}`);
    // Within the interval the same failure answers: no session is built for each job.
    clock = 999;
    assert.equal(await registry.get(cid).catch((e) => e), first, "no new load within 1 s");
    clock = 1_000;
    const second = await registry.get(cid).catch((e) => e);
    isLoadFailure(second);
    assert.notEqual(second, first, "a new load once the interval is over");
  } finally {
    await registry.close();
  }
});

// The operator's first `--model DIR`: a path with no model there stops the node with `error: the
// node did not start: <the ModelLoadError's message>` (the start command prints a typed error's own
// message, not its cause), so that message must say why (the OS's reason) and what a model path is,
// not only "no model at DIR".
//
// @module

Deno.test("registering a model path that does not exist says why and what a model path holds", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/no-such-model`;
    const error = await assertRejects(() => new ModelRegistry().register(missing), ModelLoadError);
    assertTrue(error.message.includes(missing), error.message);
    assertTrue(/no such file/i.test(error.message), error.message);
    assertTrue(error.message.includes("model.onnx"), error.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registering a directory without model.onnx says which file is missing and why", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const error = await assertRejects(() => new ModelRegistry().register(dir), ModelLoadError);
    assertTrue(error.message.includes(`${dir}/model.onnx`), error.message);
    assertTrue(/no such file/i.test(error.message), error.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// `unknown_model` says where the list is: over HTTP and the WebSocket the error's own text is all a
// client sees, and "no model registered under nope" left it guessing which names the node serves.

Deno.test("UnknownModelError names the model and points at GET /v1/models", () => {
  const error = new UnknownModelError("nope");
  assert.equal(error.code, "unknown_model");
  assert.equal(error.message, "no model named nope on this node (GET /v1/models lists its models)");
});
