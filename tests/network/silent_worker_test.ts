/**
 * A worker that accepts a job and then says nothing, or starts it and then stalls: the router's own
 * timers move the job on, and for how long each such job holds its client.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  StreamedToken,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import type { TextModel, TokenChunk } from "../../inference/text_model.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { DEFAULT_START_TIMEOUT_MS, DEFAULT_TOKEN_BUDGET_MS } from "../../inference/remote_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseReceipt, verifyReceipt } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import {
  eventually,
  loadTinyModel,
  params,
  ScriptedModel,
  StaticModels,
} from "../server/_fixtures.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { Workers } from "./_router_doubles.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { DEFAULT_QUEUE_HOLD_MS } from "../../network/failover.ts";
import { DEFAULT_HELLO_INTERVAL_MS, type NetworkMessage } from "../../network/network_actor.ts";
import { job, routerOver as scriptedRouter, script, served } from "./_scripted_workers.ts";

// ---- silent worker --------------------------------------------------------------------------------
// A worker that accepts a job and then says nothing keeps its connection alive (it answers pings),
// so no connection loss ever moves the job on: the router's own timers must — the start timeout
// before the worker's `start`, the stall timeout after it. A busy worker is not a silent one: a job
// it keeps queued while it streams the jobs ahead is neither cut as stalled nor a reason to keep
// the worker off the model.

/** A port that accepts every submission and never answers it, until its requester cancels. */
class SilentPort implements InferencePort {
  submits = 0;
  cancelled = 0;
  constructor(readonly served: ServedModelInfo[]) {}
  submit(_job: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    return new Promise((_, reject) => {
      options?.signal?.addEventListener("abort", () => {
        this.cancelled++;
        reject(options.signal!.reason);
      }, { once: true });
    });
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve(this.served);
  }
  stats(): Promise<InferenceStats> {
    return Promise.reject(new Error("not asked"));
  }
}

