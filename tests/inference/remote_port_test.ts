/**
 * The remote port (`inference/remote_port.ts`) and serving jobs to peers
 * (`inference/serve_inference.ts`): jobs over a connection, their errors and receipts, and the log
 * line a worker writes for each job it served.
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceActorOptions,
  type InferenceMessage,
} from "../../actors/inference_actor.ts";
import type {
  InferenceHandle,
  InferencePort,
  JobSummary,
  StreamedToken,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import {
  DEFAULT_TOKENS_PER_EVENT,
  MAX_TOKENS_IN_FLIGHT,
  RemoteInferencePort,
  type RemoteInferencePortOptions,
  submitWindow,
} from "../../inference/remote_port.ts";
import { ResumeUnsupportedError } from "../../inference/remote_errors.ts";
import { serveInference, type ServeInferenceOptions } from "../../inference/serve_inference.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Identity, verifySignature } from "../../protocols/identity.ts";
import { jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { InvalidGenerationParamsError, ModelWorkerError } from "../../inference/errors.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import {
  INFERENCE_PROTOCOL,
  type InferenceEvent,
  InferenceEventMessage,
  SubmitMessage,
} from "../../protocols/inference_messages.ts";
import {
  streamChainOver,
  StreamSigner,
  streamSigningBytes,
} from "../../protocols/stream_commitment.ts";
import {
  eventually,
  loadTinyModel,
  params,
  ScriptedModel,
  StaticModels,
} from "../server/_fixtures.ts";
import { stoppedClockProver } from "./_fixtures.ts";
import strictAssert from "node:assert/strict";
import { toHex } from "../../protocols/hash.ts";
import { job, TwoTokenWorker } from "../network/_router_fixture.ts";

let nonce = 0;

function textJob(model: string, maxTokens: number): TextJob {
  return { kind: "text", model, prompt: "x", params: params({ maxTokens }), nonce: `r${++nonce}` };
}

/** A worker (InferenceActor behind serveInference) and a remote port to it, in memory. */
async function withRemote(
  model: GenerativeModel,
  body: (
    remote: RemoteInferencePort,
    worker: Connection,
    local: LocalInferencePort,
  ) => Promise<void>,
  options: Omit<InferenceActorOptions, "models"> = {},
  serve: ServeInferenceOptions = {},
): Promise<void> {
  const system = new ActorSystem({ name: "remote-port-test" });
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "inference",
    factory: () => new InferenceActor({ models, ...options }),
  });
  const local = new LocalInferencePort({ inference, models });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(worker, local, serve);
  try {
    await body(new RemoteInferencePort(client), worker, local);
  } finally {
    await client.close();
    await worker.close();
    await system.shutdown();
  }
}

Deno.test("a remote job streams the same tokens and summary as the local port, and the model list crosses", async () => {
  const model = new ScriptedModel();
  await withRemote(model, async (remote, _worker, local) => {
    const models = await remote.models();
    assertEquals(models.map((m) => m.cid), [model.info.cid]);
    const viaWire = await remote.submit(textJob(model.info.cid, 5));
    const wireTokens = [];
    for await (const t of viaWire.tokens) wireTokens.push(t);
    const direct = await local.submit(textJob(model.info.cid, 5));
    const directTokens = [];
    for await (const t of direct.tokens) directTokens.push(t);
    assertEquals(wireTokens, directTokens);
    const summary = await viaWire.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(summary.usage.completionTokens, 5);
    assertEquals(summary.jobId, viaWire.jobId);
    assertEquals(viaWire.model.cid, model.info.cid);
    assertEquals((await remote.stats()).jobsFinished, 1);
  });
});

Deno.test("cancelling the remote token stream stops the job on the worker within its window", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote, _worker, local) => {
    const handle = await remote.submit(textJob(model.info.cid, 2000));
    const reader = handle.tokens.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel();
    assertEquals((await handle.done).finishReason, "cancelled");
    await eventually(async () => (await local.stats()).jobsCancelled === 1, "the worker's cancel");
    // The worker computed what the stream's credit window let it run ahead, no more: 16
    // events in flight (the connection's default window), each of at most the port's 8 tokens
    // per event, and the 8 it reads ahead of the wire (`docs/PROTOCOL.md`, "Tokens per event").
    // How many tokens each event carries depends on timing; this bound does not.
    assert(model.steps <= 2 + (16 + 1) * 8, `the worker went on: ${model.steps} steps`);
  });
});

