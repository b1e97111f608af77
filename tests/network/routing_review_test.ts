/**
 * A router (a real NetworkActor and its forwarding port) against workers that want its jobs and
 * do not run them: each signs a hello that claims to be idle, so the choice of worker ranks it
 * ahead of a busy honest worker, then takes the job and fails it its own way — silent after its
 * `start`, its connection dropped mid-stream, or its own error after its `start`. Each must cost
 * at most the jobs it first meets, not every job: the router remembers what the worker did and
 * asks the honest worker first. The router's timers run on a fake clock.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { MAX_WORKERS_PER_JOB } from "../../network/failover.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
  type SubmitOptions,
} from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  PeerHelloMessage,
  type PeerLoad,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { params } from "../server/_fixtures.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import { INFO, MODEL } from "./_router_fixture.ts";

/** The router's stall timeout (a fake clock: its size costs nothing). */
const STALL_MS = 10_000;
/** The first while a worker is asked last: longer than a job's run here, so no job ends it. */
const FIRST_WHILE_MS = 4 * STALL_MS;
const LONGEST_WHILE_MS = 16 * STALL_MS;
/** Tokens of each job. */
const TOKENS = 8;
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
const BUSY: PeerLoad = { running: 1, queued: 0, slots: 4, queueLimit: 4 };

/** Position `i` of every job's output. */
function token(i: number): StreamedToken {
  return {
    index: i,
    tokenId: 97 + i,
    text: String.fromCharCode(97 + i),
    ...(i === TOKENS - 1 ? { finishReason: "length" as const } : {}),
  };
}

/** A port whose jobs stream `tokens(from)` and end as `end` says. */
abstract class ScriptedPort implements InferencePort {
  /** Jobs submitted to it. */
  submits = 0;
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([INFO]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  abstract tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken>;
  submit(j: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    const done = Promise.withResolvers<JobSummary>();
    const end = (summary: JobSummary) => done.resolve({ ...summary, jobId: jobId(j) });
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens: this.tokens(options?.resume?.length ?? 0, end),
      done: done.promise,
      cancel: () => end(summaryOf("cancelled")),
    });
  }
}

function summaryOf(
  finishReason: JobSummary["finishReason"],
  error?: JobSummary["error"],
): JobSummary {
  return {
    jobId: "",
    finishReason,
    usage: { promptTokens: 1, completionTokens: 0 },
    timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    ...(error ? { error } : {}),
  };
}

/** An honest worker: runs the job from where it is asked to resume, to its end. */
class Honest extends ScriptedPort {
  ran = 0;
  tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken> {
    this.ran++;
    let i = from;
    return new ReadableStream({
      pull: (c) => {
        c.enqueue(token(i));
        if (++i === TOKENS) {
          c.close();
          done(summaryOf("length"));
        }
      },
    }, { highWaterMark: 0 });
  }
}

/** Streams `before` tokens of a job, then fails it with its own `code`, as a worker does. */
class FailsItself extends ScriptedPort {
  constructor(readonly before: number, readonly code: string) {
    super();
  }
  tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken> {
    let i = from;
    return new ReadableStream({
      pull: (c) => {
        if (i < from + this.before) return c.enqueue(token(i++));
        const message = "the model worker died";
        done(summaryOf("error", { code: this.code, message }));
        c.error(new VeriflowError(this.code, message));
      },
    }, { highWaterMark: 0 });
  }
}

/**
 * Streams `before` tokens of a job, then, once {@link stopped} is called (its requester stopped
 * reading meanwhile), fails it as a worker whose requester gave it no credit does.
 */
class GivesUpOnReader extends ScriptedPort {
  readonly #gave = Promise.withResolvers<void>();
  constructor(readonly before: number) {
    super();
  }
  /** The requester has not read for the worker's reader stall timeout. */
  stopped(): void {
    this.#gave.resolve();
  }
  tokens(from: number, done: (summary: JobSummary) => void): ReadableStream<StreamedToken> {
    let i = from;
    return new ReadableStream({
      pull: async (c) => {
        if (i < from + this.before) return c.enqueue(token(i++));
        await this.#gave.promise;
        const message = "the requester stopped reading";
        done(summaryOf("error", { code: "reader_stalled", message }));
        c.error(new VeriflowError("reader_stalled", message));
      },
    }, { highWaterMark: 0 });
  }
}

