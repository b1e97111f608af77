/**
 * Review s52 of the WebGPU provider in worker mode. onnxruntime-node has one WebGPU device per
 * process, and sessions running on it from two threads at once crash the process (seen on an
 * H200: "CommandEncoder is already finished", then SIGSEGV; `docs/MODELS.md`), so `poolSizing`
 * gives a model on `webgpu` one worker and no validation lane. But each model has a pool of its
 * own: a node on `--device webgpu` that serves a second model (a training round's model, which
 * it registers beside its own, `node/node.ts`) put a second worker thread on the device, and
 * the two models' jobs then ran on it at once. A pool asked for `webgpu` while another model's
 * worker holds the device runs on CPU instead, and says why; the device is free again once that
 * model is disposed.
 *
 * This machine has no WebGPU adapter: the workers are a stand-in
 * (`_review_s52_webgpu_worker.ts`) whose sessions asked for `webgpu` run on CPU and answer as
 * running on `webgpu`, so a model's `executionProvider` says whether its worker was asked for
 * the device.
 */
import assert from "node:assert/strict";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import { collect, params } from "./_fixtures.ts";

const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s52-webgpu-" });
await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
Deno.test.afterAll(() => Deno.remove(dir, { recursive: true }));

const WEBGPU_WORKERS: TextModelOptions = {
  worker: true,
  workerCount: 1,
  intraOpThreads: 1,
  executionProvider: "webgpu",
  workerUrl: new URL("./_review_s52_webgpu_worker.ts", import.meta.url).href,
};
const PROMPT = [72, 101, 108, 108, 111];

Deno.test("a second model asked for webgpu in worker mode, while another model's worker holds the process's WebGPU device, runs on cpu and says why; the device is free again once that model is disposed", async () => {
  const first = await TextModel.load(dir, WEBGPU_WORKERS);
  let second: TextModel | undefined;
  try {
    assert.equal(first.info.executionProvider, "webgpu");
    second = await TextModel.load(dir, WEBGPU_WORKERS);
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
  const third = await TextModel.load(dir, WEBGPU_WORKERS);
  try {
    assert.equal(third.info.executionProvider, "webgpu");
    assert.equal(third.info.executionProviderFallback, undefined);
  } finally {
    await third.dispose();
  }
});
