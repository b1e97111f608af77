/**
 * The router's worker choice (`network/worker_choice.ts`) and what it remembers of workers
 * (`network/busy_refusals.ts`): workers that claim room and refuse as full, refuse a model, or take a
 * job and fail it their own way cost the jobs they first meet, not every job.
 */
import assert from "node:assert/strict";
import { chooseWorker, type WorkerCandidate } from "../../network/worker_choice.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { MAX_WORKERS_ASKED_PER_JOB, MAX_WORKERS_PER_JOB } from "../../network/failover.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, INFO, job, MODEL, TwoTokenWorker } from "./_router_fixture.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { InferencePort, JobSummary, StreamedToken } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  PeerHelloMessage,
  type PeerLoad,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { StallingPort } from "../inference/_stalling_port.ts";
import {
  Dropper,
  Honest,
  jobOf,
  ScriptedPort,
  summaryOf,
  token,
  WHOLE,
} from "./_resuming_ports.ts";

// ---- worker choice --------------------------------------------------------------------------------
// The router's worker choice, rule by rule (`network/worker_choice.ts`).

const idle = { running: 0, queued: 0, slots: 2, queueLimit: 2 };
const full = { running: 2, queued: 2, slots: 2, queueLimit: 2 };
const staked = { stake: 1_000, locked: 0, balance: 0 };

function worker(key: string, extra: Partial<WorkerCandidate> = {}): WorkerCandidate {
  return { key, models: ["m"], convicted: false, inFlight: 0, load: idle, ...extra };
}

Deno.test("worker choice: only workers serving the model, not convicted, not excluded", () => {
  const pool = [
    worker("other-model", { models: ["x"] }),
    worker("no-model", { models: [] }),
    worker("convicted", { convicted: true }),
    worker("excluded"),
    worker("ok", { load: { ...idle, running: 1 } }),
  ];
  assert.equal(chooseWorker(pool, { model: "m", exclude: ["excluded"] })?.key, "ok");
  assert.equal(chooseWorker(pool.slice(0, 4), { model: "m", exclude: ["excluded"] }), undefined);
  // Any model: a worker that lists none still runs nothing.
  assert.equal(chooseWorker([worker("no-model", { models: [] })], {}), undefined);
});

Deno.test("worker choice: capacity first; when all are full, the least loaded of them", () => {
  const backedFull = worker("full", { load: full, standing: staked });
  const unbackedFree = worker("free", { load: { ...idle, running: 3 } });
  assert.equal(chooseWorker([backedFull, unbackedFree], { model: "m" })?.key, "free");
  const fuller = worker("fuller", { load: { ...full, queued: 3 } });
  assert.equal(chooseWorker([fuller, worker("full", { load: full })], {})?.key, "full");
});

Deno.test("worker choice: a worker with free stake here before one without, then the least loaded", () => {
  const unbacked = worker("unbacked");
  const lockedUp = worker("locked", { standing: { stake: 100, locked: 100, balance: 9 } });
  const backedBusy = worker("backed-busy", { standing: staked, load: { ...idle, running: 1 } });
  const backedIdle = worker("backed-idle", { standing: staked });
  assert.equal(chooseWorker([unbacked, lockedUp, backedBusy], {})?.key, "backed-busy");
  assert.equal(chooseWorker([unbacked, backedBusy, backedIdle], {})?.key, "backed-idle");
});

Deno.test("worker choice: load is the larger of the hello's count and our own requests in flight", () => {
  // Its hello is stale (says idle) but we already sent it three jobs.
  const stale = worker("stale", { inFlight: 3 });
  const busy = worker("busy", { load: { ...idle, running: 2 } });
  assert.equal(chooseWorker([stale, busy], {})?.key, "busy");
  // No hello yet: our own count is all there is.
  const quiet = worker("quiet", { load: undefined, inFlight: 1 });
  assert.equal(chooseWorker([quiet, worker("idle")], {})?.key, "idle");
});

