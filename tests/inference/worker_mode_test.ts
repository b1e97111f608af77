/**
 * A model run in worker threads (`inference/_model_worker_pool.ts` as `TextModel` and `TensorModel`
 * use it) and the message batching between a worker and its caller (`inference/_batched_post.ts`).
 */
import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { buildGptModel, buildMlpModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { TensorModel } from "../../inference/tensor_model.ts";
import {
  type TextModel,
  TextModel as TextModelClass,
  type TokenChunk,
} from "../../inference/text_model.ts";
import {
  ContextLengthError,
  InvalidGenerationParamsError,
  InvalidTensorInputError,
  InvalidTokenError,
  ModelDisposedError,
  ModelLoadError,
} from "../../inference/errors.ts";
import { deserializeError, serializeError } from "../../inference/_worker_protocol.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { MIN_LOGIT_EPS } from "../../proof/calibration.ts";
import type { TensorData } from "../../protocols/job.ts";
import onnxProto from "onnx-proto";
import { BatchedPost, eachMessage } from "../../inference/_batched_post.ts";

const { onnx } = onnxProto;

/** Two workers: enough to see two generations land on different workers. */
const WORKERS = 2;

const { model: inThread, dir, cleanup } = await tinyModel();

// The same session options as the in-thread model (one intra-op thread), so logits must be
// bit-identical: the same onnxruntime, the same graph, the same feeds — and so must the tokens
// and fingerprints sampled and computed from them, in the worker or on this thread.
const worker = await TextModelClass.load(dir, {
  worker: true,
  workerCount: WORKERS,
  intraOpThreads: 1,
});

Deno.test.afterAll(async () => {
  await worker.dispose();
  await cleanup();
});

const PROMPTS = ["Once upon a time", "héllo 世界 🚀", "a"].map((p) => inThread.tokenizer.encode(p));

const SAMPLED = params({ maxTokens: 40, temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 });

function bytesOf(array: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Bitwise equality of two float arrays (NaN payloads and -0 included). */
function assertBitwiseEqual<T extends Float32Array | Float64Array>(
  actual: T,
  expected: T,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.deepEqual(bytesOf(actual), bytesOf(expected), `${what}: bytes differ`);
}

/** Every chunk's fingerprint as float64s, `[logProb₀, projection₀, logProb₁, …]`. */
function fingerprintValues(chunks: TokenChunk[]): Float64Array {
  return Float64Array.from(
    chunks.flatMap(({ fingerprint }) => [fingerprint.logProb, fingerprint.projection]),
  );
}

/** A chunk without its fingerprint, for structural comparison. */
function visible({ index, tokenId, text, vocabSize, logits, finishReason }: TokenChunk) {
  return { index, tokenId, text, vocabSize, logits, finishReason };
}

async function totalRuns(model: TextModel): Promise<number> {
  return (await model.workerStats()).reduce((sum, s) => sum + s.runs, 0);
}

async function openSequences(model: TextModel): Promise<number> {
  return (await model.workerStats()).reduce((sum, s) => sum + s.sequences, 0);
}

Deno.test("worker mode reports its pool; in-thread mode has no workers", async () => {
  assert.equal(worker.workerCount, WORKERS);
  assert.equal(inThread.workerCount, 0);
  assert.deepEqual(await inThread.workerStats(), []);
  assert.equal((await worker.workerStats()).length, WORKERS);
  assert.deepEqual(worker.info, inThread.info);
});

Deno.test("worker-mode tokens and fingerprints are bitwise identical to in-thread mode, greedy and sampled", async () => {
  for (const prompt of PROMPTS) {
    for (const p of [params({ maxTokens: 32 }), SAMPLED]) {
      const expected = await collect(inThread.generate(prompt, p));
      const actual = await collect(worker.generate(prompt, p));
      assert.deepEqual(actual.map(visible), expected.map(visible));
      assertBitwiseEqual(fingerprintValues(actual), fingerprintValues(expected), "fingerprints");
      for (const chunk of actual) {
        assert.equal(chunk.vocabSize, inThread.info.vocabSize);
        assert.equal(chunk.logits, undefined, "no logits row on a generated chunk");
        assert.ok(chunk.fingerprint.logProb <= 0 && Number.isFinite(chunk.fingerprint.projection));
      }
    }
  }
});

Deno.test("worker-mode forward returns bitwise the in-thread logits of every position", async () => {
  const tokens = inThread.tokenizer.encode("teacher forcing over a longer sequence of bytes");
  assertBitwiseEqual(await worker.forward(tokens), await inThread.forward(tokens), "forward");
});

/**
 * Rough structured-clone payload of a message: 8 bytes a number, the UTF-8 length of strings
 * and keys, a binary buffer's byte length. Comparable between messages, not exact.
 */
function payloadBytes(value: unknown): number {
  if (typeof value === "number") return 8;
  if (typeof value === "boolean" || value === null || value === undefined) return 1;
  if (typeof value === "string") return new TextEncoder().encode(value).length;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value.byteLength;
  let bytes = 0;
  for (const [key, v] of Object.entries(value as object)) bytes += key.length + payloadBytes(v);
  return bytes;
}

/** Whether a message is the reply to a `drop` (a finished generation's cache freed): no result. */
function isDropReply(message: unknown): boolean {
  const reply = message as { ok?: boolean; result?: unknown };
  return !Array.isArray(message) && reply.ok === true && reply.result === undefined;
}

/** Whether a message holds binary data anywhere (a logits row travels as a Float32Array). */
function holdsBinary(value: unknown): boolean {
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return true;
  if (typeof value !== "object" || value === null) return false;
  return Object.values(value).some(holdsBinary);
}

/**
 * A one-worker model whose worker's messages to this thread are recorded (`received`), beside
 * the pool's own handler.
 */
async function recordedWorkerModel(): Promise<{ model: TextModel; received: unknown[] }> {
  const received: unknown[] = [];
  const NativeWorker = globalThis.Worker;
  class RecordingWorker extends NativeWorker {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      this.addEventListener("message", (event) => received.push((event as MessageEvent).data));
    }
  }
  globalThis.Worker = RecordingWorker;
  try {
    const model = await TextModelClass.load(dir, {
      worker: true,
      workerCount: 1,
      intraOpThreads: 1,
    });
    return { model, received };
  } finally {
    globalThis.Worker = NativeWorker;
  }
}

Deno.test("a model worker posts each generated token as (token, fingerprint): no logits row crosses to this thread", async () => {
  const { model, received } = await recordedWorkerModel();
  try {
    const V = model.info.vocabSize;
    received.length = 0;
    const chunks = await collect(model.generate(PROMPTS[0], params({ maxTokens: 16 })));
    // Not the reply to the drop of the finished generation's cache (it may come later).
    const steps = received.splice(0).filter((m) => !isDropReply(m));
    assert.equal(steps.length, chunks.length, "one reply per generated token");
    assert.ok(!steps.some(holdsBinary), "a step reply holds no buffer");
    const stepBytes = steps.reduce((sum: number, m) => sum + payloadBytes(m), 0) / chunks.length;
    // The reference in the same run: a forward pass still answers its rows, V × 4 bytes each.
    const tokens = [...PROMPTS[0], ...chunks.map((c) => c.tokenId)];
    await model.forward(tokens);
    const [forward] = received.splice(0).filter((m) => !isDropReply(m));
    const rowBytes = payloadBytes(forward) / tokens.length;
    assert.ok(rowBytes >= V * Float32Array.BYTES_PER_ELEMENT, `forward: ${rowBytes} B/position`);
    // id, ok, tokenId and the fingerprint's two numbers, with their keys: ~80 bytes, not ~1 KiB.
    const MAX_STEP_REPLY_BYTES = 128;
    assert.ok(
      stepBytes <= MAX_STEP_REPLY_BYTES,
      `step replies: ${stepBytes} B/token (a logits row: ${rowBytes} B)`,
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("worker-mode top logprobs are bitwise the in-thread ones, computed in the worker; asking for them changes no token or fingerprint", async () => {
  const K = 7;
  for (const prompt of PROMPTS) {
    for (const p of [params({ maxTokens: 24 }), SAMPLED]) {
      const expected = await collect(inThread.generate(prompt, p, { topLogprobs: K }));
      const actual = await collect(worker.generate(prompt, p, { topLogprobs: K }));
      assert.deepEqual(actual.map(visible), expected.map(visible));
      assertBitwiseEqual(fingerprintValues(actual), fingerprintValues(expected), "fingerprints");
      // deepEqual compares numbers with Object.is: the same doubles, not close ones.
      assert.deepEqual(actual.map((c) => c.topLogprobs), expected.map((c) => c.topLogprobs));
      assert.ok(actual.every((c) => c.topLogprobs?.length === K));
      const plain = await collect(worker.generate(prompt, p));
      assert.deepEqual(plain.map(visible), actual.map(visible));
      assertBitwiseEqual(fingerprintValues(plain), fingerprintValues(actual), "fingerprints");
    }
  }
});

Deno.test("worker-mode seeded sampling draws the in-thread tokens, and resumes identically", async () => {
  const expected = await collect(inThread.generate(PROMPTS[0], SAMPLED));
  const actual = await collect(worker.generate(PROMPTS[0], SAMPLED));
  assert.deepEqual(actual.map((c) => c.tokenId), expected.map((c) => c.tokenId));
  const k = 11;
  const resumed = await collect(
    worker.generate([...PROMPTS[0], ...actual.slice(0, k).map((c) => c.tokenId)], SAMPLED, {
      startIndex: k,
    }),
  );
  assert.deepEqual(resumed.map((c) => c.tokenId), expected.slice(k).map((c) => c.tokenId));
  assert.deepEqual(resumed.map((c) => c.index), expected.slice(k).map((c) => c.index));
});

Deno.test("worker mode reads the prompt before the first pull, runs one step ahead, and cancelling stops the workers and frees the cache", async () => {
  const before = await totalRuns(worker);
  const stream = worker.generate(PROMPTS[0], params({ maxTokens: 100 }));
  // The first token is computed within the run-ahead credit, before anyone reads: the consumer
  // is still setting up its response while the prompt is read.
  await eventually(async () => (await totalRuns(worker)) - before === 1, "the first step");
  await delay(20);
  assert.equal(await totalRuns(worker) - before, 1, "only the first step before the first pull");

  const reader = stream.getReader();
  for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
  assert.equal(await openSequences(worker), 1, "the KV cache lives in a worker");
  // Backpressure: with no further pull the worker stops after the one step of credit (waited
  // for, not given a fixed time: a loaded runner may take longer to compute it).
  await eventually(async () => (await totalRuns(worker)) - before === 4, "the step ahead");
  await delay(30);
  assert.equal(await totalRuns(worker) - before, 4, "3 pulled chunks + 1 step ahead, no more");
  await reader.cancel();
  await eventually(async () => (await openSequences(worker)) === 0, "cache dropped");
  await delay(20);
  assert.equal(await totalRuns(worker) - before, 4, "nothing computed after the cancel");
});

Deno.test("worker mode with runAhead 0 computes strictly on demand", async () => {
  const before = await totalRuns(worker);
  const reader = worker.generate(PROMPTS[0], params({ maxTokens: 100 }), { runAhead: 0 })
    .getReader();
  for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
  await delay(30);
  assert.equal(await totalRuns(worker) - before, 3, "one worker run per pulled chunk");
  await reader.cancel();
  await eventually(async () => (await openSequences(worker)) === 0, "cache dropped");
  assert.equal(await totalRuns(worker) - before, 3, "none after the cancel");
});

Deno.test("a wider runAhead window lets the worker compute that many steps beyond the pulls", async () => {
  const before = await totalRuns(worker);
  const reader = worker.generate(PROMPTS[0], params({ maxTokens: 100 }), { runAhead: 3 })
    .getReader();
  assert.equal((await reader.read()).done, false);
  await eventually(async () => (await totalRuns(worker)) - before === 4, "1 pulled + 3 ahead");
  await delay(30);
  assert.equal(await totalRuns(worker) - before, 4, "the window caps the run-ahead");
  await reader.cancel();
  assert.throws(
    () => worker.generate(PROMPTS[0], params(), { runAhead: -1 }),
    InvalidGenerationParamsError,
  );
});

Deno.test("run-ahead overlaps compute with delivery: step t+1 is requested before chunk t is delivered", async () => {
  /** Per chunk: worker runs seen right after receiving it, and whether it was ready at once. */
  const observe = async (runAhead: number) => {
    const before = await totalRuns(worker);
    const reader = worker.generate(PROMPTS[0], params({ maxTokens: 8 }), { runAhead }).getReader();
    const runsAtDelivery: number[] = [];
    let immediate = 0;
    for (let t = 0;; t++) {
      // A read that the chunk already computed answers in microtasks, before any macrotask;
      // one that waits for the worker needs a message event, after this timer.
      let timerFired = false;
      const timer = new Promise<void>((r) => setTimeout(() => r(void (timerFired = true)), 0));
      const { done } = await reader.read();
      if (done) break;
      if (t > 0 && !timerFired) immediate++;
      await timer;
      // Stats are answered after every request sent before them: a step already requested
      // is counted even if this thread never waited for it.
      runsAtDelivery.push(await totalRuns(worker) - before);
      // A slow consumer (a socket write, an actor hop): the worker should compute meanwhile.
      await delay(15);
    }
    return { runsAtDelivery, immediate };
  };
  const ahead = await observe(1);
  const onDemand = await observe(0);
  const chunks = ahead.runsAtDelivery.length;
  assert.equal(chunks, 8);
  assert.deepEqual(
    ahead.runsAtDelivery,
    Array.from({ length: chunks }, (_, t) => Math.min(t + 2, chunks)),
    "at delivery of chunk t, step t+1 was already requested",
  );
  assert.deepEqual(
    onDemand.runsAtDelivery,
    Array.from({ length: chunks }, (_, t) => t + 1),
    "runAhead 0: step t+1 only after chunk t is pulled",
  );
  // The slow consumer's time hid the compute: every chunk after the first was ready when read.
  assert.equal(ahead.immediate, chunks - 1, "run-ahead: chunks ready when read");
  // (On demand, whether a reply beats a 0 ms timer depends on the machine's load: the run
  // counts above, not that race, show that nothing is computed ahead.)
});

Deno.test("aborting a worker-mode stream mid-step errors it at once and computes at most that step", async () => {
  const controller = new AbortController();
  const before = await totalRuns(worker);
  const reader = worker.generate(PROMPTS[0], params({ maxTokens: 100 }), {
    signal: controller.signal,
  }).getReader();
  await reader.read();
  await reader.read();
  const pending = reader.read(); // a step is now in flight in the worker
  controller.abort(new Error("client went away"));
  await assert.rejects(pending, /client went away/);
  await eventually(async () => (await openSequences(worker)) === 0, "cache dropped");
  await delay(20);
  const ran = await totalRuns(worker) - before;
  assert.ok(ran >= 2 && ran <= 3, `ran ${ran} steps for 2 delivered chunks`);
});

Deno.test("concurrent worker-mode generations each equal their solo in-thread run (within the batch noise) and spread over the workers", async () => {
  const jobs = PROMPTS.flatMap((prompt, i) => [
    { prompt, params: params({ maxTokens: 24 }) },
    { prompt, params: { ...SAMPLED, maxTokens: 24, seed: 100 + i } },
  ]);
  const expected: TokenChunk[][] = [];
  for (const job of jobs) expected.push(await collect(inThread.generate(job.prompt, job.params)));
  const runsBefore = (await worker.workerStats()).map((s) => s.runs);
  const actual = await Promise.all(
    jobs.map((job) => collect(worker.generate(job.prompt, job.params))),
  );
  const ids = (chunks: TokenChunk[]) => chunks.map((c) => c.tokenId);
  assert.deepEqual(actual.map(ids), expected.map(ids));
  // Concurrent generations on one worker share batched executions, whose kernels may round a
  // row's last bits differently from a lone row's (`_batch_decoder.ts`): far inside the
  // validators' floor on logit noise.
  actual.forEach((chunks, j) => {
    const a = fingerprintValues(chunks);
    const e = fingerprintValues(expected[j]);
    a.forEach((v, k) => assert.ok(Math.abs(v - e[k]) <= MIN_LOGIT_EPS, `job ${j} value ${k}`));
  });
  const runsAfter = (await worker.workerStats()).map((s) => s.runs);
  runsAfter.forEach((runs, w) => assert.ok(runs > runsBefore[w], `worker ${w} computed nothing`));
  assert.equal(await openSequences(worker), 0);
});

Deno.test("generations stepping together on one worker share messages both ways, and each still gets its own tokens", async () => {
  const { model, received } = await recordedWorkerModel();
  try {
    const jobs = PROMPTS.map((prompt, i) => ({
      prompt,
      params: { ...SAMPLED, maxTokens: 24, seed: 200 + i },
    }));
    const expected = await Promise.all(
      jobs.map((job) => collect(inThread.generate(job.prompt, job.params))),
    );
    const [before] = await model.workerStats();
    received.length = 0;
    const actual = await Promise.all(
      jobs.map((job) => collect(model.generate(job.prompt, job.params))),
    );
    const [after] = await model.workerStats();
    const ids = (chunks: TokenChunk[]) => chunks.map((c) => c.tokenId);
    assert.deepEqual(actual.map(ids), expected.map(ids));
    // Replies: one per step, several steps' in one message (an array) when a tick answers them.
    const replies = received.flatMap((m) => Array.isArray(m) ? m : [m]);
    const tokens = actual.reduce((sum, chunks) => sum + chunks.length, 0);
    assert.equal(
      replies.length,
      tokens + jobs.length + 1,
      "a reply per step, one per generation's drop, and the stats' own",
    );
    assert.ok(
      received.length < replies.length / 2,
      `${received.length} messages carried ${replies.length} replies`,
    );
    // Requests: those made in the same turn (the next steps of the generations just answered)
    // travel as one message.
    const requests = after.requests - before.requests;
    const messages = after.messages - before.messages;
    assert.ok(requests >= tokens, `${requests} requests for ${tokens} tokens`);
    assert.ok(messages < requests / 2, `${messages} messages carried ${requests} requests`);
  } finally {
    await model.dispose();
  }
});

Deno.test("typed errors keep their class, code and fields in worker mode", async () => {
  const context = worker.info.contextLength;
  const tooLong = new Array(context + 1).fill(65);
  assert.throws(
    () => worker.generate(tooLong.slice(0, context), params()),
    (e) => e instanceof ContextLengthError && e.code === "context_length_exceeded",
  );
  await assert.rejects(
    worker.forward(tooLong),
    (e) => e instanceof ContextLengthError && e.tokens === context + 1,
  );
  assert.throws(() => worker.generate([worker.info.vocabSize], params()), InvalidTokenError);
  // Generation that fills the context window ends with "length", as in-thread.
  const filled = await collect(worker.generate(new Array(context - 3).fill(65), params()));
  assert.equal(filled.length, 3);
  assert.equal(filled.at(-1)?.finishReason, "length");
});

Deno.test("an error raised inside a worker arrives as the same class with the same code (model load)", async () => {
  const broken = await Deno.makeTempDir({ prefix: "veriflow-worker-test-" });
  try {
    await Deno.copyFile(`${dir}/config.json`, `${broken}/config.json`);
    await Deno.copyFile(`${dir}/tokenizer.json`, `${broken}/tokenizer.json`);
    // An ONNX ModelProto (so the load's own checks pass it) that onnxruntime cannot load: a
    // graph whose one node is of an operator no opset has.
    await Deno.writeFile(
      `${broken}/model.onnx`,
      onnx.ModelProto.encode({
        irVersion: 8,
        opsetImport: [{ domain: "", version: 17 }],
        graph: { name: "broken", node: [{ opType: "NoSuchOperator", input: [], output: ["y"] }] },
      }).finish(),
    );
    await assert.rejects(
      TextModelClass.load(broken, { worker: true, workerCount: 1 }),
      (e) =>
        e instanceof ModelLoadError && e instanceof VeriflowError &&
        e.code === "model_load_failed" && /onnxruntime cannot load/.test(e.message),
    );
  } finally {
    await Deno.remove(broken, { recursive: true });
  }
});

Deno.test("the error codec rebuilds class, fields and cause without running constructors", () => {
  const original = new ModelLoadError("outer", { cause: new ContextLengthError(300, 256) });
  const rebuilt = deserializeError(structuredClone(serializeError(original)));
  assert.ok(rebuilt instanceof ModelLoadError);
  assert.equal((rebuilt as ModelLoadError).code, "model_load_failed");
  assert.equal(rebuilt.name, "ModelLoadError");
  assert.equal(rebuilt.message, "outer");
  const cause = rebuilt.cause as ContextLengthError;
  assert.ok(cause instanceof ContextLengthError);
  assert.deepEqual([cause.tokens, cause.contextLength, cause.code], [
    300,
    256,
    "context_length_exceeded",
  ]);
  const plain = deserializeError(serializeError(new RangeError("r")));
  assert.ok(plain instanceof RangeError && plain.message === "r");
  const unknown = deserializeError(serializeError(new (class OddError extends Error {})("x")));
  assert.ok(unknown instanceof Error && unknown.message === "x");
});

Deno.test("the event loop keeps ticking while a worker-mode model computes, not while an in-thread one does", async () => {
  // A model wide enough that a full pass over its context takes tens of ms.
  const wideDir = await Deno.makeTempDir({ prefix: "veriflow-worker-test-" });
  await buildGptModel({
    size: "tiny",
    numLayers: 4,
    hiddenSize: 256,
    numHeads: 4,
    seed: 3,
    outDir: wideDir,
  });
  const local = await TextModelClass.load(wideDir, { intraOpThreads: 1 });
  const remote = await TextModelClass.load(wideDir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
  });
  const tokens = Array.from({ length: local.info.contextLength }, (_, i) => 65 + (i % 26));
  const PASSES = 3;
  /** Timer ticks that fire while a forward pass is in flight. */
  const ticksDuringCompute = async (model: TextModel): Promise<number> => {
    let ticks = 0;
    let inFlight = false;
    const timer = setInterval(() => inFlight && ticks++, 1);
    try {
      for (let i = 0; i < PASSES; i++) {
        inFlight = true;
        await model.forward(tokens);
        inFlight = false;
      }
    } finally {
      clearInterval(timer);
    }
    return ticks;
  };
  try {
    await local.forward(tokens); // warm-up
    await remote.forward(tokens);
    const inThreadTicks = await ticksDuringCompute(local);
    const workerTicks = await ticksDuringCompute(remote);
    // In-thread, the pass runs synchronously on this thread: at most a tick that was already due
    // when it was scheduled gets in, per pass. In worker mode the timer keeps its pace.
    assert.ok(inThreadTicks <= PASSES, `in-thread: ${inThreadTicks} ticks during compute`);
    assert.ok(
      workerTicks >= 4 * PASSES,
      `worker: only ${workerTicks} ticks during compute (in-thread ${inThreadTicks})`,
    );
  } finally {
    await local.dispose();
    await remote.dispose();
    await Deno.remove(wideDir, { recursive: true });
  }
});

Deno.test("dispose ends an open stream with ModelDisposedError and later calls fail typed", async () => {
  const model = await TextModelClass.load(dir, { worker: true, workerCount: 1, intraOpThreads: 1 });
  const reader = model.generate(PROMPTS[0], params({ maxTokens: 50 })).getReader();
  assert.equal((await reader.read()).done, false);
  await model.dispose();
  await assert.rejects(reader.read(), ModelDisposedError);
  assert.throws(() => model.generate(PROMPTS[0], params()), ModelDisposedError);
  await assert.rejects(model.forward(PROMPTS[0]), ModelDisposedError);
  await assert.rejects(model.workerStats(), ModelDisposedError);
  await model.dispose(); // idempotent
});

Deno.test("dispose terminates the workers: a process that loads a worker-mode model and disposes it exits by itself", async () => {
  const textModelUrl = new URL("../../inference/text_model.ts", import.meta.url).href;
  const script = `
    const { TextModel } = await import(${JSON.stringify(textModelUrl)});
    const model = await TextModel.load(${JSON.stringify(dir)}, { worker: true, workerCount: 2 });
    console.log(model.workerCount);
    if (Deno.args[0] === "dispose") await model.dispose();
  `;
  const run = async (mode: string) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script, mode],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    // Live workers keep a process running; a hang here means dispose left a worker behind.
    const HANG_DETECTOR_MS = 30_000;
    const timer = setTimeout(() => child.kill(), HANG_DETECTOR_MS);
    const { code, stdout } = await child.output();
    clearTimeout(timer);
    return { code, out: new TextDecoder().decode(stdout).trim() };
  };
  assert.deepEqual(await run("dispose"), { code: 0, out: String(WORKERS) });
});

Deno.test("tensor models run in worker mode with bitwise the in-thread outputs and typed input errors", async () => {
  const mlpDir = await Deno.makeTempDir({ prefix: "veriflow-worker-test-" });
  await buildMlpModel({ outDir: mlpDir, seed: 2 });
  const local = await TensorModel.load(mlpDir, { intraOpThreads: 1 });
  const remote = await TensorModel.load(mlpDir, {
    worker: true,
    workerCount: 1,
    intraOpThreads: 1,
  });
  try {
    assert.deepEqual(remote.info, local.info);
    const [spec] = local.info.inputs;
    const dims = spec.shape.map((d) => (typeof d === "number" ? d : 3));
    const values = Float32Array.from(
      { length: dims.reduce((a, b) => a * b, 1) },
      (_, i) => Math.sin(i),
    );
    const input: TensorData = { type: "float32", dims, data: new Uint8Array(values.buffer) };
    const expected = await local.run({ [spec.name]: input });
    const actual = await remote.run({ [spec.name]: input });
    assert.deepEqual(actual, expected);
    assert.equal(values[1], Math.fround(Math.sin(1)), "the caller's input buffer is untouched");
    // A shape onnxruntime rejects: the error is raised in the worker, typed on this side.
    const badDims = [...dims.slice(0, -1), dims.at(-1)! + 1];
    const bad: TensorData = {
      type: "float32",
      dims: badDims,
      data: new Uint8Array(badDims.reduce((a, b) => a * b, 1) * 4),
    };
    await assert.rejects(remote.run({ [spec.name]: bad }), InvalidTensorInputError);
    await assert.rejects(local.run({ [spec.name]: bad }), InvalidTensorInputError);
  } finally {
    await local.dispose();
    await remote.dispose();
    await Deno.remove(mlpDir, { recursive: true });
  }
  await assert.rejects(remote.run({}), ModelDisposedError);
});

Deno.test("the registry loads models in worker mode when asked", async () => {
  const registry = new ModelRegistry({ worker: true, workerCount: 1, intraOpThreads: 1 });
  try {
    const { cid } = await registry.register(dir);
    const model = await registry.getText(cid);
    assert.equal(model.workerCount, 1);
    const chunks = await collect(model.generate(PROMPTS[0], params({ maxTokens: 8 })));
    const expected = await collect(inThread.generate(PROMPTS[0], params({ maxTokens: 8 })));
    assert.deepEqual(chunks.map((c) => c.tokenId), expected.map((c) => c.tokenId));
  } finally {
    await registry.close();
  }
});

/** A BatchedPost that records what it posts. */
function recording() {
  const posted: (string | string[])[] = [];
  const failed: string[] = [];
  const post = new BatchedPost<string>((message) => {
    if (message === "unsendable" || (Array.isArray(message) && message.includes("unsendable"))) {
      throw new DOMException("could not be cloned", "DataCloneError");
    }
    posted.push(message);
  }, (messages) => failed.push(...messages));
  return { posted, failed, post };
}

/** Until the microtasks queued so far (and those they queue) have run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("messages posted in one turn go as one array, in order, once the turn's microtasks ran", async () => {
  const { posted, post } = recording();
  post.post("a");
  post.post("b");
  assert.deepEqual(posted, [], "nothing posted synchronously");
  await settle();
  assert.deepEqual(posted, [["a", "b"]]);
  // Posted from the reactions to promises settled together (a tick answering its generations'
  // steps, or the replies to them arriving): the same checkpoint, so one message.
  const settlers: (() => void)[] = [];
  const answered = ["c", "d", "e"].map((m) =>
    new Promise<void>((resolve) => settlers.push(resolve)).then(() => post.post(m))
  );
  for (const answer of settlers) answer();
  await Promise.all(answered);
  await settle();
  assert.deepEqual(posted, [["a", "b"], ["c", "d", "e"]]);
  post.post("f");
  await settle();
  assert.deepEqual(posted, [["a", "b"], ["c", "d", "e"], "f"], "a message alone goes as itself");
});

Deno.test("flush posts what is queued at once, so a message sent around the queue keeps its place", async () => {
  const { posted, post } = recording();
  post.post("step 1");
  post.post("step 2");
  post.flush();
  posted.push("with transfer"); // what the caller then posts directly
  post.post("step 3");
  await settle();
  assert.deepEqual(posted, [["step 1", "step 2"], "with transfer", "step 3"]);
  post.flush();
  assert.equal(posted.length, 3, "flushing an empty queue posts nothing");
});

Deno.test("discard forgets what is queued", async () => {
  const { posted, post } = recording();
  post.post("to a worker that died");
  post.discard();
  await settle();
  assert.deepEqual(posted, []);
});

Deno.test("eachMessage reads a message alone or a batch", () => {
  assert.deepEqual(eachMessage({ op: "step" }), [{ op: "step" }]);
  assert.deepEqual(eachMessage([{ op: "step" }, { op: "drop" }]), [{ op: "step" }, { op: "drop" }]);
});

Deno.test("a post that throws reaches nobody: its messages are handed back, not lost in a microtask", async () => {
  const { posted, failed, post } = recording();
  post.post("a");
  post.post("unsendable");
  await settle();
  assert.deepEqual(posted, []);
  assert.deepEqual(failed, ["a", "unsendable"]);
  post.post("b");
  await settle();
  assert.deepEqual(posted, ["b"], "later posts go on");
});

Deno.test("a message with buffers to transfer goes at once, alone, after what is queued", () => {
  const posted: [string | string[], Transferable[] | undefined][] = [];
  const post = new BatchedPost<string>((m, t) => posted.push([m, t]), () => {});
  post.post("step 1");
  post.post("step 2");
  const buffer = new ArrayBuffer(8);
  post.post("forward", [buffer]);
  assert.deepEqual(posted, [[["step 1", "step 2"], undefined], ["forward", [buffer]]]);
});
