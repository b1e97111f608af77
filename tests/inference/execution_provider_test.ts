/**
 * Execution providers: a model asked to run on `webgpu` (or `cuda`) where that provider cannot
 * start runs on CPU, says so in its info with the reason, gives the CPU results, and `/v1/models`
 * reports the fallback. On a machine with a GPU adapter the same test checks that no fallback
 * is reported instead.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { createSession, webgpuProviderBundled } from "../../inference/_session.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TextModel } from "../../inference/text_model.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { collect, params } from "./_fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-provider-test-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
const PROMPT = [72, 101, 108, 108, 111];

Deno.test({
  name: "webgpu is bundled with this onnxruntime-node build (linux x64)",
  ignore: Deno.build.os !== "linux" || Deno.build.arch !== "x86_64",
}, () => {
  assert.equal(webgpuProviderBundled(), true);
});

Deno.test("a model asked for webgpu runs on the provider that starts, and says why when it is cpu", async () => {
  const cpu = await TextModel.load(dir, { intraOpThreads: 1 });
  const asked = await TextModel.load(dir, { intraOpThreads: 1, executionProvider: "webgpu" });
  const inWorker = await TextModel.load(dir, {
    intraOpThreads: 1,
    executionProvider: "webgpu",
    worker: true,
    workerCount: 1,
  });
  try {
    for (const model of [asked, inWorker]) {
      if (model.info.executionProvider === "webgpu") {
        assert.equal(model.info.executionProviderFallback, undefined);
        continue;
      }
      assert.equal(model.info.executionProvider, "cpu");
      assert.match(
        model.info.executionProviderFallback ?? "",
        /^webgpu unavailable, running on cpu: ./,
      );
      const expected = await collect(cpu.generate(PROMPT, params({ maxTokens: 12 })));
      const actual = await collect(model.generate(PROMPT, params({ maxTokens: 12 })));
      assert.deepEqual(actual.map((c) => c.tokenId), expected.map((c) => c.tokenId));
    }
    assert.equal(cpu.info.executionProviderFallback, undefined, "nothing to report on cpu");
  } finally {
    await cpu.dispose();
    await asked.dispose();
    await inWorker.dispose();
  }
});

Deno.test("a provider name that does not exist is refused", async () => {
  await assert.rejects(
    createSession(await Deno.readFile(`${dir}/model.onnx`), {
      executionProvider: "tpu" as "cpu",
    }),
    RangeError,
  );
});

Deno.test("/v1/models reports the provider in use and the reason for a fallback", async () => {
  const models = new ModelRegistry({ executionProvider: "webgpu", intraOpThreads: 1 });
  const { cid } = await models.register(dir);
  const model = await models.getText(cid);
  const system = new ActorSystem({ name: "provider-test" });
  try {
    const inference = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models }),
    });
    const app = createApp({ inference: new LocalInferencePort({ inference, models }) });
    const abort = new AbortController();
    const server = serve({ app, port: 0, signal: abort.signal });
    const listed = await (await fetch(`${server.url}/v1/models`)).json();
    abort.abort();
    await server.finished;
    const entry = listed.data.find((m: { id: string }) => m.id === cid);
    assert.equal(entry.veriflow.execution_provider, model.info.executionProvider);
    assert.equal(
      entry.veriflow.execution_provider_fallback,
      model.info.executionProviderFallback,
    );
    if (model.info.executionProvider === "cpu") {
      assert.match(entry.veriflow.execution_provider_fallback, /webgpu unavailable/);
    }
  } finally {
    await system.shutdown();
    await models.close();
  }
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