Deno.test("worker choice: an input's holder before an equally loaded other; then the better record; ties keep order", () => {
  assert.equal(
    chooseWorker([worker("far"), worker("near", { holdsInput: true })], {})?.key,
    "near",
  );
  const proven = worker("proven", { standing: { ...staked, balance: 50 } });
  const fresh = worker("fresh", { standing: staked });
  assert.equal(chooseWorker([fresh, proven], {})?.key, "proven");
  assert.equal(chooseWorker([worker("first"), worker("second")], {})?.key, "first");
});

Deno.test("worker choice: capacity counts our own requests in flight too, so a backed worker full by our count yields to an idle unbacked one", () => {
  // Its hello (sent before this burst) shows 4 free places; we have sent it 4 jobs since.
  const backed = worker("backed", { standing: staked, inFlight: 4 });
  const unbacked = worker("unbacked");
  assert.equal(chooseWorker([backed, unbacked], {})?.key, "unbacked");
  // One place left by our count: still the backed one.
  assert.equal(
    chooseWorker([worker("backed", { standing: staked, inFlight: 3 }), unbacked], {})?.key,
    "backed",
  );
});

Deno.test("worker choice: a worker where the job starts at once before a less loaded one where it would wait in the queue", () => {
  // "wide" seats 8 and runs 5; "narrow" seats 1 and runs it: the job would queue there.
  const wide = worker("wide", { load: { running: 5, queued: 0, slots: 8, queueLimit: 64 } });
  const narrow = worker("narrow", { load: { running: 1, queued: 0, slots: 1, queueLimit: 64 } });
  assert.equal(chooseWorker([narrow, wide], {})?.key, "wide");
  // By our own count too: a burst this router just sent fills the seats its hello showed free.
  const filled = worker("wide", {
    load: { running: 5, queued: 0, slots: 8, queueLimit: 64 },
    inFlight: 8,
  });
  const emptyQueue = worker("narrow", {
    load: { running: 1, queued: 0, slots: 1, queueLimit: 64 },
  });
  assert.equal(chooseWorker([filled, emptyQueue], {})?.key, "narrow");
  // Where both would queue, the least loaded as before.
  const queued = worker("queued", { load: { running: 1, queued: 2, slots: 1, queueLimit: 64 } });
  assert.equal(chooseWorker([queued, narrow], {})?.key, "narrow");
});

// ---- busy refusals --------------------------------------------------------------------------------
// What a router remembers of workers that refused a job as full (`network/busy_refusals.ts`).

function clocked(options: { maxWorkers?: number } = {}) {
  const clock = { now: 0 };
  const busy = new BusyRefusals({ firstMs: 1_000, maxMs: 8_000, now: () => clock.now, ...options });
  return { clock, busy };
}

Deno.test("busy refusals: asked last for one hello interval, twice as long each time it refuses again after it, up to the longest while", () => {
  const { clock, busy } = clocked();
  busy.refused("aa");
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 999;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), [], "the first while is over");
  const whiles: number[] = [];
  for (let i = 0; i < 5; i++) {
    const from = clock.now;
    busy.refused("aa");
    while (busy.askedLast().length > 0) clock.now += 100;
    whiles.push(clock.now - from);
  }
  assert.deepEqual(whiles, [2_000, 4_000, 8_000, 8_000, 8_000]);
});

Deno.test("busy refusals: a burst of refusals within the while does not lengthen it; a job it takes forgets it; a long quiet starts over", () => {
  const { clock, busy } = clocked();
  for (let i = 0; i < 10; i++) busy.refused("aa");
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), [], "ten refusals in one while are one");
  busy.refused("aa"); // asked again after it: 2 s
  clock.now = 2_500;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  busy.took("aa");
  assert.deepEqual(busy.askedLast(), [], "it took a job");
  busy.refused("aa");
  clock.now = 3_500;
  assert.deepEqual(busy.askedLast(), [], "forgotten: the while starts at 1 s again");
  busy.refused("aa"); // 2 s, until 5 500
  clock.now = 5_500 + 8_000;
  busy.refused("aa"); // quiet for the longest while since its last: 1 s again
  clock.now += 1_000;
  assert.deepEqual(busy.askedLast(), []);
});

