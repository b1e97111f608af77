/**
 * The local inference port (`inference/local_port.ts`) and a job's place in the queue
 * (`inference/queue_position.ts`).
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceActorOptions,
  type InferenceMessage,
  type ModelSource,
  TooManyJobsError,
} from "../../actors/inference_actor.ts";
import type { InferenceHandle, JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { InvalidGenerationParamsError } from "../../inference/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  eventually,
  loadTinyModel,
  params,
  SCRIPTED_LOGPROB,
  ScriptedModel,
  StaticModels,
} from "../server/_fixtures.ts";
import { stoppedClockProver } from "./_fixtures.ts";
import { QueuePosition, readOrQueued } from "../../inference/queue_position.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

let nonce = 0;

function textJob(model: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `p${++nonce}` };
}

async function withPort(
  models: ModelSource & { list(): GenerativeModel["info"][] },
  options: Omit<InferenceActorOptions, "models">,
  body: (port: LocalInferencePort) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name: "local-port-test" });
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ ...options, models }),
  });
  try {
    await body(new LocalInferencePort({ inference, models }));
  } finally {
    await system.shutdown();
  }
}

async function readTokens(handle: InferenceHandle): Promise<Record<string, unknown>[]> {
  const tokens: Record<string, unknown>[] = [];
  for await (const token of handle.tokens) tokens.push({ ...token });
  return tokens;
}

Deno.test("LocalInferencePort hands back plain data: tokens without the model's fingerprint or logits, model info without engine fields", async () => {
  const scripted = new ScriptedModel();
  // An engine's info carries more than a port may hand out.
  const info = { ...scripted.info, weightsPath: "/var/models/secret.onnx" };
  const model: GenerativeModel = {
    info,
    tokenizer: scripted.tokenizer,
    generate: (ids, p, o) => scripted.generate(ids, p, o),
  };
  await withPort(new StaticModels([model]), {}, async (port) => {
    const handle = await port.submit(textJob(info.cid, 3));
    assertEquals(handle.model, {
      cid: info.cid,
      name: info.name,
      kind: "text",
      contextLength: info.contextLength,
      executionProvider: "cpu",
    });
    assertEquals(handle.promptTokens, 1);
    assertEquals(await readTokens(handle), [
      { index: 0, tokenId: 97, text: "a", logprob: SCRIPTED_LOGPROB },
      { index: 1, tokenId: 98, text: "b", logprob: SCRIPTED_LOGPROB },
      { index: 2, tokenId: 99, text: "c", logprob: SCRIPTED_LOGPROB, finishReason: "length" },
    ]);
    assertEquals((await handle.done).finishReason, "length");
    const listed = await port.models();
    assertEquals(listed, [handle.model]);
  });
});

Deno.test("LocalInferencePort: aborting the submit signal cancels a running job within one step and frees its slot", async () => {
  const model = new ScriptedModel({ gated: true });
  await withPort(new StaticModels([model]), { concurrency: 1 }, async (port) => {
    const abort = new AbortController();
    const handle = await port.submit(textJob(model.info.cid, 50), { signal: abort.signal });
    const reader = handle.tokens.getReader();
    model.release(2);
    for (let i = 0; i < 2; i++) assert(!(await reader.read()).done);
    abort.abort();
    model.release(100);
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.usage.completionTokens], ["cancelled", 2]);
    await new Promise((r) => setTimeout(r, 20));
    assert(model.steps <= 3, `model computed ${model.steps} steps after cancel at 2`);
    await eventually(async () => (await port.stats()).jobsCancelled === 1);
    const next = await port.submit(textJob(model.info.cid, 2));
    assertEquals((await readTokens(next)).length, 2);
  });
});

Deno.test("LocalInferencePort: a signal aborted while the actor is still answering cancels the job once it is accepted; it never computes", async () => {
  const model = new ScriptedModel();
  const loaded = Promise.withResolvers<void>();
  const slowLoad = new StaticModels([model]);
  const models = {
    get: async (cid: string) => {
      await loaded.promise; // a model load in progress
      return slowLoad.get(cid);
    },
    list: () => slowLoad.list(),
  };
  await withPort(models, {}, async (port) => {
    const abort = new AbortController();
    const submitted = port.submit(textJob(model.info.cid, 5), { signal: abort.signal });
    abort.abort();
    await assertRejects(() => submitted);
    loaded.resolve();
    await eventually(async () => (await port.stats()).jobsCancelled === 1, "job cancelled");
    const stats = await port.stats();
    assertEquals([stats.activeJobs, stats.queuedJobs, stats.jobsFinished], [0, 0, 0]);
    assertEquals(model.steps, 0);
  });
});

Deno.test("LocalInferencePort passes the actor's typed refusals through and reports its stats", async () => {
  const model = new ScriptedModel({ gated: true });
  await withPort(new StaticModels([model]), { concurrency: 1, queueLimit: 0 }, async (port) => {
    const running = await port.submit(textJob(model.info.cid, 1));
    const refused = await assertRejects(
      () => port.submit(textJob(model.info.cid, 1)),
      TooManyJobsError,
    );
    assertEquals(refused.code, "too_many_jobs");
    const unknown = await assertRejects(() => port.submit(textJob("bafkreinope", 1)));
    assertEquals((unknown as { code?: string }).code, "unknown_model");
    const stats = await port.stats();
    assertEquals([stats.activeJobs, stats.jobsRejected], [1, 1]);
    running.cancel();
    assertEquals((await running.done).finishReason, "cancelled");
  });
});

Deno.test("LocalInferencePort with topLogprobs: each token lists k top tokens, the greedy one first with its logprob; the job's id, tokens and receipt are those of the job without", async () => {
  const model = await loadTinyModel();
  const models = new StaticModels([model]);
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "Once upon a time",
    params: params({ maxTokens: 12 }),
    nonce: "one job, asked two ways",
  };
  const prover = stoppedClockProver(Identity.generate());
  const run = async (topLogprobs?: number) => {
    const tokens: StreamedToken[] = [];
    let summary: JobSummary | undefined;
    // A worker with a prover runs a job id once: each run gets its own actor.
    await withPort(models, { prover }, async (port) => {
      const handle = await port.submit(job, { topLogprobs });
      for await (const token of handle.tokens) tokens.push(token);
      summary = await handle.done;
    });
    return { tokens, summary: summary! };
  };
  const K = 4;
  const plain = await run();
  const withTop = await run(K);
  assert(plain.summary.receipt !== undefined, JSON.stringify(plain.summary.error));
  assertEquals(withTop.summary.receipt, plain.summary.receipt);
  assertEquals(withTop.summary.jobId, plain.summary.jobId);
  assertEquals(withTop.tokens.map(({ topLogprobs: _, ...rest }) => rest), plain.tokens);
  assert(plain.tokens.every((token) => token.topLogprobs === undefined), "none unless asked");
  for (const token of withTop.tokens) {
    const top = token.topLogprobs!;
    assertEquals(top.length, K);
    assertEquals([top[0].tokenId, top[0].logprob], [token.tokenId, token.logprob]);
    top.forEach((entry, j) => {
      assert(entry.logprob <= 0 && (j === 0 || entry.logprob <= top[j - 1].logprob));
    });
  }
  await withPort(models, {}, async (port) => {
    const refused = await assertRejects(() => port.submit(job, { topLogprobs: 21 }));
    assertEquals((refused as { code?: string }).code, "invalid_generation_params");
  });
});

Deno.test("LocalInferencePort refuses a job the wire would refuse (a requester that is not 64 hex digits) with invalid_generation_params; it never runs", async () => {
  const model = new ScriptedModel();
  await withPort(new StaticModels([model]), {}, async (port) => {
    const job = { ...textJob(model.info.cid, 2), requester: "zz" };
    const refusal = await assertRejects(() => port.submit(job), InvalidGenerationParamsError);
    assertEquals(refusal.code, "invalid_generation_params");
    assert(refusal.message.startsWith("requester"), refusal.message);
    assertEquals(model.steps, 0);
    assertEquals((await port.stats()).jobsStarted, 0);
  });
});

Deno.test("LocalInferencePort: a job nobody reads waits (tokens are pull-driven), and cancel() resolves done with cancelled", async () => {
  const model = new ScriptedModel();
  await withPort(new StaticModels([model]), {}, async (port) => {
    const handle = await port.submit(textJob(model.info.cid, 8));
    handle.cancel();
    assertEquals((await handle.done).finishReason, "cancelled");
  });
});

/** Whether `promise` has settled after the pending microtasks ran, and with what. */
async function peek<T>(promise: Promise<T>): Promise<{ value?: T; settled: boolean }> {
  let out: { value?: T; settled: boolean } = { settled: false };
  promise.then((value) => out = { value, settled: true });
  await new Promise((resolve) => setTimeout(resolve, 0));
  return out;
}

