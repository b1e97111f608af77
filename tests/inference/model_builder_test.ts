/**
 * The model builder (`inference/model_builder.ts`), `cli.ts build-model`, and the tensor model it
 * builds for tests (`inference/tensor_model.ts`).
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import {
  buildGptModel,
  buildMlpModel,
  GPT_MODEL_SIZES,
  gptModelBytes,
  resolveArchitecture,
} from "../../inference/model_builder.ts";
import { cidOf, matchesCid } from "../../protocols/cid.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { runBuildModel } from "../../cli/build_model_command.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { InvalidTensorInputError } from "../../inference/errors.ts";
import type { TensorData } from "../../protocols/job.ts";

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

Deno.test("build-model writes a loadable model directory and prints its CID; bad arguments and trained sizes exit 2", async () => {
  const out = await Deno.makeTempDir();
  const lines: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  const errors: string[] = [];
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    assert.equal(await runBuildModel(["--size", "tiny", "--seed", "2", "--out", out]), 0);
    const { cid } = JSON.parse(lines[0]);
    assert.equal(cid, textModelId(await readTextModelFiles(out)), "the model's id");
    assert.equal(await runBuildModel(["--kind", "mlp", "--out", `${out}/mlp`]), 0);
    // A tensor model's id is its model.onnx's CID.
    assert.ok(matchesCid(JSON.parse(lines[1]).cid, await Deno.readFile(`${out}/mlp/model.onnx`)));
    assert.equal(await runBuildModel(["--size", "huge", "--out", out]), 2);
    // A trained size is installed from its weights, never built from a seed under its name.
    assert.equal(await runBuildModel(["--size", "brown", "--out", `${out}/brown`]), 2);
    assert.match(errors.at(-1)!, /brown is a trained model.*cli\.ts train/);
    await assert.rejects(Deno.stat(`${out}/brown`));
    assert.equal(await runBuildModel(["--seed", "x", "--out", out]), 2);
    assert.equal(await runBuildModel([]), 2);
    assert.equal(await runBuildModel(["--bogus"]), 2);
  } finally {
    console.log = log;
    console.error = error;
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("build-model into a directory it cannot create exits 1 with one line naming --out", async () => {
  const dir = await Deno.makeTempDir();
  const errors: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const file = `${dir}/a-file`;
    await Deno.writeTextFile(file, "");
    assert.equal(await runBuildModel(["--out", `${file}/model`]), 1);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /^error: cannot write the model to .*a-file\/model: .*; give --out a /);
    assert.doesNotMatch(errors[0], /\n/);
  } finally {
    console.error = error;
    await Deno.remove(dir, { recursive: true });
  }
});

const dir = await Deno.makeTempDir({ prefix: "veriflow-tensor-test-" });

const built = await buildMlpModel({ outDir: dir, inputSize: 4, hiddenSize: 8, outputSize: 3 });

const model = await TensorModel.load(dir, { intraOpThreads: 1 });

Deno.test.afterAll(async () => {
  await model.dispose();
  await Deno.remove(dir, { recursive: true });
});

function f32(dims: number[], values: number[]): TensorData {
  return { type: "float32", dims, data: new Uint8Array(new Float32Array(values).buffer) };
}

Deno.test("a one-shot MLP runs: tensor bytes in, tensor bytes out, deterministic", async () => {
  assert.equal(model.info.kind, "tensor");
  assert.equal(model.info.cid, built.cid);
  assert.deepEqual(model.info.inputs, [{
    name: "input",
    type: "float32",
    shape: ["batch_size", 4],
  }]);
  const input = f32([2, 4], [1, 2, 3, 4, -1, 0, 0.5, 2]);
  const a = await model.run({ input });
  const b = await model.run({ input });
  assert.deepEqual(a.output.dims, [2, 3]);
  assert.equal(a.output.type, "float32");
  assert.deepEqual(a.output.data, b.output.data);
  const values = new Float32Array(a.output.data.buffer);
  assert.ok(values.every(Number.isFinite));
  assert.ok(new Set(values).size > 1);
});

Deno.test("an unaligned input byte view is accepted (copied into an aligned buffer)", async () => {
  const base = new Uint8Array(1 + 16);
  base.set(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), 1);
  const out = await model.run({ input: { type: "float32", dims: [1, 4], data: base.subarray(1) } });
  const ref = await model.run({ input: f32([1, 4], [1, 2, 3, 4]) });
  assert.deepEqual(out.output.data, ref.output.data);
});

Deno.test("bad tensor inputs fail with invalid_tensor_input: missing, unknown, wrong type, wrong size, wrong shape", async () => {
  const bad: Record<string, TensorData>[] = [
    {},
    { input: f32([1, 4], [1, 2, 3, 4]), extra: f32([1], [1]) },
    { input: { type: "int32", dims: [1, 4], data: new Uint8Array(16) } },
    { input: { type: "float32", dims: [1, 4], data: new Uint8Array(12) } },
    { input: f32([1, 5], [1, 2, 3, 4, 5]) },
  ];
  for (const inputs of bad) {
    await assert.rejects(
      model.run(inputs),
      (e: unknown) => e instanceof InvalidTensorInputError && e.code === "invalid_tensor_input",
    );
  }
});
