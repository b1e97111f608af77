/**
 * The InferenceActor (`actors/inference_actor.ts`): jobs run, streamed, teed to the prover, queued,
 * cancelled and refused with typed errors; a model that cannot be loaded refuses its jobs without
 * crashing the actor; and cancel storms from a client that goes away.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceActorOptions,
  type InferenceMessage,
  type InferenceStats,
  type ModelSource,
  type OneShotModel,
  submitJob,
  type SubmitReply,
  type TextJobHandle,
  TooManyJobsError,
} from "../../actors/inference_actor.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { GENERATION_LIMITS, jobId, type TensorData, type TextJob } from "../../protocols/job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import {
  eventually,
  loadTinyModel,
  params,
  ScriptedModel,
  scriptedText,
  StaticModels,
} from "../server/_fixtures.ts";
import { join } from "node:path";
import { ModelLoadError } from "../../inference/errors.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";

let nonce = 0;
function textJob(model: string, prompt: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt, params: params({ maxTokens }), nonce: `n${++nonce}` };
}

async function readAll(handle: TextJobHandle): Promise<string> {
  let text = "";
  for await (const chunk of handle.tokens) text += chunk.text;
  return text;
}

async function withActor(
  options: Omit<InferenceActorOptions, "models"> & { models: (ScriptedModel | OneShotModel)[] },
  body: (ref: ActorRef<InferenceMessage>, system: ActorSystem) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "inference-test" });
  const models = new StaticModels(options.models);
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ ...options, models }),
  });
  try {
    await body(ref, system);
  } finally {
    for (const model of options.models) if (model instanceof ScriptedModel) model.release(1e6);
    await system.shutdown();
  }
}

const stats = (ref: ActorRef<InferenceMessage>) => ref.ask<InferenceStats>({ type: "stats" });

Deno.test("InferenceActor runs at most `concurrency` jobs per model, queues the next ones FIFO, and refuses beyond the queue with too_many_jobs", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 1 }, async (ref) => {
    const first = await submitJob(ref, textJob(model.info.cid, "x", 2));
    const second = await submitJob(ref, textJob(model.info.cid, "y", 2));
    const error = await assertRejects(
      () => submitJob(ref, textJob(model.info.cid, "z", 2)),
      TooManyJobsError,
    );
    assertEquals(error.code, "too_many_jobs");
    assertEquals(
      { ...(await stats(ref)) },
      {
        jobsStarted: 1,
        jobsFinished: 0,
        jobsCancelled: 0,
        jobsFailed: 0,
        jobsRejected: 1,
        tokensGenerated: 0,
        activeJobs: 1,
        queuedJobs: 1,
        slots: 1,
        unreadTokenBytes: 0,
        unreadTokenEvictions: 0,
      },
    );
    // The queued job must not compute before the running one ends.
    const firstText = readAll(first);
    const secondText = readAll(second);
    model.release(2);
    assertEquals(await firstText, "ab");
    await eventually(async () => (await stats(ref)).activeJobs === 1 && model.waiting === 1);
    assertEquals((await stats(ref)).queuedJobs, 0);
    model.release(2);
    assertEquals(await secondText, "ab");
    const after = await stats(ref);
    assertEquals([after.jobsFinished, after.tokensGenerated, after.activeJobs], [2, 4, 0]);
  });
});

Deno.test("InferenceActor: cancelling the requester's stream stops compute within one step and frees the slot", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 4 }, async (ref) => {
    const handle = await submitJob(ref, textJob(model.info.cid, "x", 50));
    const reader = handle.tokens.getReader();
    model.release(3);
    for (let i = 0; i < 3; i++) assert(!(await reader.read()).done);
    await reader.cancel();
    model.release(100);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "cancelled");
    assertEquals(summary.usage.completionTokens, 3);
    // At most one step beyond what the requester read.
    await new Promise((r) => setTimeout(r, 20));
    assert(model.steps <= 4, `model computed ${model.steps} steps after cancel at 3`);
    await eventually(async () => (await stats(ref)).jobsCancelled === 1);
    // The slot is free: the next job runs to its end.
    const next = await submitJob(ref, textJob(model.info.cid, "y", 3));
    assertEquals(await readAll(next), "abc");
  });
});

Deno.test("InferenceActor: a job cancelled while queued never computes and never takes a slot", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 4 }, async (ref) => {
    const running = await submitJob(ref, textJob(model.info.cid, "x", 2));
    const abort = new AbortController();
    const queued = await submitJob(ref, textJob(model.info.cid, "y", 2), { signal: abort.signal });
    abort.abort();
    assertEquals((await queued.done).finishReason, "cancelled");
    await assertRejects(() => readAll(queued));
    await eventually(async () => (await stats(ref)).queuedJobs === 0);
    model.release(2);
    assertEquals(await readAll(running), "ab");
    assertEquals(model.steps, 2);
    const s = await stats(ref);
    assertEquals([s.jobsStarted, s.jobsFinished, s.jobsCancelled, s.activeJobs], [1, 1, 1, 0]);
  });
});

Deno.test("InferenceActor tells each queued job its place as the queue moves: a slot freed, a job ahead cancelled, and 0 when it gets a slot", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 8 }, async (ref) => {
    const places: Record<string, number[]> = { a: [], b: [], c: [], d: [] };
    const submit = (name: string, signal?: AbortSignal) =>
      submitJob(ref, textJob(model.info.cid, name, 1), {
        signal,
        onQueued: (position) => places[name].push(position),
      });
    const a = await submit("a"); // runs at once: never told a place
    const b = await submit("b");
    const abort = new AbortController();
    const c = await submit("c", abort.signal);
    const d = await submit("d");
    assertEquals(places, { a: [], b: [1], c: [2], d: [3] });
    abort.abort(); // c leaves the queue: d moves up, b does not
    assertEquals((await c.done).finishReason, "cancelled");
    await eventually(() => Promise.resolve(places.d.length === 2));
    assertEquals(places, { a: [], b: [1], c: [2], d: [3, 2] });
    const texts = [readAll(a), readAll(b), readAll(d)];
    model.release(1); // a ends: b gets the slot, d is next
    await eventually(() => Promise.resolve(places.b.length === 2));
    assertEquals(places, { a: [], b: [1, 0], c: [2], d: [3, 2, 1] });
    model.release(2);
    assertEquals(await Promise.all(texts), ["a", "a", "a"]);
    assertEquals(places.d, [3, 2, 1, 0]);
  });
});

Deno.test("InferenceActor: a queue callback that throws changes nothing for the job or the queue", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 8 }, async (ref) => {
    const running = await submitJob(ref, textJob(model.info.cid, "x", 1));
    const queued = await submitJob(ref, textJob(model.info.cid, "y", 1), {
      onQueued: () => {
        throw new Error("the submitter's bug");
      },
    });
    const texts = [readAll(running), readAll(queued)];
    model.release(2);
    assertEquals(await Promise.all(texts), ["a", "a"]);
    assertEquals((await queued.done).finishReason, "length");
  });
});

Deno.test("InferenceActor tees the model's whole chunks to the prover, plain tokens to the requester, and delivers the prover's result with the job's end", async () => {
  const model = new ScriptedModel();
  const seen: { jobId: string; tokens: number[]; evidence: boolean }[] = [];
  const prover = async (job: TextJob, id: string, chunks: ReadableStream<TokenChunk>) => {
    const tokens: number[] = [];
    let evidence = true;
    for await (const chunk of chunks) {
      tokens.push(chunk.tokenId);
      evidence &&= chunk.fingerprint !== undefined && chunk.vocabSize > 0;
    }
    seen.push({ jobId: id, tokens, evidence });
    return { signedFor: jobId(job), count: tokens.length };
  };
  await withActor({ models: [model], prover }, async (ref) => {
    const job = textJob(model.info.cid, "x", 5);
    const handle = await submitJob(ref, job);
    assertEquals(handle.jobId, jobId(job));
    const tokens = [];
    for await (const token of handle.tokens) tokens.push(token);
    // The requester's copy holds the plain fields and the token's logprob only: the evidence
    // (fingerprint, logits) stays with the prover.
    assertEquals(tokens.map((t) => Object.keys(t).sort().join()), [
      ...Array(4).fill("index,logprob,text,tokenId"),
      "finishReason,index,logprob,text,tokenId",
    ]);
    assertEquals(tokens.map((t) => t.text).join(""), "abcde");
    const summary = await handle.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(summary.receipt, { signedFor: jobId(job), count: 5 });
    assertEquals(seen, [{ jobId: jobId(job), tokens: [97, 98, 99, 100, 101], evidence: true }]);
  });
});

Deno.test("InferenceActor: a cancel message by job id cancels a queued or a running job and answers whether one existed", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 4 }, async (ref) => {
    const running = await submitJob(ref, textJob(model.info.cid, "x", 50));
    const queued = await submitJob(ref, textJob(model.info.cid, "y", 50));
    const reader = running.tokens.getReader();
    model.release(1);
    assert(!(await reader.read()).done);
    assertEquals(await ref.ask({ type: "cancel", jobId: queued.jobId }), true);
    assertEquals(await ref.ask({ type: "cancel", jobId: running.jobId }), true);
    assertEquals((await queued.done).finishReason, "cancelled");
    assertEquals((await running.done).finishReason, "cancelled");
    await assertRejects(() => reader.read());
    await eventually(async () => (await stats(ref)).jobsCancelled === 2);
    assertEquals(await ref.ask({ type: "cancel", jobId: running.jobId }), false);
    const s = await stats(ref);
    assertEquals([s.activeJobs, s.queuedJobs, s.jobsStarted], [0, 0, 1]);
  });
});

Deno.test("InferenceActor: a prover that lags does not hold back the requester's tokens", async () => {
  const model = new ScriptedModel();
  const gate = Promise.withResolvers<void>();
  let proverRead = 0;
  const prover = async (_job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) => {
    await gate.promise; // the prover is stuck until the requester has everything
    for await (const _ of chunks) proverRead++;
    return "receipt";
  };
  await withActor({ models: [model], prover }, async (ref) => {
    const handle = await submitJob(ref, textJob(model.info.cid, "x", 20));
    assertEquals(await readAll(handle), scriptedText(20));
    assertEquals(proverRead, 0);
    gate.resolve();
    const summary = await handle.done;
    assertEquals([summary.receipt, proverRead], ["receipt", 20]);
  });
});

Deno.test("InferenceActor refuses unknown models, prompts that fill the context, and bad params with typed errors", async () => {
  const model = new ScriptedModel({ contextLength: 8 });
  await withActor({ models: [model] }, async (ref) => {
    const unknown = await assertRejects(
      () => submitJob(ref, textJob("bafkreinope", "x", 2)),
      VeriflowError,
    );
    assertEquals(unknown.code, "unknown_model");
    const long = await assertRejects(
      () => submitJob(ref, textJob(model.info.cid, "12345678", 2)),
      VeriflowError,
    );
    assertEquals(long.code, "context_length_exceeded");
    const empty = await assertRejects(
      () => submitJob(ref, textJob(model.info.cid, "", 2)),
      VeriflowError,
    );
    assertEquals(empty.code, "empty_prompt");
    // Parameters are checked against GENERATION_LIMITS before the job takes a slot.
    for (
      const bad of [
        { topP: 0 },
        { maxTokens: GENERATION_LIMITS.maxTokens + 1 },
        { temperature: GENERATION_LIMITS.maxTemperature + 1 },
        { stop: Array(GENERATION_LIMITS.maxStopSequences + 1).fill("x") },
      ]
    ) {
      const job = textJob(model.info.cid, "x", 2);
      job.params = { ...job.params, ...bad };
      const refused = await assertRejects(() => submitJob(ref, job), VeriflowError);
      assertEquals(refused.code, "invalid_generation_params", JSON.stringify(bad));
    }
    // A refusal is an answer, not a crash: the actor keeps serving.
    assertEquals(await readAll(await submitJob(ref, textJob(model.info.cid, "x", 2))), "ab");
    assertEquals((await stats(ref)).jobsStarted, 1);
  });
});

Deno.test("InferenceActor runs each text job in its own temporary child actor, gone after the job", async () => {
  const model = new ScriptedModel({ gated: true });
  await withActor({ models: [model] }, async (ref, system) => {
    const handle = await submitJob(ref, textJob(model.info.cid, "x", 1));
    const runner = `inference/job-${handle.jobId.slice(0, 12)}-1`;
    assert(system.lookup(runner) !== undefined, "runner child exists while the job runs");
    model.release(1);
    await readAll(handle);
    await eventually(() => system.lookup(runner) === undefined);
  });
});

Deno.test("InferenceActor: stopping the actor system cancels running jobs", async () => {
  const model = new ScriptedModel({ gated: true });
  const system = new ActorSystem({ name: "inference-stop-test" });
  const models = new StaticModels([model]);
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models }),
  });
  const handle = await submitJob(ref, textJob(model.info.cid, "x", 100));
  const reading = readAll(handle).catch((error) => error);
  model.release(2);
  await model.stepsReached(2);
  await system.shutdown();
  model.release(1000);
  assertEquals((await handle.done).finishReason, "cancelled");
  assert((await reading) instanceof Error);
  assert(model.steps <= 3, `computed ${model.steps} steps`);
});

Deno.test("InferenceActor runs one-shot tensor jobs through the same queue", async () => {
  const doubler: OneShotModel = {
    info: { cid: "bafktensor", name: "doubler", kind: "tensor", executionProvider: "cpu" },
    run(inputs: Record<string, TensorData>) {
      const x = new Float32Array(inputs.x.data.slice().buffer);
      const y = x.map((v) => v * 2);
      return Promise.resolve({
        y: { type: "float32", dims: inputs.x.dims, data: new Uint8Array(y.buffer) },
      });
    },
  };
  await withActor({ models: [doubler] }, async (ref) => {
    const x = new Float32Array([1, 2, 3]);
    const handle = await submitJob(ref, {
      kind: "tensor",
      model: "bafktensor",
      inputs: { x: { type: "float32", dims: [3], data: new Uint8Array(x.buffer) } },
      nonce: "t1",
    });
    const outputs = await handle.outputs;
    assertEquals([...new Float32Array(outputs.y.data.slice().buffer)], [2, 4, 6]);
    await eventually(async () => (await stats(ref)).jobsFinished === 1);
  });
});

Deno.test("InferenceActor refuses a tensor job whose input name is not well-formed Unicode (it has no job id) without crashing", async () => {
  const doubler: OneShotModel = {
    info: { cid: "bafktensor", name: "doubler", kind: "tensor", executionProvider: "cpu" },
    run: (inputs: Record<string, TensorData>) => Promise.resolve(inputs),
  };
  await withActor({ models: [doubler] }, async (ref) => {
    const x = { type: "float32", dims: [1], data: new Uint8Array(4) } as TensorData;
    // Asked directly: the actor's own answer, not what submitJob makes of a crash.
    const reply = await ref.ask<SubmitReply>({
      type: "submit",
      job: { kind: "tensor", model: "bafktensor", inputs: { "\ud800": x }, nonce: "t" },
    });
    assert(!reply.accepted);
    assertEquals(reply.error.code, "ill_formed_string");
    const handle = await submitJob(ref, {
      kind: "tensor",
      model: "bafktensor",
      inputs: { x },
      nonce: "t2",
    });
    assertEquals(Object.keys(await handle.outputs), ["x"]);
  });
});

Deno.test("InferenceActor streams exactly what TextModel.generate gives for the same job (tiny model, greedy)", async () => {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name: "inference-real-test" });
  const models = new StaticModels([model]);
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models }),
  });
  try {
    const job = textJob(model.info.cid, "The quick brown fox", 40);
    let direct = "";
    const ids: number[] = [];
    for await (const chunk of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
      direct += chunk.text;
      ids.push(chunk.tokenId);
    }
    const handle = await submitJob(ref, job);
    const viaActor: number[] = [];
    let text = "";
    for await (const chunk of handle.tokens) {
      viaActor.push(chunk.tokenId);
      text += chunk.text;
    }
    assertEquals(viaActor, ids);
    assertEquals(text, direct);
    const summary = await handle.done;
    assertEquals(summary.usage.completionTokens, ids.length);
    assert(summary.timings.ttftMs >= 0 && summary.timings.totalMs >= summary.timings.ttftMs);
  } finally {
    await system.shutdown();
  }
});

Deno.test("InferenceActor with a prover runs a job id once: a finished job, or one the ledger says has a receipt, is refused with duplicate_job", async () => {
  const model = new ScriptedModel();
  const prover = async (_job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) => {
    for await (const _ of chunks);
    return "receipt";
  };
  const signedBefore = textJob(model.info.cid, "x", 2);
  const receiptSigned = (id: string) => id === jobId(signedBefore);
  await withActor({ models: [model], prover, receiptSigned }, async (ref) => {
    const job = textJob(model.info.cid, "x", 3);
    const first = await submitJob(ref, job);
    await readAll(first);
    assertEquals((await first.done).receipt, "receipt");
    // Ran here since start: remembered without asking.
    const again = await assertRejects(() => submitJob(ref, job), VeriflowError);
    assertEquals(again.code, "duplicate_job");
    assert(again.message.includes("new nonce"), again.message);
    // Signed before a restart: the ledger's word.
    const before = await assertRejects(() => submitJob(ref, signedBefore), VeriflowError);
    assertEquals(before.code, "duplicate_job");
    // A new nonce is a new job.
    const fresh = await submitJob(ref, { ...job, nonce: "another" });
    assertEquals(await readAll(fresh), "abc");
  });
});

Deno.test("InferenceActor refuses a resume a model cannot take or a prefix that leaves no room, with invalid_resume before any slot", async () => {
  const scripted = new ScriptedModel();
  await withActor({ models: [scripted] }, async (ref) => {
    const refused = await assertRejects(
      () => submitJob(ref, textJob(scripted.info.cid, "x", 4), { resume: [97] }),
      VeriflowError,
    );
    assertEquals(refused.code, "invalid_resume");
    assertEquals((await stats(ref)).jobsStarted, 0);
  });
  const tiny = await loadTinyModel();
  const system = new ActorSystem({ name: "inference-resume-test" });
  try {
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new StaticModels([tiny]) }),
    });
    const full = await assertRejects(
      () => submitJob(ref, textJob(tiny.info.cid, "x", 2), { resume: [97, 98] }),
      VeriflowError,
    );
    assertEquals(full.code, "invalid_resume");
  } finally {
    await system.shutdown();
  }
});

Deno.test("InferenceActor resuming a job hands the prover every position and the requester only those after the prefix; a prefix it cannot reproduce fails the job unsigned", async () => {
  const tiny = await loadTinyModel();
  const proved: number[][] = [];
  const prover = async (_job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) => {
    const indices: number[] = [];
    for await (const c of chunks) indices.push(c.index);
    proved.push(indices);
    return { signed: indices.length };
  };
  const system = new ActorSystem({ name: "inference-resume-test" });
  try {
    const ref = await system.spawn<InferenceMessage>({
      name: "inference",
      factory: () => new InferenceActor({ models: new StaticModels([tiny]), prover }),
    });
    const job = textJob(tiny.info.cid, "Resume me", 8);
    const whole: number[] = [];
    for await (const c of tiny.generate(tiny.tokenizer.encode(job.prompt), job.params)) {
      whole.push(c.tokenId);
    }
    const handle = await submitJob(ref, job, { resume: whole.slice(0, 3) });
    const got = [];
    for await (const t of handle.tokens) got.push([t.index, t.tokenId]);
    assertEquals(got, whole.slice(3).map((id, i) => [i + 3, id]));
    const summary = await handle.done;
    assertEquals(summary.receipt, { signed: 8 });
    assertEquals(summary.usage.completionTokens, 5);
    assertEquals(proved, [[0, 1, 2, 3, 4, 5, 6, 7]]);

    const bad = textJob(tiny.info.cid, "Resume me", 8);
    const wrong = [...whole.slice(0, 3)];
    wrong[1] = (wrong[1] + 1) % 256;
    const failed = await submitJob(ref, bad, { resume: wrong });
    await assertRejects(async () => {
      for await (const _ of failed.tokens) { /* nothing arrives */ }
    });
    const failure = await failed.done;
    assertEquals([failure.finishReason, failure.error?.code], ["error", "resume_mismatch"]);
    assertEquals(failure.receipt, undefined);
  } finally {
    await system.shutdown();
  }
});

