/**
 * The remote port's stall timeout: a worker that started a job and then sends nothing, its
 * connection alive, has the job cancelled and the stream failed with `worker_stalled` once
 * the timeout passes while the requester waits; a worker slow but progressing is never cut,
 * nor is a job queued on the worker behind the model's other jobs while they move.
 * The port's timers are a fake clock the tests advance: no real time is waited on.
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import {
  DEFAULT_TOKEN_BUDGET_MS,
  RemoteInferencePort,
  type RemoteInferencePortOptions,
} from "../../inference/remote_port.ts";
import {
  InferenceStreamError,
  WorkerStalledError,
  WorkerTooSlowError,
} from "../../inference/remote_errors.ts";
import { serveInference, type ServeInferenceOptions } from "../../inference/serve_inference.ts";
import type { InferencePort, StreamedToken } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, QUEUED_EVENT_REPEAT_MS } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { eventually, params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { StallingPort, type StallingPortOptions } from "./_stalling_port.ts";

/** The stall timeout under test (on the fake clock, so its size costs nothing). */
const STALL_MS = 10_000;

/** `n` tokens, the last one ending the job. */
function script(n: number): StreamedToken[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    tokenId: 97 + i,
    text: String.fromCharCode(97 + i),
    finishReason: i === n - 1 ? "length" : undefined,
  }));
}

const served = new ScriptedModel().info;
const job: TextJob = {
  kind: "text",
  model: served.cid,
  prompt: "x",
  params: params({ maxTokens: 8 }),
  nonce: "stall",
};

/** A worker serving `port`, and a remote port to it on the fake clock. */
async function withWorker(
  port: StallingPort,
  body: (remote: RemoteInferencePort, timers: ManualTimers, workerKey: string) => Promise<void>,
  timers = new ManualTimers(),
  options: RemoteInferencePortOptions = {},
): Promise<void> {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity, protocols }),
  ]);
  serveInference(worker, port);
  try {
    await body(
      new RemoteInferencePort(client, { timers, stallTimeoutMs: STALL_MS, ...options }),
      timers,
      toHex(identity.publicKey),
    );
  } finally {
    await client.close();
    await worker.close();
  }
}

/** Whether `promise` has settled (after the turns the fake clock already let run). */
function settledFlag(promise: Promise<unknown>): { settled: boolean } {
  const flag = { settled: false };
  promise.then(() => flag.settled = true, () => flag.settled = true);
  return flag;
}

function stalling(
  tokens: StreamedToken[] | ((job: TextJob) => StreamedToken[]),
  options?: StallingPortOptions,
): StallingPort {
  return new StallingPort(served, tokens, options);
}

Deno.test("a worker that started a job and then sends nothing fails the tokens with worker_stalled once the stall timeout passes, naming the worker and the time, and the job is cancelled on the worker", async () => {
  // Two tokens, then silence: the script goes on, the permits do not.
  const port = stalling(script(6), { permits: 2 });
  await withWorker(port, async (remote, timers, workerKey) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    assertEquals((await reader.read()).value?.index, 0);
    assertEquals((await reader.read()).value?.index, 1);
    const third = reader.read();
    const flag = settledFlag(third);
    await timers.advance(STALL_MS - 1);
    assert(!flag.settled, "cut before the stall timeout");
    await timers.advance(1);
    const error = await assertRejects(() => third, WorkerStalledError);
    assertEquals(error.code, "worker_stalled");
    assert(error.message.includes(workerKey.slice(0, 16)), error.message);
    assert(error.message.includes(`${STALL_MS} ms`), error.message);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "error");
    assertEquals(summary.error?.code, "worker_stalled");
    assertEquals(summary.usage.completionTokens, 2);
    await eventually(() => port.cancelled === 1, "the worker's cancel");
    assertEquals((await remote.stats()).jobsFailed, 1);
  });
});

