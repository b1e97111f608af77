/**
 * `TextModel` (`inference/text_model.ts`): generation and its parameters, the `config.json` next to
 * the graph (a model directory prepared by someone else), several end tokens, and a stream dropped
 * without being read to its end.
 */
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
import { TextModel, type TextModelOptions } from "../../inference/text_model.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";
import { fingerprintDistance, fingerprintOf } from "../../proof/fingerprint.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";
import { join } from "node:path";
import { buildGptModel, type KvCacheConvention } from "../../inference/model_builder.ts";
import onnxProto from "onnx-proto";
import {
  checkResumePrefix,
  InvalidResumeError,
  resumeGeneration,
} from "../../inference/resumed_generation.ts";
import { GREEDY, listedEndsFixture, PROMPT as PROMPTEos } from "./_review_s53_eos_fixture.ts";

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

const { model: modelGenerate, cleanup: cleanupGenerate } = await tinyModel();

Deno.test.afterAll(cleanupGenerate);

const PROMPT = modelGenerate.tokenizer.encode("Once upon a time");

const SAMPLED = params({ maxTokens: 40, temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 });

Deno.test("seeded sampling is reproducible: same seed, same tokens; another seed differs", async () => {
  const a = (await collect(modelGenerate.generate(PROMPT, SAMPLED))).map((c) => c.tokenId);
  const b = (await collect(modelGenerate.generate(PROMPT, SAMPLED))).map((c) => c.tokenId);
  const c = (await collect(modelGenerate.generate(PROMPT, { ...SAMPLED, seed: 4321 }))).map((c) =>
    c.tokenId
  );
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("sampling is resumable: restarting at token k with prompt+first k tokens continues identically", async () => {
  const whole = await collect(modelGenerate.generate(PROMPT, SAMPLED));
  for (const k of [1, 7, 25]) {
    const prefix = whole.slice(0, k).map((c) => c.tokenId);
    const resumed = await collect(
      modelGenerate.generate([...PROMPT, ...prefix], SAMPLED, { startIndex: k }),
    );
    assert.deepEqual(resumed.map((c) => c.index), whole.slice(k).map((c) => c.index));
    assert.deepEqual(resumed.map((c) => c.tokenId), whole.slice(k).map((c) => c.tokenId));
  }
});

Deno.test("multi-byte UTF-8 streams intact: chunk texts concatenate to the whole decode, none broken", async () => {
  // The highest temperature allowed makes the model emit many bytes >= 0x80, i.e. partial
  // characters.
  const hot = params({ maxTokens: 200, temperature: GENERATION_LIMITS.maxTemperature, seed: 5 });
  const chunks = await collect(
    modelGenerate.generate(modelGenerate.tokenizer.encode("héllo 世界 🚀"), hot),
  );
  const ids = chunks.map((c) => c.tokenId);
  assert.ok(ids.some((t) => t >= 0x80 && t < 0x100), "the test needs some non-ASCII bytes");
  const joined = chunks.map((c) => c.text).join("");
  const eos = modelGenerate.info.eosTokenId;
  assert.equal(joined, modelGenerate.tokenizer.decode(ids.filter((t) => t !== eos)));
  for (const chunk of chunks) assert.ok(chunk.text.isWellFormed(), "lone surrogate in a chunk");
});

Deno.test("the streaming decoder holds back partial characters of 'héllo 世界 🚀' and never emits a broken one", () => {
  const text = "héllo 世界 🚀";
  const decoder = modelGenerate.tokenizer.streamDecoder();
  const pieces = modelGenerate.tokenizer.encode(text).map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  assert.equal(pieces.join(""), text);
  for (const p of pieces) assert.ok(!p.includes("\uFFFD") && p.isWellFormed());
  // "é" is 2 bytes, "世" 3, "🚀" 4: the first bytes of each yield "".
  assert.ok(pieces.filter((p) => p === "").length >= 1 + 2 + 2 + 3);
  assert.ok(pieces.includes("🚀"));
});

Deno.test("cancelling the stream stops compute: no model run after the last pulled chunk", async () => {
  const before = modelGenerate.runCount;
  const reader = modelGenerate.generate(PROMPT, params({ maxTokens: 100 })).getReader();
  for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
  await reader.cancel();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(modelGenerate.runCount - before, 3, "one run per pulled chunk, none after cancel");
});

Deno.test("nothing is computed until the consumer pulls (backpressure)", async () => {
  const before = modelGenerate.runCount;
  const stream = modelGenerate.generate(PROMPT, params({ maxTokens: 100 }));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(modelGenerate.runCount - before, 0);
  await stream.cancel();
});

Deno.test("aborting the signal errors the stream with the reason and stops within one step", async () => {
  const controller = new AbortController();
  const before = modelGenerate.runCount;
  const reader = modelGenerate.generate(PROMPT, params({ maxTokens: 100 }), {
    signal: controller.signal,
  }).getReader();
  await reader.read();
  await reader.read();
  const pending = reader.read(); // a step is now in flight
  controller.abort(new Error("client went away"));
  await assert.rejects(pending, /client went away/);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(modelGenerate.runCount - before <= 3, `ran ${modelGenerate.runCount - before} steps`);
  assert.throws(
    () => modelGenerate.generate(PROMPT, params(), { signal: controller.signal }),
    /client went away/,
  );
});

Deno.test("a stop sequence ends generation with finishReason stop after the token completing it", async () => {
  const free = await collect(modelGenerate.generate(PROMPT, params({ maxTokens: 40 })));
  const text = free.map((c) => c.text).join("");
  const stop = text.slice(10, 13);
  const first = text.indexOf(stop);
  const stopped = await collect(
    modelGenerate.generate(PROMPT, params({ maxTokens: 40, stop: [stop] })),
  );
  const out = stopped.map((c) => c.text).join("");
  assert.equal(stopped.at(-1)?.finishReason, "stop");
  assert.equal(out, text.slice(0, first + stop.length));
});

Deno.test("temperature 0 ignores the seed: greedy output is the same for every seed", async () => {
  const a = await collect(modelGenerate.generate(PROMPT, params({ maxTokens: 16, seed: 1 })));
  const b = await collect(modelGenerate.generate(PROMPT, params({ maxTokens: 16, seed: 2 })));
  assert.deepEqual(a.map((c) => c.tokenId), b.map((c) => c.tokenId));
});

Deno.test("concurrent streams on one model do not interfere (each keeps its own cache)", async () => {
  const other = modelGenerate.tokenizer.encode("Lorem ipsum");
  const solo = await collect(modelGenerate.generate(other, SAMPLED));
  const base = await collect(modelGenerate.generate(PROMPT, SAMPLED));
  const [a, b] = await Promise.all([
    collect(modelGenerate.generate(PROMPT, SAMPLED)),
    collect(modelGenerate.generate(other, SAMPLED)),
  ]);
  assert.deepEqual(a.map((c) => c.tokenId), base.map((c) => c.tokenId));
  assert.deepEqual(b.map((c) => c.tokenId), solo.map((c) => c.tokenId));
});

// `TextModel.generate` checks `params.stop` itself, with the limits every job has on the wire
// (`GENERATION_LIMITS`): a direct caller gets a typed `invalid_generation_params` before any
// compute, never a `TypeError`, a silently dropped entry, or more or longer stop sequences than a
// job may carry.

const { model: modelGenerateStopParams, cleanup: cleanupGenerateStopParams } = await tinyModel();

Deno.test.afterAll(cleanupGenerateStopParams);

const PROMPT_GENERATE_STOP_PARAMS = modelGenerateStopParams.tokenizer.encode("Once upon a time");

const { maxStopSequences, maxStopChars } = GENERATION_LIMITS;

for (
  const [label, stop] of [
    ["a string instead of an array", "x"],
    ["null", null],
    ["a number among the strings", ["a", 42]],
    ["an empty sequence (it would stop every generation at once)", [""]],
    [
      `more than ${maxStopSequences} sequences`,
      Array.from({ length: maxStopSequences + 1 }, String),
    ],
    [`a sequence longer than ${maxStopChars} characters`, ["x".repeat(maxStopChars + 1)]],
  ] as const
) {
  Deno.test(`generate refuses stop as ${label} with invalid_generation_params, before any compute`, () => {
    const runs = modelGenerateStopParams.runCount;
    assert.throws(
      () =>
        modelGenerateStopParams.generate(
          PROMPT_GENERATE_STOP_PARAMS,
          params({ stop: stop as unknown as string[] }),
        ),
      (e: unknown) => {
        assert.ok(e instanceof InvalidGenerationParamsError, `${(e as Error)?.constructor?.name}`);
        assert.equal(e.code, "invalid_generation_params");
        assert.match(e.message, /stop/);
        return true;
      },
    );
    assert.equal(modelGenerateStopParams.runCount, runs);
  });
}

Deno.test("generate takes stop at the limits, and no stop at all, as before", async () => {
  const limit = Array.from({ length: maxStopSequences }, (_, i) => String(i).repeat(maxStopChars));
  const free = await collect(
    modelGenerateStopParams.generate(PROMPT_GENERATE_STOP_PARAMS, params({ maxTokens: 8 })),
  );
  const atLimits = await collect(
    modelGenerateStopParams.generate(
      PROMPT_GENERATE_STOP_PARAMS,
      params({ maxTokens: 8, stop: limit }),
    ),
  );
  const { stop: _stop, ...withoutStop } = params({ maxTokens: 8 });
  const absent = await collect(
    modelGenerateStopParams.generate(
      PROMPT_GENERATE_STOP_PARAMS,
      withoutStop as unknown as ReturnType<typeof params>,
    ),
  );
  assert.deepEqual(atLimits.map((c) => c.tokenId), free.map((c) => c.tokenId));
  assert.deepEqual(absent.map((c) => c.tokenId), free.map((c) => c.tokenId));
});

Deno.test("a stop list changed by its caller after generate returns does not change the generation", async () => {
  const free = await collect(
    modelGenerateStopParams.generate(PROMPT_GENERATE_STOP_PARAMS, params({ maxTokens: 12 })),
  );
  const text = free.map((c) => c.text).join("");
  const stop: string[] = [];
  const stream = modelGenerateStopParams.generate(
    PROMPT_GENERATE_STOP_PARAMS,
    params({ maxTokens: 12, stop }),
  );
  stop.push(text.slice(2, 4)); // would end the generation early if it were read live
  const chunks = await collect(stream);
  assert.deepEqual(chunks.map((c) => c.tokenId), free.map((c) => c.tokenId));
});

// `TextModel.load` against the `config.json` next to the graph: the config sizes the KV cache and
// cuts the logits rows, and nothing but this check ties it to `model.onnx` (whose CID names the
// model), so a config that is not an object, gives dimensions that are not positive integers, or
// contradicts the graph's declared shapes is refused at load, typed, instead of loading under the
// model's CID and sampling from the wrong row or failing mid-generation.

const tmp = await Deno.makeTempDir({ prefix: "veriflow-model-config-test-" });

Deno.test.afterAll(() => Deno.remove(tmp, { recursive: true }));

/** The built tiny model of each cache convention, built once; each case copies it. */
const built = new Map<KvCacheConvention, Promise<string>>();

function tinyDir(kvCache: KvCacheConvention): Promise<string> {
  let dir = built.get(kvCache);
  if (!dir) {
    const outDir = join(tmp, `tiny-${kvCache}`);
    dir = buildGptModel({ size: "tiny", seed: 0, outDir, kvCache }).then(() => outDir);
    built.set(kvCache, dir);
  }
  return dir;
}

let cases = 0;

/** A copy of the tiny model whose `config.json` is `edit` applied to the builder's. */
async function withConfig(
  edit: (config: Record<string, unknown>) => unknown,
  kvCache: KvCacheConvention = "fixed",
): Promise<string> {
  const source = await tinyDir(kvCache);
  const dir = join(tmp, `case-${++cases}`);
  await Deno.mkdir(dir);
  for (const f of ["model.onnx", "tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(join(source, f), join(dir, f));
  }
  const config = JSON.parse(await Deno.readTextFile(join(source, "config.json")));
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(edit(config)));
  return dir;
}

async function assertRefused(dir: string, message: RegExp, options?: TextModelOptions) {
  const error = await assert.rejects(
    () => TextModel.load(dir, { intraOpThreads: 1, ...options }),
    (e: unknown) => {
      assert.ok(e instanceof ModelLoadError, `${(e as Error)?.constructor?.name}: ${e}`);
      assert.equal(e.code, "model_load_failed");
      assert.match(e.message, message);
      return true;
    },
  );
  return error;
}

for (
  const [label, patch, message, kvCache] of [
    ["a vocab_size smaller than the logits rows", { vocab_size: 100 }, /"logits".*260.*100/],
    ["a vocab_size larger than the logits rows", { vocab_size: 1000 }, /"logits".*260.*1000/],
    ["n_head against the cache's heads", { n_head: 2 }, /"kv_cache\.0\.key" has 4 heads/],
    ["head_dim against the cache's width", { head_dim: 8 }, /"kv_cache\.0\.key".*width 16/],
    [
      "num_key_value_heads against the cache's heads",
      { num_key_value_heads: 2, head_dim: 16 },
      /has 4 heads, config\.json says 2/,
    ],
    [
      "n_head against a Hugging Face export's past_key_values",
      { n_head: 2 },
      /"past_key_values\.0\.key" has 4 heads/,
      "concat",
    ],
  ] as const
) {
  Deno.test(`config.json with ${label} is refused at load with model_load_failed`, async () => {
    const dir = await withConfig((c) => ({ ...c, ...patch }), kvCache);
    await assertRefused(dir, message);
  });
}

for (
  const [label, patch, message] of [
    ["a fractional layer count", { n_layer: 2.5 }, /n_layer must be a positive integer, got 2.5/],
    ["a zero vocabulary", { vocab_size: 0 }, /vocab_size must be a positive integer, got 0/],
    ["a negative head width", { head_dim: -16 }, /head_dim must be a positive integer/],
    ["a context too large to count", { n_positions: 1e300 }, /n_positions must be a positive/],
    ["a width that does not split into its heads", { n_head: 3 }, /not a multiple of 3 heads/],
  ] as const
) {
  Deno.test(`config.json with ${label} is refused at load with model_load_failed`, async () => {
    const dir = await withConfig((c) => ({ ...c, ...patch }));
    await assertRefused(dir, message);
  });
}

for (const [label, value] of [["null", null], ["an array", [1, 2]], ["a number", 7]] as const) {
  Deno.test(`config.json that is ${label}, not an object, is refused at load with model_load_failed`, async () => {
    const dir = await withConfig(() => value);
    await assertRefused(dir, /config\.json in .* is not a JSON object/);
  });
}

Deno.test("a config.json contradicting the graph is refused in worker mode too (the workers' metadata is checked)", async () => {
  const dir = await withConfig((c) => ({ ...c, vocab_size: 100 }));
  await assertRefused(dir, /"logits".*260.*100/, { worker: true, workerCount: 1 });
});

Deno.test("a config.json that agrees with the graph through other spellings (head_dim, num_key_value_heads, text_config) loads and generates", async () => {
  const dir = await withConfig((c) => {
    const { n_layer: _layers, vocab_size: _vocab, ...rest } = c;
    return {
      ...rest,
      head_dim: 16,
      num_key_value_heads: 4,
      veriflow: null, // names are read only when they are strings
      text_config: { num_hidden_layers: 2, vocab_size: 260 },
    };
  });
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    assert.equal(model.info.headDim, 16);
    assert.equal(model.info.numKeyValueHeads, 4);
    assert.equal(model.info.name, dir.split("/").pop());
    const chunks = await collect(model.generate([72, 105], params({ maxTokens: 3 })));
    assert.equal(chunks.length, 3);
  } finally {
    await model.dispose();
  }
});

// A model directory prepared by someone else. `config.json` sizes the KV cache and cuts the logits
// into rows, and `checkDecoderGraph` holds it to the graph's declared shapes at load; but a
// dimension the graph leaves to run time (a `Reshape` onnxruntime's shape inference cannot see
// through) is only known once the graph has run. A config that lies about such a dimension must
// fail the job with a clear error, never cut rows at the wrong place (tokens sampled from a mix of
// two positions' logits, which a validator's teacher-forced pass cuts differently) nor store a
// step's keys and values in the wrong cache slots.

const { onnx } = onnxProto;

const tmpModels = await Deno.makeTempDir({ prefix: "veriflow-review-s46-models-" });

Deno.test.afterAll(() => Deno.remove(tmpModels, { recursive: true }));

const PROMPT_MODELS = [...new TextEncoder().encode("Hello there")];

/**
 * A tiny built model whose outputs `opaque` (and every cache input) have only symbolic
 * dimensions: each such output goes through `Reshape(x, Max(Shape(x), Shape(x)))`, which
 * computes the same tensor but hides its shape from shape inference. `config.json` is edited by
 * `lie`.
 */
async function opaqueModel(
  name: string,
  opaque: (output: string) => boolean,
  lie: (config: Record<string, unknown>) => void,
): Promise<string> {
  const dir = join(tmpModels, name);
  await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
  const model = onnx.ModelProto.decode(await Deno.readFile(join(dir, "model.onnx")));
  const graph = model.graph!;
  for (const output of graph.output!) {
    if (!opaque(output.name!)) continue;
    const name = output.name!;
    graph.node!.find((n) => n.output!.includes(name))!.output = [`${name}.raw`];
    graph.node!.push(
      { opType: "Shape", input: [`${name}.raw`], output: [`${name}.shape`] },
      { opType: "Max", input: [`${name}.shape`, `${name}.shape`], output: [`${name}.hidden`] },
      { opType: "Reshape", input: [`${name}.raw`, `${name}.hidden`], output: [name] },
    );
  }
  for (const value of [...graph.input!, ...graph.output!]) {
    if (!value.name!.startsWith("kv_") && !opaque(value.name!)) continue;
    const shape = value.type!.tensorType!.shape!;
    shape.dim = shape.dim!.map((_, i) => ({ dimParam: `${value.name}.${i}` }));
  }
  await Deno.writeFile(join(dir, "model.onnx"), onnx.ModelProto.encode(model).finish());
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  lie(config);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  return dir;
}

/** The greedy token of each output position, from a teacher-forced pass (a validator's view). */
function forwardGreedy(logits: Float32Array, vocab: number, from: number, count: number) {
  const tokens: number[] = [];
  for (let p = from; p < from + count; p++) {
    const row = logits.subarray(p * vocab, (p + 1) * vocab);
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
    tokens.push(best);
  }
  return tokens;
}

const isContradiction = (what: RegExp) => (e: unknown) =>
  e instanceof ModelLoadError && what.test(e.message);

Deno.test("a graph whose logits rows are sized at run time serves the tokens a teacher-forced pass agrees with when config.json is honest", async () => {
  const dir = await opaqueModel(
    "honest",
    (o) => o === "logits" || o.startsWith("kv_new."),
    () => {},
  );
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    const chunks = await collect(
      model.generate(PROMPT_MODELS, params({ temperature: 0, maxTokens: 6 })),
    );
    const tokens = chunks.map((c) => c.tokenId);
    const logits = await model.forward([...PROMPT_MODELS, ...tokens]);
    assert.deepEqual(
      tokens,
      forwardGreedy(logits, model.info.vocabSize, PROMPT_MODELS.length - 1, tokens.length),
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("a config.json that lies about vocab_size to a graph sizing its logits at run time fails generation and forward passes, serving no token", async () => {
  const dir = await opaqueModel("vocab", (o) => o === "logits", (c) => {
    c.vocab_size = (c.vocab_size as number) + 6;
  });
  for (const worker of [false, true]) {
    const model = await TextModel.load(dir, { intraOpThreads: 1, worker, workerCount: 1 });
    try {
      const served: number[] = [];
      await assert.rejects(async () => {
        const stream = model.generate(PROMPT_MODELS, params({ temperature: 0, maxTokens: 6 }));
        for await (const chunk of stream) served.push(chunk.tokenId);
      }, isContradiction(/logits/));
      assert.deepEqual(served, [], `worker: ${worker}`);
      await assert.rejects(model.forward(PROMPT_MODELS), isContradiction(/logits/));
    } finally {
      await model.dispose();
    }
  }
});

Deno.test("a config.json that lies about num_key_value_heads to a graph sizing its cache at run time fails generation instead of caching one head for all", async () => {
  const dir = await opaqueModel("heads", (o) => o.startsWith("kv_new."), (c) => {
    c.num_key_value_heads = 1;
  });
  const model = await TextModel.load(dir, { intraOpThreads: 1 });
  try {
    const served: number[] = [];
    await assert.rejects(async () => {
      const stream = model.generate(PROMPT_MODELS, params({ temperature: 0, maxTokens: 6 }));
      for await (const chunk of stream) served.push(chunk.tokenId);
    }, isContradiction(/kv_new\.0\.key/));
    assert.deepEqual(served, []);
  } finally {
    await model.dispose();
  }
});

// A model whose `config.json` lists several end tokens (`eos_token_id: [a, b, …]`, as Llama 3
// Instruct ends its turns at `<|eot_id|>`, the last of three) ends generation at every one of them.
// Before, only the first was kept: such a model ran past the end of its turn to `maxTokens`, and
// the client paid for every token after it.

const f = await listedEndsFixture();

Deno.test.afterAll(f.cleanup);

Deno.test("an eos_token_id list in config.json: the model info carries every id, eosTokenId still the first", () => {
  assert.deepEqual(f.listed.info.eosTokenIds, [256, f.second]);
  assert.equal(f.listed.info.eosTokenId, 256);
  assert.deepEqual(f.plain.info.eosTokenIds, [256]);
  assert.equal(f.plain.info.eosTokenId, 256);
});

Deno.test("generation stops (finishReason stop) at the second listed end id, which it emits with text ''", async () => {
  const chunks = await collect(f.listed.generate(f.listed.tokenizer.encode(PROMPTEos), GREEDY));
  assert.equal(chunks.length, f.stopAt + 1, "one chunk per token up to the end id, none after");
  const last = chunks[f.stopAt];
  assert.equal(last.tokenId, f.second);
  assert.equal(last.finishReason, "stop");
  assert.equal(last.text, "", "an end token renders as nothing, as EOS does");
  assert.deepEqual(
    chunks.slice(0, -1).map((c) => [c.tokenId, c.text, c.finishReason]),
    f.plainRun.slice(0, f.stopAt).map((c) => [c.tokenId, c.text, undefined]),
  );
});

Deno.test("a resume refuses a prefix holding the second listed end id", () => {
  const prompt = f.listed.tokenizer.encode(PROMPTEos);
  const prefix = f.plainRun.slice(0, f.stopAt + 1).map((c) => c.tokenId);
  assert.throws(
    () => checkResumePrefix(f.listed, prompt.length, prefix, GREEDY),
    (e) => e instanceof InvalidResumeError && e.code === "invalid_resume",
  );
});

Deno.test("a resumed generation ends at the second listed end id, as the undisturbed run does", async () => {
  const prompt = f.listed.tokenizer.encode(PROMPTEos);
  const prefix = f.plainRun.slice(0, 1).map((c) => c.tokenId);
  const chunks = await collect(resumeGeneration(f.listed, prompt, prefix, GREEDY));
  assert.equal(chunks.length, f.stopAt + 1);
  assert.equal(chunks[f.stopAt].tokenId, f.second);
  assert.equal(chunks[f.stopAt].finishReason, "stop");
  assert.equal(chunks[f.stopAt].text, "");
});

Deno.test("end ids given only under text_config (a multimodal export's config) are read there, as its dimensions are", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-eos-text-config-" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const ids = [config.eos_token_id, f.second];
    delete config.eos_token_id;
    config.text_config = { eos_token_id: ids };
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
    const model = await TextModel.load(dir, { intraOpThreads: 1 });
    try {
      assert.deepEqual(model.info.eosTokenIds, ids);
    } finally {
      await model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// A `generate()` stream dropped without being cancelled or read to the end frees its KV cache once
// it is collected (`abandonedStreams` in `inference/_generation_stream.ts`), also when it was given
// an `AbortSignal` that lives on (a server's shutdown signal): the listener on the signal must not
// keep the stream alive, and goes with it. Collection needs `gc`, which the test runner does not
// expose: the streams live in a child process (`_abandoned_stream_child.ts`).

const dirAbandonedStream = await Deno.makeTempDir({ prefix: "veriflow-abandoned-stream-test-" });

await buildGptModel({ size: "tiny", seed: 0, outDir: dirAbandonedStream });

Deno.test.afterAll(() => Deno.remove(dirAbandonedStream, { recursive: true }));

Deno.test("abandoned streams free their KV caches and their abort listeners, even while their signal lives on", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./_abandoned_stream_child.ts", import.meta.url).pathname,
      dirAbandonedStream,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // A model worker left running keeps the child alive: fail instead of hanging.
  const HANG_DETECTOR_MS = 60_000;
  const timer = setTimeout(() => child.kill(), HANG_DETECTOR_MS);
  const { code, stdout } = await child.output();
  clearTimeout(timer);
  assert.equal(code, 0);
  const report = JSON.parse(new TextDecoder().decode(stdout).trim());
  // Five streams each, each holding its cache in the worker while it lives.
  assert.equal(report.plainBefore, 5, JSON.stringify(report));
  assert.equal(report.plainAfter, 0, `without a signal: ${JSON.stringify(report)}`);
  assert.equal(report.signalledBefore, 5, JSON.stringify(report));
  assert.equal(report.listenersBefore, 5, JSON.stringify(report));
  assert.equal(
    report.signalledAfter,
    0,
    `caches held through the signal: ${JSON.stringify(report)}`,
  );
  assert.equal(report.listenersAfter, 0, `listeners left on the signal: ${JSON.stringify(report)}`);
});
