/**
 * Reaching a challenged worker: dials by key (`network/dial_by_key.ts`), their bound against
 * receipts of workers that never answer, the proof relayed through the job's requester, and what
 * peers can make a node say or ask while they are reached.
 */
import assert from "node:assert/strict";
import { KeyDials, MAX_DIALS } from "../../network/dial_by_key.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import {
  NetworkActor,
  type NetworkMessage,
  type PeerInfo,
  type ReachAnswer,
} from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type PeerHelloBody, signPeerHello } from "../../protocols/peer_hello.ts";
import { LogLimiter } from "../../network/log_limiter.ts";
import { lineLogger } from "../../node/log_format.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  INFERENCE_PROTOCOL,
  ReceiptAckMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { relayLine } from "./_relay_line.ts";

// ---- dial by key ----------------------------------------------------------------------------------
// KeyDials (`network/dial_by_key.ts`): each key dialled once until its deadline, a later reach
// extending it, undialled when it passes; at most MAX_DIALS keys at once; stop undials all. On a
// fake clock.

function keyOf(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

function recorder() {
  const log: string[] = [];
  return {
    log,
    dialer: {
      dial: (key: Uint8Array) => log.push(`dial ${key[0]}`),
      undial: (key: Uint8Array) => log.push(`undial ${key[0]}`),
    },
  };
}

Deno.test("KeyDials: a key is dialled until its deadline, again at each reach; a later reach extends it, a shorter one does not", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  assert.equal(dials.reach(keyOf(1), 1_000), true);
  assert.equal(dials.has(keyOf(1)), true);
  assert.equal(dials.reach(keyOf(1), 500), true, "already dialled: dialled again");
  assert.deepEqual(log, ["dial 1", "dial 1"]);
  await timers.advance(900);
  assert.equal(dials.reach(keyOf(1), 1_000), true); // now until 1,900
  await timers.advance(500); // 1,400: past the first deadline, inside the extended one
  assert.deepEqual(log, ["dial 1", "dial 1", "dial 1"]);
  assert.equal(dials.size, 1);
  await timers.advance(500); // 1,900
  assert.deepEqual(log, ["dial 1", "dial 1", "dial 1", "undial 1"]);
  assert.equal(dials.size, 0);
  assert.equal(dials.has(keyOf(1)), false);
  // Dialled again once it ended.
  dials.reach(keyOf(1), 100);
  assert.deepEqual(log.slice(4), ["dial 1"]);
});

Deno.test("KeyDials: at most MAX_DIALS keys at once; a slot frees when a dial ends; stop undials every key", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  for (let i = 0; i < MAX_DIALS; i++) assert.equal(dials.reach(keyOf(i), 1_000 + i), true);
  assert.equal(dials.reach(keyOf(200), 1_000), false, "over the bound: not dialled");
  assert.equal(log.filter((line) => line.startsWith("dial")).length, MAX_DIALS);
  assert.ok(!log.includes("dial 200"));
  await timers.advance(1_000); // the first key's dial ends
  assert.deepEqual(log.filter((line) => line.startsWith("undial")), ["undial 0"]);
  assert.equal(dials.reach(keyOf(200), 1_000), true);
  dials.stop();
  assert.equal(dials.size, 0);
  assert.equal(log.filter((line) => line.startsWith("undial")).length, MAX_DIALS + 1);
  await timers.advance(10_000);
  assert.equal(
    log.filter((line) => line.startsWith("undial")).length,
    MAX_DIALS + 1,
    "no timer left",
  );
});