Deno.test("aborting the submit's signal ends the remote job cancelled, whether or not the client reads on, and stops it on the worker", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote, _worker, local) => {
    const abort = new AbortController();
    const handle = await remote.submit(textJob(model.info.cid, 2000), { signal: abort.signal });
    const reader = handle.tokens.getReader();
    await reader.read();
    abort.abort();
    // Not read any further: `done` must not wait for the client to drain the stream.
    assertEquals((await handle.done).finishReason, "cancelled");
    await eventually(async () => (await local.stats()).jobsCancelled === 1, "the worker's cancel");
  });
});

Deno.test("a refusal on the worker rejects the remote submit with the worker's code", async () => {
  const model = new ScriptedModel({ gated: true });
  await withRemote(model, async (remote) => {
    const running = await remote.submit(textJob(model.info.cid, 3));
    const refused = await remote.submit(textJob(model.info.cid, 3)).catch((e) => e);
    assertEquals((refused as { code: string }).code, "too_many_jobs");
    await assertRejects(() => remote.submit(textJob("bafkreinothere", 3)));
    running.cancel();
  }, { concurrency: 1, queueLimit: 0 });
});

Deno.test("a worker that goes away mid-stream fails the remote tokens with a typed error and done says error", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote, worker) => {
    const handle = await remote.submit(textJob(model.info.cid, 2000));
    const reader = handle.tokens.getReader();
    await reader.read();
    await worker.close();
    const failure = await (async () => {
      for (;;) if ((await reader.read()).done) return undefined;
    })().catch((e) => e);
    assertEquals((failure as { code: string }).code, "connection_closed");
    const summary = await handle.done;
    assertEquals(summary.finishReason, "error");
    assertEquals(summary.error?.code, "connection_closed");
  });
});

Deno.test("a requester that stops reading loses its job after the stall time, and one peer cannot take every slot", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(
    model,
    async (remote, _worker, local) => {
      const idle = await remote.submit(textJob(model.info.cid, 2000));
      // Never read: the worker sends its credit window's worth (MAX_TOKENS_IN_FLIGHT: a fast
      // model's tokens are gathered into full events), reads 8 ahead, then waits for credit.
      await eventually(async () => (await local.stats()).jobsCancelled === 1, "the stalled job");
      const bound = MAX_TOKENS_IN_FLIGHT + DEFAULT_TOKENS_PER_EVENT;
      assert(model.steps <= bound, `the worker went on: ${model.steps} steps`);
      assertEquals(submitWindow(DEFAULT_TOKENS_PER_EVENT), 8);
      assertEquals(submitWindow(1), 16);
      idle.cancel();
      const first = await remote.submit(textJob(model.info.cid, 3));
      const refused = await remote.submit(textJob(model.info.cid, 3)).catch((e) => e);
      assertEquals((refused as { code: string }).code, "too_many_jobs");
      for await (const _ of first.tokens) { /* drain */ }
      await first.done;
      // Its slot is back once it ended.
      const again = await remote.submit(textJob(model.info.cid, 3));
      for await (const _ of again.tokens) { /* drain */ }
      assertEquals((await again.done).finishReason, "length");
    },
    { concurrency: 4 },
    { readerStallMs: 50, maxJobs: 1 },
  );
});

Deno.test("a requester that never grants credit loses its job after the stall time, and the worker ends its exchange", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(
    model,
    async (remote, worker, local) => {
      // The request alone, with no credit behind it: what a hostile or buggy peer can send.
      await remote.connection.notify(
        SubmitMessage as never,
        { job: textJob(model.info.cid, 2000) } as never,
      );
      await eventually(async () => (await local.stats()).jobsCancelled === 1, "the stalled job");
      await eventually(() => worker.stats().inboundRequests === 0, "the exchange to end");
      // The peer's slot is free again.
      const next = await remote.submit(textJob(model.info.cid, 3));
      for await (const _ of next.tokens) { /* drain */ }
      assertEquals((await next.done).finishReason, "length");
    },
    { concurrency: 4 },
    { readerStallMs: 50, maxJobs: 1 },
  );
});

