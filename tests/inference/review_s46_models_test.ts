/**
 * Review s46: a model directory prepared by someone else. `config.json` sizes the KV cache and
 * cuts the logits into rows, and `checkDecoderGraph` holds it to the graph's declared shapes at
 * load; but a dimension the graph leaves to run time (a `Reshape` onnxruntime's shape inference
 * cannot see through) is only known once the graph has run. A config that lies about such a
 * dimension must fail the job with a clear error, never cut rows at the wrong place (tokens
 * sampled from a mix of two positions' logits, which a validator's teacher-forced pass cuts
 * differently) nor store a step's keys and values in the wrong cache slots.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { ModelLoadError } from "../../inference/errors.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { collect, params } from "./_fixtures.ts";

const { onnx } = onnxProto;
const tmp = await Deno.makeTempDir({ prefix: "veriflow-review-s46-models-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

const PROMPT = [...new TextEncoder().encode("Hello there")];

/**
 * A tiny built model whose outputs `opaque` (and every cache input) have only symbolic
 * dimensions: each such output goes through `Reshape(x, Max(Shape(x), Shape(x)))`, which
 * computes the same tensor but hides its shape from shape inference. `config.json` is edited by
 * `lie`.
 */
async function opaqueModel(
  name: string,
  opaque: (output: string) => boolean,
  lie: (config: Record<string, unknown>) => void,
): Promise<string> {
  const dir = join(tmp, name);
  await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
  const model = onnx.ModelProto.decode(await Deno.readFile(join(dir, "model.onnx")));
  const graph = model.graph!;
  for (const output of graph.output!) {
    if (!opaque(output.name!)) continue;
    const name = output.name!;
    graph.node!.find((n) => n.output!.includes(name))!.output = [`${name}.raw`];
    graph.node!.push(
      { opType: "Shape", input: [`${name}.raw`], output: [`${name}.shape`] },
      { opType: "Max", input: [`${name}.shape`, `${name}.shape`], output: [`${name}.hidden`] },
      { opType: "Reshape", input: [`${name}.raw`, `${name}.hidden`], output: [name] },
    );
  }
  for (const value of [...graph.input!, ...graph.output!]) {
    if (!value.name!.startsWith("kv_") && !opaque(value.name!)) continue;
    const shape = value.type!.tensorType!.shape!;
    shape.dim = shape.dim!.map((_, i) => ({ dimParam: `${value.name}.${i}` }));
  }
  await Deno.writeFile(join(dir, "model.onnx"), onnx.ModelProto.encode(model).finish());
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  lie(config);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  return dir;
}

/** The greedy token of each output position, from a teacher-forced pass (a validator's view). */
function forwardGreedy(logits: Float32Array, vocab: number, from: number, count: number) {
  const tokens: number[] = [];
  for (let p = from; p < from + count; p++) {
    const row = logits.subarray(p * vocab, (p + 1) * vocab);
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    tokens.push(best);
  }
  return tokens;
}

const isContradiction = (what: RegExp) => (e: unknown) =>
  e instanceof ModelLoadError && what.test(e.message);

Deno.test("a graph whose logits rows are sized at run time serves the tokens a teacher-forced pass agrees with when config.json is honest", async () => {
  const dir = await opaqueModel(
    "honest",
    (o) => o === "logits" || o.startsWith("kv_new."),
    () => {},
  );
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    const chunks = await collect(model.generate(PROMPT, params({ temperature: 0, maxTokens: 6 })));
    const tokens = chunks.map((c) => c.tokenId);
    const logits = await model.forward([...PROMPT, ...tokens]);
    assert.deepEqual(
      tokens,
      forwardGreedy(logits, model.info.vocabSize, PROMPT.length - 1, tokens.length),
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("a config.json that lies about vocab_size to a graph sizing its logits at run time fails generation and forward passes, serving no token", async () => {
  const dir = await opaqueModel("vocab", (o) => o === "logits", (c) => {
    c.vocab_size = (c.vocab_size as number) + 6;
  });
  for (const worker of [false, true]) {
    const model = await TextModel.load(dir, { intraOpThreads: 1, worker, workerCount: 1 });
    try {
      const served: number[] = [];
      await assert.rejects(async () => {
        const stream = model.generate(PROMPT, params({ temperature: 0, maxTokens: 6 }));
        for await (const chunk of stream) served.push(chunk.tokenId);
      }, isContradiction(/logits/));
      assert.deepEqual(served, [], `worker: ${worker}`);
      await assert.rejects(model.forward(PROMPT), isContradiction(/logits/));
    } finally {
      await model.dispose();
    }
  }
});

Deno.test("a config.json that lies about num_key_value_heads to a graph sizing its cache at run time fails generation instead of caching one head for all", async () => {
  const dir = await opaqueModel("heads", (o) => o.startsWith("kv_new."), (c) => {
    c.num_key_value_heads = 1;
  });
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    const served: number[] = [];
    await assert.rejects(async () => {
      const stream = model.generate(PROMPT, params({ temperature: 0, maxTokens: 6 }));
      for await (const chunk of stream) served.push(chunk.tokenId);
    }, isContradiction(/kv_new\.0\.key/));
    assert.deepEqual(served, []);
  } finally {
    await model.dispose();
  }
});