Deno.test("KeyDials: a dial lasts while any holder wants it; released by every holder it ends at once, released by one it keeps the others' time", async () => {
  const timers = new ManualTimers();
  const { log, dialer } = recorder();
  const dials = new KeyDials(dialer, timers);
  dials.reach(keyOf(1), 10_000, "receipt-a");
  dials.reach(keyOf(1), 1_000, "receipt-b");
  dials.release(keyOf(1), "receipt-a"); // b still wants it, until 1,000
  assert.equal(dials.has(keyOf(1)), true);
  await timers.advance(999);
  assert.equal(dials.has(keyOf(1)), true);
  await timers.advance(1); // b's time is up: a gave it back
  assert.equal(dials.has(keyOf(1)), false);
  assert.deepEqual(log, ["dial 1", "dial 1", "undial 1"]);
  // Both released before their time: undialled at once; a release after that changes nothing.
  dials.reach(keyOf(2), 60_000, "x");
  dials.reach(keyOf(2), 60_000, "y");
  dials.release(keyOf(2), "x");
  dials.release(keyOf(2), "y");
  dials.release(keyOf(2), "y");
  assert.equal(dials.size, 0);
  assert.deepEqual(log.slice(3), ["dial 2", "dial 2", "undial 2"]);
  assert.equal(timers.pending, 0, "no timer left armed");
});

// ---- dials of challenged workers, and what peers make a node say ----------------------------------
// Reaching a challenged worker, and what peers can make a node do or say:
//
// 1. A validator not connected to a challenged worker dials it by its key, at most `MAX_DIALS`
//    keys at once, and those keys come from receipts (throwaway pledged keys sign them cheaply).
//    With its dials all taken by receipts whose workers never answer, the honest worker was never
//    dialled, yet its challenge ended `invalid / proof_unavailable` and it was slashed: charged
//    for the validator's own bound. A worker that is dialled (a slot freed) and still does not
//    answer is slashed as before.
// 2. A peer's text in the operator's log (a receipt's refusal, an error's message) can carry
//    newlines and terminal escapes: in text mode each log call is written as one line, with
//    control characters shown escaped.
// 3. Each hello an inference peer sends made the node ask its ledger for the peer's account: a
//    peer re-sending hellos made that many ledger asks.

const WORKER_STAKE = 10_000;
/** Short: the worker is never reached in the slashing cases, so the deadline is waited out. */
const DEADLINE_MS = 1_200;

/**
 * Stand-in NetworkActor with a real {@link KeyDials} (its `MAX_DIALS` bound), answering `reach`
 * as the NetworkActor does. Connected to the job's requester (answers "none") and another
 * ledger-keeping peer (its requests fail); the worker's connection is up only while it is
 * dialled, and only when it `answers`.
 */
class DialTable implements Actor<NetworkMessage> {
  readonly dials = new KeyDials({ dial: () => {}, undial: () => {} });
  readonly answers: ReachAnswer[] = [];
  /** Called at the first reach for the worker that the bound refused. */
  onRefused?: () => void;
  constructor(
    readonly keys: { worker: string; requester: string; peer: string },
    readonly answers_: boolean,
    readonly served: () => ServedProof,
  ) {}
  receive(message: NetworkMessage): unknown {
    switch (message.type) {
      case "peers":
        return [this.keys.requester, this.keys.peer].map((key): PeerInfo => ({
          key,
          address: "mem",
          outbound: true,
          protocols: [`${VALIDATION_PROTOCOL.name}/${VALIDATION_PROTOCOL.version}`],
          models: [],
          convicted: false,
          roles: [],
        }));
      case "reach": {
        const answer: ReachAnswer = this.dials.reach(message.key, message.forMs, message.holder) ||
          "full";
        if (toHex(message.key) === this.keys.worker) {
          this.answers.push(answer);
          if (answer === "full") this.onRefused?.();
        }
        return answer;
      }
      case "release_reach":
        return this.dials.release(message.key, message.holder);
      case "connection_to": {
        const key = toHex(message.key);
        if (key === this.keys.worker) {
          return this.answers_ && this.dials.has(message.key)
            ? this.#connection(() => ({ served: this.served() }))
            : undefined;
        }
        if (key === this.keys.requester) return this.#connection(() => ({ served: null }));
        if (key === this.keys.peer) {
          return this.#connection(() => {
            throw new Error("worker_unreachable");
          });
        }
        return undefined;
      }
    }
    return undefined;
  }
  #connection(answer: () => { served: ServedProof | null }) {
    return { request: () => Promise.resolve().then(answer) };
  }
}

/** `MAX_DIALS` dials of throwaway keys (other receipts' workers), held for `forMs`. */
function flood(dials: KeyDials, forMs: number): Uint8Array[] {
  const keys = Array.from({ length: MAX_DIALS }, () => Identity.generate().publicKey);
  for (const key of keys) assert.equal(dials.reach(key, forMs, toHex(key)), true);
  return keys;
}

