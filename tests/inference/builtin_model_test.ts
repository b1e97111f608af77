/**
 * Built-in models (`inference/builtin_model.ts`): served only when every file is what the
 * deterministic builder wrote, and the trained built-in model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ensureBuiltinModel,
  TRAINED_BUILTIN_MODELS,
  trainedModelBytes,
} from "../../inference/builtin_model.ts";
import { BUILDER_VERSION, buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { matchesCid } from "../../protocols/cid.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";

// `ensureBuiltinModel` serves a built-in model directory only when every file in it is what the
// (deterministic) builder wrote: not just `model.onnx`, whose CID names the directory, but the
// `config.json` and tokenizer files next to it, which nothing else checks.

const tmp = await Deno.makeTempDir({ prefix: "veriflow-builtin-model-test-" });

Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** What the builder writes for tiny seed 0, to compare a served directory with. */
const fresh = join(tmp, "fresh");

await buildGptModel({ size: "tiny", seed: 0, outDir: fresh });

const BUILT_FILES = ["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json"];

async function assertAsBuilt(dir: string): Promise<void> {
  for (const f of BUILT_FILES) {
    assert.deepEqual(await Deno.readFile(join(dir, f)), await Deno.readFile(join(fresh, f)), f);
  }
}

let cases = 0;

const damages: [string, (path: string) => Promise<void>][] = [
  ["truncated", (path) => Deno.writeTextFile(path, "{")],
  ["edited", async (path) => {
    const json = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...json, vocab_size: 100, n_positions: 1e5 }));
  }],
  ["deleted", (path) => Deno.remove(path)],
];

for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
  for (const [how, damage] of damages) {
    Deno.test(`ensureBuiltinModel rebuilds a built-in model whose ${file} was ${how}`, async () => {
      const models = join(tmp, `models-${++cases}`);
      const dir = await ensureBuiltinModel(models, "tiny", 0);
      await damage(join(dir, file));
      assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
      await assertAsBuilt(dir);
      await (await TextModel.load(dir, { intraOpThreads: 1 })).dispose();
    });
  }
}

Deno.test("ensureBuiltinModel reuses an intact built-in model without rewriting any file", async () => {
  const models = join(tmp, `models-${++cases}`);
  const dir = await ensureBuiltinModel(models, "tiny", 0);
  const mtimes = async () =>
    await Promise.all(BUILT_FILES.map(async (f) => (await Deno.stat(join(dir, f))).mtime));
  const before = await mtimes();
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.deepEqual(await mtimes(), before);
  await assertAsBuilt(dir);
});

Deno.test("a model cached under a one-line alias (before aliases listed every file) is checked once in full and kept if intact", async () => {
  const models = join(tmp, `models-${++cases}`);
  const dir = await ensureBuiltinModel(models, "tiny", 0);
  const cid = dir.split("/").pop()!;
  const alias = join(models, `builtin-tiny-seed0-v${BUILDER_VERSION}.cid`);
  await Deno.writeTextFile(alias, cid + "\n");
  const modelMtime = (await Deno.stat(join(dir, "model.onnx"))).mtime;
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.deepEqual((await Deno.stat(join(dir, "model.onnx"))).mtime, modelMtime, "kept");
  assert.equal(JSON.parse(await Deno.readTextFile(alias)).cid, cid);
  assert.deepEqual(
    [...Deno.readDirSync(models)].map((e) => e.name).sort(),
    [cid, `builtin-tiny-seed0-v${BUILDER_VERSION}.cid`].sort(),
    "no staging dirs left",
  );
});