/** Streams one token of a job, then drops its connection (and dials back in later). */
class Dropper extends ScriptedPort {
  connection?: Connection;
  tokens(from: number): ReadableStream<StreamedToken> {
    let sent = false;
    return new ReadableStream({
      pull: async (c) => {
        if (!sent) {
          sent = true;
          return c.enqueue(token(from));
        }
        await this.connection?.close(new Error("dropped"));
        return new Promise<void>(() => {}); // gone
      },
    }, { highWaterMark: 0 });
  }
}

/** A router whose port's timers and busy memory run on one fake clock. */
async function router() {
  const system = new ActorSystem({ name: "routing-review" });
  const net: ActorRef<NetworkMessage> = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const timers = new ManualTimers();
  const busy = new BusyRefusals({
    firstMs: FIRST_WHILE_MS,
    maxMs: LONGEST_WHILE_MS,
    now: () => timers.now(),
  });
  // One token per event: a worker's stream is read as it is written.
  const port = new NetworkInferencePort(
    net,
    undefined,
    undefined,
    { timers, stallTimeoutMs: STALL_MS, tokensPerEvent: 1 },
    busy,
  );
  const links: Connection[] = [];

  /** Connect `worker` as `identity`, its hello saying `load`; resolves once it is routable. */
  const connect = async (identity: Identity, worker: InferencePort, load: PeerLoad) => {
    const key = toHex(identity.publicKey);
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return !peers.some((p) => p.key === key);
    }, "its last connection gone");
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL, PEER_PROTOCOL];
    const opened = Connection.open(b, { identity, protocols, closeGraceMs: 10 }).then((c) => {
      serveInference(c, worker);
      return c;
    });
    const [, peer] = await Promise.all([
      net.ask({ type: "attach", duplex: a, address: "mem", outbound: true }),
      opened,
    ]);
    links.push(peer);
    const body = { version: "1.0.0", roles: ["inference" as const], models: [MODEL], load };
    await peer.notify(PeerHelloMessage, { hello: signPeerHello(identity, body, 1, Date.now()) });
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.some((p) => p.key === key && p.models.length > 0 && p.load) || undefined;
    }, "the worker listed and said its load");
    return peer;
  };

  /**
   * Run one job to its end, moving the fake clock by the stall timeout once it started (a
   * silent worker is cut then; nothing else waits on the clock): the indices the client got, and
   * how it ended.
   */
  const run = async (nonce: string) => {
    const handle = await port.submit(jobOf(nonce));
    const got: number[] = [];
    const all = (async () => {
      try {
        for await (const t of handle.tokens) got.push(t.index);
      } catch { /* the summary says how it ended */ }
    })();
    await timers.advance(STALL_MS);
    await all;
    const summary = await handle.done;
    return { got, finishReason: summary.finishReason, code: summary.error?.code };
  };

  const close = async () => {
    for (const c of links) await c.close();
    await system.shutdown();
  };
  return { timers, port, connect, run, close };
}

/** The job of every test here, told apart by `nonce`. */
function jobOf(nonce: string): TextJob {
  return { kind: "text", model: MODEL, prompt: "hi", params: params({ maxTokens: TOKENS }), nonce };
}

const WHOLE = Array.from({ length: TOKENS }, (_, i) => i);

