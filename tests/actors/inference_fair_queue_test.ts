/**
 * The InferenceActor serves waiting jobs round-robin across clients, first-in first-out within one
 * (`actors/inference_actor.ts` over `actors/_fair_queue.ts`): a client that queued many jobs does
 * not make another client's single job wait behind them all; the places told to waiting jobs are
 * their real turns; one remote client may fill only its share of the queue, the operator's own
 * (`this machine`, and `""`: a job that names no client) only the whole queue; the order is
 * computed in work linear in the waiting jobs (review s73: it was quadratic).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  InferenceActor,
  type InferenceMessage,
  submitJob,
  type TextJobHandle,
  TooManyJobsError,
} from "../../actors/inference_actor.ts";
import { FairQueue, MAX_QUEUE_LIMIT } from "../../actors/_fair_queue.ts";
import type { TextJob } from "../../protocols/job.ts";
import {
  type InferencePort,
  type SubmitOptions,
  THIS_MACHINE_CLIENT,
} from "../../inference/inference_port.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL, SubmitMessage } from "../../protocols/inference_messages.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";

/**
 * One model of one seat (concurrency 1) whose steps wait at a gate: the first job holds the seat
 * until the test ends it, the others wait in the queue, and which one starts next is the queue's
 * choice alone. Each job is named by a label; `started` lists the labels in the order they took
 * the seat, `places` each label's last told place (absent: never told, 0: it left for the seat).
 */
class OneSeat {
  readonly model = new ScriptedModel({ gated: true });
  readonly system = new ActorSystem({ name: "fair-queue" });
  readonly started: string[] = [];
  readonly places = new Map<string, number>();
  readonly handles = new Map<string, TextJobHandle>();
  #ref?: ActorRef<InferenceMessage>;
  #nonce = 0;

  async open(queueLimit = 64): Promise<this> {
    this.#ref = await this.system.spawn<InferenceMessage>({
      name: "inference",
      factory: () =>
        new InferenceActor({ models: new StaticModels([this.model]), concurrency: 1, queueLimit }),
    });
    return this;
  }

  /** Submit job `label` for `client` (none: the option left out). */
  async submit(label: string, client?: string): Promise<void> {
    const job: TextJob = {
      kind: "text",
      model: this.model.info.cid,
      prompt: "x",
      params: params({ maxTokens: 1 }),
      nonce: `fair-${label}-${++this.#nonce}`,
    };
    const handle = await submitJob(this.#ref!, job, {
      client,
      onQueued: (place) => {
        this.places.set(label, place);
        if (place === 0) this.started.push(label);
      },
    });
    // Never told a place: it took a free seat at once.
    if (!this.places.has(label)) this.started.push(label);
    this.handles.set(label, handle);
  }

  /** Cancel the queued job `label`, which then waits for nothing and is told no more. */
  async cancel(label: string): Promise<void> {
    const others = [...this.places].filter(([other, place]) => other !== label && place > 0);
    this.handles.get(label)!.cancel();
    this.places.delete(label);
    // Its end note reaches the actor after the cancel: the others are told then.
    await eventually(
      () => others.some(([other, place]) => this.places.get(other) !== place),
      `the jobs behind ${label} told their new places`,
    );
  }

  /** The labels of the jobs waiting, by the place each was last told (1 first). */
  toldOrder(): string[] {
    return [...this.places].filter(([, place]) => place > 0).sort(([, a], [, b]) => a - b)
      .map(([label]) => label);
  }

  /** End the job holding the seat and wait for the next one to take it. */
  async endRunning(): Promise<void> {
    const running = this.started.at(-1)!;
    const count = this.started.length;
    this.handles.get(running)!.cancel();
    await eventually(() => this.started.length > count, `a job after ${running} to start`);
  }

  /** End each job in turn until none waits: the labels in the order they took the seat. */
  async drain(): Promise<string[]> {
    while (this.toldOrder().length > 0) await this.endRunning();
    return this.started;
  }

  async close(): Promise<void> {
    for (const handle of this.handles.values()) handle.cancel();
    this.model.release(1e6);
    await this.system.shutdown();
  }
}

/** `prefix1` … `prefixN`. */
function labels(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
}

