/**
 * `ensureBuiltinModel` serves a built-in model directory only when every file in it is what the
 * (deterministic) builder wrote: not just `model.onnx`, whose CID names the directory, but the
 * `config.json` and tokenizer files next to it, which nothing else checks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { BUILDER_VERSION, buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";

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

Deno.test("review s49: what a build killed mid-way left (a staging directory, an alias's .tmp) is removed once it is an hour old; a fresh one, maybe another process's build under way, is left alone", async () => {
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
