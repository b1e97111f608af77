/**
 * Requests for a validator that is down wait for it (`network/_validator_inbox.ts`): a peer's receipt
 * announcement and the node's own forwarded receipts reach the validator once it is back.
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import {
  MAX_HANDOVERS,
  MAX_HELD,
  MAX_HELD_PER_PEER,
  MAX_WAIT_MS,
  ValidatorInbox,
} from "../../network/_validator_inbox.ts";
import { peerOriginsOf } from "../../network/_peer_origins.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import type { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodeEnds,
  joinLedgerNodes,
  type LedgerNode,
  ledgerNodeValidator,
  spawnLedgerNode,
  spawnNodesStakingWorker,
} from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator, type TakenDown } from "./_validator_down.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { windowsClosed } from "./_assigned_receipt.ts";
import { clientJob, connectWorker, OneWorker, ProvingWorkerPort } from "./_proving_worker.ts";

// ---- receipt down wait ----------------------------------------------------------------------------
// How a request for a validator that is down waits for it (`ValidatorInbox.ask`, what a peer's
// `validation.receipt` announcement goes through): until an actor of the validator's name starts,
// at most `MAX_WAIT_MS` on an injected clock, within bounds per node and per peer key of its own,
// never past the requester giving up; after a crash, asked again `MAX_HANDOVERS` times in all. The
// ledger outcome is pinned in the next section.

interface Ask {
  type: "ask";
  n: number;
  pad?: Uint8Array;
}

/** A validator stand-in: answers each ask with its number (or crashes on each when `crashing`). */
class Answering implements Actor<Ask> {
  constructor(readonly taken: number[], readonly crashing = false) {}

  receive(message: Ask): unknown {
    this.taken.push(message.n);
    if (this.crashing) throw new Error("crash (test)");
    return message.n;
  }
}

class Unavailable extends Error {}

const ask = (n: number, pad?: Uint8Array): Ask => ({ type: "ask", n, ...(pad ? { pad } : {}) });

/** Run `test` on a fresh system, its inbox for "v", and a manual clock. */
async function withInbox(
  name: string,
  test: (system: ActorSystem, inbox: ValidatorInbox<Ask>, timers: ManualTimers) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name });
  try {
    await test(system, new ValidatorInbox<Ask>(system, "v"), new ManualTimers());
  } finally {
    await system.shutdown();
  }
}

/**
 * Peers `p{first}`… (`count` of them) connected to the node of `system` with standing in its
 * ledger, as its inbox knows them (`network/_peer_origins.ts`).
 */
async function known(system: ActorSystem, count: number, first = 1): Promise<void> {
  const origins = peerOriginsOf(system);
  for (let p = first; p < first + count; p++) {
    origins.connected(`p${p}`, undefined, () => Promise.resolve(true));
    await origins.recheck(`p${p}`);
  }
}

