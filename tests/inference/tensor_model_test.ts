import assert from "node:assert/strict";
import { buildMlpModel } from "../../inference/model_builder.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import { InvalidTensorInputError } from "../../inference/errors.ts";
import type { TensorData } from "../../protocols/job.ts";

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
