import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { argmax } from "../../inference/sampler.ts";
import {
  ContextLengthError,
  EmptyPromptError,
  InvalidGenerationParamsError,
  InvalidTokenError,
  ModelLoadError,
} from "../../inference/errors.ts";
import { TextModel } from "../../inference/text_model.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { fingerprintDistance, fingerprintOf } from "../../proof/fingerprint.ts";

const { model, dir, cleanup } = await tinyModel();
const V = model.info.vocabSize;
/** Float32 logits of the cached and the full pass differ only by summation order. */
const LOGIT_TOLERANCE = 1e-4;
/**
 * Fingerprints of rows that differ by < LOGIT_TOLERANCE per logit: `logProb` moves by at most
 * 2× that, and the projection (Σ ±Δᵢ / √V) by at most √V× that (≈ 1.6e-3 for V = 260) — far
 * below the 0.1-nat proof tolerance, and far above what a wrong cache would leave.
 */
const FINGERPRINT_TOLERANCE = 2e-3;

const PROMPTS = ["Hello", "The quick brown fox", "héllo 世界 🚀", "a"];

Deno.test.afterAll(cleanup);

Deno.test("model info reports the built architecture, the CPU provider and the id of its files", async () => {
  assert.deepEqual(model.info.kind, "text");
  assert.deepEqual(model.info.vocabSize, 260);
  assert.deepEqual(model.info.numLayers, 2);
  assert.deepEqual(model.info.hiddenSize, 64);
  assert.deepEqual(model.info.contextLength, 256);
  assert.deepEqual(model.info.executionProvider, "cpu");
  assert.deepEqual(model.info.eosTokenId, 256);
  assert.equal(model.info.cid, textModelId(await readTextModelFiles(dir)));
});

Deno.test("greedy KV-cache generation equals argmax of a teacher-forced forward pass, and each chunk's fingerprint is that row's, position by position", async () => {
  for (const prompt of PROMPTS) {
    const promptIds = model.tokenizer.encode(prompt);
    const chunks = await collect(model.generate(promptIds, params({ maxTokens: 24 })));
    assert.deepEqual(chunks.length, 24);
    const all = [...promptIds, ...chunks.map((c) => c.tokenId)];
    const full = await model.forward(all);
    let maxDistance = 0;
    chunks.forEach((chunk, t) => {
      const row = full.subarray((promptIds.length + t - 1) * V, (promptIds.length + t) * V);
      assert.deepEqual(argmax(row), chunk.tokenId, `prompt ${prompt}, token ${t}`);
      assert.equal(chunk.vocabSize, V);
      assert.equal(chunk.logits, undefined, "generate drops the logits row");
      const distance = fingerprintDistance(chunk.fingerprint, fingerprintOf(row, chunk.tokenId));
      maxDistance = Math.max(maxDistance, distance);
    });
    assert(maxDistance < FINGERPRINT_TOLERANCE, `max fingerprint Δ ${maxDistance} for ${prompt}`);
  }
});

Deno.test("forward returns one logits row per token and rows are causal (later tokens do not change earlier rows)", async () => {
  const ids = model.tokenizer.encode("causal check");
  const short = await model.forward(ids.slice(0, 5));
  const long = await model.forward(ids);
  assert.deepEqual(long.length, ids.length * V);
  for (let i = 0; i < 5 * V; i++) assert(Math.abs(short[i] - long[i]) < LOGIT_TOLERANCE);
});

Deno.test("generated text varies instead of repeating one byte", async () => {
  const chunks = await collect(
    model.generate(model.tokenizer.encode("Hello"), params({ maxTokens: 64 })),
  );
  const distinct = new Set(chunks.map((c) => c.tokenId)).size;
  assert(distinct >= 10, `only ${distinct} distinct tokens`);
});

