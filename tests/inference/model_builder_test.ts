import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import {
  buildGptModel,
  GPT_MODEL_SIZES,
  gptModelBytes,
  resolveArchitecture,
} from "../../inference/model_builder.ts";
import { cidOf } from "../../protocols/cid.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-builder-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

Deno.test("the same size and seed build byte-identical models (same CID); another seed differs", () => {
  const arch = GPT_MODEL_SIZES.tiny;
  const a = gptModelBytes(arch, 0);
  assert.equal(cidOf(a), cidOf(gptModelBytes(arch, 0)));
  assert.notEqual(cidOf(a), cidOf(gptModelBytes(arch, 1)));
});

Deno.test("buildGptModel writes model.onnx, a GPT-2 style config.json and an HF tokenizer.json", async () => {
  const built = await buildGptModel({ size: "tiny", seed: 3, outDir: `${tmp}/tiny` });
  const config = JSON.parse(await Deno.readTextFile(`${tmp}/tiny/config.json`));
  assert.equal(config.model_type, "gpt2");
  assert.equal(config.n_layer, 2);
  assert.equal(config.n_head, 4);
  assert.equal(config.n_embd, 64);
  assert.equal(config.n_positions, 256);
  assert.equal(config.vocab_size, 260);
  assert.equal(config.eos_token_id, 256);
  assert.equal(config.bos_token_id, 256);
  const tokenizer = JSON.parse(await Deno.readTextFile(`${tmp}/tiny/tokenizer.json`));
  assert.equal(tokenizer.model.type, "BPE");
  assert.equal(tokenizer.added_tokens[0].content, "<|endoftext|>");
  const bytes = await Deno.readFile(`${tmp}/tiny/model.onnx`);
  assert.equal(built.onnxCid, cidOf(bytes));
  assert.equal(built.cid, textModelId(await readTextModelFiles(built.dir)), "the model's id");
  assert.equal(built.sizeBytes, bytes.byteLength);
});

Deno.test("layers, width and heads are configurable and the graph exposes the decoder I/O names", async () => {
  const arch = { numLayers: 3, hiddenSize: 48, numHeads: 6, contextLength: 32 };
  const fixed = await buildGptModel({ outDir: `${tmp}/custom`, ...arch, tiedEmbeddings: true });
  const concat = await buildGptModel({
    outDir: `${tmp}/custom-concat`,
    ...arch,
    tiedEmbeddings: true,
    kvCache: "concat",
  });
  assert.equal(
    JSON.parse(await Deno.readTextFile(`${fixed.dir}/config.json`)).veriflow.kv_cache,
    "fixed",
  );
  const layers = [0, 1, 2];
  const inputs = ["input_ids", "attention_mask", "position_ids"];
  for (
    const [built, cacheIn, cacheOut, slots] of [
      [fixed, "kv_cache", "kv_new", 4],
      [concat, "past_key_values", "present", undefined],
    ] as const
  ) {
    const session = await ort.InferenceSession.create(`${built.dir}/model.onnx`);
    try {
      assert.deepEqual(session.inputNames, [
        ...inputs,
        ...layers.flatMap((l) => [`${cacheIn}.${l}.key`, `${cacheIn}.${l}.value`]),
      ]);
      assert.deepEqual(session.outputNames, [
        "logits",
        ...layers.flatMap((l) => [`${cacheOut}.${l}.key`, `${cacheOut}.${l}.value`]),
      ]);
      const out = await session.run(feeds([1, 2, 3], [1, 1, 1], [0, 1, 2], 3, 6, 8, slots));
      assert.deepEqual(out.logits.dims, [1, 3, 260]);
      // The fixed graph gives back the new positions only; the concat one the whole cache.
      assert.deepEqual(out[`${cacheOut}.2.value`].dims, [1, 6, 3, 8]);
    } finally {
      await session.release();
    }
  }
});

for (const kvCache of ["fixed", "concat"] as const) {
  Deno.test(`attention_mask is honoured (${kvCache} cache): left padding with mask 0 leaves the real tokens' logits unchanged`, async () => {
    const dir = `${tmp}/mask-${kvCache}`;
    await buildGptModel({ size: "tiny", outDir: dir, kvCache });
    // The fixed graph also sees its cache's slots, all free here (mask 0).
    const slots = kvCache === "fixed" ? 16 : undefined;
    const session = await ort.InferenceSession.create(`${dir}/model.onnx`);
    try {
      const ids = [72, 105, 33];
      const plain = await session.run(feeds(ids, [1, 1, 1], [0, 1, 2], 2, 4, 16, slots));
      const padded = await session.run(
        feeds([257, 257, ...ids], [0, 0, 1, 1, 1], [0, 0, 0, 1, 2], 2, 4, 16, slots),
      );
      const a = plain.logits.data as Float32Array;
      const b = (padded.logits.data as Float32Array).subarray(2 * 260);
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
      assert.ok(max < 1e-4, `max diff ${max}`);
      // Unmasked padding does change them, so the check above can fail.
      const unmasked = await session.run(
        feeds([257, 257, ...ids], [1, 1, 1, 1, 1], [0, 0, 0, 1, 2], 2, 4, 16, slots),
      );
      const c = (unmasked.logits.data as Float32Array).subarray(2 * 260);
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - c[i]));
      assert.ok(diff > 1e-3);
    } finally {
      await session.release();
    }
  });
}

Deno.test("invalid architectures are rejected (width not a multiple of heads, zero layers)", () => {
  assert.throws(() => resolveArchitecture({ hiddenSize: 50, numHeads: 4 }), RangeError);
  assert.throws(() => resolveArchitecture({ numLayers: 0 }), RangeError);
  assert.deepEqual(resolveArchitecture({ size: "small" }), GPT_MODEL_SIZES.small);
});

/**
 * Feeds of one row with an empty cache: the concat convention's zero-length past, or (with
 * `slots`) a fixed cache of that many free slots, masked out ahead of `mask`.
 */
function feeds(
  ids: number[],
  mask: number[],
  positions: number[],
  layers: number,
  heads: number,
  headDim: number,
  slots?: number,
): Record<string, ort.Tensor> {
  const i64 = (v: number[]) =>
    new ort.Tensor("int64", BigInt64Array.from(v, BigInt), [1, v.length]);
  const f: Record<string, ort.Tensor> = {
    input_ids: i64(ids),
    attention_mask: i64(slots === undefined ? mask : [...new Array(slots).fill(0), ...mask]),
    position_ids: i64(positions),
  };
  for (let l = 0; l < layers; l++) {
    for (const kv of ["key", "value"]) {
      const name = slots === undefined ? `past_key_values.${l}.${kv}` : `kv_cache.${l}.${kv}`;
      f[name] = new ort.Tensor(
        "float32",
        new Float32Array(heads * (slots ?? 0) * headDim),
        [1, heads, slots ?? 0, headDim],
      );
    }
  }
  return f;
}