Deno.test("a relayed job with topLogprobs carries each token's top list across the wire, the greedy token first; its tokens and receipt are those of the job without", async () => {
  const model = await loadTinyModel();
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "Once upon a time",
    params: params({ maxTokens: 10 }),
    nonce: "relayed, asked two ways",
  };
  const prover = stoppedClockProver(Identity.generate());
  const K = 3;
  const run = async (via: "wire" | "local", topLogprobs?: number) => {
    const tokens: StreamedToken[] = [];
    let summary: JobSummary | undefined;
    // A worker with a prover runs a job id once: each run gets its own.
    await withRemote(model, async (remote, _worker, local) => {
      const handle = await (via === "wire" ? remote : local).submit(job, { topLogprobs });
      for await (const token of handle.tokens) tokens.push(token);
      summary = await handle.done;
    }, { prover });
    return { tokens, summary: summary! };
  };
  const plain = await run("wire");
  const relayed = await run("wire", K);
  const local = await run("local", K);
  assert(plain.summary.receipt !== undefined, JSON.stringify(plain.summary.error));
  assertEquals(relayed.summary.receipt, plain.summary.receipt);
  assertEquals(relayed.tokens.map(({ topLogprobs: _, ...rest }) => rest), plain.tokens);
  assert(plain.tokens.every((token) => token.topLogprobs === undefined), "none unless asked");
  // Over the wire exactly what the worker's port gave, number for number.
  assertEquals(relayed.tokens, local.tokens);
  for (const token of relayed.tokens) {
    const top = token.topLogprobs!;
    assertEquals(top.length, K);
    assertEquals([top[0].tokenId, top[0].logprob], [token.tokenId, token.logprob]);
    top.forEach((entry, j) => {
      assert(entry.logprob <= 0 && (j === 0 || entry.logprob <= top[j - 1].logprob));
      assertEquals(entry.text, model.tokenizer.decode([entry.tokenId]));
    });
  }
});

Deno.test("the wire bounds topLogprobs to 0–20 on a submission and to 20 entries on a token event; a worker refuses a submission over it", async () => {
  const job: TextJob = textJob("bafkscriptedscripted", 2);
  assert(SubmitMessage.schema.safeParse({ job, topLogprobs: 20 }).success);
  assert(!SubmitMessage.schema.safeParse({ job, topLogprobs: 21 }).success);
  assert(!SubmitMessage.schema.safeParse({ job, topLogprobs: -1 }).success);
  const top = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ tokenId: i, text: "a", logprob: -1 }));
  const event = (n: number) => ({ kind: "token", index: 0, tokenId: 0, text: "a", top: top(n) });
  assert(InferenceEventMessage.schema.safeParse(event(20)).success);
  assert(!InferenceEventMessage.schema.safeParse(event(21)).success);
  const model = new ScriptedModel();
  await withRemote(model, async (remote) => {
    await assertRejects(() => remote.submit(textJob(model.info.cid, 2), { topLogprobs: 21 }));
    assertEquals(model.steps, 0);
  });
});