/** Whether `promise` has settled (after the microtasks now queued). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

Deno.test("a request that finds no validator waits for one to start and is answered by it", async () => {
  await withInbox("s59-wait-start", async (system, inbox, timers) => {
    const answer = inbox.ask<number>("p1", ask(7), {
      timers,
      unavailable: () => new Unavailable(),
    });
    assert.equal(await settled(answer), false, "answered before any validator ran");
    assert.equal(timers.pending, 1);
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal(await answer, 7);
    assert.deepEqual(taken, [7]);
    assert.equal(timers.pending, 0, "the wait's timer was left armed");
  });
});

Deno.test("a request waits MAX_WAIT_MS on its clock at most, then is answered unavailable and never asked", async () => {
  await withInbox("s59-wait-bound", async (system, inbox, timers) => {
    const answer = inbox.ask<number>("p1", ask(1), {
      timers,
      unavailable: () => new Unavailable(),
    });
    await timers.advance(MAX_WAIT_MS - 1);
    assert.equal(await settled(answer), false, "gave up before MAX_WAIT_MS");
    await timers.advance(1);
    await assert.rejects(answer, Unavailable);
    assert.equal(timers.pending, 0);
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal(
      await inbox.ask<number>("p1", ask(2), { unavailable: () => new Unavailable() }),
      2,
    );
    assert.deepEqual(taken, [2], "the request that gave up was asked all the same");
  });
});

Deno.test("a request stops waiting once its requester gives up (the signal)", async () => {
  await withInbox("s59-wait-signal", async (_system, inbox, timers) => {
    const gone = new AbortController();
    const answer = inbox.ask<number>("p1", ask(1), {
      timers,
      signal: gone.signal,
      unavailable: () => new Unavailable(),
    });
    assert.equal(await settled(answer), false);
    gone.abort();
    await assert.rejects(answer, Unavailable);
    assert.equal(timers.pending, 0);
  });
});

Deno.test("requests wait only up to a peer's share and the node's bound; past them they are answered unavailable at once, and a share frees as its waits end", async () => {
  await withInbox("s59-wait-shares", async (system, inbox, timers) => {
    const options = { timers, unavailable: () => new Unavailable() };
    // Peers with standing in the ledger: keys with none share half the bounds (s71,
    // validator_inbox_shares_test.ts).
    await known(system, MAX_HELD / MAX_HELD_PER_PEER);
    const waiting: Promise<number>[] = [];
    // A peer's share in count.
    for (let n = 0; n < MAX_HELD_PER_PEER; n++) waiting.push(inbox.ask("p1", ask(n), options));
    await assert.rejects(inbox.ask("p1", ask(-1), options), Unavailable);
    // The node's bound in count: every other peer at its share fills it.
    for (let p = 2; p <= MAX_HELD / MAX_HELD_PER_PEER; p++) {
      for (let n = 0; n < MAX_HELD_PER_PEER; n++) {
        waiting.push(inbox.ask(`p${p}`, ask(p * 1000 + n), options));
      }
    }
    await assert.rejects(inbox.ask("p99", ask(-2), options), Unavailable);
    assert.equal(timers.pending, MAX_HELD);
    // A peer's share in bytes: an eighth of 4 MiB holds one 400 KiB request, not two.
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal((await Promise.all(waiting)).length, MAX_HELD);
    assert.equal(timers.pending, 0);
    await system.stop("v");
    const big = new Uint8Array(400 * 1024);
    const first = inbox.ask<number>("p1", ask(1, big), options);
    await assert.rejects(inbox.ask("p1", ask(2, big), options), Unavailable);
    const other = inbox.ask<number>("p2", ask(3, big), options);
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.deepEqual([await first, await other], [1, 3]);
  });
});

Deno.test("a request queued at a validator that crashes is asked of its next incarnation, MAX_HANDOVERS times in all", async () => {
  await withInbox("s59-wait-crash", async (system, inbox, timers) => {
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken, true) });
    await assert.rejects(
      inbox.ask("p1", ask(5), { timers, unavailable: () => new Unavailable() }),
      ActorCrashedError,
    );
    assert.deepEqual(taken, Array(MAX_HANDOVERS).fill(5));
    assert.equal(timers.pending, 0);
  });
});

// ---- receipt down ledger --------------------------------------------------------------------------
// A `validation.receipt` announcement that reaches a node while its ValidatorActor is down.
//
// A receipt announcement is a request. `servePeer` asked the validator for it directly: with no
// validator registered (stopped, not started again yet) the handler answered `service_unavailable`
// at once, and with the validator crashing with the ask queued it answered the crash
// (`actor_crashed`). Both are final for the sender (`announceReceipt` asks again only after
// `busy`), and nothing announces the receipt to that peer again (a catch-up carries convictions and
// verdicts, not receipts): the honest worker's receipt was never recorded in that ledger, so it was
// paid less there than in the others. One-way evidence survives the same outage through the
// ValidatorInbox (review s58); the receipt did not.
//
// The set-up: B — C in memory, the worker's stake in both ledgers, every ledger on the test's
// clock. C's connections' handlers wait on C's `PeerServices.timers`, a clock the test never moves
// here: no wait of the fix races anything. C's validator is taken down as
// `_validator_down.ts` does (stopped; or crashing with the announcement queued) when B records an
// honest, assigned receipt and passes it on; it comes back on the same ledger, and C's window
// closes.

const STAKE = 1_000_000;

/** What a test sees of B and C, joined. */
interface Joined {
  nodeB: LedgerNode;
  nodeC: LedgerNode;
  /** C's side of the connection (its handlers' requests in flight). */
  atC: Connection;
  /** Lines B's NetworkActor logged (a failed announcement among them). */
  logB: string[];
  /** The key C's validator signs with (to start it again as itself). */
  identityC: Identity;
}

