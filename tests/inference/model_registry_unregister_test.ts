/**
 * `ModelRegistry.unload` and `unregister` (review s78 F2): a model can be released without
 * stopping the node, its workers with it, and forgotten when it is no longer served.
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { ModelDisposedError, UnknownModelError } from "../../inference/errors.ts";
import { collect, params } from "./_fixtures.ts";

const tmp = await Deno.makeTempDir({ prefix: "veriflow-registry-unregister-test-" });
Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));
const built = await buildGptModel({ size: "tiny", outDir: tmp });

Deno.test("unregister stops a loaded model's workers and forgets it", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1, worker: true, workerCount: 1 });
  try {
    await registry.register(built.dir);
    const model = await registry.getText(built.cid);
    assert.ok(registry.health()[0].workers.length > 0);
    assert.equal(await registry.unregister(built.cid), true);
    assert.equal(registry.has(built.cid), false);
    assert.deepEqual(registry.list(), []);
    assert.deepEqual(registry.health(), []);
    await assert.rejects(registry.get(built.cid), UnknownModelError);
    // Its workers are gone: the model it handed out refuses work.
    await assert.rejects(
      async () => await collect(model.generate([1, 2], params({ maxTokens: 1 }))),
      ModelDisposedError,
    );
    assert.equal(await registry.unregister(built.cid), false, "a second time: nothing to forget");
  } finally {
    await registry.close();
  }
});

Deno.test("unload keeps a model registered, and the next get loads it afresh", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    await registry.register(built.dir);
    assert.equal(await registry.unload(built.cid), false, "not loaded: nothing to release");
    const first = await registry.get(built.cid);
    assert.equal(await registry.unload(built.cid), true);
    assert.equal(registry.info(built.cid)?.loaded, false);
    assert.deepEqual(registry.health(), []);
    const second = await registry.get(built.cid);
    assert.notEqual(second, first);
    assert.equal(registry.info(built.cid)?.loaded, true);
  } finally {
    await registry.close();
  }
});

Deno.test("an unload during a load leaves the model unloaded", async () => {
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  try {
    await registry.register(built.dir);
    const loading = registry.get(built.cid);
    assert.equal(await registry.unload(built.cid), true);
    await loading;
    assert.equal(registry.info(built.cid)?.loaded, false);
    assert.deepEqual(registry.health(), []);
  } finally {
    await registry.close();
  }
});