Deno.test("a resumed submission to a worker that does not confirm it (one that predates resuming) is refused before any token", async () => {
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  let cancelled = false;
  // What an older worker does: its schema dropped `resume`, so it starts over from 0.
  worker.handle(SubmitMessage, (body) => {
    let started = false;
    return new ReadableStream({
      pull: (controller) => {
        if (!started) {
          started = true;
          controller.enqueue({
            kind: "start",
            jobId: "00".repeat(32),
            model: { cid: body.job.model, name: "old", kind: "text" },
            promptTokens: 1,
          });
          return;
        }
        controller.enqueue({ kind: "token", index: 0, tokenId: 97, text: "a" });
      },
      cancel: () => {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
  });
  try {
    const remote = new RemoteInferencePort(client);
    const error = await assertRejects(
      () => remote.submit(textJob("bafkold", 8), { resume: [97, 98] }),
      ResumeUnsupportedError,
    );
    assertEquals(error.code, "resume_unsupported");
    assertEquals((await remote.stats()).jobsRejected, 1);
    // The worker's stream is cancelled (no pulls beyond the credit window already granted).
    await eventually(() => cancelled || undefined, "the old worker's stream to be cancelled");
  } finally {
    await client.close();
    await worker.close();
  }
});

Deno.test("a resumed job over the wire starts at position k and its receipt covers every position", async () => {
  const model = await loadTinyModel();
  const identity = Identity.generate();
  await withRemote(model, async (remote) => {
    const job = textJob(model.info.cid, 10);
    const whole = [];
    for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
      whole.push(c);
    }
    const handle = await remote.submit(job, { resume: whole.slice(0, 4).map((c) => c.tokenId) });
    const tokens: StreamedToken[] = [];
    for await (const t of handle.tokens) tokens.push(t);
    assertEquals(tokens.map((t) => t.index), [4, 5, 6, 7, 8, 9]);
    assertEquals(tokens.map((t) => t.tokenId), whole.slice(4).map((c) => c.tokenId));
    const summary: JobSummary = await handle.done;
    assertEquals(summary.usage.completionTokens, 6, "the tokens this worker generated");
    const receipt = summary.receipt as { tokenCount: number; outputHash: string };
    assertEquals(receipt.tokenCount, 10);
    const text = whole.map((c) => c.text).join("");
    assert(verifyReceipt(receipt, { job, output: text, worker: identity.publicKey }).ok);
  }, { prover: stoppedClockProver(identity) });
});

Deno.test("the wire bounds a resume by maxTokens' limit and confirms it as a non-negative position", () => {
  const job = textJob("bafk", 4);
  assert(SubmitMessage.schema.safeParse({ job, resume: [1, 2] }).success);
  assert(!SubmitMessage.schema.safeParse({ job, resume: [-1] }).success);
  assert(!SubmitMessage.schema.safeParse({ job, resume: new Array(4097).fill(1) }).success);
  const start = {
    kind: "start",
    jobId: "00".repeat(32),
    model: { cid: "c", name: "n", kind: "text" },
  };
  assert(
    InferenceEventMessage.schema.safeParse({ ...start, promptTokens: 1, resumedFrom: 3 }).success,
  );
  assert(
    !InferenceEventMessage.schema.safeParse({ ...start, promptTokens: 1, resumedFrom: -1 }).success,
  );
});

const WINDOW = 4;

/** The raw events of a job submitted over `worker`'s peer, read after `pause` resolves. */
async function rawEvents(
  model: ScriptedModel,
  tokensPerEvent: number | undefined,
  maxTokens: number,
  pause: (model: ScriptedModel) => Promise<void>,
) {
  const events: { kind: string; indexes: number[] }[] = [];
  await withRemote(model, async (remote) => {
    const body = {
      job: textJob(model.info.cid, maxTokens),
      ...(tokensPerEvent ? { tokensPerEvent } : {}),
    };
    // A window of 4 events: a requester that does not read lets 4 go out (the start and 3
    // tokens), then the worker can only read ahead (tokensPerEvent more when it batches).
    const stream = remote.connection.openStream(SubmitMessage, body, { window: WINDOW });
    const reader = stream.getReader();
    const first = await reader.read();
    assertEquals(first.value?.kind, "start");
    await pause(model);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.kind === "token") events.push({ kind: "token", indexes: [value.index] });
      else if (value.kind === "tokens") {
        events.push({ kind: "tokens", indexes: value.tokens.map((t) => t.index) });
      } else events.push({ kind: value.kind, indexes: [] });
    }
  });
  return events;
}

Deno.test("a requester that falls behind gets the tokens ready meanwhile in one event (at most tokensPerEvent), each once and in order", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  // The requester reads nothing until the worker has computed the window's 3 tokens and 4 ahead.
  const events = await rawEvents(model, 4, 60, (m) => m.stepsReached(WINDOW - 1 + 4));
  const indexes = events.flatMap((e) => e.indexes);
  assertEquals(indexes, Array.from({ length: 60 }, (_, i) => i));
  assertEquals(events.at(-1)?.kind, "end");
  const batched = events.filter((e) => e.kind === "tokens");
  assert(batched.length > 0, `no tokens event in ${JSON.stringify(events.map((e) => e.kind))}`);
  assert(batched.every((e) => e.indexes.length >= 2 && e.indexes.length <= 4));
  assert(events.length < 60 + 2, "fewer events than tokens");
});

