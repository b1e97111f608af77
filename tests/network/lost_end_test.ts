/**
 * A forwarded job whose every token reached the client and whose worker's `end` event (its receipt)
 * was lost with the connection: the router asks for the receipt later (`network/_lost_ends.ts`,
 * `network/_lost_end_files.ts`), the worker keeps it for the requester, the asks dial and are bounded,
 * and they survive a router's restart.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import {
  LOST_END_DIAL_MS,
  LOST_END_FIRST_ASK_MS,
  LOST_END_KEEP_MS,
  LOST_ENDS_DIR,
  MAX_LOST_END_DIALS,
  MAX_LOST_ENDS,
  MAX_LOST_ENDS_PER_WORKER,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { f, ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  clientJob,
  connectWorker,
  HONEST_INFO,
  OneWorker,
  ProvingWorkerPort,
  spawnRouter,
} from "./_proving_worker.ts";
import {
  MAX_UNSENT_RECEIPTS,
  MAX_UNSENT_RECEIPTS_PER_PEER,
  UNSENT_RECEIPT_KEEP_MS,
  UnsentReceipts,
} from "../../inference/serve_inference.ts";
import { join } from "node:path";
import { LostEndFiles, type StoredLostEnd } from "../../network/_lost_end_files.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import type { Actor } from "../../actors/actor.ts";
import type { NetworkMessage, ReachAnswer } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { ReceiptRequestMessage, SubmitMessage } from "../../protocols/inference_messages.ts";

// ---- late receipt end -----------------------------------------------------------------------------
// A forwarded job whose every token reached the client and whose worker's connection was lost
// before the `end` event (its receipt).
//
// The forwarding node never got the receipt, so it signed no assignment, and no message asked
// the worker for the receipt later: the honest worker, which did all the work and delivered
// every token, was paid in no ledger (`docs/PROOF.md`, "Failover", documented as a design
// limit). Now the worker keeps the receipt it could not send (`UnsentReceipts`,
// `inference/serve_inference.ts`), and the forwarding node remembers the job and asks for it
// (`inference.get_receipt`) once the worker is connected again; a receipt for exactly what the
// client got goes to its validator with the assignment, one for anything else is refused.
//
// The set-up: a router (a `NetworkInferencePort` whose validator keeps a real ledger on the
// test's clock, its asks on a fake timer) and a worker node serving a port that streams the
// honest model's tokens and proves them (`servePeer`, as a node serves its peers), over an
// in-memory connection the test closes after the last token and before the end.

const WORKER_STAKE = 1_000_000;

/** Router and worker, each a node of its own, not yet connected. */
async function setUp(label: string, altered: boolean) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s59-late-end-router-${label}` });
  const workerSystem = new ActorSystem({ name: `s59-late-end-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const timers = new FakeTimers();
  const port = new NetworkInferencePort(networkRef, validator, router, {
    tokensPerEvent: 1,
    timers,
  });
  const workerPort = new ProvingWorkerPort(worker, { held: true, altered });
  /** A new connection router — worker, the worker serving it as a node serves its peers. */
  const connect = async () => {
    const ends = await connectWorker(router, worker, workerPort, workerSystem);
    network.connection = ends.toWorker;
    return ends;
  };
  return {
    clock,
    network,
    worker,
    port,
    workerPort,
    timers,
    connect,
    validator,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await network.connection?.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const JOB: TextJob = {
  kind: "text",
  model: f.honest.info.cid,
  prompt: "Settle this",
  params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
  nonce: "s59-late-end",
};

/**
 * Run `JOB` through the router; lose the connection after the client's last token and before
 * the worker's end event; connect again and let the router ask. Returns the worker's receipt.
 */
async function lostEndThenBack(
  t: Awaited<ReturnType<typeof setUp>>,
  ownAnnouncement = false,
): Promise<Receipt> {
  const first = await t.connect();
  const handle = await t.port.submit({ ...JOB, nonce: `${JOB.nonce}-${crypto.randomUUID()}` });
  const got: StreamedToken[] = [];
  for await (const token of handle.tokens) got.push(token);
  assert.ok(got.length > 0 && got.at(-1)!.finishReason !== undefined, "every token came");
  // The connection is lost after the last token, before the worker's end event.
  await first.toWorker.close();
  await first.atWorker.close();
  t.workerPort.release.resolve(); // the worker's receipt is signed now, its end unsent
  const summary = await handle.done;
  assert.equal(summary.error?.code, "connection_closed");
  assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
  const receipt = t.workerPort.receipt!;
  assert.equal(receipt.tokenCount, got.length);
  // Nothing in the ledger yet: the router never got the receipt.
  assert.equal(await t.reads.record(receiptId(receipt)), undefined);
  assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  if (ownAnnouncement) {
    // As in the network: the worker's own node announced its receipt, with no assignment
    // (it is not the requester): recorded, earning 0 unless an assignment comes.
    const job = t.workerPort.job!;
    const handled = await t.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt,
      job,
      origin: toHex(t.worker.publicKey),
    });
    assert.equal(handled.recorded, true);
    assert.equal((await t.reads.record(receiptId(receipt)))?.credit, 0);
  }
  // The worker is connected again; the router's next ask comes (its fake timer fires).
  await t.connect();
  t.timers.fireAll();
  return receipt;
}

