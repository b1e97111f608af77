/**
 * Stake pledges under a per-connection budget (`network/pledge_budget.ts`). A review flooded a
 * node with valid pledges of fresh keys: every ledger recorded, passed on and kept all of them,
 * the attacker was never disconnected, and each newcomer was pushed thousands (5,413) on
 * connect — enough to make a peer without a pledge handler hang up on its own refusal limit.
 * Here: a flooding peer is recorded up to its budget, refused, then cut off; what it gets passed
 * on to the node's other peers stays within their budget; a newcomer is pushed a bounded few (the
 * active keys first); and an honest worker's pledge left out of that push still reaches a late
 * peer with its first receipt, which is recorded there with stake. The budgets' clock is fixed.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { PledgeBudget } from "../../network/pledge_budget.ts";
import { Connection, type Protocol } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { inputHashOf, receiptId } from "../../protocols/receipt.ts";
import {
  StakeAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import {
  PLEDGE_RECEIVE_BURST,
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_RESERVE,
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { assigned, job, receipt, requester, resigned } from "../proof/_ledger_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import { joinLedgerNodes, spawnLedgerNode } from "./_ledger_node.ts";

/**
 * Every model counts as held, so assigned receipts are credited (a ledger credits only what it
 * can check); none is ever loaded, as nothing here is challenged (p = 0).
 */
const MODELS = { has: () => true, get: () => Promise.resolve(undefined) };
/** The budgets' clock: it never moves, so no pledge of room comes back during a test. */
const now = () => 1_000_000;