Deno.test("busy refusals: at most maxWorkers remembered; those whose while ended go first, then the oldest", () => {
  const { clock, busy } = clocked({ maxWorkers: 3 });
  busy.refused("old");
  clock.now = 1_000; // old's while ended
  busy.refused("a");
  busy.refused("b");
  busy.refused("c");
  assert.deepEqual(busy.askedLast(), ["a", "b", "c"]);
  busy.refused("d");
  assert.deepEqual(busy.askedLast(), ["b", "c", "d"], "the oldest live one made room");
});

Deno.test("busy refusals (s54): a job that waited on the worker, reported within a while a quick refusal started, still keeps it asked last for that wait from its report, and the next while doubles it as if it came first", () => {
  const { clock, busy } = clocked();
  busy.refused("aa"); // a quick refusal: 1 s, until 1 000
  clock.now = 500;
  // A job it kept without a token since before that refusal moves on after waiting 5 s.
  busy.refused("aa", 5_000);
  clock.now = 1_000;
  assert.deepEqual(busy.askedLast(), ["aa"], "asked again after 1 s, it costs the next job 5 s");
  clock.now = 5_499;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 5_500;
  assert.deepEqual(busy.askedLast(), [], "for as long as that job waited, from its report");
  // Refused again after it: twice the 5 s, at most the longest while (8 s).
  busy.refused("aa");
  clock.now = 13_499;
  assert.deepEqual(busy.askedLast(), ["aa"]);
  clock.now = 13_500;
  assert.deepEqual(busy.askedLast(), []);
});

// ---- busy refusal ---------------------------------------------------------------------------------
// Workers whose hellos claim room and that refuse every job as full (`too_many_jobs`): four fresh
// keys did so in a review, ranked ahead of a busy honest worker on their claim, and took every try
// of every job, so the router refused its clients (429) while the honest worker had room. Their
// refusals spend none of a job's tries, and they are asked last for a while after.

const FIRST_WHILE_MS = 1_000;
const IDLE: PeerLoad = { running: 0, queued: 0, slots: 8, queueLimit: 8 };
const BUSY: PeerLoad = { running: 1, queued: 0, slots: 4, queueLimit: 4 };

/** A worker that runs a two-token job, or refuses it as full while `full`. */
class Worker extends TwoTokenWorker {
  constructor(full: boolean) {
    super(full, "too_many_jobs", "full");
  }
  get full(): boolean {
    return this.refuses;
  }
  set full(full: boolean) {
    this.refuses = full;
  }
}

/** A router (a real network actor) whose port runs on a fake clock, and its workers. */
async function router() {
  const system = new ActorSystem({ name: "busy-refusal-test" });
  const net: ActorRef<NetworkMessage> = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const clock = { now: 0 };
  const busy = new BusyRefusals({ firstMs: FIRST_WHILE_MS, now: () => clock.now });
  const port = new NetworkInferencePort(net, undefined, undefined, {}, busy);
  let connected = 0;
  /** Connect `worker`; it says `load` in a signed hello. */
  const connect = async (worker: Worker, load: PeerLoad) => {
    await connectWorker(net, worker, load);
    connected++;
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.filter((p) => p.models.length > 0 && p.load).length === connected
        ? true
        : undefined;
    }, "every worker listed and said its load");
  };
  /** Run one job to its end; its error code, if it was refused. */
  const run = async (nonce: string): Promise<string | undefined> => {
    try {
      const handle = await port.submit(job(nonce));
      for await (const _ of handle.tokens) { /* run it */ }
      assert.equal((await handle.done).finishReason, "length");
      return undefined;
    } catch (error) {
      return (error as VeriflowError).code;
    }
  };
  return { clock, connect, run, close: () => system.shutdown() };
}