Deno.test("every token delivered and the worker's connection lost before its end event: the router asks the worker for its receipt on the next connection, and the honest worker is paid tokens × price in the router's ledger after the window", async () => {
  const t = await setUp("paid", false);
  try {
    const receipt = await lostEndThenBack(t);
    await eventually(
      async () => (await t.reads.record(receiptId(receipt))) !== undefined,
      "the receipt to reach the router's ledger",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // never asked for: the ledger outcome below says so
    await t.reads.closeWindow();
    const record = await t.reads.record(receiptId(receipt));
    assert.equal(record?.status, "final", "the worker's receipt was never recorded");
    assert.equal(
      (await t.reads.account(t.worker.publicKey)).balance,
      receipt.tokenCount * 1, // DEFAULT_ECONOMICS.defaultTokenPrice
      "the honest worker that delivered every token was paid nothing",
    );
  } finally {
    await t.close();
  }
});

Deno.test("the worker's own unassigned announcement recorded first (0 credit), the router's late assignment attaches to it: paid tokens × price after the window", async () => {
  const t = await setUp("attached", false);
  try {
    const receipt = await lostEndThenBack(t, true);
    await eventually(
      async () => (await t.reads.record(receiptId(receipt)))?.credit !== 0,
      "the assignment to attach",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // never asked for: the ledger outcome below says so
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(receiptId(receipt)))?.status, "final");
    assert.equal(
      (await t.reads.account(t.worker.publicKey)).balance,
      receipt.tokenCount * 1,
      "the honest worker that delivered every token was paid nothing",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a worker's late receipt for other output than the client got is refused: nothing recorded, nothing paid", async () => {
  const t = await setUp("refused", true);
  try {
    const receipt = await lostEndThenBack(t);
    // The router asked, checked it against what the client got, and refused it: the worker
    // is kept off the model as for any receipt that fails, and the job is not asked again.
    await eventually(
      () => t.network.avoided.includes(toHex(t.worker.publicKey)),
      "the router to refuse the receipt",
    );
    assert.equal(t.timers.armed.size, 0, "asked again after a refusal");
    await t.reads.closeWindow();
    assert.equal(await t.reads.record(receiptId(receipt)), undefined, "a mismatch was recorded");
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

// ---- late receipt worker --------------------------------------------------------------------------
// The worker's side of a receipt whose `end` event a connection lost (`UnsentReceipts`,
// `inference/serve_inference.ts`): kept only for the key that submitted the job, a bounded number
// per key, for the challenge window. The ledger outcome is pinned in the section above.

Deno.test("a worker keeps a receipt whose end event it could not send only for the key that submitted the job, a bounded number per key, for the challenge window", () => {
  let now = 0;
  const kept = new UnsentReceipts(() => now);
  const receiptFor = (n: number) => ({ jobId: n.toString(16).padStart(64, "0") }) as Receipt;
  kept.keep("aa", receiptFor(1));
  assert.equal(kept.get("aa", receiptFor(1).jobId)?.jobId, receiptFor(1).jobId);
  assert.equal(kept.get("bb", receiptFor(1).jobId), undefined, "another key got it");
  for (let n = 2; n <= MAX_UNSENT_RECEIPTS_PER_PEER + 1; n++) kept.keep("aa", receiptFor(n));
  assert.equal(kept.size, MAX_UNSENT_RECEIPTS_PER_PEER, "one key's share is bounded");
  assert.equal(kept.get("aa", receiptFor(1).jobId), undefined, "the oldest goes first");
  kept.keep("bb", receiptFor(1_000));
  assert.equal(kept.size, MAX_UNSENT_RECEIPTS_PER_PEER + 1, "another key keeps its own");
  now += UNSENT_RECEIPT_KEEP_MS + 1;
  assert.equal(kept.get("bb", receiptFor(1_000).jobId), undefined, "kept past the window");
  assert.equal(kept.size, 0);
});

// ---- lost end files -------------------------------------------------------------------------------
// LostEndFiles (`network/_lost_end_files.ts`): the lost ends a router keeps on disk, read back at
// its start.

/** A lost end of a job `requester` forwarded to a fresh worker, expiring at `expiresAt`. */
function lostEnd(nonce: string, expiresAt: number): StoredLostEnd {
  const requester = Identity.generate();
  const worker = Identity.generate().publicKey;
  const job: TextJob = {
    kind: "text",
    model: "m",
    prompt: "hi",
    params: { maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 1, stop: [] },
    nonce,
    requester: toHex(requester.publicKey),
  };
  return {
    job,
    worker,
    relayed: { output: "ab", tokens: 2, resumedAt: 0, lastToken: "length" },
    summary: {
      jobId: jobId(job),
      finishReason: "error",
      usage: { promptTokens: 1, completionTokens: 2 },
      timings: { queueMs: NaN, ttftMs: 1, totalMs: 2, tokensPerS: NaN },
      error: { code: "connection_closed", message: "connection closed" },
    },
    assignment: signAssignment({ job, worker, issuedAt: 1 }, requester),
    expiresAt,
  };
}

Deno.test("LostEndFiles reads back the lost ends it kept, soonest to expire first, and removes those expired, damaged or removed", async () => {
  const dir = join(await Deno.makeTempDir(), "lost-ends");
  try {
    const files = new LostEndFiles(dir);
    const [later, sooner, expired, gone] = [
      lostEnd("later", 3_000),
      lostEnd("sooner", 2_000),
      lostEnd("expired", 1_000),
      lostEnd("gone", 4_000),
    ];
    for (const lost of [later, sooner, expired, gone]) await files.save(lost);
    await files.remove(jobId(gone.job));
    // A damaged record: not a lost end, removed.
    await Deno.writeFile(join(dir, `${"ab".repeat(32)}.cbor`), new Uint8Array([0xff, 0x00]));
    const read = await new LostEndFiles(dir).all(1_500);
    assert.deepEqual(read.map((l) => l.job.nonce), ["sooner", "later"]);
    assert.deepEqual(read[0].relayed, sooner.relayed);
    assert.deepEqual(read[0].worker, sooner.worker);
    assert.ok(Number.isNaN(read[0].summary.timings.queueMs));
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(names, [jobId(later.job), jobId(sooner.job)].map((id) => `${id}.cbor`).sort());
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test("LostEndFiles refuses a record whose assignment is not for its job and worker", async () => {
  const dir = join(await Deno.makeTempDir(), "lost-ends");
  try {
    const files = new LostEndFiles(dir);
    const lost = lostEnd("forged", 9_000);
    await files.save({ ...lost, worker: Identity.generate().publicKey });
    assert.deepEqual(await files.all(0), []);
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

// ---- lost end -------------------------------------------------------------------------------------
// The forwarding node's asks for a receipt whose `end` event a lost connection took
// (`#askForReceipt`, `network/network_inference_port.ts`; the late receipt tests above), two ways it
// left an honest worker unpaid.
//
// 1. It asked only a connection that already existed (`connection_to`) and never dialled: a
//    worker whose connection dropped and which does not dial this node back (it reconnects
//    elsewhere, or only this node can dial it) was never asked, and its work was paid in no
//    ledger. Now, after the first asks find no connection, the node has its NetworkActor dial the
//    worker by its key (`reach`, as a validator does for a challenged worker), a bounded number of
//    times, and asks the connection that comes up.
// 2. 64 remembered jobs, 8 per worker: 8 keys that each drop their ends filled every slot, and an
//    honest worker's lost end was not remembered. Now a full store makes room by forgetting the
//    oldest job of the worker that holds the most, when it holds more than the newcomer's worker.
// 3. The worker's side had the same flaw (`UnsentReceipts`, `inference/serve_inference.ts`: 256,
//    32 per requester, the oldest of all going first): 8 other requester keys that each read a
//    job's every token and cancel before its end pushed out the receipt kept for the router. Now a
//    full store gives up the oldest receipt of the requester that holds the most.
//
// The set-up is stop 59's: a router (a `NetworkInferencePort` whose validator keeps a real ledger
// on the test's clock, its asks on a clock the test steps) and workers served as a node serves
// its peers (`servePeer`) over in-memory connections the test closes after the last token and
// before the end. The router's NetworkActor is a stand-in that answers `connection_to` with the
// open connection to a key, and `reach` as the swarm would: by connecting, or (no swarm) not.

const JOB_LOST_END: TextJob = clientJob("s60-lost-end");

/**
 * A clock the test steps: timers fire when {@link advance} passes their time, in order, each
 * followed by a wait for what it set off (an ask for a receipt re-arms its next one, or ends).
 */
class SteppedTimers implements ConnectionTimers {
  t = 0;
  readonly armed = new Map<number, { at: number; callback: () => void }>();
  #next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.armed.set(handle, { at: this.t + ms, callback });
    return handle;
  }
  clearTimeout(handle: unknown): void {
    this.armed.delete(handle as number);
  }
  /**
   * Step to `t + ms`, firing each timer due on the way; after each, wait until `settled()` says
   * what it set off is over (the shared give-up time: a real event, not a deadline race). So
   * `settled` must come true after every timer a passing run fires, the last ask's end included:
   * a wait that is meant to run out would cost every run that time.
   */
  async advance(ms: number, settled: () => boolean | Promise<boolean>): Promise<void> {
    const end = this.t + ms;
    while (true) {
      const due = [...this.armed].filter(([, timer]) => timer.at <= end)
        .sort(([, a], [, b]) => a.at - b.at)[0];
      if (due === undefined) break;
      this.armed.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].callback();
      await eventually(settled, "the ask to end").catch(() => {});
    }
    this.t = end;
  }
}

/**
 * A worker's port: each job streams the honest model's tokens for `JOB`'s prompt; its `done`
 * waits for `release`. The job is proved and its receipt comes with `done` (an honest worker);
 * with `prove: false`, none (a key that only drops its ends).
 */
class WorkerPort extends ProvingWorkerPort {
  constructor(identity: Identity, options: { prove?: boolean } = {}) {
    super(identity, { ...options, held: true });
  }
}

/**
 * The router's NetworkActor stand-in: the open connection to each worker key, the one jobs go to
 * (`current`), and `reach` answered by `onReach` (default: no swarm, nothing dialled).
 */
class Workers implements Actor<NetworkMessage> {
  readonly open = new Map<string, Connection>();
  current?: Connection;
  readonly reached: string[] = [];
  readonly released: string[] = [];
  onReach: (key: Uint8Array) => ReachAnswer | Promise<ReachAnswer> = () => false;
  receive(message: NetworkMessage): unknown {
    switch (message.type) {
      case "worker":
        return this.current?.isClosed === false ? this.current : undefined;
      case "connection_to": {
        const connection = this.open.get(toHex(message.key));
        return connection?.isClosed === false ? connection : undefined;
      }
      case "reach":
        this.reached.push(toHex(message.key));
        return this.onReach(message.key);
      case "release_reach":
        this.released.push(toHex(message.key));
        return undefined;
      case "worker_models":
        return [HONEST_INFO];
    }
    return undefined; // announce_receipt, worker_refused_model: nothing to do here
  }
}

/** A router with a ledger, not yet connected to any worker. */
async function setUpLostEnd(label: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s60-lost-end-router-${label}` });
  const workerSystem = new ActorSystem({ name: `s60-lost-end-worker-${label}` });
  const router = Identity.generate();
  const network = new Workers();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  const timers = new SteppedTimers();
  const port = new NetworkInferencePort(networkRef, validator, router, {
    tokensPerEvent: 1,
    timers,
  });
  const closing: Connection[] = [];
  /** A new connection router — worker (`port` serving it as a node serves its peers). */
  const connect = async (identity: Identity, workerPort: WorkerPort) => {
    const { toWorker, atWorker } = await connectWorker(router, identity, workerPort, workerSystem);
    network.open.set(toHex(identity.publicKey), toWorker);
    network.current = toWorker;
    closing.push(toWorker, atWorker);
    return { toWorker, atWorker };
  };
  /**
   * Run a job on the worker `identity` serves with `workerPort`, connected anew; lose the
   * connection after the client's last token and before the worker's end event.
   */
  const loseEnd = async (identity: Identity, workerPort: WorkerPort) => {
    const connection = await connect(identity, workerPort);
    workerPort.release = Promise.withResolvers<void>();
    const handle = await port.submit({
      ...JOB,
      nonce: `${JOB_LOST_END.nonce}-${crypto.randomUUID()}`,
    });
    const got: StreamedToken[] = [];
    for await (const token of handle.tokens) got.push(token);
    assert.ok(got.at(-1)?.finishReason !== undefined, "every token came");
    await connection.toWorker.close();
    await connection.atWorker.close();
    workerPort.release.resolve(); // the worker's receipt is signed now, its end unsent
    const summary = await handle.done;
    assert.equal(summary.error?.code, "connection_closed");
    assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
    return got.length;
  };
  const reads = ledgerReads(() => validator, clock);
  /**
   * Another requester's job on the worker `identity` serves with `workerPort` (`on`: its
   * connection to the worker): it reads every token and cancels the stream before the end
   * event, and the worker keeps the receipt for it (awaited: it asks for it).
   */
  const dropAsRequester = async (
    toWorker: Connection,
    workerPort: WorkerPort,
  ) => {
    workerPort.release = Promise.withResolvers<void>();
    const job = { ...JOB, nonce: `${JOB_LOST_END.nonce}-${crypto.randomUUID()}` };
    const reader = toWorker.openStream(SubmitMessage, { job }).getReader();
    while (true) { // up to the token that ends the job
      const { value } = await reader.read();
      if (value === undefined || value.kind === "token" && value.finishReason !== undefined) break;
    }
    await reader.cancel();
    workerPort.release.resolve();
    await eventually(
      async () =>
        (await toWorker.request(ReceiptRequestMessage, { jobId: jobId(job) })).receipt !==
          null,
      "the worker to keep the dropped job's receipt",
    );
  };
  /** A connection of a new requester key to the worker `identity` serves with `workerPort`. */
  const requester = async (identity: Identity, workerPort: WorkerPort) => {
    const other = Identity.generate();
    const { toWorker, atWorker } = await connectWorker(other, identity, workerPort, workerSystem);
    closing.push(toWorker, atWorker);
    return toWorker;
  };
  return {
    network,
    port,
    timers,
    requester,
    dropAsRequester,
    connect,
    loseEnd,
    validator,
    reads,
    /** Whether `receipt` is in the router's ledger. */
    recorded: async (receipt: Receipt) => (await reads.record(receiptId(receipt))) !== undefined,
    async close() {
      await Promise.all(closing.map((c) => c.close()));
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * The asks of a lost end run while the clock passes the whole challenge window; after each, the
 * wait is for its next ask to be armed or for `done` (the asks are over: the receipt came, or the
 * lost end was forgotten at the window's end).
 */
async function runAsks(t: Awaited<ReturnType<typeof setUpLostEnd>>, done: () => Promise<boolean>) {
  await t.timers.advance(
    LOST_END_KEEP_MS + 1_000,
    async () => t.timers.armed.size > 0 || await done(),
  );
}

Deno.test("a worker that does not dial the router back after its end event was lost is dialled by its key and asked; the honest worker is paid tokens × price in the router's ledger", async () => {
  const t = await setUpLostEnd("dial");
  try {
    const worker = Identity.generate();
    await t.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const workerPort = new WorkerPort(worker);
    const tokens = await t.loseEnd(worker, workerPort);
    const receipt = workerPort.receipt!;
    assert.equal(receipt.tokenCount, tokens);
    // The worker never dials back; a dial by its key (the swarm) brings its connection up.
    t.network.onReach = async (key) => {
      if (toHex(key) === toHex(worker.publicKey)) await t.connect(worker, workerPort);
      return true;
    };
    await runAsks(t, () => t.recorded(receipt));
    await t.reads.closeWindow();
    assert.equal(
      (await t.reads.record(receiptId(receipt)))?.status,
      "final",
      "the worker's receipt was never recorded: it was never dialled, so never asked",
    );
    assert.equal(
      (await t.reads.account(worker.publicKey)).balance,
      receipt.tokenCount * 1, // DEFAULT_ECONOMICS.defaultTokenPrice
      "the honest worker that delivered every token was paid nothing",
    );
    // Its receipt came: the dial is not held for the rest of the window.
    assert.deepEqual(t.network.released, [toHex(worker.publicKey)]);
  } finally {
    await t.close();
  }
});

Deno.test("the dials for a lost end are bounded: not one each ask, and a node without a swarm is asked no more than that", async () => {
  const t = await setUpLostEnd("bounded");
  try {
    const worker = Identity.generate();
    const workerPort = new WorkerPort(worker);
    await t.loseEnd(worker, workerPort);
    let asks = 0;
    const asked = () => asks++;
    // Counted through the stand-in: every ask looks the worker's connection up once.
    const receive = t.network.receive.bind(t.network);
    t.network.receive = (message) => {
      if (message.type === "connection_to") asked();
      return receive(message);
    };
    // No swarm: every reach answers false. The last ask, past the window, arms none: it forgets
    // the lost end, which releases the worker's dial — the sign that the asks are over.
    await runAsks(t, () => Promise.resolve(t.network.released.length > 0));
    assert.ok(asks >= 20, `asked ${asks} times over the window`);
    // One dial a LOST_END_DIAL_MS at most (each dial lasts that long), from the second ask on.
    const dials = t.network.reached.length;
    assert.ok(dials >= 1, "never dialled");
    assert.ok(
      dials <= Math.ceil(LOST_END_KEEP_MS / LOST_END_DIAL_MS) && dials < asks / 2,
      `${dials} dials for ${asks} asks`,
    );
    assert.equal(t.timers.armed.size, 0, "asked past the challenge window");
    // Forgotten at the window's end, the lost end gives its dial up: held, it would keep one of
    // the MAX_LOST_END_DIALS places from other workers' lost ends.
    assert.deepEqual(t.network.released, [toHex(worker.publicKey)], "the dial was held on");
  } finally {
    await t.close();
  }
});

Deno.test("lost ends of many workers dial at most MAX_LOST_END_DIALS of them at once, leaving the NetworkActor's other dials to its validator", async () => {
  const t = await setUpLostEnd("many");
  try {
    const keys: string[] = [];
    for (let k = 0; k < MAX_LOST_END_DIALS + 4; k++) {
      const dropper = Identity.generate();
      keys.push(toHex(dropper.publicKey));
      await t.loseEnd(dropper, new WorkerPort(dropper, { prove: false }));
    }
    t.network.onReach = () => true; // dialled, and never comes up
    // The first and second asks of each (the second dials), within one dial's time; each ask
    // awaited until it armed its next.
    await t.timers.advance(LOST_END_DIAL_MS / 2, () => t.timers.armed.size === keys.length);
    assert.equal(t.timers.armed.size, keys.length, "an ask did not end");
    assert.equal(new Set(t.network.reached).size, MAX_LOST_END_DIALS);
    assert.ok(t.network.reached.every((key) => keys.includes(key)));
  } finally {
    await t.close();
  }
});

Deno.test("8 keys that each drop 8 ends do not fill the router's memory of lost ends: an honest worker's lost end after them is still asked for, and paid", async () => {
  const t = await setUpLostEnd("fair");
  try {
    assert.equal(MAX_LOST_ENDS, 8 * MAX_LOST_ENDS_PER_WORKER, "the attack's numbers changed");
    for (let k = 0; k < MAX_LOST_ENDS / MAX_LOST_ENDS_PER_WORKER; k++) {
      const dropper = Identity.generate();
      const dropperPort = new WorkerPort(dropper, { prove: false });
      for (let n = 0; n < MAX_LOST_ENDS_PER_WORKER; n++) await t.loseEnd(dropper, dropperPort);
    }
    const worker = Identity.generate();
    await t.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const workerPort = new WorkerPort(worker);
    await t.loseEnd(worker, workerPort);
    const receipt = workerPort.receipt!;
    // The honest worker dials back in (the droppers do not); the router's first asks come.
    await t.connect(worker, workerPort);
    await t.timers.advance(LOST_END_FIRST_ASK_MS, () => true);
    await eventually(() => t.recorded(receipt), "the honest receipt to be recorded")
      .catch(() => {}); // never asked for: the ledger outcome below says so
    await t.reads.closeWindow();
    assert.equal(
      (await t.reads.account(worker.publicKey)).balance,
      receipt.tokenCount * 1,
      "the honest worker's lost end was not remembered: paid nothing",
    );
  } finally {
    await t.close();
  }
});

Deno.test("other requester keys that drop their jobs' ends on a worker do not push out the receipt it keeps for the router: the router's late ask still gets it, and the honest worker is paid", async () => {
  const t = await setUpLostEnd("worker-fair");
  try {
    const worker = Identity.generate();
    await t.validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    const workerPort = new WorkerPort(worker);
    await t.loseEnd(worker, workerPort);
    const receipt = workerPort.receipt!;
    // Before the router is back: 8 other keys each drop as many ends on the worker as it keeps
    // for one key, every slot of its store.
    assert.equal(MAX_UNSENT_RECEIPTS, 8 * MAX_UNSENT_RECEIPTS_PER_PEER, "the attack changed");
    for (let k = 0; k < MAX_UNSENT_RECEIPTS / MAX_UNSENT_RECEIPTS_PER_PEER; k++) {
      const on = await t.requester(worker, workerPort);
      for (let n = 0; n < MAX_UNSENT_RECEIPTS_PER_PEER; n++) {
        await t.dropAsRequester(on, workerPort);
      }
    }
    await t.connect(worker, workerPort);
    await t.timers.advance(LOST_END_FIRST_ASK_MS, () => true);
    await eventually(() => t.recorded(receipt), "the honest receipt to be recorded")
      .catch(() => {}); // the worker no longer had it: the ledger outcome below says so
    await t.reads.closeWindow();
    assert.equal(
      (await t.reads.account(worker.publicKey)).balance,
      receipt.tokenCount * 1,
      "the worker's kept receipt was pushed out by other keys' drops: paid nothing",
    );
  } finally {
    await t.close();
  }
});

// ---- lost end restart -----------------------------------------------------------------------------
// The lost-end store of a forwarding node (`network/_lost_ends.ts`: the jobs whose every token the
// client got and whose worker's `end` event, its receipt, was lost with the connection, asked for
// later) was kept in memory only. A router that restarted before the worker came back forgot every
// receipt it still had to ask for, and those honest workers were paid in no ledger. Now, given a
// folder (`lostEndsDir`, `<dataDir>/lost-ends` on a node), the port keeps each lost end there too
// (`network/_lost_end_files.ts`) and asks for those it finds when it starts, for what is left of
// their challenge window.
//
// The set-up is the late receipt tests' (above): a router whose validator keeps
// a real ledger on the test's clock and a worker node that proves its jobs, over in-memory
// connections the test closes after the last token and before the end. The router's restart is
// a second `NetworkInferencePort` on the same folder, whose first never asks (its timers never
// fire: the process it stands for is gone).

const JOB_LOST_END_RESTART: TextJob = {
  kind: "text",
  model: f.honest.info.cid,
  prompt: "Settle this",
  params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
  nonce: "s64-lost-end-restart",
};

/** A router keeping its lost ends in `<dir>/lost-ends` (or in memory only), and a worker. */
async function setUpLostEndRestart(label: string, kept: boolean) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `s64-lost-end-router-${label}` });
  const workerSystem = new ActorSystem({ name: `s64-lost-end-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const lostEndsDir = kept ? join(dir, LOST_ENDS_DIR) : undefined;
  /** The router's forwarding port, as a node (re)starting builds it. */
  const start = () => {
    const timers = new FakeTimers();
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      timers,
      lostEndsDir,
    });
    return { port, timers };
  };
  const workerPort = new ProvingWorkerPort(worker, { held: true });
  const connect = async () => {
    const ends = await connectWorker(router, worker, workerPort, workerSystem);
    network.connection = ends.toWorker;
    return ends;
  };
  return {
    dir,
    worker,
    workerPort,
    start,
    connect,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await network.connection?.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Run `JOB` through `port`; lose the connection after the client's last token and before the
 * worker's end event. Returns the worker's receipt (signed, never sent).
 */
async function loseEnd(
  t: Awaited<ReturnType<typeof setUpLostEndRestart>>,
  port: NetworkInferencePort,
): Promise<Receipt> {
  const first = await t.connect();
  const handle = await port.submit({
    ...JOB,
    nonce: `${JOB_LOST_END_RESTART.nonce}-${crypto.randomUUID()}`,
  });
  const got: StreamedToken[] = [];
  for await (const token of handle.tokens) got.push(token);
  assert.ok(got.at(-1)?.finishReason !== undefined, "every token came");
  await first.toWorker.close();
  await first.atWorker.close();
  t.workerPort.release.resolve(); // the worker's receipt is signed now, its end unsent
  const summary = await handle.done;
  assert.equal(summary.error?.code, "connection_closed");
  assert.equal(summary.receipt, undefined, "the end event (receipt) was lost");
  return t.workerPort.receipt!;
}

/**
 * The records in the lost-end folder of the router whose data is in `dir` (listed, not read
 * with `LostEndFiles.all`, which clears a write's temporary file: the router's own, in flight).
 */
async function keptOnDisk(dir: string): Promise<string[]> {
  try {
    const entries = await Array.fromAsync(Deno.readDir(join(dir, LOST_ENDS_DIR)));
    return entries.map((e) => e.name).filter((name) => name.endsWith(".cbor"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

for (const kept of [true, false]) {
  Deno.test(`a router that restarts after a worker's end event was lost ${kept ? "asks for the receipt it kept on disk when the worker is back: the honest worker is paid tokens × price" : "with its lost ends in memory only forgets the receipt: the honest worker is paid nothing"}`, async () => {
    const t = await setUpLostEndRestart(kept ? "kept" : "memory", kept);
    try {
      const before = t.start();
      const receipt = await loseEnd(t, before.port);
      assert.equal(await t.reads.record(receiptId(receipt)), undefined);
      if (kept) {
        await eventually(
          async () => (await keptOnDisk(t.dir)).length === 1,
          "the lost end to be kept on disk",
        );
      }
      // The router restarts (its first port's asks never come), and the worker is back.
      const after = t.start();
      await t.connect();
      if (kept) {
        await eventually(() => after.timers.armed.size > 0, "the kept lost end's ask to be armed");
      } else await after.timers.armed.size; // nothing to read back
      after.timers.fireAll();
      await eventually(
        async () => (await t.reads.record(receiptId(receipt))) !== undefined,
        "the receipt to reach the router's ledger",
        { timeoutMs: 3_000 },
      ).catch(() => {}); // never asked for: the ledger outcome below says so
      await t.reads.closeWindow();
      const balance = (await t.reads.account(t.worker.publicKey)).balance;
      if (kept) {
        assert.equal((await t.reads.record(receiptId(receipt)))?.status, "final");
        assert.equal(
          balance,
          receipt.tokenCount * 1, // DEFAULT_ECONOMICS.defaultTokenPrice
          "the honest worker whose end a restarted router had to ask for was paid nothing",
        );
        // Its receipt came: the lost end is forgotten on disk too.
        await eventually(
          async () => (await keptOnDisk(t.dir)).length === 0,
          "the answered lost end to be removed from the folder",
        );
      } else assert.equal(balance, 0);
    } finally {
      await t.close();
    }
  });
}