Deno.test("a requester that asks for one token per event (or says nothing: one that predates batching) gets one token event per token", async () => {
  for (const asked of [1, undefined]) {
    const model = new ScriptedModel({ contextLength: 4096 });
    const events = await rawEvents(model, asked, 30, (m) => m.stepsReached(WINDOW - 1));
    assertEquals(events.filter((e) => e.kind === "tokens").length, 0);
    assertEquals(events.filter((e) => e.kind === "token").length, 30);
  }
});

Deno.test("the wire bounds a tokens event to 2–16 tokens and a submission's tokensPerEvent to 1–16", () => {
  const token = (index: number) => ({ index, tokenId: 97, text: "a" });
  const parse = (value: unknown) => InferenceEventMessage.schema.safeParse(value).success;
  assert(parse({ kind: "tokens", tokens: [token(0), token(1)] }));
  assert(!parse({ kind: "tokens", tokens: [token(0)] }));
  assert(!parse({ kind: "tokens", tokens: Array.from({ length: 17 }, (_, i) => token(i)) }));
  const submit = (tokensPerEvent: number) =>
    SubmitMessage.schema.safeParse({ job: textJob("m", 4), tokensPerEvent }).success;
  assert(submit(1) && submit(16) && !submit(0) && !submit(17));
});

Deno.test("a submission asks for 8 tokens per event gathered over 5 ms by default; gatherMs 0 or one token per event sends no gatherMs; the wire bounds it to 0–50", async () => {
  const cases: [RemoteInferencePortOptions, Record<string, number | undefined>][] = [
    [{}, { tokensPerEvent: 8, gatherMs: 5 }],
    [{ gatherMs: 0 }, { tokensPerEvent: 8, gatherMs: undefined }],
    [{ tokensPerEvent: 1 }, { tokensPerEvent: undefined, gatherMs: undefined }],
  ];
  for (const [options, expected] of cases) {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [client, worker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    let asked: Record<string, unknown> | undefined;
    worker.handle(SubmitMessage, (body) => {
      asked = body as unknown as Record<string, unknown>;
      throw new VeriflowError("unknown_model", "not here");
    });
    try {
      await new RemoteInferencePort(client, options).submit(textJob("m", 4)).catch(() => {});
      assertEquals({ tokensPerEvent: asked?.tokensPerEvent, gatherMs: asked?.gatherMs }, expected);
    } finally {
      await client.close();
      await worker.close();
    }
  }
  const submit = (gatherMs: number) =>
    SubmitMessage.schema.safeParse({ job: textJob("m", 4), tokensPerEvent: 8, gatherMs }).success;
  assert(submit(0) && submit(50) && !submit(-1) && !submit(51) && !submit(1.5));
});

/** Whether `promise` has settled once the macrotasks queued so far have run. */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 0));
  return settled;
}

Deno.test("closing the connection ends a remote job nobody reads: done resolves with connection_closed, and the tokens then fail with it", async () => {
  const model = new ScriptedModel({ contextLength: 4096 });
  await withRemote(model, async (remote) => {
    const handle = await remote.submit(textJob(model.info.cid, 2000));
    await remote.connection.close();
    assert(await settledSoon(handle.done), "done is still pending after the connection closed");
    const summary = await handle.done;
    assertEquals(summary.finishReason, "error");
    assertEquals(summary.error?.code, "connection_closed");
    const failure = await handle.tokens.getReader().read().catch((e) => e);
    assertEquals((failure as { code: string }).code, "connection_closed");
    const stats = await remote.stats();
    assertEquals([stats.activeJobs, stats.jobsFailed], [0, 1]);
  });
});

