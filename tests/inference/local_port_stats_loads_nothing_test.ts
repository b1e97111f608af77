/**
 * `LocalInferencePort.stats` over a `ModelRegistry` (review s78 F2): asking for stats, as every
 * `/metrics` scrape and dashboard snapshot does, must not load a registered model that no job
 * has named; it counts that model no slot until something loads it.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";

Deno.test("asking stats does not load a registered model that is not loaded", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "veriflow-port-stats-test-" });
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const system = new ActorSystem({ name: "port-stats-test" });
  try {
    const { dir } = await buildGptModel({ size: "tiny", outDir: tmp });
    const { cid } = await registry.register(dir);
    const inference = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: registry, concurrency: 2 }),
    });
    const port = new LocalInferencePort({ inference, models: registry });

    const before = await port.stats();
    assert.equal(registry.info(cid)?.loaded, false, "stats loaded the model");
    assert.equal(registry.health().length, 0);
    assert.equal(before.slots, 0, "a model not loaded has no seats yet");

    await registry.get(cid); // a job (or the node's start) loads it
    const after = await port.stats();
    assert.ok(after.slots > 0, "a loaded model's seats are counted");
  } finally {
    await system.shutdown();
    await registry.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
