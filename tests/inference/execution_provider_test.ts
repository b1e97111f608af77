/**
 * Execution providers: a model asked for `webgpu` or `cuda` where it cannot start runs on CPU and
 * says why, and WebGPU sessions in worker mode.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { createSession, webgpuProviderBundled } from "../../inference/_session.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { collect, params } from "./_fixtures.ts";

// Execution providers: a model asked to run on `webgpu` (or `cuda`) where that provider cannot
// start runs on CPU, says so in its info with the reason, gives the CPU results, and `/v1/models`
// reports the fallback. On a machine with a GPU adapter the same test checks that no fallback is
// reported instead.

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

// The WebGPU provider in worker mode. onnxruntime-node has one WebGPU device per process, and
// sessions running on it from two threads at once crash the process (seen on an H200:
// "CommandEncoder is already finished", then SIGSEGV; `docs/MODELS.md`), so `poolSizing` gives a
// model on `webgpu` one worker and no validation lane. But each model has a pool of its own: a node
// on `--device webgpu` that serves a second model (a training round's model, which it registers
// beside its own, `node/node.ts`) put a second worker thread on the device, and the two models'
// jobs then ran on it at once. A pool asked for `webgpu` while another model's worker holds the
// device runs on CPU instead, and says why; the device is free again once that model is disposed.
//
// This machine has no WebGPU adapter: the workers are a stand-in
// (`_webgpu_worker.ts`) whose sessions asked for `webgpu` run on CPU and answer as
// running on `webgpu`, so a model's `executionProvider` says whether its worker was asked for
// the device.

const dirWebgpu = await Deno.makeTempDir({ prefix: "veriflow-review-s52-webgpu-" });

await buildGptModel({ size: "tiny", seed: 0, outDir: dirWebgpu });

Deno.test.afterAll(() => Deno.remove(dirWebgpu, { recursive: true }));

const WEBGPU_WORKERS: TextModelOptions = {
  worker: true,
  workerCount: 1,
  intraOpThreads: 1,
  executionProvider: "webgpu",
  workerUrl: new URL("./_webgpu_worker.ts", import.meta.url).href,
};

Deno.test("a second model asked for webgpu in worker mode, while another model's worker holds the process's WebGPU device, runs on cpu and says why; the device is free again once that model is disposed", async () => {
  const first = await TextModel.load(dirWebgpu, WEBGPU_WORKERS);
  let second: TextModel | undefined;
  try {
    assert.equal(first.info.executionProvider, "webgpu");
    second = await TextModel.load(dirWebgpu, WEBGPU_WORKERS);
    assert.equal(
      second.info.executionProvider,
      "cpu",
      "a second worker thread was put on the process's one WebGPU device",
    );
    assert.match(
      second.info.executionProviderFallback ?? "",
      /^webgpu unavailable, running on cpu: /,
    );
    assert.match(second.info.executionProviderFallback ?? "", /WebGPU device/);
    // Both serve, at once, the same tokens.
    const [a, b] = await Promise.all(
      [first, second].map((m) => collect(m.generate(PROMPT, params({ maxTokens: 6 })))),
    );
    assert.deepEqual(b.map((c) => c.tokenId), a.map((c) => c.tokenId));
  } finally {
    await second?.dispose();
    await first.dispose();
  }
  // The holder is gone: the next model gets the device.
  const third = await TextModel.load(dirWebgpu, WEBGPU_WORKERS);
  try {
    assert.equal(third.info.executionProvider, "webgpu");
    assert.equal(third.info.executionProviderFallback, undefined);
  } finally {
    await third.dispose();
  }
});