Deno.test("closing the connection while a token read is in flight fails that read with connection_closed, as done says", async () => {
  const model = new ScriptedModel({ contextLength: 4096, gated: true });
  await withRemote(model, async (remote) => {
    const handle = await remote.submit(textJob(model.info.cid, 5));
    const reader = handle.tokens.getReader();
    const reading = reader.read().catch((e) => e);
    await remote.connection.close();
    assertEquals(((await reading) as { code: string }).code, "connection_closed");
    assertEquals((await handle.done).error?.code, "connection_closed");
  });
});

Deno.test("a remote job nobody reads waits (the stream is pull-driven), and cancel() still ends it: done resolves cancelled", async () => {
  const model = new ScriptedModel();
  await withRemote(model, async (remote) => {
    const handle = await remote.submit(textJob(model.info.cid, 8));
    handle.cancel();
    assertEquals((await handle.done).finishReason, "cancelled");
  });
});

Deno.test("a job that fails textJobSchema is refused before it runs with invalid_generation_params by both ports (topP 5, a requester that is not a key, topLogprobs 21)", async () => {
  const model = new ScriptedModel();
  await withRemote(model, async (remote, _worker, local) => {
    const bad: [string, TextJob, number][] = [
      ["params.topP", { ...textJob(model.info.cid, 2), params: params({ topP: 5 }) }, 0],
      ["requester", { ...textJob(model.info.cid, 2), requester: "zz" }, 0],
      ["topLogprobs", textJob(model.info.cid, 2), 21],
    ];
    for (const [field, job, topLogprobs] of bad) {
      for (const [name, port] of [["local", local], ["remote", remote]] as const) {
        const refusal = await port.submit(job, { topLogprobs }).catch((e) => e);
        assert(refusal instanceof InvalidGenerationParamsError, `${name} ${field}: ${refusal}`);
        assertEquals(refusal.code, "invalid_generation_params");
        assert(refusal.message.startsWith(field), `${name}: ${refusal.message}`);
      }
    }
    assertEquals(model.steps, 0);
    assertEquals((await local.stats()).jobsStarted, 0);
  });
});

Deno.test("a job the worker's schema refuses (over the network's byte bound) rejects the remote submit with invalid_generation_params, not the connection's invalid_body", async () => {
  const model = new ScriptedModel();
  await withRemote(model, async (remote) => {
    const job = { ...textJob(model.info.cid, 2), prompt: "x".repeat(MAX_NETWORK_JOB_BYTES + 1) };
    const refusal = await remote.submit(job).catch((e) => e);
    assert(refusal instanceof InvalidGenerationParamsError, String(refusal));
    assertEquals(refusal.code, "invalid_generation_params");
    assertEquals(model.steps, 0);
  });
});

Deno.test("a job the worker refuses gets the same typed error from the remote port as from the local one (class, code, message, fields), and an unknown code stays a RemoteError", async () => {
  // Gated, one slot, no queue: once a job holds the worker, the next is refused as full.
  const model = new ScriptedModel({ gated: true, contextLength: 16 });
  await withRemote(model, async (remote, _worker, local) => {
    const codes = new Set<string>();
    const sameOnBoth = async (what: string, job: TextJob, options: SubmitOptions = {}) => {
      const locally = await local.submit(job, options).catch((e) => e);
      const remotely = await remote.submit(job, options).catch((e) => e);
      assert(locally instanceof VeriflowError, `${what}: local ${locally}`);
      assert(!(remotely instanceof RemoteError), `${what}: remote ${remotely}`);
      assertEquals(remotely.constructor, locally.constructor, what);
      assertEquals({ ...remotely }, { ...locally }, what);
      assertEquals(remotely.message, locally.message, what);
      codes.add(locally.code);
    };
    // The worker is free: refused for what the job is.
    await sameOnBoth("unknown model", textJob("bafkreinothere", 3));
    await sameOnBoth("empty prompt", { ...textJob(model.info.cid, 3), prompt: "" });
    await sameOnBoth("over the context", { ...textJob(model.info.cid, 3), prompt: "x".repeat(40) });
    await sameOnBoth("cannot resume", textJob(model.info.cid, 3), { resume: [97] });
    // The worker is busy with `holder`: refused for what it is doing.
    const holder = textJob(model.info.cid, 3);
    const running = await local.submit(holder);
    await sameOnBoth("the same job again", holder);
    await sameOnBoth("a full worker", textJob(model.info.cid, 3));
    assertEquals(codes.size, 6, `one refusal each: ${[...codes]}`);
    running.cancel();
  }, { concurrency: 1, queueLimit: 0 });

  // A code this side does not know reaches the caller as the connection's RemoteError.
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  try {
    const refusing: InferencePort = {
      submit: () => Promise.reject(new VeriflowError("some_new_refusal", "not today")),
      models: () => Promise.resolve([]),
      stats: () => Promise.reject(new Error("not asked")),
    };
    serveInference(worker, refusing);
    const error = await new RemoteInferencePort(client).submit(textJob("bafkm", 1)).catch((e) => e);
    assert(error instanceof RemoteError, String(error));
    assertEquals([error.code, error.message], ["some_new_refusal", "not today"]);
  } finally {
    await client.close();
    await worker.close();
  }
});

