/**
 * `TextModel.load` against the `config.json` next to the graph: the config sizes the KV cache and
 * cuts the logits rows, and nothing but this check ties it to `model.onnx` (whose CID names the
 * model), so a config that is not an object, gives dimensions that are not positive integers, or
 * contradicts the graph's declared shapes is refused at load, typed, instead of loading under the
 * model's CID and sampling from the wrong row or failing mid-generation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGptModel, type KvCacheConvention } from "../../inference/model_builder.ts";
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import { ModelLoadError } from "../../inference/errors.ts";
import { collect, params } from "./_fixtures.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-model-config-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** The built tiny model of each cache convention, built once; each case copies it. */
const built = new Map<KvCacheConvention, Promise<string>>();
function tinyDir(kvCache: KvCacheConvention): Promise<string> {
  let dir = built.get(kvCache);
  if (!dir) {
    const outDir = join(tmp, `tiny-${kvCache}`);
    dir = buildGptModel({ size: "tiny", seed: 0, outDir, kvCache }).then(() => outDir);
    built.set(kvCache, dir);
  }
  return dir;
}

let cases = 0;
/** A copy of the tiny model whose `config.json` is `edit` applied to the builder's. */
async function withConfig(
  edit: (config: Record<string, unknown>) => unknown,
  kvCache: KvCacheConvention = "fixed",
): Promise<string> {
  const source = await tinyDir(kvCache);
  const dir = join(tmp, `case-${++cases}`);
  await Deno.mkdir(dir);
  for (const f of ["model.onnx", "tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(join(source, f), join(dir, f));
  }
  const config = JSON.parse(await Deno.readTextFile(join(source, "config.json")));
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(edit(config)));
  return dir;
}

async function assertRefused(dir: string, message: RegExp, options?: TextModelOptions) {
  const error = await assert.rejects(
    () => TextModel.load(dir, { intraOpThreads: 1, ...options }),
    (e: unknown) => {
      assert.ok(e instanceof ModelLoadError, `${(e as Error)?.constructor?.name}: ${e}`);
      assert.equal(e.code, "model_load_failed");
      assert.match(e.message, message);
      return true;
    },
  );
  return error;
}

for (
  const [label, patch, message, kvCache] of [
    ["a vocab_size smaller than the logits rows", { vocab_size: 100 }, /"logits".*260.*100/],
    ["a vocab_size larger than the logits rows", { vocab_size: 1000 }, /"logits".*260.*1000/],
    ["n_head against the cache's heads", { n_head: 2 }, /"kv_cache\.0\.key" has 4 heads/],
    ["head_dim against the cache's width", { head_dim: 8 }, /"kv_cache\.0\.key".*width 16/],
    [
      "num_key_value_heads against the cache's heads",
      { num_key_value_heads: 2, head_dim: 16 },
      /has 4 heads, config\.json says 2/,
    ],
    [
      "n_head against a Hugging Face export's past_key_values",
      { n_head: 2 },
      /"past_key_values\.0\.key" has 4 heads/,
      "concat",
    ],
  ] as const
) {
  Deno.test(`config.json with ${label} is refused at load with model_load_failed`, async () => {
    const dir = await withConfig((c) => ({ ...c, ...patch }), kvCache);
    await assertRefused(dir, message);
  });
}

for (
  const [label, patch, message] of [
    ["a fractional layer count", { n_layer: 2.5 }, /n_layer must be a positive integer, got 2.5/],
    ["a zero vocabulary", { vocab_size: 0 }, /vocab_size must be a positive integer, got 0/],
    ["a negative head width", { head_dim: -16 }, /head_dim must be a positive integer/],
    ["a context too large to count", { n_positions: 1e300 }, /n_positions must be a positive/],
    ["a width that does not split into its heads", { n_head: 3 }, /not a multiple of 3 heads/],
  ] as const
) {
  Deno.test(`config.json with ${label} is refused at load with model_load_failed`, async () => {
    const dir = await withConfig((c) => ({ ...c, ...patch }));
    await assertRefused(dir, message);
  });
}

for (const [label, value] of [["null", null], ["an array", [1, 2]], ["a number", 7]] as const) {
  Deno.test(`config.json that is ${label}, not an object, is refused at load with model_load_failed`, async () => {
    const dir = await withConfig(() => value);
    await assertRefused(dir, /config\.json in .* is not a JSON object/);
  });
}

Deno.test("a config.json contradicting the graph is refused in worker mode too (the workers' metadata is checked)", async () => {
  const dir = await withConfig((c) => ({ ...c, vocab_size: 100 }));
  await assertRefused(dir, /"logits".*260.*100/, { worker: true, workerCount: 1 });
});

Deno.test("a config.json that agrees with the graph through other spellings (head_dim, num_key_value_heads, text_config) loads and generates", async () => {
  const dir = await withConfig((c) => {
    const { n_layer: _layers, vocab_size: _vocab, ...rest } = c;
    return {
      ...rest,
      head_dim: 16,
      num_key_value_heads: 4,
      veriflow: null, // names are read only when they are strings
      text_config: { num_hidden_layers: 2, vocab_size: 260 },
    };
  });
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    assert.equal(model.info.headDim, 16);
    assert.equal(model.info.numKeyValueHeads, 4);
    assert.equal(model.info.name, dir.split("/").pop());
    const chunks = await collect(model.generate([72, 105], params({ maxTokens: 3 })));
    assert.equal(chunks.length, 3);
  } finally {
    await model.dispose();
  }
});
