/**
 * Whatever makes a model fail to load reaches the registry's callers typed, as
 * `model_load_failed`: the InferenceActor and the validators then refuse what needed the model
 * instead of crashing on an untyped error from a file (or an option) an operator supplied.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelLoadError } from "../../inference/errors.ts";
import { buildGptModel, buildMlpModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TextModel } from "../../inference/text_model.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-registry-load-failure-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

function isLoadFailure(e: unknown): boolean {
  assert.ok(e instanceof ModelLoadError, `${(e as Error)?.constructor?.name}: ${e}`);
  assert.equal(e.code, "model_load_failed");
  return true;
}

Deno.test("TextModel.load wraps an untyped failure while loading (a RangeError from the session options) as model_load_failed, with the cause", async () => {
  const dir = join(tmp, "text");
  await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
  const error = await TextModel.load(dir, { intraOpThreads: -1 }).catch((e) => e);
  isLoadFailure(error);
  assert.ok(error.cause instanceof RangeError);
});

Deno.test("ModelRegistry.get reports any load failure as model_load_failed, a tensor model's untyped one included; the failure answers for failedLoadRetryMs, then the next get tries again", async () => {
  const dir = join(tmp, "mlp");
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