Deno.test("five workers that claim to be idle and refuse every job as full cost no job: each runs on the busy honest worker, and the refusers are asked last until their while ends", async () => {
  const r = await router();
  try {
    const honest = new Worker(false);
    await r.connect(honest, BUSY);
    const refusers = [0, 1, 2, 3, 4].map(() => new Worker(true));
    for (const w of refusers) await r.connect(w, IDLE);
    const submits = () => refusers.map((w) => w.submits);

    // The first job asks the five (they rank first on their claim), then the honest worker.
    assert.equal(await r.run("j0"), undefined);
    assert.deepEqual(submits(), [1, 1, 1, 1, 1]);
    // Their claim is contradicted: the next jobs go straight to the honest worker.
    for (let i = 1; i < 10; i++) assert.equal(await r.run(`j${i}`), undefined);
    assert.deepEqual(submits(), [1, 1, 1, 1, 1]);
    assert.equal(honest.ran, 10);

    // After the first while they are asked again, refuse again, and are asked last twice as long.
    r.clock.now += FIRST_WHILE_MS;
    assert.equal(await r.run("j10"), undefined);
    assert.deepEqual(submits(), [2, 2, 2, 2, 2]);
    r.clock.now += FIRST_WHILE_MS * 1.5;
    assert.equal(await r.run("j11"), undefined);
    assert.deepEqual(submits(), [2, 2, 2, 2, 2]);
    assert.equal(honest.ran, 12);
  } finally {
    await r.close();
  }
});

Deno.test("an honest worker that claimed room and was full is asked last for a while, then takes jobs again and is forgiven", async () => {
  const r = await router();
  try {
    const filled = new Worker(true); // its hello lags: it says idle, it is full
    const other = new Worker(false);
    await r.connect(filled, IDLE);
    await r.connect(other, BUSY);
    assert.equal(await r.run("a0"), undefined);
    filled.full = false; // a slot freed; its next hello is not in yet
    assert.equal(await r.run("a1"), undefined);
    assert.deepEqual([filled.submits, other.ran], [1, 2], "it does not keep winning the choice");
    r.clock.now += FIRST_WHILE_MS;
    assert.equal(await r.run("a2"), undefined);
    assert.deepEqual([filled.ran, other.ran], [1, 2], "asked again after its while, it ran it");
    // Forgiven: a refusal now is asked last for the first while again, not twice as long.
    filled.full = true;
    assert.equal(await r.run("a3"), undefined);
    r.clock.now += FIRST_WHILE_MS;
    filled.full = false;
    assert.equal(await r.run("a4"), undefined);
    assert.deepEqual([filled.ran, other.ran], [2, 3]);
  } finally {
    await r.close();
  }
});

Deno.test("a job asks at most MAX_WORKERS_ASKED_PER_JOB workers that refuse as full; the next job asks the ones not yet refused and runs", async () => {
  const r = await router();
  try {
    const honest = new Worker(false);
    await r.connect(honest, BUSY);
    const refusers = Array.from({ length: MAX_WORKERS_ASKED_PER_JOB + 1 }, () => new Worker(true));
    for (const w of refusers) await r.connect(w, IDLE);
    const asked = () => refusers.reduce((n, w) => n + w.submits, 0);
    assert.equal(await r.run("b0"), "too_many_jobs");
    assert.equal(asked(), MAX_WORKERS_ASKED_PER_JOB);
    assert.equal(await r.run("b1"), undefined);
    assert.equal(asked(), MAX_WORKERS_ASKED_PER_JOB + 1);
    assert.equal(honest.ran, 1);
  } finally {
    await r.close();
  }
});

// ---- model refusal --------------------------------------------------------------------------------
// A worker that lists a model and refuses every job for it: the router stops picking it for that
// model, so such peers (four Sybil keys in a review, each claiming a huge free capacity) cost a
// model's jobs one try each, not every job.

/** A worker that lists the model and either runs a two-token job or refuses `unknown_model`. */
class WorkerModelRefusal extends TwoTokenWorker {
  constructor(refuses: boolean) {
    super(refuses, "unknown_model", "not here");
  }
}