Deno.test("with no delivery floor (tokenBudgetMs Infinity) a worker silent after its first token is still cut at the stall timeout", async () => {
  // One token, then silence. (0 × Infinity is NaN: the floor once disarmed the stall timer
  // for the reads after the first token, and such a job waited forever.)
  const port = stalling(script(6), { permits: 1 });
  await withWorker(
    port,
    async (remote, timers) => {
      const handle = await remote.submit(job);
      const reader = handle.tokens.getReader();
      assertEquals((await reader.read()).value?.index, 0);
      const second = reader.read();
      const flag = settledFlag(second);
      await timers.advance(STALL_MS - 1);
      assert(!flag.settled, "cut before the stall timeout");
      await timers.advance(1);
      await eventually(() => flag.settled, "the read cut at the stall timeout");
      const error = await assertRejects(() => second, WorkerStalledError);
      assertEquals(error.code, "worker_stalled");
      assert(!(error instanceof WorkerTooSlowError), "a stall, not the floor");
      assertEquals((await handle.done).error?.code, "worker_stalled");
      await eventually(() => port.cancelled === 1, "the worker's cancel");
    },
    undefined,
    { tokenBudgetMs: Infinity },
  );
});

Deno.test("a worker slow but progressing within the delivery floor, each token just under the stall timeout after the last, is never cut: the job ends normally", async () => {
  const tokens = script(5);
  const port = stalling(tokens, { permits: 0 });
  await withWorker(
    port,
    async (remote, timers) => {
      // The job asks for the tokens scripted: a `length` before `maxTokens` breaks the stream.
      const handle = await remote.submit({ ...job, params: params({ maxTokens: tokens.length }) });
      const reader = handle.tokens.getReader();
      const got: StreamedToken[] = [];
      for (let i = 0; i < tokens.length; i++) {
        const next = reader.read();
        const flag = settledFlag(next);
        await timers.advance(STALL_MS - 1);
        assert(!flag.settled, "no token was let out yet");
        port.release(1);
        const { done, value } = await next;
        assert(!done, `token ${i}`);
        got.push(value);
      }
      assert(timers.now() > STALL_MS, "the job took longer than one stall timeout");
      assertEquals(got.map((t) => t.index), tokens.map((t) => t.index));
      assert((await reader.read()).done);
      const summary = await handle.done;
      assertEquals(summary.finishReason, "length");
      assertEquals(summary.error, undefined);
      assertEquals(port.cancelled, 0);
    },
    undefined,
    { tokenBudgetMs: STALL_MS },
  );
});

Deno.test("a worker that sends each token just inside the stall timeout is cut by the delivery floor once the waits pass the stall timeout plus tokenBudgetMs per later token: worker_stalled marked slow, and the job is cancelled there", async () => {
  const tokens = script(8);
  const port = stalling(tokens, { permits: 0 });
  await withWorker(port, async (remote, timers, workerKey) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    // The first token, then one more just inside the stall timeout: within the floor (the
    // stall timeout's head start).
    port.release(1);
    assertEquals((await reader.read()).value?.index, 0);
    const second = reader.read();
    await timers.advance(STALL_MS - 1);
    port.release(1);
    assertEquals((await second).value?.index, 1);
    // Allowed: STALL_MS + 1 × DEFAULT_TOKEN_BUDGET_MS in all after the first token; spent:
    // STALL_MS − 1. The next read may wait DEFAULT_TOKEN_BUDGET_MS + 1, not a stall timeout.
    const third = reader.read().catch((e) => e);
    const flag = settledFlag(third);
    await timers.advance(DEFAULT_TOKEN_BUDGET_MS);
    assert(!flag.settled, "cut before the floor ran out");
    await timers.advance(1);
    // The fake clock stands still from here: only the floor could have ended the read.
    await eventually(() => flag.settled, "the read cut once the floor ran out");
    const error = await third;
    assert(error instanceof WorkerTooSlowError, String(error));
    assertEquals([error.code, error.slow, error.busy, error.tokens], [
      "worker_stalled",
      true,
      false,
      2,
    ]);
    assert(error.message.includes(workerKey.slice(0, 16)), error.message);
    assert(error.message.includes("too slowly"), error.message);
    const summary = await handle.done;
    assertEquals([summary.finishReason, summary.error?.code], ["error", "worker_stalled"]);
    await eventually(() => port.cancelled === 1, "the worker's cancel");
  });
});

Deno.test("the delivery floor counts only the requester's waits: a fast worker read slowly, a stall timeout between reads, is never cut", async () => {
  const tokens = script(8);
  const port = stalling(tokens);
  await withWorker(port, async (remote, timers) => {
    const handle = await remote.submit(job);
    const reader = handle.tokens.getReader();
    const got = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got.push(value.index);
      await timers.advance(2 * STALL_MS);
    }
    assertEquals(got, [0, 1, 2, 3, 4, 5, 6, 7]);
    assertEquals((await handle.done).finishReason, "length");
    assertEquals(port.cancelled, 0);
  });
});