Deno.test("InferenceActor: a client's single job waiting behind another client's ten starts second, not eleventh", async () => {
  const seat = await new OneSeat().open();
  try {
    for (const label of labels("a", 10)) await seat.submit(label, "client A");
    await seat.submit("b1", "client B");
    // a1 took the seat at once; b1 is the next client's oldest job.
    assert.deepEqual(await seat.drain(), ["a1", "b1", ...labels("a", 10).slice(1)]);
  } finally {
    await seat.close();
  }
});

Deno.test("InferenceActor: the places told to waiting jobs are their turns in the round-robin over clients, and stay so as jobs are served", async () => {
  const seat = await new OneSeat().open();
  try {
    for (const label of labels("a", 4)) await seat.submit(label, "client A");
    // a2..a4 were told 1..3; b1 comes in ahead of them all, b2 after a2, c1 after b1's turn.
    await seat.submit("b1", "client B");
    await seat.submit("b2", "client B");
    await seat.submit("c1", "client C");
    const expected = ["b1", "c1", "a2", "b2", "a3", "a4"];
    assert.deepEqual(seat.toldOrder(), expected);
    assert.deepEqual(expected.map((label) => seat.places.get(label)), [1, 2, 3, 4, 5, 6]);
    // Each job that takes the seat was told 1 last; the others move up by one.
    for (let served = 0; served < expected.length; served++) {
      assert.deepEqual(seat.toldOrder(), expected.slice(served));
      await seat.endRunning();
      assert.equal(seat.started.at(-1), expected[served]);
    }
    assert.deepEqual(seat.started, ["a1", ...expected]);
  } finally {
    await seat.close();
  }
});

Deno.test("InferenceActor: cancelling a queued job gives the jobs behind it their new turns", async () => {
  const seat = await new OneSeat().open();
  try {
    for (const label of labels("a", 3)) await seat.submit(label, "client A");
    await seat.submit("b1", "client B");
    await seat.submit("b2", "client B");
    assert.deepEqual(seat.toldOrder(), ["b1", "a2", "b2", "a3"]);
    await seat.cancel("a2");
    // a3 is now A's oldest, in a2's turn; b2 stays behind it (B's second job); b1 stays first.
    assert.deepEqual(seat.toldOrder(), ["b1", "a3", "b2"]);
    assert.deepEqual(["b1", "a3", "b2"].map((label) => seat.places.get(label)), [1, 2, 3]);
    assert.deepEqual(await seat.drain(), ["a1", "b1", "a3", "b2"]);
  } finally {
    await seat.close();
  }
});

Deno.test("InferenceActor: one client may fill only its share of the queue (half), refused too_many_jobs naming the cap, while another client still gets in", async () => {
  const seat = await new OneSeat().open(4); // a share of 2 waiting jobs
  try {
    for (const label of labels("a", 3)) await seat.submit(label, "client A"); // a1 runs
    const refused = await seat.submit("a4", "client A").then(() => undefined, (error) => error);
    assert.ok(refused instanceof TooManyJobsError, `a4: ${refused}`);
    assert.equal(refused.code, "too_many_jobs");
    assert.match(refused.message, /per-client cap 2\b/);
    await seat.submit("b1", "client B");
    await seat.submit("b2", "client B");
    // The queue's total still holds: 4 waiting, a fifth client refused.
    const full = await seat.submit("c1", "client C").then(() => undefined, (error) => error);
    assert.ok(full instanceof TooManyJobsError, `c1: ${full}`);
    assert.doesNotMatch(full.message, /per-client/);
    assert.deepEqual(await seat.drain(), ["a1", "b1", "a2", "b2", "a3"]);
  } finally {
    await seat.close();
  }
});

Deno.test('InferenceActor: jobs that name no client are served as the one client ""', async () => {
  const seat = await new OneSeat().open();
  try {
    await seat.submit("a1", "client A");
    await seat.submit("a2", "client A");
    await seat.submit("x1"); // no client
    await seat.submit("x2", ""); // the same client, named
    await seat.submit("b1", "client B");
    // x1 and x2 are one client's: x2 waits behind b1's first job.
    assert.deepEqual(await seat.drain(), ["a1", "x1", "b1", "a2", "x2"]);
  } finally {
    await seat.close();
  }
});