/**
 * B and C, the worker's stake in both ledgers on `clock`, joined in memory; C's handlers wait on
 * `timersC`.
 */
async function joined(
  system: ActorSystem,
  dir: string,
  clock: { t: number },
  worker: Identity,
  timersC: ManualTimers,
): Promise<Joined> {
  const logB: string[] = [];
  const identityC = Identity.generate();
  const node = async (name: "b" | "c"): Promise<LedgerNode> => {
    const spawned = await spawnLedgerNode(system, dir, name, {
      identity: name === "c" ? identityC : Identity.generate(),
      models: HONEST_MODELS,
      clock,
      now: () => clock.t,
      log: name === "b" ? (line) => logB.push(line) : undefined,
      peerTimers: name === "c" ? timersC : undefined,
    });
    await spawned.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    return spawned;
  };
  const [nodeB, nodeC] = [await node("b"), await node("c")];
  const [, atC] = await joinLedgerNodeEnds(nodeB, nodeC);
  return { nodeB, nodeC, atC, logB, identityC };
}

/**
 * An honest, assigned receipt reaches B while `down` holds C's validator down; B records it and
 * passes it on. Once it can have reached C, C's validator comes back; the ledger outcome in C when
 * the window closes is checked against B's.
 */
async function honestReceiptWhileDown(
  label: string,
  down: (system: ActorSystem, restart: () => ValidatorActor) => Promise<TakenDown>,
  reachedC: (setting: Joined, passedOn: () => Promise<void>) => Promise<void>,
): Promise<void> {
  await inLedgerSetting(`s59-receipt-down-${label}`, async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const timersC = new ManualTimers();
    const setting = await joined(system, dir, clock, worker, timersC);
    const { nodeB, identityC } = setting;
    const { passedOn, back } = await down(
      system,
      () => ledgerNodeValidator(dir, "c", { identity: identityC, models: HONEST_MODELS, clock }),
    );

    const job = textJob(requester, `s59-receipt-down-${label}`);
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await reachedC(setting, passedOn);
    await back();
    // Looked up by name: the validator that runs now is a new incarnation (or a new ref).
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    await eventually(
      async () => (await readsC.record(id)) !== undefined,
      "C to record the receipt",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below, and the ledger tells

    await readsC.closeWindow();
    const readsB = ledgerReads(() => nodeB.validator, clock);
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final");
    assert.equal((await readsC.record(id))?.status, "final", "C never recorded the receipt");
    const paidB = (await readsB.account(worker.publicKey)).balance;
    assert.ok(paidB > 0);
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paidB,
      "the honest worker was paid less in C than in B",
    );
    assert.equal(timersC.pending, 0, "a wait's timer was left behind");
  });
}

Deno.test("a receipt announced while the peer's validator is stopped is asked of it when it starts again: the honest worker is paid there as in the announcer's ledger", async () => {
  await honestReceiptWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "c/validator", restart),
    async ({ atC, logB }) => {
      // Reached C: its handler is waiting (the fix), or B heard the refusal (before it).
      await eventually(
        () => atC.stats().inboundRequests === 1 || logB.some((l) => l.includes("not running")),
        "B's announcement to reach C",
      );
    },
  );
});

Deno.test("a receipt announcement queued at a validator that crashes is asked of its next incarnation: the honest worker is paid there as in the announcer's ledger", async () => {
  await honestReceiptWhileDown(
    "crashed",
    (system, restart) =>
      crashingValidator<ValidatorMessage>(
        system,
        "c/validator",
        restart,
        "validator",
        "B's receipt to be queued at C's validator",
      ),
    (_setting, passedOn) => passedOn(),
  );
});

Deno.test("a receipt waits for a stopped validator MAX_WAIT_MS on the node's connection clock at most, then is refused service_unavailable as before: the worker goes unpaid in that ledger alone", () =>
  inLedgerSetting("s59-receipt-down-bound", async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const timersC = new ManualTimers();
    const { nodeB, atC, logB, identityC } = await joined(system, dir, clock, worker, timersC);
    const { back } = await stoppedValidator<ValidatorMessage>(
      system,
      "c/validator",
      () => ledgerNodeValidator(dir, "c", { identity: identityC, models: HONEST_MODELS, clock }),
    );
    const job = textJob(requester, "s59-receipt-down-bound");
    const { receipt } = await proveOn(job, worker);
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await eventually(() => atC.stats().inboundRequests === 1, "C to wait for its validator");
    await timersC.advance(MAX_WAIT_MS - 1);
    assert.equal(atC.stats().inboundRequests, 1, "C gave up before MAX_WAIT_MS");
    await timersC.advance(1);
    // On C's clock, not the real one: the answer comes long before 10 s of real time.
    await eventually(
      () => logB.some((l) => l.includes("not running")),
      "B to hear service_unavailable",
      { timeoutMs: 3_000 },
    );
    assert.equal(timersC.pending, 0);
    await back();
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    await readsC.closeWindow();
    assert.equal(await readsC.record(receiptId(receipt)), undefined);
    assert.equal((await readsC.account(worker.publicKey)).balance, 0);
  }));