Deno.test("what a build killed mid-way left (a staging directory, an alias's .tmp) is removed once it is an hour old; a fresh one, maybe another process's build under way, is left alone", async () => {
  const models = join(tmp, `models-${++cases}`);
  await Deno.mkdir(models, { recursive: true });
  const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  const crashed = join(models, ".staging-crashed");
  await Deno.mkdir(crashed);
  await Deno.writeFile(join(crashed, "model.onnx"), new Uint8Array(1000));
  const crashedAlias = join(models, `builtin-tiny-seed0-v${BUILDER_VERSION}.cid.1234.tmp`);
  await Deno.writeTextFile(crashedAlias, "{");
  for (const path of [crashed, crashedAlias]) await Deno.utime(path, twoHoursAgo, twoHoursAgo);
  const underWay = join(models, ".staging-under-way");
  await Deno.mkdir(underWay);
  const dir = await ensureBuiltinModel(models, "tiny", 0);
  const cid = dir.split("/").pop()!;
  assert.deepEqual(
    [...Deno.readDirSync(models)].map((e) => e.name).sort(),
    [".staging-under-way", cid, `builtin-tiny-seed0-v${BUILDER_VERSION}.cid`].sort(),
  );
  // A cache hit sweeps too: a node that restarts after a crash finds its model built.
  await Deno.utime(underWay, twoHoursAgo, twoHoursAgo);
  assert.equal(await ensureBuiltinModel(models, "tiny", 0), dir);
  assert.equal(await Deno.stat(underWay).catch(() => undefined), undefined, "left behind");
});

const tmpTrained = await Deno.makeTempDir({ prefix: "veriflow-trained-builtin-test-" });

Deno.test.afterAll(() => Deno.remove(tmpTrained, { recursive: true }));

const brown = TRAINED_BUILTIN_MODELS.brown!;

Deno.test("the checked-in brown model matches the CID recorded for it", async () => {
  const bytes = await Deno.readFile(brown.file);
  assert.ok(matchesCid(brown.cid, bytes));
  // Small enough to keep in the repository.
  assert.ok(bytes.length < 3_000_000, `${bytes.length} bytes`);
});

Deno.test("ensureBuiltinModel installs brown by copying the checked-in weights, and repairs a damaged copy", async () => {
  const models = join(tmpTrained, "models");
  const dir = await ensureBuiltinModel(models, "brown");
  assert.equal(dir, join(models, brown.cid));
  assert.deepEqual(await Deno.readFile(join(dir, "model.onnx")), await trainedModelBytes("brown"));
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assert.equal(config.n_positions, 128);
  // The id it is served under, as docs/MODELS.md gives it: its weights, config and tokenizer.
  assert.equal(
    textModelId(await readTextModelFiles(dir)),
    "bafyreid7pi6me5aqrcjac6gn2upseoxk7kjh7bzliy4qzw6yd5pauq27ma",
  );

  await Deno.writeFile(join(dir, "model.onnx"), new Uint8Array([1, 2, 3]));
  assert.equal(await ensureBuiltinModel(models, "brown"), dir);
  assert.ok(matchesCid(brown.cid, await Deno.readFile(join(dir, "model.onnx"))));
});

Deno.test("a weight seed is refused for the trained model (it has one set of weights)", async () => {
  await assert.rejects(
    ensureBuiltinModel(join(tmpTrained, "seeded"), "brown", 1),
    /one set of weights/,
  );
});

Deno.test("the trained model writes mostly letters and spaces, the random-weight one does not", async () => {
  const share = async (dir: string) => {
    const model = await TextModel.load(dir);
    try {
      let text = "";
      for await (
        const chunk of model.generate(model.tokenizer.encode("The "), {
          ...DEFAULT_GENERATION_PARAMS,
          temperature: 0.8,
          seed: 1,
          maxTokens: 100,
        })
      ) text += chunk.text;
      return { text, share: (text.match(/[a-z ]/g)?.length ?? 0) / Math.max(1, text.length) };
    } finally {
      await model.dispose();
    }
  };
  const trained = await share(await ensureBuiltinModel(join(tmpTrained, "models"), "brown"));
  const random = await share(await ensureBuiltinModel(join(tmpTrained, "models"), "tiny"));
  console.log(`brown: ${JSON.stringify(trained.text)}\ntiny:  ${JSON.stringify(random.text)}`);
  // Running English is ~95 % lower-case letters and spaces; random weights give far fewer.
  assert.ok(trained.share > 0.8, `${trained.share}`);
  assert.ok(trained.share > random.share + 0.2, `${trained.share} vs ${random.share}`);
});