Deno.test("FairQueue: entries that are no longer live are skipped, counted nowhere and given no place, until removed", () => {
  const ended = new Set<string>();
  const queue = new FairQueue<string>((entry) => !ended.has(entry));
  queue.push("a", "a1");
  queue.push("a", "a2");
  queue.push("b", "b1");
  assert.deepEqual(queue.order(), ["a1", "b1", "a2"]);
  ended.add("a1");
  assert.deepEqual(queue.order(), ["a2", "b1"]);
  assert.equal(queue.liveCount, 2);
  assert.equal(queue.liveCountOf("a"), 1);
  assert.equal(queue.positionOf("a1"), 0);
  assert.equal(queue.positionOf("b1"), 2);
  assert.equal(queue.takeNext(), "a2");
  assert.ok(queue.has("a1"));
  assert.ok(queue.remove("a1"));
  assert.ok(!queue.remove("a1"));
  assert.equal(queue.takeNext(), "b1");
  assert.equal(queue.takeNext(), undefined);
  assert.equal(queue.liveCount, 0);
});

Deno.test("serveInference: a job a peer submits is queued for that peer, by its key in hex", async () => {
  const clients: (string | undefined)[] = [];
  // Refuses every job once it has seen who asked: the refusal goes back as the stream's error.
  const port: InferencePort = {
    models: () => Promise.resolve([]),
    stats: () => Promise.reject(new Error("not asked")),
    submit: (_job: TextJob, options?: SubmitOptions) => {
      clients.push(options?.client);
      return Promise.reject(new TooManyJobsError("full"));
    },
  };
  const worker = Identity.generate();
  const peer = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const [atPeer, atWorker] = await Promise.all([
    Connection.open(a, { identity: peer, protocols: [INFERENCE_PROTOCOL] }),
    Connection.open(b, { identity: worker, protocols: [INFERENCE_PROTOCOL] }),
  ]);
  try {
    serveInference(atWorker, port);
    const job: TextJob = {
      kind: "text",
      model: "bafkmodelm",
      prompt: "x",
      params: params({ maxTokens: 1 }),
      nonce: "peer-client",
    };
    const reader = atPeer.openStream(SubmitMessage, { job }).getReader();
    await reader.read().then(() => {}, () => {});
    assert.deepEqual(clients, [toHex(peer.publicKey)]);
  } finally {
    await Promise.all([atPeer.close().catch(() => {}), atWorker.close().catch(() => {})]);
  }
});

Deno.test("InferenceActor: this machine's clients and those that name none may fill the whole queue, not a share; a key's are capped", async () => {
  // A share of 2 of the queue's 4 places; the operator's clients take all 4 (review s73: a default
  // node's loopback clients, all `this machine`, were refused at half its queue).
  for (const client of [THIS_MACHINE_CLIENT, "", undefined]) {
    const seat = await new OneSeat().open(4);
    try {
      for (const label of labels("m", 5)) await seat.submit(label, client); // m1 runs, 4 wait
      assert.deepEqual(seat.toldOrder(), labels("m", 5).slice(1), `client ${client}`);
      const full = await seat.submit("m6", client).then(() => undefined, (error) => error);
      assert.ok(full instanceof TooManyJobsError, `m6 of ${client}: ${full}`);
      assert.doesNotMatch(full.message, /per-client/); // the queue's total refused it
    } finally {
      await seat.close();
    }
  }
  const seat = await new OneSeat().open(4);
  try {
    await seat.submit("m1", THIS_MACHINE_CLIENT); // runs
    for (const label of labels("k", 2)) await seat.submit(label, "key 1a2b3c4d");
    const capped = await seat.submit("k3", "key 1a2b3c4d").then(() => undefined, (error) => error);
    assert.ok(capped instanceof TooManyJobsError, `k3: ${capped}`);
    assert.match(capped.message, /per-client cap 2\b/);
    // This machine still has the places the key could not take.
    await seat.submit("m2", THIS_MACHINE_CLIENT);
    await seat.submit("m3", THIS_MACHINE_CLIENT);
    assert.equal(seat.toldOrder().length, 4);
  } finally {
    await seat.close();
  }
});

/**
 * Array methods whose cost grows with the array they run on: a scan, a copy, or a shift of the
 * elements after a place (the old `order()` dropped each exhausted client with one `splice`).
 */
const LENGTH_BOUND_METHODS = [
  "splice",
  "indexOf",
  "lastIndexOf",
  "includes",
  "find",
  "findIndex",
  "filter",
  "slice",
  "concat",
  "shift",
  "unshift",
] as const;