Deno.test("a relayed job's tokens do not each arm a timer: one stall timer per job, re-armed lazily", async () => {
  /** Counts the timers the port arms. */
  class CountingTimers extends ManualTimers {
    armed = 0;
    override setTimeout(callback: () => void, ms: number): unknown {
      this.armed++;
      return super.setTimeout(callback, ms);
    }
  }
  const counting = new CountingTimers();
  const tokens = script(40);
  await withWorker(stalling(tokens), async (remote) => {
    const handle = await remote.submit({ ...job, params: params({ maxTokens: 40 }) });
    let read = 0;
    for await (const _ of handle.tokens) read++;
    assertEquals(read, tokens.length);
    assertEquals((await handle.done).finishReason, "length");
    // The start timeout, the stall timer, the end event's wait: a handful, whatever the length.
    assert(counting.armed <= 4, `${counting.armed} timers armed for ${tokens.length} tokens`);
    assertEquals(counting.pending, 0, "nothing left armed once the job ended");
  }, counting);
});

Deno.test("a requester that does not read is not a stall: the timeout runs only while it waits for the worker", async () => {
  const port = stalling(script(3));
  await withWorker(port, async (remote, timers) => {
    const handle = await remote.submit({ ...job, params: params({ maxTokens: 3 }) });
    await timers.advance(5 * STALL_MS);
    const got = [];
    for await (const token of handle.tokens) got.push(token.index);
    assertEquals(got, [0, 1, 2]);
    assertEquals((await handle.done).finishReason, "length");
    assertEquals(port.cancelled, 0);
  });
});

Deno.test("a job that stops after its first token has stalled even while the worker streams the model's other jobs: a running job is owed every step, so the worker is not counted busy", async () => {
  // The job "halting" gets two tokens and then nothing; any other job, its whole script.
  const port = stalling((j) => j.nonce === "halting" ? script(8).slice(0, 2) : script(8));
  await withWorker(port, async (remote, timers) => {
    const halting = await remote.submit({ ...job, nonce: "halting" });
    const other = await remote.submit({ ...job, nonce: "other" });
    const haltingReader = halting.tokens.getReader();
    await haltingReader.read();
    await haltingReader.read();
    const next = haltingReader.read().catch((e) => e);
    const flag = settledFlag(next);
    const otherReader = other.tokens.getReader();
    await timers.advance(STALL_MS - 1);
    assertEquals((await otherReader.read()).value?.index, 0);
    assert(!flag.settled, "cut before the stall timeout");
    await timers.advance(1);
    const error = await next;
    assert(error instanceof WorkerStalledError, String(error));
    assertEquals(error.busy, false);
    assert(error.message.includes(`${STALL_MS} ms after 2 tokens`), error.message);
    // The other job goes on to its end.
    let last = 0;
    for (let r = await otherReader.read(); !r.done; r = await otherReader.read()) {
      last = r.value.index;
    }
    assertEquals(last, 7);
    assertEquals((await other.done).finishReason, "length");
  });
});

// ---------------------------------------------------------------------------------------------
// A job queued on the worker: its `start` comes when the worker accepts it, its first token
// only once a slot frees
// ---------------------------------------------------------------------------------------------

/** A worker that runs one job at a time (the real InferenceActor's queue) on a gated model. */
interface QueuedWorker {
  remote: RemoteInferencePort;
  /** The worker's own port: its jobs are ones the remote side cannot see. */
  local: LocalInferencePort;
  /** Have the worker report this place for the job with this nonce (a forged one, say). */
  forgePlace(nonce: string, position: number): void;
  /** Each step waits for its `release`. */
  model: ScriptedModel;
  timers: ManualTimers;
  /** A job of `n` tokens for the model (distinct nonces: distinct jobs). */
  job(nonce: string, n: number): TextJob;
}