/** Fails the test if `promise` has not settled after `ms` (it would otherwise hang for ever). */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a worker that accepts a job and never starts it is passed over after the start timeout: the job completes on the next worker, and the next job does not ask it first", async () => {
  const model = new ScriptedModel();
  const system = new ActorSystem({ name: "silent-worker-test" });
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "honest/inference",
    factory: () => new InferenceActor({ models }),
  });
  const silent = new SilentPort([]); // the stand-in network actor lists the models
  const protocols = [INFERENCE_PROTOCOL];
  const links: Connection[] = [];
  const toWorkers: Connection[] = [];
  for (const port of [silent, new LocalInferencePort({ inference, models })]) {
    const [a, b] = memoryDuplexPair();
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    serveInference(atWorker, port);
    links.push(toWorker, atWorker);
    toWorkers.push(toWorker);
  }
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    // The silent worker is the router's first choice.
    factory: () => new Workers(toWorkers, [model.info]),
  });
  // A short start timeout; the job's outcome does not depend on when exactly it fires.
  const port = new NetworkInferencePort(network, undefined, undefined, { startTimeoutMs: 50 });
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "x",
    params: params({ maxTokens: 4 }),
    nonce: "n",
  };
  try {
    const handle = await settlesWithin(port.submit(job), 10_000, "submit");
    const reader = handle.tokens.getReader();
    let tokens = 0;
    while (!(await reader.read()).done) tokens++;
    assertEquals(tokens, 4);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(silent.submits, 1, "the silent worker was tried first");
    // The router cancelled the job it gave up on, so the silent worker's slot is free again.
    await settlesWithin(
      (async () => {
        while (silent.cancelled === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      5_000,
      "the silent worker's cancel",
    );
    assert(silent.cancelled === 1);
    // It is asked last for a while: the next job goes straight to the other worker, without
    // the start timeout's wait.
    const next = await port.submit({ ...job, nonce: "next" });
    for await (const _ of next.tokens);
    assertEquals((await next.done).finishReason, "length");
    assertEquals(silent.submits, 1, "the silent worker was not asked again");
  } finally {
    for (const c of links) await c.close();
    await system.shutdown();
  }
});

// ---------------------------------------------------------------------------------------------
// The stall timeout: a worker that started the job and then went silent
// ---------------------------------------------------------------------------------------------

/** The stall timeout the router's remote ports run on (a fake clock: its size costs nothing). */
const STALL_MS = 10_000;

/**
 * A router over a worker that streams `silentAfter` of the job's tokens and then goes silent
 * (its connection alive), and, when `withHonest`, a second worker running the tiny model for
 * real, with a prover. The router's remote ports run on a fake clock.
 */
async function stallingRouter(silentAfter: number, withHonest = true, permits?: number) {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name: "stalled-worker-test" });
  const requester = Identity.generate();
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "Once upon a time",
    params: params({ maxTokens: 24, temperature: 0.9, topK: 40, seed: 5 }),
    nonce: `stall-${silentAfter}`,
    requester: toHex(requester.publicKey),
  };
  const reference = await undisturbed(model, job);
  const stalling = new StallingPort(model.info, reference.tokens.slice(0, silentAfter), {
    permits,
  });
  const honest = Identity.generate();
  const models = new StaticModels([model]);
  const prover = async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
    (await proveJob(job, chunks, honest)).receipt;
  const inference = await system.spawn<InferenceMessage>({
    name: "honest/inference",
    factory: () => new InferenceActor({ models, prover }),
  });
  const protocols = [INFERENCE_PROTOCOL];
  const links: Connection[] = [];
  const toWorkers: Connection[] = [];
  const ports: [Identity, InferencePort][] = [[Identity.generate(), stalling]];
  if (withHonest) ports.push([honest, new LocalInferencePort({ inference, models })]);
  for (const [identity, port] of ports) {
    const [a, b] = memoryDuplexPair();
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity, protocols }),
    ]);
    serveInference(atWorker, port);
    links.push(toWorker, atWorker);
    toWorkers.push(toWorker);
  }
  const workers = new Workers(toWorkers, [model.info]);
  // The silent worker is the router's first choice.
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const timers = new ManualTimers();
  const port = new NetworkInferencePort(network, undefined, requester, {
    timers,
    stallTimeoutMs: STALL_MS,
  });
  const close = async () => {
    for (const c of links) await c.close();
    await system.shutdown();
  };
  return {
    port,
    job,
    reference,
    stalling,
    stallingKey: toWorkers[0].peerKey!,
    honest: honest.publicKey,
    told: workers.told,
    timers,
    close,
  };
}

/** The job run on the model itself: the tokens every relay of it must match. */
async function undisturbed(model: TextModel, job: TextJob) {
  const tokens: StreamedToken[] = [];
  for await (const c of model.generate(model.tokenizer.encode(job.prompt), job.params)) {
    const token: StreamedToken = { index: c.index, tokenId: c.tokenId, text: c.text };
    if (c.finishReason !== undefined) token.finishReason = c.finishReason;
    tokens.push(token);
  }
  return { tokens, text: tokens.map((t) => t.text).join("") };
}

async function readAll(reader: ReadableStreamDefaultReader<StreamedToken>) {
  const tokens: StreamedToken[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return tokens;
    tokens.push(value);
  }
}

/**
 * What every stalled job that another worker took over must show: the client got each token
 * once, those of an undisturbed run; the receipt is the honest worker's, over all of them; the
 * silent worker's job was cancelled, and it is kept off the model for a while if it had started
 * streaming the job (silent before the first token, it may only have queued the job behind
 * others this side cannot see).
 */
