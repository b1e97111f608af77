/**
 * Review s60: the forwarding node's asks for a receipt whose `end` event a lost connection took
 * (`#askForReceipt`, `network/network_inference_port.ts`; stop 59,
 * `review_s59_late_receipt_end_test.ts`), two ways it left an honest worker unpaid.
 *
 * 1. It asked only a connection that already existed (`connection_to`) and never dialled: a
 *    worker whose connection dropped and which does not dial this node back (it reconnects
 *    elsewhere, or only this node can dial it) was never asked, and its work was paid in no
 *    ledger. Now, after the first asks find no connection, the node has its NetworkActor dial the
 *    worker by its key (`reach`, as a validator does for a challenged worker), a bounded number of
 *    times, and asks the connection that comes up.
 * 2. 64 remembered jobs, 8 per worker: 8 keys that each drop their ends filled every slot, and an
 *    honest worker's lost end was not remembered. Now a full store makes room by forgetting the
 *    oldest job of the worker that holds the most, when it holds more than the newcomer's worker.
 * 3. The worker's side had the same flaw (`UnsentReceipts`, `inference/serve_inference.ts`: 256,
 *    32 per requester, the oldest of all going first): 8 other requester keys that each read a
 *    job's every token and cancel before its end pushed out the receipt kept for the router. Now a
 *    full store gives up the oldest receipt of the requester that holds the most.
 *
 * The set-up is stop 59's: a router (a `NetworkInferencePort` whose validator keeps a real ledger
 * on the test's clock, its asks on a clock the test steps) and workers served as a node serves
 * its peers (`servePeer`) over in-memory connections the test closes after the last token and
 * before the end. The router's NetworkActor is a stand-in that answers `connection_to` with the
 * open connection to a key, and `reach` as the swarm would: by connecting, or (no swarm) not.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { NetworkMessage, ReachAnswer } from "../../network/network_actor.ts";
import {
  LOST_END_DIAL_MS,
  LOST_END_FIRST_ASK_MS,
  LOST_END_KEEP_MS,
  MAX_LOST_END_DIALS,
  MAX_LOST_ENDS,
  MAX_LOST_ENDS_PER_WORKER,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import {
  MAX_UNSENT_RECEIPTS,
  MAX_UNSENT_RECEIPTS_PER_PEER,
} from "../../inference/serve_inference.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { Identity } from "../../protocols/identity.ts";
import { ReceiptRequestMessage, SubmitMessage } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  clientJob,
  connectWorker,
  HONEST_INFO,
  ProvingWorkerPort,
  spawnRouter,
} from "./_proving_worker.ts";

const WORKER_STAKE = 1_000_000;

const JOB: TextJob = clientJob("s60-lost-end");

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
async function setUp(label: string) {
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
    const handle = await port.submit({ ...JOB, nonce: `${JOB.nonce}-${crypto.randomUUID()}` });
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
    const job = { ...JOB, nonce: `${JOB.nonce}-${crypto.randomUUID()}` };
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
async function runAsks(t: Awaited<ReturnType<typeof setUp>>, done: () => Promise<boolean>) {
  await t.timers.advance(
    LOST_END_KEEP_MS + 1_000,
    async () => t.timers.armed.size > 0 || await done(),
  );
}

Deno.test("review s60: a worker that does not dial the router back after its end event was lost is dialled by its key and asked; the honest worker is paid tokens × price in the router's ledger", async () => {
  const t = await setUp("dial");
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

Deno.test("review s60: the dials for a lost end are bounded: not one each ask, and a node without a swarm is asked no more than that", async () => {
  const t = await setUp("bounded");
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

Deno.test("review s60: lost ends of many workers dial at most MAX_LOST_END_DIALS of them at once, leaving the NetworkActor's other dials to its validator", async () => {
  const t = await setUp("many");
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

Deno.test("review s60: 8 keys that each drop 8 ends do not fill the router's memory of lost ends: an honest worker's lost end after them is still asked for, and paid", async () => {
  const t = await setUp("fair");
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

Deno.test("review s60: other requester keys that drop their jobs' ends on a worker do not push out the receipt it keeps for the router: the router's late ask still gets it, and the honest worker is paid", async () => {
  const t = await setUp("worker-fair");
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