Deno.test("workers that list a model and refuse its jobs cost one job's tries, then the honest worker gets the rest", async () => {
  const system = new ActorSystem({ name: "model-refusal-test" });
  try {
    const net = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
    });
    const port = new NetworkInferencePort(net);
    const honest = new WorkerModelRefusal(false);
    await connectWorker(net, honest, { running: 1, queued: 0, slots: 4, queueLimit: 4 });
    const huge = { running: 0, queued: 0, slots: 1_000_000, queueLimit: 1_000_000 };
    const liars = [0, 1, 2, 3].map(() => new WorkerModelRefusal(true));
    for (const liar of liars) await connectWorker(net, liar, huge);
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.filter((p) => p.models.length > 0 && p.load).length === 5 ? true : undefined;
    }, "every worker listed and said its load");
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      try {
        const handle = await port.submit(job(`j${i}`));
        for await (const _ of handle.tokens) { /* run it */ }
        ok++;
      } catch (error) {
        assert.equal((error as VeriflowError).code, "unknown_model");
      }
    }
    // The first job tried the four liars (each looks idle and huge); every later one ran.
    assert.equal(ok, 9);
    assert.equal(honest.submits, 9);
    assert.deepEqual(liars.map((l) => l.submits), [1, 1, 1, 1]);
  } finally {
    await system.shutdown();
  }
});

// ---- routing review -------------------------------------------------------------------------------
// A router (a real NetworkActor and its forwarding port) against workers that want its jobs and do
// not run them: each signs a hello that claims to be idle, so the choice of worker ranks it ahead
// of a busy honest worker, then takes the job and fails it its own way — silent after its `start`,
// its connection dropped mid-stream, or its own error after its `start`. Each must cost at most the
// jobs it first meets, not every job: the router remembers what the worker did and asks the honest
// worker first. The router's timers run on a fake clock.

/** The router's stall timeout (a fake clock: its size costs nothing). */
const STALL_MS = 10_000;
/** The first while a worker is asked last: longer than a job's run here, so no job ends it. */
const FIRST_WHILE_MS_ROUTING_REVIEW = 4 * STALL_MS;
const LONGEST_WHILE_MS = 16 * STALL_MS;
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

/** A router whose port's timers and busy memory run on one fake clock. */
async function routerRoutingReview() {
  const system = new ActorSystem({ name: "routing-review" });
  const net: ActorRef<NetworkMessage> = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const timers = new ManualTimers();
  const busy = new BusyRefusals({
    firstMs: FIRST_WHILE_MS_ROUTING_REVIEW,
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

Deno.test("a worker that claims room, starts each job and never sends a token costs the first job the stall timeout, not every job: it is asked last after, for longer each time it does it again", async () => {
  const r = await routerRoutingReview();
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
    await r.timers.advance(FIRST_WHILE_MS_ROUTING_REVIEW);
    assert.deepEqual(await r.run("s3"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 2);
    await r.timers.advance(FIRST_WHILE_MS_ROUTING_REVIEW * 1.25);
    assert.deepEqual(await r.run("s4"), { got: WHOLE, finishReason: "length", code: undefined });
    assert.equal(silent.submits, 2, "forgiven for its start: asked again after the first while");
    assert.equal(honest.ran, 4);
  } finally {
    await r.close();
  }
});

Deno.test("workers that claim room and drop their connection mid-stream, and dial back in under the same keys, fail the first job they meet, not the next: it runs on the honest worker", async () => {
  const r = await routerRoutingReview();
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
    const r = await routerRoutingReview();
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
// worker_claims_test.ts. Until review s64 this test had the worker say so at once
// while its client read every token as it came, and pinned that the router believed it: a worker
// that said so of every job ended each client's job it was picked for and stayed first
// (`remote_job_test.ts`). Its client now really stops reading, for a minute (the
// workers' default reader stall timeout).
Deno.test("a worker that ends a job it started with an error about its requester (reader_stalled) after the client stopped reading for a minute ends the client's job: no other worker is asked, and the worker stays in favour", async () => {
  const r = await routerRoutingReview();
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