async function assertTakenOver(
  t: Awaited<ReturnType<typeof stallingRouter>>,
  handle: InferenceHandle,
  tokens: StreamedToken[],
  keptOff: boolean,
) {
  assertEquals(tokens.map((x) => x.index), t.reference.tokens.map((x) => x.index));
  assertEquals(tokens.map((x) => x.tokenId), t.reference.tokens.map((x) => x.tokenId));
  const summary = await handle.done;
  assertEquals(summary.error, undefined);
  assertEquals(summary.finishReason, t.reference.tokens.at(-1)?.finishReason);
  const receipt = parseReceipt(summary.receipt);
  assertEquals(toHex(receipt.worker), toHex(t.honest));
  assertEquals(receipt.tokenCount, t.reference.tokens.length);
  assert(verifyReceipt(receipt, { job: t.job, worker: t.honest, output: t.reference.text }).ok);
  assertEquals(t.stalling.submits, 1);
  await eventually(() => t.stalling.cancelled === 1, "the silent worker's cancel");
  assertEquals(
    t.told.some((m) =>
      m.type === "worker_refused_model" && m.key === toHex(t.stallingKey) &&
      m.model === t.job.model
    ),
    keptOff,
    keptOff
      ? "the silent worker is kept off the model"
      : "a worker silent before its first token is not kept off",
  );
}

Deno.test("a worker that starts a job and sends no token is passed over after the stall timeout: the job runs on the next worker, the client gets the whole answer (the worker, perhaps only busy, stays in favour)", async () => {
  const t = await stallingRouter(0);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    const first = reader.read();
    await t.timers.advance(STALL_MS);
    const head = await first;
    assert(!head.done);
    await assertTakenOver(t, handle, [head.value, ...await readAll(reader)], false);
  } finally {
    await t.close();
  }
});

Deno.test("a worker that stalls mid-stream is replaced as a lost one: the next worker resumes after the tokens delivered, each token once", async () => {
  const t = await stallingRouter(5);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    const before = [];
    for (let i = 0; i < 5; i++) before.push((await reader.read()).value!);
    const next = reader.read();
    await t.timers.advance(STALL_MS);
    const resumed = await next;
    assert(!resumed.done);
    await assertTakenOver(t, handle, [...before, resumed.value, ...await readAll(reader)], true);
  } finally {
    await t.close();
  }
});

Deno.test("a worker that sends each token just inside the stall timeout is cut by the delivery floor: the next worker resumes after the tokens delivered, each token once, and the slow worker is asked last, not kept off the model", async () => {
  const t = await stallingRouter(8, true, 0);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    const before: StreamedToken[] = [];
    // The first token, then one just inside the stall timeout: within the floor's head start.
    for (let i = 0; i < 2; i++) {
      const next = reader.read();
      await t.timers.advance(STALL_MS - 1);
      t.stalling.release(1);
      const { done, value } = await next;
      assert(!done, `token ${i}`);
      before.push(value);
    }
    // The floor (the stall timeout, plus the default 2 s for the one later token) runs out long
    // before the next stall timeout would: the job resumes elsewhere, the clock standing still.
    const next = reader.read();
    await t.timers.advance(DEFAULT_TOKEN_BUDGET_MS + 1);
    assert(DEFAULT_TOKEN_BUDGET_MS + 1 < STALL_MS);
    const resumed = await settlesWithin(next, 5_000, "the job resumed once the floor ran out");
    assert(!resumed.done);
    await assertTakenOver(t, handle, [...before, resumed.value, ...await readAll(reader)], false);
  } finally {
    await t.close();
  }
});

Deno.test("a worker that stalls with no other worker to take the job ends it with worker_stalled, saying how far it got", async () => {
  const t = await stallingRouter(3, false);
  try {
    const handle = await t.port.submit(t.job);
    const reader = handle.tokens.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    // Caught at once: it fails while the clock advances, before anything awaits it.
    const next = reader.read().catch((e) => e);
    await t.timers.advance(STALL_MS);
    const error = await next;
    assert(error instanceof VeriflowError, String(error));
    assertEquals(error.code, "worker_stalled");
    assert(error.message.includes("after 3 tokens"), error.message);
    assert(error.message.includes(`${STALL_MS} ms`), error.message);
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error?.code], ["error", "worker_stalled"]);
    await eventually(() => t.stalling.cancelled === 1, "the silent worker's cancel");
    assert(
      t.told.some((m) => m.type === "worker_refused_model" && m.key === toHex(t.stallingKey)),
      "the silent worker is kept off the model",
    );
  } finally {
    await t.close();
  }
});