Deno.test("InferenceActor runs as many jobs as a batching model seats, beyond `concurrency`", async () => {
  class BatchingModel extends ScriptedModel {
    readonly batchCapacity = 3;
  }
  const model = new BatchingModel({ gated: true });
  await withActor({ models: [model], concurrency: 1, queueLimit: 4 }, async (ref) => {
    const handles = [];
    for (const prompt of ["a", "b", "c", "d"]) {
      handles.push(await submitJob(ref, textJob(model.info.cid, prompt, 1)));
    }
    const now = await stats(ref);
    assertEquals([now.activeJobs, now.queuedJobs], [3, 1], "three seats, one waiting");
    const texts = handles.map(readAll);
    model.release(4);
    assertEquals((await Promise.all(texts)).length, 4);
  });
});

Deno.test("InferenceActor runs no more jobs than a model seats, below `concurrency`: the rest wait in the queue, told their place", async () => {
  // A model that cannot batch seats one sequence per worker: a job started beyond its seats would
  // have its prompt read and its first token sent, then stand still for another job's whole
  // generation (`inference/_batch_decoder.ts` keeps a seat with the sequence holding it).
  class OneSeatModel extends ScriptedModel {
    readonly batchCapacity = 1;
  }
  const model = new OneSeatModel({ gated: true });
  await withActor({ models: [model], concurrency: 4, queueLimit: 4 }, async (ref) => {
    const handles = [];
    const places: number[][] = [];
    for (const prompt of ["a", "b", "c"]) {
      const told: number[] = [];
      places.push(told);
      handles.push(
        await submitJob(ref, textJob(model.info.cid, prompt, 1), { onQueued: (p) => told.push(p) }),
      );
    }
    const now = await stats(ref);
    assertEquals([now.activeJobs, now.queuedJobs], [1, 2], "one seat, two waiting");
    assertEquals(places.map((told) => told[0]), [undefined, 1, 2]);
    const texts = handles.map(readAll);
    model.release(3);
    assertEquals((await Promise.all(texts)).length, 3);
  });
});