interface Node {
  identity: Identity;
  pledge: StakePledge;
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** A network of nodes, each a NetworkActor with its pledge and a validator keeping its ledger. */
async function network(name: string) {
  const system = new ActorSystem({ name });
  const dir = await Deno.makeTempDir();
  const node = async (name: string): Promise<Node> => {
    const identity = Identity.generate();
    const pledge = signStakePledge(identity, 5_000, 1);
    const actors = await spawnLedgerNode(system, dir, name, {
      identity,
      pledge,
      models: MODELS,
      now,
    });
    return { identity, pledge, ...actors };
  };
  /** Join two nodes in memory; resolves with x's side of the connection. */
  const join = joinLedgerNodes;
  /** A bare peer of `to` (not a node): its connection, and the node's side of it. */
  const peer = async (
    to: Node,
    options: { protocols: Protocol[]; onRemoteError?: (e: Error & { code: string }) => void },
    setup?: (c: Connection) => void,
  ) => {
    const [dx, dy] = memoryDuplexPair();
    const open = Connection.open(dx, { identity: Identity.generate(), ...options });
    const [near] = await Promise.all([
      to.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
      open.then((c) => setup?.(c)),
    ]);
    return { far: await open, near };
  };
  return {
    node,
    join,
    peer,
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const pledgesIn = (n: Node) => n.validator.ask<StakePledge[]>({ type: "pledges" });
const stakeIn = (n: Node, key: Uint8Array) =>
  n.validator.ask<Account>({ type: "account", key }).then((a) => a.stake);
/**
 * Worker `by`'s receipt for fixture job `n`, committing to the job's own input, signed now (the
 * validators' ledgers run on the real clock, and refuse a receipt first seen long after).
 */
const honestReceipt = (n: number, by: Identity) =>
  resigned(receipt(n, 8, by), {
    inputHash: inputHashOf(job(n)),
    timings: { startedAt: Date.now(), firstTokenMs: 1, totalMs: 2 },
  }, by);
const freshPledges = (count: number) =>
  Array.from({ length: count }, () => signStakePledge(Identity.generate(), 1_000, 2));

Deno.test("a peer flooding pledges of fresh keys is recorded up to its connection's budget, refused past it, then disconnected; what reaches the node's other peers stays within their budget", async () => {
  const net = await network("pledge-flood");
  try {
    const [a, b] = [await net.node("a"), await net.node("b")];
    const ab = await net.join(a, b);
    await eventually(async () => (await stakeIn(b, a.identity.publicKey)) > 0, "B has A's stake");
    const told: string[] = [];
    const attacker = await net.peer(a, {
      protocols: [VALIDATION_PROTOCOL],
      onRemoteError: (e) => told.push(e.code),
    });
    let sent = 0;
    for (const pledge of freshPledges(400)) {
      try {
        await attacker.far.notify(StakeAnnouncementMessage, { pledge });
      } catch {
        break; // cut off
      }
      sent++;
    }
    assert.ok(sent > PLEDGE_RECEIVE_BURST, `sent ${sent}`);
    await eventually(() => attacker.far.isClosed, "A to cut the flooding peer off");
    assert.equal(
      (attacker.near.closeReason as { code?: string } | null)?.code,
      "too_many_refusals",
    );
    // Told why, on each pledge past the budget (a one-way message is answered with an error).
    assert.ok(told.includes("pledge_budget_exceeded"), told.slice(0, 3).join());
    // A's ledger: its peer B's pledge, and the flood up to the budget, no more.
    const atA = await pledgesIn(a);
    assert.equal(atA.length, 1 + PLEDGE_RECEIVE_BURST);
    // A passed the flood on to B within B's budget (its own pledge, then gossip past the room it
    // keeps back): B recorded no more, and B did not cut A off for it.
    await a.network.ask({ type: "peers" }); // every `publish_pledge` A's validator told is sent
    await ab.ping();
    await eventually(
      async () => (await pledgesIn(b)).length === PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE,
      "B to record what A passed on",
    );
    await ab.ping();
    assert.equal((await pledgesIn(b)).length, PLEDGE_SEND_BURST - PLEDGE_SEND_RESERVE);
    assert.equal(ab.isClosed, false, "B keeps its honest peer A");
  } finally {
    await net.close();
  }
});

Deno.test("a newcomer is pushed a bounded few of a ledger's pledges, the active keys first; a peer that offers validation/1 without handling pledges is not made to hang up", async () => {
  const net = await network("pledge-push");
  try {
    const a = await net.node("a");
    // A worker pledged long ago and has a receipt open here; 300 fresh keys pledged since.
    const worker = Identity.generate();
    const workerPledge = signStakePledge(worker, 1_000_000, 1);
    await a.validator.ask({ type: "pledge", pledge: workerPledge, origin: "local" });
    const r = honestReceipt(1, worker);
    const handled = await a.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: r,
      job: job(1),
      ...assigned(r),
      origin: toHex(requester.publicKey),
    } as ValidatorMessage);
    assert.equal(handled.recorded, true);
    for (const pledge of freshPledges(300)) {
      await a.validator.ask({ type: "pledge", pledge, origin: "local" });
    }
    const pushed: StakePledge[] = [];
    const newcomer = await net.peer(
      a,
      { protocols: [VALIDATION_PROTOCOL] },
      (c) => c.handle(StakeAnnouncementMessage, ({ pledge }) => void pushed.push(pledge)),
    );
    const all = PLEDGES_PUSHED_ON_CONNECT + 1; // and A's own, first
    await eventually(() => pushed.length >= all, "the newcomer to be pushed A's pledges");
    await newcomer.far.ping(); // anything more A pushed would have come before the pong
    await newcomer.far.ping();
    assert.equal(pushed.length, all, "no more than the bound");
    assert.equal(toHex(pushed[0].key), toHex(a.identity.publicKey), "A's own first");
    assert.ok(
      pushed.some((p) => toHex(p.key) === toHex(worker.publicKey)),
      "the worker with an open receipt is pushed, though its pledge is the oldest",
    );
    // A peer that offers the protocol and refuses every pledge (no handler) stays under its own
    // refusal limit (100 in 10 s): it is pushed as many, not thousands.
    const probe = await net.peer(a, { protocols: [VALIDATION_PROTOCOL] });
    // And the receipt A recorded from a peer and passed on, in A's catch-up (review s62: a relay
    // keeps those for the ledgers that connect).
    const refusals = all + 1;
    await eventually(() => probe.far.stats().refused >= refusals, "the probe to refuse A's pushes");
    await probe.far.ping();
    await probe.far.ping();
    assert.equal(probe.far.stats().refused, refusals);
    assert.equal(probe.far.isClosed, false);
    assert.equal(probe.near.isClosed, false);
  } finally {
    await net.close();
  }
});

Deno.test("an honest worker's pledge left out of the connect push reaches a late peer with its first receipt there, which is recorded with its stake", async () => {
  const net = await network("pledge-need");
  try {
    const [a, c] = [await net.node("a"), await net.node("c")];
    const worker = Identity.generate();
    const workerPledge = signStakePledge(worker, 1_000_000, 1);
    await a.validator.ask({ type: "pledge", pledge: workerPledge, origin: "local" });
    // Pledges of 100 fresh keys came after it: the worker's is not among the newest.
    for (const pledge of freshPledges(100)) {
      await a.validator.ask({ type: "pledge", pledge, origin: "local" });
    }
    const ac = await net.join(a, c);
    const pushed = PLEDGES_PUSHED_ON_CONNECT + 1; // A's own, and the newest of its ledger
    await eventually(async () => (await pledgesIn(c)).length >= pushed, "C to record A's push");
    await ac.ping();
    await ac.ping();
    assert.equal((await pledgesIn(c)).length, pushed, "a bounded push");
    assert.equal(await stakeIn(c, worker.publicKey), 0, "C has not heard of the worker yet");
    // The worker's first receipt, recorded at A and announced to C: C lacks its stake, keeps the
    // receipt, and A sends the pledge C turned out to need.
    const r = honestReceipt(2, worker);
    const handled = await a.validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: r,
      job: job(2),
      ...assigned(r),
      origin: toHex(requester.publicKey),
    } as ValidatorMessage);
    assert.equal(handled.recorded, true);
    const atC = await eventually(
      () =>
        c.validator.ask<ReceiptRecord | undefined>({
          type: "receipt_status",
          receiptId: receiptId(r),
        }),
      "C to record the worker's receipt",
    );
    assert.equal(atC.status, "pending");
    assert.ok(atC.credit > 0, "assigned: paid when final");
    const account = await c.validator.ask<Account>({ type: "account", key: worker.publicKey });
    assert.equal(account.stake, 1_000_000);
    assert.ok(account.locked > 0, "its stake backs the receipt");
    assert.equal(ac.isClosed, false);
    assert.equal((await c.network.ask<PeerInfo[]>({ type: "peers" })).length, 1);
  } finally {
    await net.close();
  }
});

Deno.test("a pledge budget gives its burst at once, then one pledge of room per refill period, and keeps a reserve back when asked", () => {
  const clock = { t: 0 };
  const budget = new PledgeBudget({ burst: 4, refillMs: 1_000, now: () => clock.t });
  assert.deepEqual([budget.take(2), budget.take(2), budget.take(2)], [true, true, false]);
  assert.deepEqual([budget.take(), budget.take(), budget.take()], [true, true, false]);
  clock.t += 999;
  assert.equal(budget.take(), false);
  clock.t += 1;
  assert.deepEqual([budget.take(), budget.take()], [true, false]);
  clock.t += 60_000; // a long quiet spell refills to the burst, not past it
  assert.equal(budget.room, 4);
});