// ---------------------------------------------------------------------------------------------
// A busy worker: one slot, a job queued behind another (its `start` sent when it was accepted)
// ---------------------------------------------------------------------------------------------

/**
 * A router whose only worker runs one job at a time (the real InferenceActor's queue) on a
 * gated model: each step waits for `model.release`. The router's remote ports run on a fake
 * clock.
 */
async function busyRouter(firstTokenTimeoutMs?: number) {
  const model = new ScriptedModel({ gated: true });
  const models = new StaticModels([model]);
  const system = new ActorSystem({ name: "busy-worker-test" });
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () => new InferenceActor({ models, concurrency: 1 }),
  });
  const protocols = [INFERENCE_PROTOCOL];
  const [a, b] = memoryDuplexPair();
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  // The worker's own port: its own clients' jobs (or another router's) share the one slot.
  const local = new LocalInferencePort({ inference, models });
  serveInference(atWorker, local);
  const workers = new Workers([toWorker], [model.info]);
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const timers = new ManualTimers();
  const port = new NetworkInferencePort(network, undefined, undefined, {
    timers,
    stallTimeoutMs: STALL_MS,
    firstTokenTimeoutMs,
    // The jobs ahead step just inside the stall timeout: a floor of one stall timeout per token
    // keeps them within it (the floor has tests of its own).
    tokenBudgetMs: STALL_MS,
  });
  const job = (nonce: string, n: number): TextJob => ({
    kind: "text",
    model: model.info.cid,
    prompt: "x",
    params: params({ maxTokens: n }),
    nonce,
  });
  /** After `ms` on the fake clock, let the model take one step and read the token it gives. */
  const stepAfter = async (reader: ReadableStreamDefaultReader<StreamedToken>, ms: number) => {
    const next = reader.read();
    await timers.advance(ms);
    model.release(1);
    const { done, value } = await next;
    assert(!done, "a token");
    return value;
  };
  const close = async () => {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  };
  const shunned = () => workers.told.some((m) => m.type === "worker_refused_model");
  return { port, local, model, timers, job, stepAfter, shunned, close };
}

Deno.test("a job queued behind a slow but progressing job on a one-slot worker is neither cut nor moved, and the worker is not kept off the model", async () => {
  const t = await busyRouter();
  try {
    const ahead = await t.port.submit(t.job("ahead", 4));
    const queued = await t.port.submit(t.job("queued", 3)); // started: queued on the worker
    const queuedReader = queued.tokens.getReader();
    const first = queuedReader.read();
    let settled = false;
    first.then(() => settled = true, () => settled = true);
    const aheadReader = ahead.tokens.getReader();
    for (let i = 0; i < 4; i++) {
      await t.stepAfter(aheadReader, STALL_MS - 1);
      assert(!settled, `the queued job was cut after ${t.timers.now()} ms`);
    }
    assert((await aheadReader.read()).done);
    assertEquals((await ahead.done).finishReason, "length");
    t.model.release(3);
    const got = [(await first).value?.index];
    for (;;) {
      const { done, value } = await queuedReader.read();
      if (done) break;
      got.push(value.index);
    }
    assertEquals(got, [0, 1, 2]);
    const summary = await queued.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assert(!t.shunned(), "the busy worker was kept off the model");
  } finally {
    await t.close();
  }
});