async function withQueuedWorker(
  body: (w: QueuedWorker) => Promise<void>,
  options: RemoteInferencePortOptions = {},
  serve: (timers: ManualTimers) => ServeInferenceOptions = () => ({}),
): Promise<void> {
  const model = new ScriptedModel({ gated: true });
  const models = new StaticModels([model]);
  const system = new ActorSystem({ name: "queued-stall-test" });
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () => new InferenceActor({ models, concurrency: 1 }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [client, worker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: Identity.generate(), protocols }),
  ]);
  const local = new LocalInferencePort({ inference, models });
  const timers = new ManualTimers();
  // The port the worker serves: the local one, remembering each job's place callback.
  const places = new Map<string, (position: number) => void>();
  const served: InferencePort = {
    models: () => local.models(),
    stats: () => local.stats(),
    submit: (job, o) => {
      if (o?.onQueued) places.set(job.nonce, o.onQueued);
      return local.submit(job, o);
    },
  };
  serveInference(worker, served, serve(timers));
  const job = (nonce: string, n: number): TextJob => ({
    kind: "text",
    model: model.info.cid,
    prompt: "x",
    params: params({ maxTokens: n }),
    nonce,
  });
  try {
    await body({
      // The jobs ahead step just inside the stall timeout: a floor of one stall timeout per
      // token keeps them within it (the floor has tests of its own).
      remote: new RemoteInferencePort(client, {
        timers,
        stallTimeoutMs: STALL_MS,
        tokenBudgetMs: STALL_MS,
        ...options,
      }),
      local,
      forgePlace: (nonce, position) => places.get(nonce)?.(position),
      model,
      timers,
      job,
    });
  } finally {
    await client.close();
    await worker.close();
    await system.shutdown();
  }
}

/** After `ms` on the fake clock, let the model take one step and read the token it gives. */
async function stepAfter(
  w: QueuedWorker,
  reader: ReadableStreamDefaultReader<StreamedToken>,
  ms: number,
): Promise<StreamedToken> {
  const next = reader.read();
  await w.timers.advance(ms);
  w.model.release(1);
  const { done, value } = await next;
  assert(!done, "a token");
  return value;
}

/** The rest of a job's tokens, `n` of them, released at once. */
async function readRest(
  w: QueuedWorker,
  reader: ReadableStreamDefaultReader<StreamedToken>,
  n: number,
): Promise<number[]> {
  w.model.release(n);
  const got: number[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return got;
    got.push(value.index);
  }
}

Deno.test("a job queued behind another job of the model that keeps streaming is not cut, over several stall timeouts: it runs once the other ends, and completes", async () => {
  await withQueuedWorker(async (w) => {
    const ahead = await w.remote.submit(w.job("ahead", 4));
    const queued = await w.remote.submit(w.job("queued", 3)); // started: queued on the worker
    const queuedReader = queued.tokens.getReader();
    const first = queuedReader.read();
    const flag = settledFlag(first);
    const aheadReader = ahead.tokens.getReader();
    for (let i = 0; i < 4; i++) {
      assertEquals((await stepAfter(w, aheadReader, STALL_MS - 1)).index, i);
      assert(!flag.settled, `the queued job was cut after ${w.timers.now()} ms`);
    }
    assert(w.timers.now() > 3 * STALL_MS, "it waited over three stall timeouts");
    assert((await aheadReader.read()).done);
    assertEquals((await ahead.done).finishReason, "length");
    // Its turn now: a prefill and a step, each within the stall timeout.
    await w.timers.advance(STALL_MS - 1);
    assert(!flag.settled, "cut before its own first step was due");
    w.model.release(1);
    assertEquals((await first).value?.index, 0);
    assertEquals(await readRest(w, queuedReader, 2), [1, 2]);
    const summary = await queued.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
    assertEquals(w.model.steps, 7);
  });
});

Deno.test("a queued job is not cut while this side holds up the job ahead of it by not reading it", async () => {
  await withQueuedWorker(async (w) => {
    const ahead = await w.remote.submit(w.job("ahead", 3));
    const queued = await w.remote.submit(w.job("queued", 2));
    const aheadReader = ahead.tokens.getReader();
    assertEquals((await stepAfter(w, aheadReader, 0)).index, 0);
    // Nobody reads the job ahead for a while: its worker waits on this side, the queue with it.
    const queuedReader = queued.tokens.getReader();
    const first = queuedReader.read();
    const flag = settledFlag(first);
    await w.timers.advance(3 * STALL_MS);
    assert(!flag.settled, "the queued job was cut while the job ahead was not read");
    assertEquals(await readRest(w, aheadReader, 2), [1, 2]);
    assertEquals((await ahead.done).finishReason, "length");
    w.model.release(1);
    assertEquals((await first).value?.index, 0);
    assertEquals(await readRest(w, queuedReader, 1), [1]);
    assertEquals((await queued.done).finishReason, "length");
  });
});