Deno.test("QueuePosition reports a place at once, then each change, never the same place twice without a repeat", async () => {
  const queue = new QueuePosition();
  const before = queue.next();
  assertEquals((await peek(before)).settled, false, "nothing before the port says anything");
  queue.update(3);
  assertEquals(await before, 3);
  const unchanged = queue.next();
  queue.update(3);
  assertEquals((await peek(unchanged)).settled, false, "no repeat without repeatMs");
  queue.update(2); // a waiting reader gets the change at once
  assertEquals(await unchanged, 2);
  queue.update(1);
  queue.update(1); // moves made before the reader looks again: the latest is news, once
  assertEquals(await queue.next(), 1);
  queue.update(0); // a slot: nothing more to say
  const after = queue.next();
  assertEquals((await peek(after)).settled, false);
  queue.close();
  queue.update(5);
  assertEquals((await peek(after)).settled, false, "closed: silent for ever");
});

Deno.test("QueuePosition repeats an unchanged place every repeatMs on its clock, and stops when the job leaves the queue", async () => {
  const timers = new ManualTimers();
  const queue = new QueuePosition({ repeatMs: 10_000, timers });
  queue.update(2);
  assertEquals(await queue.next(), 2);
  const repeat = queue.next();
  await timers.advance(9_999);
  assertEquals((await peek(repeat)).settled, false, "not before repeatMs");
  await timers.advance(1);
  assertEquals(await repeat, 2, "the same place again");
  const moved = queue.next();
  await timers.advance(4_000);
  queue.update(1); // a change comes at once, not at the repeat
  assertEquals(await moved, 1);
  const last = queue.next();
  queue.update(0);
  assertEquals(timers.pending, 0, "no timer left once the job has a slot");
  await timers.advance(60_000);
  assertEquals((await peek(last)).settled, false);
});

Deno.test("QueuePosition ignores places that are not counts, and a closed one arms no timer", async () => {
  const timers = new ManualTimers();
  const queue = new QueuePosition({ repeatMs: 1_000, timers });
  for (const bad of [-1, 1.5, NaN, Infinity]) queue.update(bad);
  const next = queue.next();
  assertEquals((await peek(next)).settled, false);
  queue.update(4);
  assertEquals(await next, 4);
  queue.close();
  void queue.next();
  assertEquals(timers.pending, 0);
});

Deno.test("readOrQueued gives the read when it comes first, else the place, and the same read goes on behind it", async () => {
  const queue = new QueuePosition();
  const read = Promise.withResolvers<string>();
  queue.update(1);
  assertEquals(await readOrQueued(read.promise, queue), { position: 1 });
  read.resolve("token");
  assertEquals(await readOrQueued(read.promise, queue), { read: "token" });
  assertEquals(await readOrQueued(Promise.resolve("alone"), undefined), { read: "alone" });
});