// ---- assign validator down ------------------------------------------------------------------------
// The forwarding node hands a worker's checked receipt, with its own signed assignment, to its own
// ValidatorActor (`#checked`, `network/network_inference_port.ts`), which records it and announces
// both to the other ledgers (`announce: true`). It did so with a bare `tell`: rejected when no
// validator was registered (stopped, not started again yet) and lost with the mailbox when the
// validator crashed with it queued (`tell` resolves once it is queued). The assignment existed
// nowhere else: the requester's ledger never recorded the receipt as assigned, no other ledger
// heard of it (only this node announces the assignment), and the honest worker, which delivered
// every token, was paid in no ledger. Now the handover goes through the node's `ValidatorInbox`
// (`deliver`, with a share of its own bounds apart from the peers').
//
// The set-up: node A (a real ValidatorActor and NetworkActor on the test's clock) forwards its
// client's job through a `NetworkInferencePort` to a worker served as a node serves its peers;
// node C is joined to A and hears of the receipt only through A's announcement. A's validator is
// down (stopped; or crashing with the receipt queued) when the job ends; it comes back on the same
// ledger, and both windows close.

const WORKER_STAKE = 1_000_000;

/** A job of A's client on the honest model. */
const JOB: TextJob = clientJob("s60-assign");

/**
 * A forwards its client's job while `down` holds its validator down (the port is built on the
 * validator that runs when the job starts, as the node builds it at its start, and given the
 * validator's actor system: `ForwardingOptions.system`); once the receipt can have reached A's
 * validator, it comes back. The ledger outcome in A and in C when the window closes: the
 * honest worker is paid tokens × price in both.
 */
async function forwardedWhileDown(
  label: string,
  down: (system: ActorSystem, restart: () => Actor<ValidatorMessage>) => Promise<TakenDown>,
): Promise<void> {
  await inLedgerSetting(`s60-assign-${label}`, async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const { nodeA, nodeC } = await spawnNodesStakingWorker(setting, { a, c }, worker, WORKER_STAKE);
    await joinLedgerNodes(nodeA, nodeC);

    // The worker, a node of its own, connected to A.
    const workerSystem = new ActorSystem({ name: `s60-assign-worker-${label}` });
    const jobs = new OneWorker();
    const jobsRef = await system.spawn<NetworkMessage>({ name: "a/jobs", factory: () => jobs });
    const workerPort = new ProvingWorkerPort(worker);
    const { toWorker, atWorker } = await connectWorker(a, worker, workerPort, workerSystem);
    jobs.connection = toWorker;

    try {
      const port = (validator: ActorRef<ValidatorMessage>) =>
        new NetworkInferencePort(jobsRef, validator, a, {
          tokensPerEvent: 1,
          timers: new FakeTimers(),
          system,
        });
      // Built as the node builds it, with the validator that runs at its start.
      let forwarding = port(nodeA.validator);
      const { passedOn, back } = await down(
        system,
        () => ledgerNodeValidator(dir, "a", { identity: a, models: HONEST_MODELS, clock }),
      );
      // A validator replaced under its name (the crashing one): the port built on it.
      const now = system.lookup<ValidatorMessage>("a/validator");
      if (now !== undefined) forwarding = port(now);

      const handle = await forwarding.submit({ ...JOB, nonce: `${JOB.nonce}-${label}` });
      const got = await Array.fromAsync(handle.tokens);
      const summary = await handle.done;
      assert.ok(summary.receipt !== undefined, "the client got the worker's receipt");
      const receipt = workerPort.receipt!;
      assert.equal(receipt.tokenCount, got.length);
      const id = receiptId(receipt);
      await passedOn();
      await back();

      const { readsA, readsC } = await windowsClosed(
        clock,
        () => system.lookup<ValidatorMessage>("a/validator")!,
        nodeC.validator,
        id,
        "C to record the receipt A announced",
      );
      const paid = receipt.tokenCount * 1; // DEFAULT_ECONOMICS.defaultTokenPrice
      const recordA = await readsA.record(id);
      assert.equal(recordA?.status, "final", "A (the requester) never recorded the receipt");
      assert.equal(
        (await readsA.account(worker.publicKey)).balance,
        paid,
        "the honest worker was not paid in the requester's ledger",
      );
      assert.equal((await readsC.record(id))?.status, "final", "C never heard of the receipt");
      assert.equal(
        (await readsC.account(worker.publicKey)).balance,
        paid,
        "the honest worker was not paid in a ledger that hears of it only through A",
      );
    } finally {
      await toWorker.close();
      await atWorker.close();
      await workerSystem.shutdown();
    }
  });
}