Deno.test("a job a busy worker keeps queued past the first-token timeout moves on (no other worker here: it ends with worker_stalled), and the worker is not kept off the model", async () => {
  const t = await busyRouter(3 * STALL_MS);
  try {
    const ahead = await t.port.submit(t.job("ahead", 8));
    const queued = await t.port.submit(t.job("queued", 2));
    // Caught at once: it fails while the clock advances, before anything awaits it.
    const first = queued.tokens.getReader().read().catch((e) => e);
    const aheadReader = ahead.tokens.getReader();
    for (let i = 0; i < 4; i++) await t.stepAfter(aheadReader, STALL_MS - 1);
    const error = await first;
    assert(error instanceof VeriflowError, String(error));
    assertEquals(error.code, "worker_stalled");
    assert(error.message.includes(`${3 * STALL_MS} ms`), error.message);
    assertEquals((await queued.done).error?.code, "worker_stalled");
    assert(!t.shunned(), "the busy worker was kept off the model");
    t.model.release(4);
    for (let i = 4; i < 8; i++) assertEquals((await aheadReader.read()).value?.index, i);
    assert((await aheadReader.read()).done);
    assertEquals((await ahead.done).finishReason, "length");
  } finally {
    await t.close();
  }
});

Deno.test("a job queued behind a job this router cannot see (the worker's own client's, another router's) is moved on after the stall timeout, but the worker is not kept off the model", async () => {
  const t = await busyRouter();
  try {
    const elsewhere = await t.local.submit(t.job("elsewhere", 8));
    const elsewhereReader = elsewhere.tokens.getReader();
    const routed = await t.port.submit(t.job("routed", 2)); // started: queued on the worker
    // Caught at once: it fails while the clock advances, before anything awaits it.
    const first = routed.tokens.getReader().read().catch((e) => e);
    // The worker streams the other job steadily; this router sees none of it.
    for (let i = 0; i < 2; i++) await t.stepAfter(elsewhereReader, STALL_MS - 1);
    const error = await first;
    assert(error instanceof VeriflowError, String(error));
    assertEquals(error.code, "worker_stalled");
    assertEquals((await routed.done).error?.code, "worker_stalled");
    assert(
      !t.shunned(),
      "the honest worker, busy with a job from elsewhere, was kept off the model",
    );
    t.model.release(6);
    for (let i = 2; i < 8; i++) assertEquals((await elsewhereReader.read()).value?.index, i);
    assert((await elsewhereReader.read()).done);
    assertEquals((await elsewhere.done).finishReason, "length");
  } finally {
    await t.close();
  }
});

// ---- stalled worker -------------------------------------------------------------------------------
// A router's handling of a worker that accepts jobs and then stalls
// (`network/network_inference_port.ts`, `network/busy_refusals.ts`, `network/failover.ts`): a
// worker that sends each job's `start` and then nothing, its connection alive, whose hello would
// rank it first for every job. Each job it is given holds its client for the queue hold before a
// hedge takes it over and the worker is asked last; these tests pin down for how long. The router's
// timers and its memory of refusals share one fake clock the tests advance: no real time is waited
// on.

/** A router over `ports` whose memory of refusals is on its fake clock. */
const routerOver = (ports: InferencePort[]) =>
  scriptedRouter(ports, {
    name: "review-s50-stalled-worker",
    busy: (timers) => new BusyRefusals({ now: () => timers.now() }),
  });

/** Read a job to its end on the fake clock, advancing it by the queue hold when it waits. */
async function runThroughHold(
  t: Awaited<ReturnType<typeof routerOver>>,
  nonce: string,
): Promise<number[]> {
  const handle = await t.port.submit(job(nonce));
  const reader = handle.tokens.getReader();
  const first = reader.read();
  let settled = false;
  first.then(() => settled = true, () => settled = true);
  await t.timers.advance(DEFAULT_QUEUE_HOLD_MS);
  await eventually(() => settled, "the job moved on at the hold");
  const got: number[] = [];
  for (let r = await first; !r.done; r = await reader.read()) got.push(r.value.index);
  await handle.done;
  return got;
}