Deno.test("the last chunk carries finishReason length at maxTokens and maxTokens 0 yields nothing", async () => {
  const chunks = await collect(model.generate([72], params({ maxTokens: 3 })));
  assert.deepEqual(chunks.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(chunks.map((c) => c.finishReason), [undefined, undefined, "length"]);
  assert.deepEqual(await collect(model.generate([72], params({ maxTokens: 0 }))), []);
});

Deno.test("typed errors: empty prompt, out-of-vocabulary id, bad params, context overflow", async () => {
  assertThrowsCode(() => model.generate([], params()), EmptyPromptError, "empty_prompt");
  assertThrowsCode(() => model.generate([V], params()), InvalidTokenError, "invalid_token");
  assertThrowsCode(
    () => model.generate([1], params({ temperature: -1 })),
    InvalidGenerationParamsError,
    "invalid_generation_params",
  );
  assertThrowsCode(
    () => model.generate([1], params({ topP: 0 })),
    InvalidGenerationParamsError,
    "invalid_generation_params",
  );
  const full = new Array(model.info.contextLength).fill(97);
  assertThrowsCode(
    () => model.generate(full, params()),
    ContextLengthError,
    "context_length_exceeded",
  );
  let caught: unknown;
  await model.forward([...full, 97]).catch((e) => (caught = e));
  assert(caught instanceof ContextLengthError);
  assert.deepEqual((caught as ContextLengthError).code, "context_length_exceeded");
});

Deno.test("generation stops with finishReason length when the context window fills", async () => {
  const n = model.info.contextLength;
  const prompt = new Array(n - 3).fill(97);
  const chunks = await collect(model.generate(prompt, params({ maxTokens: 50 })));
  assert.deepEqual(chunks.length, 3);
  assert.deepEqual(chunks[2].finishReason, "length");
});

Deno.test("loading a directory without model files fails with model_load_failed", async () => {
  const empty = await Deno.makeTempDir();
  try {
    let caught: unknown;
    await TextModel.load(empty).catch((e) => (caught = e));
    assert(caught instanceof ModelLoadError);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("requesting CUDA where it is unavailable falls back to CPU and says so", async () => {
  const m = await TextModel.load(dir, { executionProvider: "cuda", intraOpThreads: 1 });
  try {
    // On a machine with a working CUDA provider this reports "cuda"; either way it runs.
    assert(["cpu", "cuda"].includes(m.info.executionProvider));
    assert.deepEqual((await m.forward([1, 2, 3])).length, 3 * V);
  } finally {
    await m.dispose();
  }
});

function assertThrowsCode(
  fn: () => unknown,
  type: new (...a: never[]) => Error,
  code: string,
): void {
  assert.throws(fn, (e: unknown) => e instanceof type && (e as { code?: string }).code === code);
}

Deno.test("generate with topLogprobs lists each row's k most likely tokens, the greedy token first with its logProb, named by decoding each id; tokens and fingerprints are those of a generation without", async () => {
  const K = 5;
  for (const prompt of PROMPTS) {
    const promptIds = model.tokenizer.encode(prompt);
    for (const p of [params({ maxTokens: 16 }), params({ maxTokens: 16, temperature: 0.8 })]) {
      const plain = await collect(model.generate(promptIds, p));
      const withTop = await collect(model.generate(promptIds, p, { topLogprobs: K }));
      assert.deepEqual(withTop.map(({ topLogprobs: _, ...rest }) => rest), plain);
      assert(plain.every((chunk) => chunk.topLogprobs === undefined), "none unless asked");
      for (const chunk of withTop) {
        const top = chunk.topLogprobs!;
        assert.equal(top.length, K);
        top.forEach((entry, j) => {
          assert(entry.logprob <= 0 && (j === 0 || entry.logprob <= top[j - 1].logprob));
          assert.equal(entry.text, model.tokenizer.decode([entry.tokenId]));
        });
        if (p.temperature === 0) {
          assert.equal(top[0].tokenId, chunk.tokenId, `prompt ${prompt}, token ${chunk.index}`);
          assert.equal(top[0].logprob, chunk.fingerprint.logProb);
        }
      }
    }
  }
  for (const bad of [-1, 21, 2.5]) {
    assert.throws(
      () => model.generate([72], params(), { topLogprobs: bad }),
      InvalidGenerationParamsError,
    );
  }
});
