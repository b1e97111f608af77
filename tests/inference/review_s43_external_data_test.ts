/**
 * Review s43: a model's id names the bytes of its files (`inference/model_identity.ts`), but an
 * ONNX graph may keep a tensor's data in another file ("external data"). A model is handed to
 * onnxruntime as bytes, not as a path, so such data is read from the process's working directory
 * when the session is created (the graph optimizer refuses it at the default level, not with
 * `graphOptimizationLevel: "disabled"`): two nodes, or two loads, run different weights under one
 * id. The loaders refuse a graph with external data.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { ModelLoadError } from "../../inference/errors.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { externalDataTensor } from "../../inference/_onnx_graph.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { TextModel } from "../../inference/text_model.ts";

const { onnx } = onnxProto;
const tmp = await Deno.makeTempDir({ prefix: "veriflow-review-s43-external-data-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

const f32 = (...values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

/** `y = x + w`, w (float32[2]) stored in the file `location`, not in the model. */
function externalAddModel(location: string): Uint8Array {
  const vector = { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } };
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "external",
      node: [{ opType: "Add", input: ["x", "w"], output: ["y"] }],
      initializer: [{
        name: "w",
        dims: [2],
        dataType: 1,
        dataLocation: EXTERNAL,
        externalData: [{ key: "location", value: location }],
      }],
      input: [{ name: "x", type: vector }],
      output: [{ name: "y", type: vector }],
    },
  })).finish();
}

/**
 * The tests below write each external file where onnxruntime would look for it only from the
 * working directory `tmp`, and do not change into it: the working directory is the whole test
 * process's, and under `--parallel` every test file beside this one saw it (a child process one
 * of them spawned then kept a directory removed after). The refusal names the tensor, which a
 * load that got as far as onnxruntime (finding the file or not) never does: it is what shows the
 * loaders refuse before reading anything.
 */
Deno.test("a tensor model whose weights are in an external file is refused, not run under the id of its model.onnx", async () => {
  const dir = join(tmp, "tensor");
  await Deno.mkdir(dir);
  await Deno.writeFile(join(dir, "model.onnx"), externalAddModel("weights.bin"));
  await Deno.writeFile(join(tmp, "weights.bin"), f32(10, 20));
  await assert.rejects(
    TensorModel.load(dir, { graphOptimizationLevel: "disabled", intraOpThreads: 1 }),
    (e) => e instanceof ModelLoadError && /tensor w keeps its data in another file/.test(e.message),
  );
  const registry = new ModelRegistry({ graphOptimizationLevel: "disabled", intraOpThreads: 1 });
  try {
    const { cid } = await registry.register(dir);
    await assert.rejects(registry.get(cid), /keeps its data in another file/);
  } finally {
    await registry.close();
  }
});

Deno.test("a text model with a tensor in an external file is refused", async () => {
  const built = await buildGptModel({ size: "tiny", seed: 46, outDir: join(tmp, "text") });
  const path = join(built.dir, "model.onnx");
  const model = onnx.ModelProto.decode(await Deno.readFile(path));
  const bias = model.graph!.initializer!.find((t) => t.name === "lm_head.bias")!;
  await Deno.writeFile(join(tmp, "lm_head.bias.bin"), bias.rawData!);
  bias.rawData = null;
  bias.dataLocation = EXTERNAL;
  bias.externalData = [{ key: "location", value: "lm_head.bias.bin" }];
  await Deno.writeFile(path, onnx.ModelProto.encode(model).finish());
  await assert.rejects(
    TextModel.load(built.dir, { graphOptimizationLevel: "disabled", intraOpThreads: 1 }),
    (e) => e instanceof ModelLoadError && /lm_head\.bias keeps its data/.test(e.message),
  );
});

Deno.test("external data is found wherever a tensor may be: a Constant's value in a subgraph, a sparse initializer", async () => {
  const built = await buildGptModel({ size: "tiny", seed: 47, outDir: join(tmp, "clean") });
  assert.equal(externalDataTensor(await Deno.readFile(join(built.dir, "model.onnx"))), undefined);
  const external = {
    name: "c",
    dims: [1],
    dataType: 1,
    dataLocation: EXTERNAL,
    externalData: [{ key: "location", value: "c.bin" }],
  };
  const constant = {
    opType: "Constant",
    output: ["c"],
    attribute: [{ name: "value", t: external }],
  };
  const inSubgraph = onnx.ModelProto.encode({
    graph: {
      node: [{ opType: "If", attribute: [{ name: "then_branch", g: { node: [constant] } }] }],
    },
  }).finish();
  assert.equal(externalDataTensor(inSubgraph), "c");
  const sparse = onnx.ModelProto.encode({
    graph: { sparseInitializer: [{ values: { ...external, name: "s" }, dims: [4] }] },
  }).finish();
  assert.equal(externalDataTensor(sparse), "s");
});