Deno.test("s50: a worker that held a job for the whole queue hold without a token is asked last for at least that hold, not one hello interval: the next jobs meanwhile run at once on the honest worker", async () => {
  const stalling = new StallingPort(served, script, { permits: 0 });
  const honest = new StallingPort(served, script);
  const t = await routerOver([stalling, honest]);
  try {
    // The first job costs its client the hold: nothing told the router yet.
    assertEquals(await runThroughHold(t, "first"), [0, 1, 2, 3]);
    assertEquals([stalling.submits, honest.submits], [1, 1]);
    await eventually(() => stalling.cancelled === 1, "the held job cancelled on its worker");
    // A hello interval later (when an honest worker's next hello would have told its real
    // load), well inside the hold the worker just cost a client.
    await t.timers.advance(DEFAULT_HELLO_INTERVAL_MS * 2);
    const next = await t.port.submit(job("next"));
    assertEquals(
      stalling.submits,
      1,
      "the next job went to the worker that held the last one for the whole hold",
    );
    const reader = next.tokens.getReader();
    const got: number[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) got.push(r.value.index);
    assertEquals(got, [0, 1, 2, 3], "and ran at once, no hold waited");
    assertEquals(honest.submits, 2);
    // A while, not a ban: past the hold the worker is asked again.
    await t.timers.advance(DEFAULT_QUEUE_HOLD_MS);
    const again = await t.port.submit(job("again"));
    assertEquals(stalling.submits, 2, "asked again once its while ended");
    again.cancel();
    await again.done;
  } finally {
    await t.close();
  }
});

/** A worker that takes each job and never starts it (no `start`, its connection alive). */
class NeverStarts implements InferencePort {
  submits = 0;
  submit(): Promise<never> {
    this.submits++;
    return new Promise(() => {});
  }
  models() {
    return Promise.resolve([served]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.reject(new Error("not asked"));
  }
}

Deno.test("s50: a worker that never starts a job it took is asked last for at least the start timeout it cost the job, not one hello interval", async () => {
  const silent = new NeverStarts();
  const honest = new StallingPort(served, script);
  const t = await routerOver([silent, honest]);
  try {
    const submitted = t.port.submit(job("first"));
    await eventually(() => silent.submits === 1, "the silent worker asked first");
    await t.timers.advance(DEFAULT_START_TIMEOUT_MS);
    const first = await submitted;
    assertEquals(honest.submits, 1, "passed over for the honest worker at the start timeout");
    first.cancel();
    await first.done;
    await t.timers.advance(DEFAULT_HELLO_INTERVAL_MS * 2);
    const pending = t.port.submit(job("next"));
    await eventually(() => silent.submits + honest.submits === 3, "the next job asked a worker");
    // Moved on either way, so that a failing run ends too.
    await t.timers.advance(DEFAULT_START_TIMEOUT_MS);
    const next = await pending;
    assertEquals(silent.submits, 1, "the next job went to the worker that never started the last");
    assertEquals(honest.submits, 2);
    next.cancel();
    await next.done;
  } finally {
    await t.close();
  }
});

Deno.test("s50: BusyRefusals keeps a refusal that cost nothing at one hello interval, and a costly one's while at least its cost, up to the longest while", () => {
  let now = 0;
  const busy = new BusyRefusals({ now: () => now, firstMs: 1_000, maxMs: 60_000 });
  busy.refused("full");
  busy.refused("held", 30_000);
  busy.refused("timed-out", 600_000);
  now = 1_000;
  assertEquals(busy.askedLast(), ["held", "timed-out"]);
  now = 30_000;
  assertEquals(busy.askedLast(), ["timed-out"]);
  now = 60_000;
  assertEquals(busy.askedLast(), []);
  // Asked again after its while and refused again: doubled from the while it had.
  busy.refused("held", 30_000);
  now = 60_000 + 59_999;
  assertEquals(busy.askedLast(), ["held"]);
});