Deno.test("a queued job whose worker then goes silent on every job of the model is cut a stall timeout after the worker's last event, as a worker that is not busy", async () => {
  await withQueuedWorker(async (w) => {
    const ahead = await w.remote.submit(w.job("ahead", 8));
    const queued = await w.remote.submit(w.job("queued", 2));
    // Caught at once: it fails while the clock advances, before anything awaits it.
    const first = queued.tokens.getReader().read().catch((e) => e);
    const flag = settledFlag(first);
    const aheadReader = ahead.tokens.getReader();
    await stepAfter(w, aheadReader, STALL_MS - 1);
    await stepAfter(w, aheadReader, STALL_MS - 1);
    // The worker's last event; from here it sends nothing, for either job.
    const aheadNext = aheadReader.read().catch((e) => e);
    await w.timers.advance(STALL_MS - 1);
    assert(!flag.settled, "cut before a stall timeout had passed since the worker's last event");
    await w.timers.advance(1);
    const error = await first;
    assert(error instanceof WorkerStalledError, String(error));
    assertEquals(error.busy, false);
    assert(error.message.includes(`${STALL_MS} ms after 0 tokens`), error.message);
    assert((await aheadNext) instanceof WorkerStalledError);
    assertEquals((await queued.done).error?.code, "worker_stalled");
  });
});

Deno.test("a job kept from its first token past the first-token timeout while the worker streams the model's other jobs is cut with worker_stalled marked busy, and the others go on", async () => {
  const firstTokenTimeoutMs = 3 * STALL_MS;
  await withQueuedWorker(async (w) => {
    const ahead = await w.remote.submit(w.job("ahead", 8));
    const queued = await w.remote.submit(w.job("queued", 2));
    const first = queued.tokens.getReader().read().catch((e) => e);
    const flag = settledFlag(first);
    const aheadReader = ahead.tokens.getReader();
    for (let i = 0; i < 3; i++) await stepAfter(w, aheadReader, STALL_MS - 1);
    assert(!flag.settled, "cut before the first-token timeout");
    await stepAfter(w, aheadReader, STALL_MS - 1); // passes it
    const error = await first;
    assert(error instanceof WorkerStalledError, String(error));
    assertEquals(error.busy, true);
    assert(error.message.includes(`${firstTokenTimeoutMs} ms`), error.message);
    assertEquals(await readRest(w, aheadReader, 4), [4, 5, 6, 7]);
    const summary = await ahead.done;
    assertEquals([summary.finishReason, summary.error], ["length", undefined]);
  }, { firstTokenTimeoutMs });
});

Deno.test("a job queued behind jobs this side cannot see is not cut while the worker repeats its place, past many stall timeouts; the requester hears the place, then 0 at its first token", async () => {
  await withQueuedWorker(
    async (w) => {
      // Another requester's job holds the worker's one slot: nothing of it crosses this link.
      const theirs = await w.local.submit(w.job("theirs", 2));
      const places: number[] = [];
      const mine = await w.remote.submit(w.job("mine", 2), {
        onQueued: (position) => places.push(position),
      });
      const reader = mine.tokens.getReader();
      const first = reader.read();
      const flag = settledFlag(first);
      for (let i = 0; i < 10; i++) {
        await w.timers.advance(STALL_MS - 1);
        assert(!flag.settled, `cut after ${w.timers.now()} ms though the worker said it queued it`);
      }
      assertEquals(places, [1], "the place, once: the worker's repeats are not news");
      const theirText = (async () => {
        for await (const _ of theirs.tokens);
      })();
      w.model.release(2);
      await theirText;
      w.model.release(1);
      assertEquals((await first).value?.index, 0);
      assertEquals(places.at(-1), 0, "it left the queue");
      assertEquals(await readRest(w, reader, 1), [1]);
      assertEquals((await mine.done).finishReason, "length");
    },
    {},
    (timers) => ({ timers, queuedRepeatMs: STALL_MS / 2 }),
  );
});