async function setup(answers: boolean) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const peer = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const table = new DialTable(
    {
      worker: toHex(worker.publicKey),
      requester: toHex(requester.publicKey),
      peer: toHex(peer.publicKey),
    },
    answers,
    () => signServedProof(id, proved.proof, worker),
  );
  const system = new ActorSystem({ name: "review-s46-reach" });
  await system.spawn<NetworkMessage>({ name: "node/network", factory: () => table });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 1,
    network: "node/network",
    proofDeadlineMs: DEADLINE_MS,
    models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
  const credit = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
  const ledger = ledgerReads(() => validator, clock);
  return {
    table,
    slash: credit * DEFAULT_ECONOMICS.slashMultiplier,
    submit: () => announceAssigned(validator, proved.receipt, job, requester),
    async afterWindow() {
      await ledger.closeWindow();
      return {
        status: (await ledger.record(id))!.status,
        account: await ledger.account(worker.publicKey),
      };
    },
    async close() {
      table.dials.stop();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("an honest worker never dialled because the validator's dials are all taken by other receipts' workers is not slashed", async () => {
  const t = await setup(true);
  try {
    // Throwaway keys' challenges hold every dial past this challenge's deadline.
    flood(t.table.dials, 10 * DEADLINE_MS);
    const { verdict } = await (await t.submit()).result!;
    assert.ok(t.table.answers.length >= 2, `${t.table.answers}`);
    assert.ok(t.table.answers.every((a) => a === "full"), `${t.table.answers}`);
    assert.deepEqual([verdict.outcome, verdict.reason], ["inconclusive", "worker_unreachable"]);
    const { status, account } = await t.afterWindow();
    assert.equal(status, "unpaid");
    assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE, locked: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("a worker dialled once a dial was free, that never answers, is still slashed like a withholder", async () => {
  const t = await setup(false);
  try {
    const keys = flood(t.table.dials, 10 * DEADLINE_MS);
    // The flood's challenges end at the first refusal: the next round dials the worker.
    t.table.onRefused = () => {
      for (const key of keys) t.table.dials.release(key, toHex(key));
    };
    const { verdict } = await (await t.submit()).result!;
    assert.equal(t.table.answers[0], "full");
    assert.ok(t.table.answers.includes(true), `${t.table.answers}`);
    assert.deepEqual([verdict.outcome, verdict.reason], ["invalid", "proof_unavailable"]);
    const { status, account } = await t.afterWindow();
    assert.equal(status, "fraud");
    assert.deepEqual(account, { balance: 0, stake: WORKER_STAKE - t.slash, locked: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("a peer's refusal with newlines and terminal escapes is one escaped line in the operator's text log", () => {
  // What a peer may put in a receipt ack's refusal (at most 64 characters, any of them).
  const refusal = "x\r\nvalidator: slashed 9f\u001b[31m!\u001b[0m\u202e";
  const parsed = ReceiptAckMessage.schema.safeParse({ recorded: false, refusal });
  assert.ok(parsed.success, "the wire admits it");
  const ack = parsed.data;
  const written: string[] = [];
  // As the node writes it: the NetworkActor's peer log, into the text-mode line logger.
  const peerLog = new LogLimiter(lineLogger("text", (line) => written.push(line)));
  peerLog.line("receipt refused", `peer 0123456789abcdef: receipt refused (${ack.refusal})`);
  assert.equal(written.length, 1);
  const [line] = written;
  for (const raw of ["\n", "\r", "\u001b", "\u202e"]) {
    assert.ok(!line.includes(raw), JSON.stringify(line));
  }
  assert.equal(
    line,
    "peer 0123456789abcdef: receipt refused (x\\r\\nvalidator: slashed 9f\\x1b[31m!\\x1b[0m\\u202e)",
  );
});

Deno.test("the node's own framing survives the escaping: blank lines around a text line, tabs", () => {
  const written: string[] = [];
  const log = lineLogger("text", (line) => written.push(line));
  log("\nshutting down: open requests finish");
  log("supervision tree:\tnode [system]\n");
  assert.deepEqual(written, [
    "\nshutting down: open requests finish",
    "supervision tree:\tnode [system]\n",
  ]);
});

Deno.test("a flood of hellos from an inference peer asks the ledger for its account at most once per hello interval", async () => {
  const system = new ActorSystem({ name: "review-s46-standing" });
  const worker = Identity.generate();
  const clock = { t: 1_000_000 };
  let accountAsks = 0;
  await system.spawn<{ type: string }>({
    name: "node/validator",
    factory: () => ({
      receive: (message: { type: string }) => {
        if (message.type !== "account") return undefined;
        accountAsks++;
        return { stake: 100, locked: 0, balance: 0 };
      },
    }),
  });
  const network = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: { validator: "node/validator" },
        helloIntervalMs: 1_000,
        now: () => clock.t,
      }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [near, far] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  const body: PeerHelloBody = {
    version: "1",
    roles: ["inference"],
    models: [],
    load: { running: 0, queued: 0, slots: 4, queueLimit: 4 },
  };
  const hello = async (seq: number) => {
    await network.tell({
      type: "peer_hello",
      connection: near,
      hello: signPeerHello(worker, body, seq, clock.t),
    });
    // FIFO mailboxes: once answered, the hello and any standing it asked for are handled.
    await network.ask<PeerInfo[]>({ type: "peers" });
  };
  try {
    await network.tell({ type: "peer_up", connection: near, address: "memory", outbound: true });
    const before = accountAsks;
    // Fewer than the refusal limit: past the pace of hellos each is refused, and 100 refusals cut
    // the peer off (`hello_pace_test.ts`).
    for (let seq = 1; seq <= 50; seq++) await hello(seq);
    await eventually(() => accountAsks > before || undefined, "the first hello's standing asked");
    await new Promise((resolve) => setTimeout(resolve, 50)); // room for any further asks
    const flood = accountAsks - before;
    assert.ok(flood <= 2, `${flood} account asks for 50 hellos within one interval`);
    // The next interval's hello refreshes the standing.
    clock.t += 1_000;
    await hello(201);
    await eventually(
      () => accountAsks === before + flood + 1 || undefined,
      "the next interval's standing asked",
    );
  } finally {
    await near.close();
    await far.close();
    await system.shutdown();
  }
});

// ---- proof relay ----------------------------------------------------------------------------------
// A validator that is not connected to the worker gets the proof data through the job's requester,
// which is: V — R — W (V and W never meet). Before the relay, V's challenge ran into its deadline
// and slashed an honest worker for "withholding" (found by the 1,000-node simulation). A requester
// that does not hold the receipt relays nothing.

/**
 * The line V — R — W ({@link relayLine}; V's deadline 1.5 s), R holding the receipt or not; V
 * challenges the receipt (passed on by a peer) and its verdict and ledger are read.
 */
async function line(relayHoldsReceipt: boolean) {
  const system = new ActorSystem({ name: "relay-test" });
  const dir = await Deno.makeTempDir();
  const { vValidator, w, id, toV } = await relayLine(system, dir, {
    deadlineMs: 1_500,
    relayHoldsReceipt,
    prompt: "Through the requester",
    nonce: "relay",
  });
  const handled = await toV("ab".repeat(32));
  assert.equal(handled.challenged, true);
  const result = await handled.result!;
  const record = await vValidator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
  const convicted = await vValidator.ask<boolean>({ type: "convicted", key: w.publicKey });
  await system.shutdown();
  await Deno.remove(dir, { recursive: true });
  return { outcome: result.verdict.outcome, reason: result.verdict.reason, record, convicted };
}

Deno.test("a validator not connected to the worker fetches its proof through the job's requester: valid, nobody slashed", async () => {
  const { outcome, record, convicted } = await line(true);
  assert.equal(outcome, "valid");
  assert.equal(record.status, "pending", "cleared: paid when its window closes");
  assert.equal(convicted, false);
});

Deno.test("a requester that does not hold the receipt relays nothing: the proof counts as withheld", async () => {
  const { outcome, reason, convicted } = await line(false);
  assert.equal(outcome, "invalid");
  assert.equal(reason, "proof_unavailable");
  assert.equal(convicted, true);
});