Deno.test("a forwarded job's receipt checked while the node's own validator is stopped is handed over when it starts again: the honest worker is paid tokens × price in the requester's ledger and in a peer's that hears of it only through the requester", async () => {
  await forwardedWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "a/validator", restart),
  );
});

Deno.test("a forwarded job's receipt queued at the node's own validator when it crashes is handed to its next incarnation: the honest worker is paid tokens × price in the requester's ledger and in a peer's that hears of it only through the requester", async () => {
  await forwardedWhileDown(
    "crashed",
    (system, restart) =>
      crashingValidator<ValidatorMessage>(
        system,
        "a/validator",
        restart,
        "validator",
        "the worker's receipt to be queued at A's validator",
      ),
  );
});

/** A validator that notes what it takes (type and origin). */
class Taking implements Actor<ValidatorMessage> {
  constructor(readonly taken: string[]) {}
  receive(message: ValidatorMessage): unknown {
    this.taken.push(`${message.type} ${(message as { origin?: string }).origin}`);
    return undefined;
  }
}

Deno.test("the node's own receipts are held in a share of their own: peers' evidence filling the inbox while the validator is down does not crowd them out, and one worker's receipts take at most an eighth of it", async () => {
  const system = new ActorSystem({ name: "s60-assign-own-share" });
  try {
    const inbox = new ValidatorInbox<ValidatorMessage>(system, "v");
    // Peers with standing (keys with none share half the hold: validator_inbox_shares_test.ts)
    // fill every place the inbox holds for their evidence.
    await known(system, MAX_HELD / MAX_HELD_PER_PEER, 0);
    for (let p = 0; p < MAX_HELD / MAX_HELD_PER_PEER; p++) {
      for (let n = 0; n < MAX_HELD_PER_PEER; n++) {
        await inbox.deliver(`p${p}`, {
          type: "verdict",
          verdict: { n } as never,
          origin: `p${p}`,
        });
      }
    }
    await inbox.deliver("p-late", { type: "verdict", verdict: {} as never, origin: "p-late" });
    assert.equal(inbox.held, MAX_HELD, "a peer's evidence past the node's bound is dropped");
    const own = (worker: string) =>
      inbox.deliver(worker, {
        type: "receipt",
        receipt: {},
        origin: worker,
        announce: true,
      }, { own: true });
    await own("w-honest");
    assert.equal(inbox.held, MAX_HELD + 1, "the node's own receipt was crowded out by peers");
    // One worker's receipts: at most its eighth of the own share.
    for (let n = 0; n < MAX_HELD_PER_PEER + 3; n++) await own("w-busy");
    assert.equal(inbox.held, MAX_HELD + 1 + MAX_HELD_PER_PEER);
    await own("w-other");
    assert.equal(inbox.held, MAX_HELD + 2 + MAX_HELD_PER_PEER);

    const taken: string[] = [];
    await system.spawn<ValidatorMessage>({ name: "v", factory: () => new Taking(taken) });
    await eventually(() => Promise.resolve(inbox.held === 0), "the inbox to hand over");
    await eventually(
      () => Promise.resolve(taken.length === MAX_HELD + 2 + MAX_HELD_PER_PEER),
      "the validator to take them",
    );
    assert.equal(taken.filter((t) => t === "receipt w-honest").length, 1);
    assert.equal(taken.filter((t) => t === "receipt w-other").length, 1);
  } finally {
    await system.shutdown();
  }
});
