/**
 * The two pledges of a conviction for pledge equivocation reach every connected peer, whatever
 * its send budget (review s80, F1: `relayPledge` dropped them past the reserve, and they were
 * published once, so a key convicted in A kept its stake in B, connected to A all along).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { StakeAnnouncementMessage } from "../../protocols/inference_messages.ts";
import {
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_REFILL_MS,
  PLEDGE_SEND_RESERVE,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { PledgeBudget } from "../../network/pledge_budget.ts";
import {
  MAX_OWED_AWAY_PEERS,
  MAX_OWED_CONVICTIONS,
  OWED_SEND_RESERVE,
  type PledgePeer,
  PledgeSync,
} from "../../network/pledge_sync.ts";
import { eventually } from "../_helpers/wait.ts";
import { attachValidationPeer, joinLedgerNodes, spawnFreshPledgedNode } from "./_ledger_node.ts";
import { settle } from "../protocols/_helpers.ts";

Deno.test("a key convicted of pledge equivocation in A is convicted and slashed in B too, after a flood spent A's budget to B", async () => {
  // The budgets' clock stands still: nothing refills A's budget to B while the test runs.
  const now = () => 1_000_000;
  const system = new ActorSystem({ name: "conviction-relay" });
  const dir = await Deno.makeTempDir();
  try {
    const node = (name: string) => spawnFreshPledgedNode(system, dir, name, now);
    const peer = attachValidationPeer;
    const a = await node("a");
    const b = await node("b");
    const ab = await joinLedgerNodes(a, b);
    const account = (n: typeof a, key: Uint8Array) =>
      n.validator.ask<Account>({ type: "account", key });
    const convicted = (n: typeof a, key: Uint8Array) =>
      n.validator.ask<boolean>({ type: "convicted", key });
    await eventually(async () => (await account(b, a.identity.publicKey)).stake > 0, "B has A");

    // K's first pledge, to A, passed on to B: K has stake in both.
    const k = Identity.generate();
    const kConn = await peer(a, k);
    await kConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(k, 1_000, 1) });
    await eventually(async () => (await account(b, k.publicKey)).stake === 1_000, "B has K");

    // Fresh keys' pledges through A (a key is free) until A's budget to B is down to its reserve.
    const flooder = await peer(a);
    for (let i = 0; i < 400; i++) {
      const pledge = signStakePledge(Identity.generate(), 1_000, 2);
      try {
        await flooder.notify(StakeAnnouncementMessage, { pledge });
      } catch {
        break;
      }
    }
    await eventually(() => flooder.isClosed || undefined, "flooder cut off");
    await a.network.ask({ type: "peers" });
    await ab.ping();
    await settle();

    // K's second, different pledge, to A: A convicts K and publishes both pledges.
    await kConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(k, 1_000_000, 2) });
    await eventually(() => convicted(a, k.publicKey), "A convicts K");
    await eventually(() => convicted(b, k.publicKey), "B convicts K", { timeoutMs: 10_000 });
    const inA = await account(a, k.publicKey);
    const inB = await account(b, k.publicKey);
    assert.equal(inA.stake, 0, "K's stake is forfeited in A");
    assert.equal(inB.stake, 0, "and in B, connected to A all along");
    assert.equal(inB.balance, inA.balance);
    assert.ok(!ab.isClosed, "A and B stay connected");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a conviction's pledges with no room at all, the reserve spent, are owed and sent as the budget refills; other relays wait behind them", () => {
  const peer = Identity.generate();
  const key = toHex(peer.publicKey);
  const sent: string[] = [];
  const connection = {
    isClosed: false,
    peerKey: peer.publicKey,
    supports: () => true,
    notify: (_: unknown, body: { pledge: StakePledge }) => {
      sent.push(toHex(body.pledge.sig));
      return Promise.resolve();
    },
  } as unknown as Connection;
  let clock = 0;
  const pledges = new PledgeBudget({ now: () => clock });
  const entries: PledgePeer[] = [{ connection, pledges }];
  const sync = new PledgeSync({
    peers: new Map([[key, entries]]),
    entryOf: (c) => entries.find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
  });
  // The whole budget spent, the reserve too (pledges the peer needed, sent from the reserve).
  for (let i = 0; i < PLEDGE_SEND_BURST; i++) assert.ok(pledges.take());
  const k = Identity.generate();
  const first = signStakePledge(k, 1_000, 1);
  const second = signStakePledge(k, 1_000_000, 2);
  assert.equal(sync.relayPledge(first, undefined, true), 0);
  assert.equal(sync.relayPledge(second, undefined, true), 0);
  // A fresh key's pledge relayed meanwhile does not jump ahead of them.
  const other = signStakePledge(Identity.generate(), 1_000, 1);
  clock += PLEDGE_SEND_REFILL_MS;
  assert.equal(sync.relayPledge(other, undefined), 0);
  assert.deepEqual(sent, [], "one pledge of room back: left to a pledge the peer needs");
  clock += PLEDGE_SEND_REFILL_MS;
  assert.equal(sync.relayPledge(other, undefined), 0);
  assert.deepEqual(sent, [toHex(first.sig)], "two back: the first owed goes, one left");
  clock += PLEDGE_SEND_REFILL_MS;
  sync.sendOwed();
  assert.deepEqual(sent, [toHex(first.sig), toHex(second.sig)]);
  // Owed to a peer with none left: by key, bounded, the heaviest first; lighter throw-away
  // convictions, however many, never push a heavier one out (review s80 vgfx F1).
  for (let i = 0; i < PLEDGE_SEND_BURST; i++) pledges.take(0);
  const light = (amount: number) => {
    const j = Identity.generate();
    return [signStakePledge(j, amount, 1), signStakePledge(j, amount, 2)];
  };
  for (const p of light(1)) sync.relayPledge(p, undefined, true);
  const cheater = Identity.generate();
  const heavy = [signStakePledge(cheater, 1_000, 1), signStakePledge(cheater, 7, 2)];
  for (const p of heavy) sync.relayPledge(p, undefined, true);
  for (let i = 0; i < MAX_OWED_CONVICTIONS + 4; i++) {
    for (const p of light(1)) sync.relayPledge(p, undefined, true);
  }
  sent.length = 0;
  clock += PLEDGE_SEND_REFILL_MS * (2 + OWED_SEND_RESERVE);
  sync.sendOwed();
  assert.deepEqual(sent, heavy.map((p) => toHex(p.sig)), "the heaviest first, its first first");
  clock += PLEDGE_SEND_REFILL_MS * PLEDGE_SEND_BURST * 1_000;
  for (let i = 0; i < 40; i++) {
    sync.sendOwed();
    clock += PLEDGE_SEND_REFILL_MS * PLEDGE_SEND_BURST;
  }
  // At most the bound owed, each key's two; then the fresh key's pledge relayed while they were
  // owed, queued behind them (`MAX_QUEUED_PLEDGES`), not dropped (review s82 sim F1).
  assert.equal(sent.length, 2 * MAX_OWED_CONVICTIONS + 1, "at most the bound owed, each key's two");
  assert.equal(sent.at(-1), toHex(other.sig), "the queued relay goes last, once");
  assert.ok(PLEDGE_SEND_RESERVE < MAX_OWED_CONVICTIONS);
  sync.close();
});

Deno.test("convictions owed to a peer key are kept while it is away and sent first when it connects again", () => {
  const peer = Identity.generate();
  const key = toHex(peer.publicKey);
  const sent: string[] = [];
  const connection = (closed: boolean) =>
    ({
      isClosed: closed,
      peerKey: peer.publicKey,
      supports: () => true,
      notify: (_: unknown, body: { pledge: StakePledge }) => {
        sent.push(toHex(body.pledge.sig));
        return Promise.resolve();
      },
    }) as unknown as Connection;
  let clock = 0;
  const pledges = new PledgeBudget({ now: () => clock });
  const table = new Map<string, PledgePeer[]>([[key, [{
    connection: connection(false),
    pledges,
  }]]]);
  const sync = new PledgeSync({
    peers: table,
    entryOf: (c) => table.get(key)?.find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
  });
  for (let i = 0; i < PLEDGE_SEND_BURST; i++) assert.ok(pledges.take(0));
  const k = Identity.generate();
  const both = [signStakePledge(k, 1_000, 1), signStakePledge(k, 5, 2)];
  for (const p of both) assert.equal(sync.relayPledge(p, undefined, true), 0);
  // The peer goes; a pledge relayed meanwhile runs `sendOwed`: what is owed to it is kept.
  table.set(key, []);
  sync.relayPledge(signStakePledge(Identity.generate(), 1, 1), undefined);
  sync.sendOwed();
  assert.deepEqual(sent, []);
  // Back (on its key's budget, three pledges of room back): the conviction goes at once.
  clock += PLEDGE_SEND_REFILL_MS * (2 + OWED_SEND_RESERVE);
  const again = connection(false);
  table.set(key, [{ connection: again, pledges }]);
  sync.sendPledges(again, {} as never);
  assert.deepEqual(sent, both.map((p) => toHex(p.sig)));
  sync.close();
});

/** PledgeSync over fake connections to peers connected and dropped by hand, on one clock. */
function harness() {
  let clock = 0;
  const now = () => clock;
  const sent = new Map<string, string[]>();
  const table = new Map<string, PledgePeer[]>();
  const budgets = new Map<string, PledgeBudget>();
  const connect = (publicKey: Uint8Array) => {
    const key = toHex(publicKey);
    const connection = {
      isClosed: false,
      peerKey: publicKey,
      supports: () => true,
      notify: (_: unknown, body: { pledge: StakePledge }) => {
        sent.get(key)!.push(toHex(body.pledge.sig));
        return Promise.resolve();
      },
    } as unknown as Connection;
    if (!sent.has(key)) sent.set(key, []);
    let pledges = budgets.get(key);
    if (pledges === undefined) budgets.set(key, pledges = new PledgeBudget({ now }));
    table.set(key, [{ connection, pledges }]);
    // Its budget spent (a flood of fresh keys' pledges, then pledges it needed).
    for (let i = 0; i < PLEDGE_SEND_BURST; i++) pledges.take(0);
    return { key, connection, pledges };
  };
  const disconnect = (key: string) => {
    for (const e of table.get(key) ?? []) (e.connection as { isClosed: boolean }).isClosed = true;
    table.set(key, []);
  };
  const sync = new PledgeSync({
    peers: table,
    entryOf: (c) => [...table.values()].flat().find((e) => e.connection === c),
    validator: () => undefined,
    tell: () => {},
    log: () => {},
    now,
  });
  const conviction = (first: number, second: number) => {
    const j = Identity.generate();
    return [signStakePledge(j, first, 1), signStakePledge(j, second, 2)];
  };
  const tick = (ms: number) => (clock += ms);
  return { sync, sent, connect, disconnect, conviction, tick };
}