// -------------------------------------------------------------------------------------------------
// A model that cannot be loaded refuses the jobs asking for it, whatever the error its source
// raises: a bad model file is the operator's input, not a bug of the InferenceActor, so it must
// not crash the actor — whose stop cancels every running job, on every model.

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

function smallJob(model: string, maxTokens: number): TextJob {
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
      const running = await submitJob(ref, smallJob(model.info.cid, 3));
      const reader = running.tokens.getReader();
      model.release(1);
      assertEquals((await reader.read()).value?.text, "a");

      let refusal: unknown;
      await submitJob(ref, smallJob(BROKEN, 3)).catch((e) => refusal = e);
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
      const next = await submitJob(ref, smallJob(model.info.cid, 1));
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
    await submitJob(ref, smallJob(cid, 3)).catch((e) => refusal = e);
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

// -------------------------------------------------------------------------------------------------
// Cancel storms on the InferenceActor: a client that goes away cancels its running and its
// queued jobs in the same turn (a WebSocket's close, `StreamSession`'s `cancelAll`, in the order
// it started them). The running job's end frees its slot before the queued jobs' ends have been
// read from the mailbox: a queued job that has already ended must not be given the slot (a runner
// spawned for nothing, `jobs_started_total` counting it), the next live one must.

Deno.test("InferenceActor: a running and a queued job cancelled in the same turn, running first, leave the queued ones unstarted (no slot, not counted started) and the next job runs at once", async () => {
  const model = new ScriptedModel({ gated: true });
  const system = new ActorSystem({ name: "cancel-storm" });
  const ref = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () =>
      new InferenceActor({ models: new StaticModels([model]), concurrency: 1, queueLimit: 8 }),
  });
  try {
    const running = await submitJob(ref, smallJob(model.info.cid, 2));
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await submitJob(ref, smallJob(model.info.cid, 2)));
    const stats = () => ref.ask<InferenceStats>({ type: "stats" });
    assertEquals([(await stats()).activeJobs, (await stats()).queuedJobs], [1, 3]);

    // The client goes away: every job of it cancelled in one turn, in the order it started them.
    running.cancel();
    for (const handle of queued) handle.cancel();
    for (const handle of [running, ...queued]) {
      assertEquals((await handle.done).finishReason, "cancelled");
    }
    const honest = await submitJob(ref, smallJob(model.info.cid, 2));
    model.release(2);
    let text = "";
    for await (const token of honest.tokens) text += token.text;
    assertEquals(text, "ab");
    assertEquals((await honest.done).finishReason, "length");
    const s = await stats();
    assertEquals(
      {
        started: s.jobsStarted,
        cancelled: s.jobsCancelled,
        finished: s.jobsFinished,
        active: s.activeJobs,
        queued: s.queuedJobs,
      },
      { started: 2, cancelled: 4, finished: 1, active: 0, queued: 0 },
      "only the first job and the honest one got a slot",
    );
  } finally {
    model.release(1e6);
    await system.shutdown();
  }
});