Deno.test("a job that fails on the worker mid-stream fails the remote tokens with the class the worker's own stream failed with", async () => {
  const served = new ScriptedModel().info;
  /** One token, then the model fails as a dying model worker does. */
  const failing: InferencePort = {
    submit: (job) => {
      const done = Promise.withResolvers<JobSummary>();
      let sent = 0;
      const tokens = new ReadableStream<StreamedToken>({
        pull: (controller) => {
          if (sent++ === 0) return controller.enqueue({ index: 0, tokenId: 97, text: "a" });
          const error = new ModelWorkerError("the model worker exited");
          controller.error(error);
          done.resolve({
            jobId: jobId(job),
            finishReason: "error",
            usage: { promptTokens: 1, completionTokens: 1 },
            timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
            error: { code: error.code, message: error.message },
          });
        },
      }, { highWaterMark: 0 });
      return Promise.resolve({
        jobId: jobId(job),
        model: served,
        promptTokens: 1,
        tokens,
        done: done.promise,
        cancel: () => {},
      });
    },
    models: () => Promise.resolve([served]),
    stats: () => Promise.reject(new Error("not asked")),
  };
  const readAll = async (stream: ReadableStream<StreamedToken>) => {
    try {
      for await (const _ of stream) { /* until it fails */ }
    } catch (error) {
      return error;
    }
  };
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  try {
    serveInference(worker, failing);
    const job = textJob(served.cid, 4);
    const locally = await readAll((await failing.submit(job)).tokens);
    const remotely = await readAll((await new RemoteInferencePort(client).submit(job)).tokens);
    assert(locally instanceof ModelWorkerError, String(locally));
    assert(remotely instanceof ModelWorkerError, String(remotely));
    assertEquals(remotely.constructor, locally.constructor);
    assertEquals([remotely.code, remotely.message], [locally.code, locally.message]);
  } finally {
    await client.close();
    await worker.close();
  }
});

// A worker logged nothing for the jobs it served to peers. Its heartbeat counted them (`1 done ·
// tokens 24`), but no line named a job, the peer it ran for, or whether a receipt was signed.
// `serveInference` now writes one line per peer job when it ends, in the shape of the edge's lines:
// `job <id12> served for peer <key16>: <finish> after N tokens in T ms, receipt signed`.

/** A two-token worker whose summary carries a (stand-in) receipt. */
class SigningWorker extends TwoTokenWorker {
  constructor() {
    super(false, "", "");
  }
  override async submit(j: TextJob): Promise<InferenceHandle> {
    const handle = await super.submit(j);
    const done = handle.done.then((s) => ({ ...s, receipt: { stand_in: true } }));
    return { ...handle, done };
  }
}

/** Serve `worker` to a requester over memory; the worker's log lines in `lines`. */
async function served(worker: TwoTokenWorker) {
  const lines: string[] = [];
  const requester = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: requester, protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  serveInference(atWorker, worker, { log: (line) => lines.push(line) });
  const port = new RemoteInferencePort(toWorker);
  const close = async () => {
    await toWorker.close();
    await atWorker.close();
  };
  return { lines, port, requester: toHex(requester.publicKey), close };
}