Deno.test("peer keys cycled by an attacker (free, one throw-away conviction owed to each, gone) do not make A forget a cheater's conviction owed to an honest peer away meanwhile", () => {
  const h = harness();
  const b = h.connect(Identity.generate().publicKey);
  const k = h.conviction(1_000_000, 5);
  for (const p of k) h.sync.relayPledge(p, undefined, true);
  h.disconnect(b.key);
  const attackers = Array.from(
    { length: MAX_OWED_AWAY_PEERS + 14 },
    () => h.connect(Identity.generate().publicKey),
  );
  for (const p of h.conviction(1, 1)) h.sync.relayPledge(p, undefined, true);
  for (const a of attackers) h.disconnect(a.key);
  h.sync.sendOwed();
  // B back an hour later: K's conviction goes to it first.
  h.tick(PLEDGE_SEND_REFILL_MS * PLEDGE_SEND_BURST * 10);
  const again = h.connect(b.connection.peerKey!);
  h.tick(PLEDGE_SEND_REFILL_MS * PLEDGE_SEND_BURST);
  h.sync.sendOwed();
  assert.deepEqual(h.sent.get(b.key), k.map((p) => toHex(p.sig)), "K's two pledges reach B");
  assert.ok(!again.connection.isClosed);
  h.sync.close();
});