Deno.test("a worker that keeps saying it queued a job is still cut at the first-token timeout, marked busy", async () => {
  const firstTokenTimeoutMs = 4 * STALL_MS;
  await withQueuedWorker(
    async (w) => {
      const theirs = await w.local.submit(w.job("theirs", 2));
      const mine = await w.remote.submit(w.job("mine", 2));
      const first = mine.tokens.getReader().read().catch((e) => e);
      const flag = settledFlag(first);
      await w.timers.advance(firstTokenTimeoutMs - 1);
      assert(!flag.settled, "cut before the first-token timeout");
      await w.timers.advance(1);
      const error = await first;
      assert(error instanceof WorkerStalledError, String(error));
      assertEquals(error.busy, true);
      theirs.cancel();
    },
    { firstTokenTimeoutMs },
    (timers) => ({ timers, queuedRepeatMs: STALL_MS / 2 }),
  );
});

Deno.test("a worker whose model wedges is cut at the stall timeout even while it repeats a queued job's place: the job in its slot, and the job queued behind it", async () => {
  await withQueuedWorker(
    async (w) => {
      const running = await w.remote.submit(w.job("running", 2)); // its first step never ends
      const queued = await w.remote.submit(w.job("queued", 2));
      const places: number[] = [];
      const [runningFirst, queuedFirst] = [running, queued].map((h) =>
        h.tokens.getReader().read().catch((e) => e)
      );
      const flags = [settledFlag(runningFirst), settledFlag(queuedFirst)];
      await w.timers.advance(STALL_MS - 1);
      assert(!flags[0].settled && !flags[1].settled, "cut before a stall timeout");
      await w.timers.advance(1);
      for (const first of [runningFirst, queuedFirst]) {
        const error = await first;
        assert(error instanceof WorkerStalledError, String(error));
        assertEquals(error.busy, false);
      }
      assertEquals(places, []);
    },
    {},
    (timers) => ({ timers, queuedRepeatMs: STALL_MS / 4 }),
  );
});

Deno.test("a worker that moves a job back in its queue breaks the job's stream", async () => {
  await withQueuedWorker(
    async (w) => {
      const theirs = await w.local.submit(w.job("theirs", 1));
      const seen: number[] = [];
      const mine = await w.remote.submit(w.job("mine", 1), {
        onQueued: (position) => seen.push(position),
      });
      const first = mine.tokens.getReader().read().catch((e) => e);
      await w.timers.advance(1);
      // A forged place further back, as a worker flooding its requester would send.
      w.forgePlace("mine", 2);
      const error = await first;
      assert(error instanceof InferenceStreamError, String(error));
      assert(error.message.includes("from place 1 to 2"), error.message);
      assertEquals(seen, [1, 0]);
      theirs.cancel();
    },
    {},
    (timers) => ({ timers }),
  );
});

Deno.test("once the worker stops repeating a job's place (it got a slot, its first token is a prefill away), the requester says it left the queue", async () => {
  await withQueuedWorker(
    async (w) => {
      const theirs = await w.local.submit(w.job("theirs", 1));
      const seen: number[] = [];
      const mine = await w.remote.submit(w.job("mine", 2), {
        onQueued: (position) => seen.push(position),
      });
      const reader = mine.tokens.getReader();
      const first = reader.read();
      await w.timers.advance(1);
      assertEquals(seen, [1]);
      const theirText = (async () => {
        for await (const _ of theirs.tokens);
      })();
      w.model.release(1); // theirs ends: mine gets the slot, and waits in its first step
      await theirText;
      await w.timers.advance(QUEUED_EVENT_REPEAT_MS * 2);
      assertEquals(seen, [1], "not before the repeats have stopped for a while");
      await w.timers.advance(QUEUED_EVENT_REPEAT_MS);
      assertEquals(seen, [1, 0]);
      w.model.release(2);
      assertEquals((await first).value?.index, 0);
      assertEquals(seen, [1, 0], "told once");
      assertEquals(await readRest(w, reader, 0), [1]);
    },
    { stallTimeoutMs: 10 * QUEUED_EVENT_REPEAT_MS },
    (timers) => ({ timers }),
  );
});