/**
 * Run `work` and count its work that is not a constant per step: each call of a
 * {@link LENGTH_BOUND_METHODS} method counted at its array's length (at most what it touches),
 * plus each call of the queue's `live` predicate (given as `liveCalls`). Synchronous only: the
 * methods are restored before this returns.
 */
function countedWork(work: () => void, liveCalls: () => number): number {
  const proto = Array.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = LENGTH_BOUND_METHODS.map((name) => [name, proto[name]] as const);
  let touched = 0;
  for (const [name, original] of originals) {
    proto[name] = function (this: unknown[], ...args: unknown[]) {
      touched += this.length;
      return original.apply(this, args);
    };
  }
  const before = liveCalls();
  try {
    work();
  } finally {
    for (const [name, original] of originals) proto[name] = original;
  }
  return touched + liveCalls() - before;
}

/** Jobs in the linear-work checks: the size the review found quadratic (30 s to fill). */
const MANY = 10_000;

/**
 * Work allowed per waiting entry: a linear `order()` asks `live` once per entry and may scan each
 * FIFO a few times; the quadratic one shifted thousands of elements per exhausted client.
 */
const WORK_PER_ENTRY = 4;

/** A queue whose cursor is on `running` (its job holds the seat), counting its `live` calls. */
function countingQueue(): { queue: FairQueue<string>; liveCalls: () => number } {
  let calls = 0;
  const queue = new FairQueue<string>(() => {
    calls++;
    return true;
  });
  queue.served("running");
  return { queue, liveCalls: () => calls };
}

Deno.test("FairQueue: order() of 10,000 one-job clients is computed in work linear in them, in their turns", () => {
  const { queue, liveCalls } = countingQueue();
  const expected = labels("c", MANY);
  for (const entry of expected) queue.push(`client ${entry}`, entry);
  let order: string[] = [];
  const work = countedWork(() => order = queue.order(), liveCalls);
  assert.ok(work <= WORK_PER_ENTRY * MANY, `order() did ${work} steps for ${MANY} entries`);
  assert.deepEqual(order, expected); // each new client joins the ring last
});

Deno.test("FairQueue: order() of one client with 10,000 jobs is computed in work linear in them, first-in first-out", () => {
  const { queue, liveCalls } = countingQueue();
  const expected = labels("j", MANY);
  for (const entry of expected) queue.push("one client", entry);
  let order: string[] = [];
  const work = countedWork(() => order = queue.order(), liveCalls);
  assert.ok(work <= WORK_PER_ENTRY * MANY, `order() did ${work} steps for ${MANY} entries`);
  assert.deepEqual(order, expected);
});

Deno.test("FairQueue: order() of one client's 5,000 jobs among 5,000 one-job clients is linear work, one turn each per round", () => {
  const { queue, liveCalls } = countingQueue();
  const heavy = labels("h", MANY / 2);
  const light = labels("c", MANY / 2);
  for (const entry of heavy) queue.push("heavy", entry);
  for (const entry of light) queue.push(`client ${entry}`, entry);
  let order: string[] = [];
  const work = countedWork(() => order = queue.order(), liveCalls);
  assert.ok(work <= WORK_PER_ENTRY * MANY, `order() did ${work} steps for ${MANY} entries`);
  // Round 1: the heavy client's first, then every light one's; then the heavy client alone.
  assert.deepEqual(order, [heavy[0], ...light, ...heavy.slice(1)]);
});

Deno.test("node config: an inference.queueLimit past MAX_QUEUE_LIMIT is refused in one line naming the maximum", () => {
  assert.equal(
    parseNodeConfig({ inference: { queueLimit: MAX_QUEUE_LIMIT } }).inference.queueLimit,
    MAX_QUEUE_LIMIT,
  );
  const refused = (() => {
    try {
      parseNodeConfig({ inference: { queueLimit: MAX_QUEUE_LIMIT + 1 } });
    } catch (error) {
      return error;
    }
  })();
  assert.ok(refused instanceof ConfigError, `queueLimit ${MAX_QUEUE_LIMIT + 1}: ${refused}`);
  assert.equal(refused.code, "invalid_config");
  const lines = refused.message.split("\n").filter((line) => line.includes("queueLimit"));
  assert.equal(lines.length, 1, refused.message);
  assert.match(
    lines[0],
    new RegExp(`inference\\.queueLimit: at most ${MAX_QUEUE_LIMIT} waiting jobs`),
  );
});
