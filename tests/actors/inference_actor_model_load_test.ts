/**
 * A model that cannot be loaded refuses the jobs asking for it, whatever the error its source
 * raises: a bad model file is the operator's input, not a bug of the InferenceActor, so it must
 * not crash the actor — whose stop cancels every running job, on every model.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceMessage,
  type ModelSource,
  type OneShotModel,
  submitJob,
} from "../../actors/inference_actor.ts";
import { ModelLoadError } from "../../inference/errors.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

/** A source that serves `models` and fails every `get` of `broken` with `error`. */
class BrokenSource implements ModelSource {
  #models: StaticModels;
  #broken: string;
  #error: unknown;
  constructor(models: GenerativeModel[], broken: string, error: unknown) {
    this.#models = new StaticModels(models);
    this.#broken = broken;
    this.#error = error;
  }
  get(cid: string): Promise<GenerativeModel | OneShotModel | undefined> {
    return cid === this.#broken ? Promise.reject(this.#error) : this.#models.get(cid);
  }
}

let nonce = 0;
function textJob(model: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `n${++nonce}` };
}

const BROKEN = "bafkbrokenmodel";

for (
  const [label, thrown] of [
    ["a TypeError (a config.json of null read unguarded)", new TypeError("null has no n_layer")],
    ["a thrown non-Error value", "bad model"],
  ] as const
) {
  Deno.test(`InferenceActor refuses a job whose model fails to load with ${label} as model_load_failed, and a running job on another model goes on`, async () => {
    const model = new ScriptedModel({ gated: true });
    const system = new ActorSystem({ name: "inference-model-load-test" });
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new BrokenSource([model], BROKEN, thrown) }),
    });
    try {
      const running = await submitJob(ref, textJob(model.info.cid, 3));
      const reader = running.tokens.getReader();
      model.release(1);
      assertEquals((await reader.read()).value?.text, "a");

      let refusal: unknown;
      await submitJob(ref, textJob(BROKEN, 3)).catch((e) => refusal = e);
      assert(refusal instanceof ModelLoadError, `refused with ${refusal}`);
      assertEquals(refusal.code, "model_load_failed");
      assertEquals(refusal.cause, thrown);
      assert(refusal.message.includes(BROKEN), refusal.message);

      // The actor is still there: the running job goes on to its end, and a new one runs.
      model.release(2);
      assertEquals((await reader.read()).value?.text, "b");
      assertEquals((await reader.read()).value?.text, "c");
      assert((await reader.read()).done);
      assertEquals((await running.done).finishReason, "length");
      model.release(1);
      const next = await submitJob(ref, textJob(model.info.cid, 1));
      for await (const _ of next.tokens); // drain
      assertEquals((await next.done).finishReason, "length");
    } finally {
      model.release(1e6);
      await system.shutdown();
    }
  });
}

Deno.test("InferenceActor over a ModelRegistry refuses a job for a model whose config.json is null with model_load_failed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-null-config-" });
  const registry = new ModelRegistry({ intraOpThreads: 1 });
  const system = new ActorSystem({ name: "inference-null-config-test" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    await Deno.writeTextFile(join(dir, "config.json"), "null");
    const { cid } = await registry.register(dir);
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: registry }),
    });
    let refusal: unknown;
    await submitJob(ref, textJob(cid, 3)).catch((e) => refusal = e);
    assert(refusal instanceof ModelLoadError, `refused with ${refusal}`);
    assertEquals(refusal.code, "model_load_failed");
    // Refused, not crashed: the actor still answers.
    assertEquals((await ref.ask<{ activeJobs: number }>({ type: "stats" })).activeJobs, 0);
  } finally {
    await system.shutdown();
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