Deno.test("a worker that claims room, starts each job and never sends a token costs the first job the stall timeout, not every job: it is asked last after, for longer each time it does it again", async () => {
  const r = await router();
  try {
    const honest = new Honest();
    await r.connect(Identity.generate(), honest, BUSY);
    const silent = new StallingPort(INFO, []); // starts the job, then nothing
    await r.connect(Identity.generate(), silent, IDLE);

    // The first job meets it (it ranks first on its claim), waits the stall timeout, moves on.
    assert.deepEqual(await r.run("s1"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 1);
    // The next one goes straight to the honest worker: no stall timeout's wait again.
    assert.deepEqual(await r.run("s2"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 1, "the silent worker was asked again at once");

    // After its while it is asked again, stalls again, and is asked last twice as long: its
    // `start` does not count as a job taken.
    await r.timers.advance(FIRST_WHILE_MS);
    assert.deepEqual(await r.run("s3"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 2);
    await r.timers.advance(FIRST_WHILE_MS * 1.25);
    assert.deepEqual(await r.run("s4"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 2, "forgiven for its start: asked again after the first while");
    assert.equal(honest.ran, 4);
  } finally {
    await r.close();
  }
});

Deno.test("workers that claim room and drop their connection mid-stream, and dial back in under the same keys, fail the first job they meet, not the next: it runs on the honest worker", async () => {
  const r = await router();
  try {
    const honest = new Honest();
    await r.connect(Identity.generate(), honest, BUSY);
    const droppers = Array.from({ length: MAX_WORKERS_PER_JOB }, () => ({
      identity: Identity.generate(),
      port: new Dropper(),
    }));
    for (const d of droppers) d.port.connection = await r.connect(d.identity, d.port, IDLE);

    // The job's budget goes on them: it ends with the lost workers' code.
    const first = await r.run("d1");
    assert.deepEqual([first.finishReason, first.code], ["error", "connection_closed"]);
    assert.equal(honest.ran, 0);

    // They dial back in, each under its key, still claiming room.
    for (const d of droppers) d.port.connection = await r.connect(d.identity, d.port, IDLE);
    const submits = droppers.map((d) => d.port.submits);
    assert.deepEqual(await r.run("d2"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.deepEqual(droppers.map((d) => d.port.submits), submits, "a dropper was asked first");
    assert.equal(honest.ran, 1);
  } finally {
    await r.close();
  }
});

for (
  const [code, before] of [
    ["model_worker_failed", 0],
    ["model_worker_failed", 3],
    ["internal_error", 0],
    ["job_cancelled", 2],
    ["made_up_code", 1],
  ] as const
) {
  Deno.test(`a worker that claims room, starts each job and fails it with its own error (${code}) after ${before} tokens does not end the client's job: it resumes on the honest worker, and the next job goes there first`, async () => {
    const r = await router();
    try {
      const honest = new Honest();
      await r.connect(Identity.generate(), honest, BUSY);
      const failing = new FailsItself(before, code);
      await r.connect(Identity.generate(), failing, IDLE);

      assert.deepEqual(await r.run("f1"), { got: WHOLE, finishReason: "length", code: undefined });
      assert.equal(failing.submits, 1);
      assert.deepEqual(await r.run("f2"), { got: WHOLE, finishReason: "length", code: undefined });
      assert.equal(failing.submits, 1, "the failing worker was asked first again");
      assert.equal(honest.ran, 2);
    } finally {
      await r.close();
    }
  });
}

// reader_stalled: the client stopped reading; a slow client must not get honest workers kept
// off the model (nor spend others on a job nobody reads). An error about the job itself after
// the worker's start (context_length_exceeded, ...) is the worker's own:
// review_s45_routing_more_test.ts. Until review s64 this test had the worker say so at once
// while its client read every token as it came, and pinned that the router believed it: a worker
// that said so of every job ended each client's job it was picked for and stayed first
// (`review_s64_reader_stalled_test.ts`). Its client now really stops reading, for a minute (the
// workers' default reader stall timeout).
Deno.test("a worker that ends a job it started with an error about its requester (reader_stalled) after the client stopped reading for a minute ends the client's job: no other worker is asked, and the worker stays in favour", async () => {
  const r = await router();
  try {
    const honest = new Honest();
    await r.connect(Identity.generate(), honest, BUSY);
    const staller = new GivesUpOnReader(2);
    await r.connect(Identity.generate(), staller, IDLE);
    const handle = await r.port.submit(jobOf("c1"));
    const reader = handle.tokens.getReader();
    const got: number[] = [];
    for (let i = 0; i < 2; i++) got.push((await reader.read()).value!.index);
    // The client stops reading for a minute; the worker gives up on it meanwhile.
    await r.timers.advance(60_000);
    staller.stopped();
    await assert.rejects(reader.read(), { code: "reader_stalled" });
    assert.deepEqual(got, [0, 1]);
    const summary = await handle.done;
    assert.equal(summary.finishReason, "error");
    assert.equal(summary.error?.code, "reader_stalled");
    assert.equal(honest.ran, 0);
    const next = await r.port.submit(jobOf("c2"));
    assert.equal(staller.submits, 2, "it was kept off the model for its requester's stall");
    next.cancel();
  } finally {
    await r.close();
  }
});