Deno.test("a pledge a peer needs is not held behind the convictions owed to it: it goes at the next refill, and the owed ones still drain", async () => {
  const h = harness();
  const b = h.connect(Identity.generate().publicKey);
  for (let i = 0; i < MAX_OWED_CONVICTIONS; i++) {
    for (const p of h.conviction(1, 1)) h.sync.relayPledge(p, undefined, true);
  }
  const w = signStakePledge(Identity.generate(), 5_000, 1);
  const needed = { type: "push_pledges", connection: b.connection, pledges: [w], needed: true };
  let refills = 0;
  for (; refills < 10 && !h.sent.get(b.key)!.includes(toHex(w.sig)); refills++) {
    // The owed timer wakes at each pledge of room; then B refuses a receipt of W.
    h.tick(PLEDGE_SEND_REFILL_MS);
    h.sync.sendOwed();
    h.sync.pushPledges(needed as Parameters<PledgeSync["pushPledges"]>[0]);
  }
  await Promise.resolve();
  assert.equal(refills, 1, "W's pledge goes at the first pledge of room back");
  // The owed convictions still go, one pledge per refill past the one left.
  const before = h.sent.get(b.key)!.length;
  for (let i = 0; i < 10; i++) {
    h.tick(PLEDGE_SEND_REFILL_MS);
    h.sync.sendOwed();
  }
  assert.equal(h.sent.get(b.key)!.length - before, 10 - OWED_SEND_RESERVE);
  h.sync.close();
});