Deno.test("a worker logs one line per job it served a peer, naming the job, the peer and the receipt", async () => {
  const node = await served(new SigningWorker());
  try {
    const j = job("served-1");
    const handle = await node.port.submit(j);
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const line = await eventually(
      () => node.lines.find((l) => l.includes("served for peer")),
      "the served line",
    );
    strictAssert.match(
      line,
      new RegExp(
        `^job ${jobId(j).slice(0, 12)} served for peer ${
          node.requester.slice(0, 16)
        }: length after 2 tokens in \\d+ ms, receipt signed$`,
      ),
    );
    strictAssert.equal(node.lines.length, 1, `one line per job, got:\n${node.lines.join("\n")}`);
  } finally {
    await node.close();
  }
});

Deno.test("a served job that ended without a receipt says so", async () => {
  const node = await served(new TwoTokenWorker(false, "", ""));
  try {
    const handle = await node.port.submit(job("served-2"));
    for await (const _ of handle.tokens) { /* drain */ }
    await handle.done;
    const line = await eventually(
      () => node.lines.find((l) => l.includes("served for peer")),
      "the served line",
    );
    strictAssert.match(line, /: length after 2 tokens in \d+ ms, without a receipt$/);
  } finally {
    await node.close();
  }
});

Deno.test("a worker signs its job's stream event by event: the requester's handle holds the worker's signature over every token it read, from position 0 when the job was resumed", async () => {
  const model = await loadTinyModel();
  await withRemote(model, async (remote, worker) => {
    const job = textJob(model.info.cid, 10);
    const whole: number[] = [];
    for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
      whole.push(c.tokenId);
    }
    for (const from of [0, 4]) {
      const handle = await remote.submit(job, from > 0 ? { resume: whole.slice(0, from) } : {});
      const read: number[] = [];
      for await (const t of handle.tokens) read.push(t.tokenId);
      await handle.done;
      assertEquals(read, whole.slice(from));
      const stream = handle.signedStream!;
      assertEquals(stream.head?.n, 10, `resumed from ${from}`);
      assertEquals(stream.tokenIds, whole);
      const h = streamChainOver(handle.jobId, whole);
      assert(
        verifySignature(
          worker.identity!.publicKey,
          streamSigningBytes(handle.jobId, 10, h, true),
          stream.head!.sig,
        ),
        "the head is not the worker's signature over the whole output",
      );
    }
  });
});

Deno.test("a token event without the worker's signature of the stream, or with another key's, fails the remote job as a broken stream before its token is relayed", async () => {
  const model = new ScriptedModel();
  for (const forge of ["none", "other key"] as const) {
    const job = textJob(model.info.cid, 3);
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [client, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    atWorker.handle(SubmitMessage, (body) => {
      const id = jobId(body.job);
      const other = new StreamSigner(Identity.generate(), id);
      const start = { kind: "start", jobId: id, model: { ...model.info }, promptTokens: 1 };
      const token = { kind: "token", index: 0, tokenId: 97, text: "a" } as const;
      const sig = forge === "none" ? {} : { sig: other.sign([97]) };
      return Promise.resolve(
        new ReadableStream<InferenceEvent>({
          start: (c) => {
            c.enqueue(start as InferenceEvent);
            c.enqueue({ ...token, ...sig });
          },
        }),
      );
    });
    try {
      const handle = await new RemoteInferencePort(client).submit(job);
      const read: number[] = [];
      const failed = await (async () => {
        for await (const t of handle.tokens) read.push(t.tokenId);
      })().then(() => undefined, (e) => e as { code?: string; message?: string });
      assertEquals(failed?.code, "inference_stream_invalid", forge);
      // Said plainly, for the operator of a worker that predates signed streams.
      const said = forge === "none" ? /predates signed streams/ : /is not the worker's/;
      assert(said.test(failed?.message ?? ""), `${forge}: ${failed?.message}`);
      assertEquals(read, [], `${forge}: a token was relayed`);
      assertEquals(handle.signedStream?.head, undefined);
    } finally {
      await client.close();
      await atWorker.close();
    }
  }
});
