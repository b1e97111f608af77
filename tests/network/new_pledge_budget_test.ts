/**
 * Pledges of keys a ledger has never seen, budgeted per address group and for the node
 * (`network/peer_services.ts`, `network/address_budget.ts`), on top of the per-key budget
 * (`pledge_budget_test.ts`).
 *
 * Review s71 (finding 1): every pledge bound was per peer KEY, and a key costs one key pair and
 * one handshake. One host that made a fresh connection key per connection, each sending its 128
 * pledges of fresh keys, had 20,480 recorded for good in 40 s. Here a few fresh connection keys
 * from one address (loopback over TCP), each within its own key's budget, together get one
 * address group's allowance, not one each; connections with no address share the node's.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage, ValidatorStats } from "../../actors/validator_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import { AddressBudget } from "../../network/address_budget.ts";
import { addressGroup } from "../../network/connection_limits.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { newPledgeBudget } from "../../network/peer_services.ts";
import {
  NEW_PLEDGES_PER_GROUP_BURST,
  NEW_PLEDGES_PER_GROUP_REFILL_MS,
} from "../../network/pledge_budget.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import {
  StakeAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import {
  PLEDGE_RECEIVE_BURST,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { HONEST_MODELS } from "../actors/_validator_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import { spawnLedgerNode } from "./_ledger_node.ts";

/** A ledger node V whose NetworkActor listens on loopback TCP; the budgets' clock is `clock`. */
async function ledgerOnTcp(name: string, newPledges?: AddressBudget) {
  const clock = { t: 1_000_000 };
  const now = () => clock.t;
  const system = new ActorSystem({ name });
  const dir = await Deno.makeTempDir();
  const identity = Identity.generate();
  const node = await spawnLedgerNode(system, dir, "v", { identity, models: HONEST_MODELS, now });
  // spawnLedgerNode's NetworkActor does not listen: a second one, for the same validator, does.
  const network = await system.spawn<NetworkMessage>({
    name: "v/network-tcp",
    factory: () =>
      new NetworkActor({
        identity,
        listen: { hostname: "127.0.0.1", port: 0 },
        now,
        services: { validator: "v/validator", ...(newPledges ? { newPledges } : {}) },
      }),
  });
  const { port } = await network.ask<Deno.NetAddr>({ type: "listening" });
  return {
    clock,
    validator: node.validator as ActorRef<ValidatorMessage>,
    memory: network,
    /** A fresh connection key's connection to V over TCP from 127.0.0.1. */
    async connect(): Promise<Connection> {
      const duplex = await connectTcp({ hostname: "127.0.0.1", port });
      return await Connection.open(duplex, {
        identity: Identity.generate(),
        protocols: [VALIDATION_PROTOCOL],
      });
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const fresh = () => signStakePledge(Identity.generate(), 1_000, 2);

/** How many of `sent` V's ledger holds a pledge of. */
async function recorded(validator: ActorRef<ValidatorMessage>, sent: StakePledge[]) {
  const held = new Set(
    (await validator.ask<StakePledge[]>({ type: "pledges" })).map((p) => toHex(p.key)),
  );
  return sent.filter((p) => held.has(toHex(p.key))).length;
}

/** Send `pledges` over `c`, each one a notify, and wait until each is written. */
async function send(c: Connection, pledges: StakePledge[]): Promise<void> {
  await Promise.all(pledges.map((pledge) => c.notify(StakeAnnouncementMessage, { pledge })));
  await c.ping();
}

Deno.test("red team s71: fresh connection keys from one address together get one address group's budget of new keys' pledges, not one each; room comes back with time; a staked key's second pledge is still recorded", async () => {
  const v = await ledgerOnTcp("s71-new-pledges-tcp");
  try {
    // A key staked here before the flood.
    const staked = Identity.generate();
    await v.validator.ask({ type: "pledge", pledge: signStakePledge(staked, 5_000, 1) });
    // Three fresh connection keys, each within its own key's budget (128 pledges of fresh keys).
    const rounds = Math.ceil(NEW_PLEDGES_PER_GROUP_BURST / PLEDGE_RECEIVE_BURST) + 1;
    const sent: StakePledge[] = [];
    for (let r = 0; r < rounds; r++) {
      const c = await v.connect();
      const pledges = Array.from({ length: PLEDGE_RECEIVE_BURST }, fresh);
      sent.push(...pledges);
      await send(c, pledges);
      assert.equal(c.isClosed, false, "within its own key's budget: not cut off");
      await c.close();
    }
    assert.ok(sent.length > NEW_PLEDGES_PER_GROUP_BURST);
    await eventually(
      async () => (await recorded(v.validator, sent)) >= NEW_PLEDGES_PER_GROUP_BURST,
      "V to record the address group's allowance",
    );
    await v.validator.ask({ type: "stats" }); // every pledge queued before this is handled
    assert.equal(
      await recorded(v.validator, sent),
      NEW_PLEDGES_PER_GROUP_BURST,
      "one address group's allowance in all, whatever the number of keys",
    );

    // The staked key's second, different pledge (it convicts the key of equivocation): not a new
    // key, so the spent budget does not keep it out.
    const c = await v.connect();
    await send(c, [signStakePledge(staked, 9_000, 3)]);
    await eventually(
      () =>
        v.validator.ask<Account>({ type: "account", key: staked.publicKey }).then((a) =>
          a.stake === 0
        ),
      "the equivocation to be recorded (its stake forfeited)",
    );
    // One refill period later, one more new key fits.
    v.clock.t += NEW_PLEDGES_PER_GROUP_REFILL_MS;
    const later = [fresh(), fresh()];
    await send(c, later);
    await eventually(async () => (await recorded(v.validator, later)) >= 1, "one more recorded");
    await v.validator.ask({ type: "stats" });
    assert.equal(await recorded(v.validator, later), 1);
    await c.close();
  } finally {
    await v.close();
  }
});

Deno.test("red team s71: connections with no address (in-memory here, as over the swarm) share the node's budget of new keys' pledges, whatever their keys", async () => {
  const node = { burst: 20, refillMs: 60_000 };
  const budget = new AddressBudget({ perGroup: { burst: 10, refillMs: 60_000 }, node });
  const v = await ledgerOnTcp("s71-new-pledges-memory", budget);
  try {
    const sent: StakePledge[] = [];
    for (let r = 0; r < 3; r++) {
      const [dx, dy] = memoryDuplexPair();
      const [, far] = await Promise.all([
        v.memory.ask({ type: "attach", duplex: dy, address: "mem", outbound: false }),
        Connection.open(dx, { identity: Identity.generate(), protocols: [VALIDATION_PROTOCOL] }),
      ]);
      const pledges = Array.from({ length: 10 }, fresh);
      sent.push(...pledges);
      await send(far, pledges);
      await far.close();
    }
    await eventually(
      async () => (await recorded(v.validator, sent)) >= node.burst,
      "V to record the node's allowance",
    );
    await v.validator.ask({ type: "stats" });
    assert.equal(await recorded(v.validator, sent), node.burst, "the node's allowance, no more");
  } finally {
    await v.close();
  }
});

Deno.test("an address budget: each group its own bucket, every take also from the node's, an unaddressed take from the shared one; room comes back per refill", () => {
  const clock = { t: 0 };
  const budget = new AddressBudget({
    perGroup: { burst: 2, refillMs: 1_000 },
    unaddressed: { burst: 1, refillMs: 1_000 },
    node: { burst: 4, refillMs: 500 },
    now: () => clock.t,
  });
  assert.deepEqual(
    [budget.take("192.0.2.1"), budget.take("192.0.2.1"), budget.take("192.0.2.1")],
    [true, true, false],
  );
  assert.equal(budget.nextInMs("192.0.2.1"), 1_000);
  assert.deepEqual([budget.take(undefined), budget.take(undefined)], [true, false]);
  assert.equal(budget.take("198.51.100.1"), true, "another group");
  assert.equal(budget.take("203.0.113.1"), false, "the node's bucket is empty (4 taken)");
  assert.equal(budget.nextInMs("203.0.113.1"), 500);
  clock.t += 500;
  assert.equal(budget.room("203.0.113.1").take(), true);
  assert.throws(() => new AddressBudget({ perGroup: { burst: 1, refillMs: 1 } }), RangeError);
});

/** When the honest newcomer of the F3 test connects: five minutes into the flood. */
const HONEST_AT_MS = 300_000;

Deno.test("red team s71 (verify F3): a swarm attacker and four IPv4 addresses taking every refill of new keys' pledges do not keep an honest newcomer's pledge out", () => {
  const clock = { t: 0 };
  const budget = newPledgeBudget(() => clock.t);
  const attackers = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", undefined];
  // The attacker's swarm connection takes all it can, and opens a fresh one each second too.
  const swarm = budget.room(undefined);
  let honestAt: number | undefined;
  for (let s = 0; s < 600 && honestAt === undefined; s++) {
    clock.t = s * 1_000;
    while (swarm.take());
    while (budget.room(undefined).take());
    for (const address of attackers) while (budget.room(address).take());
    // The honest newcomer connects five minutes into the flood, its own pledge first.
    if (clock.t >= HONEST_AT_MS && budget.room("198.51.100.20").take()) honestAt = clock.t;
  }
  // Review s71 (verify): 0 of 600 tries in ten minutes.
  assert.equal(honestAt, HONEST_AT_MS, "the honest newcomer's pledge is taken at its first try");
});

Deno.test("red team s71 (verify F3): a new key's pledge refused for the address budget is counted in the validator's stats, not dropped silently", async () => {
  const budget = new AddressBudget({
    perGroup: { burst: 3, refillMs: 3_600_000 },
    node: { burst: 100, refillMs: 3_600_000 },
  });
  const v = await ledgerOnTcp("s71-new-pledges-refused", budget);
  try {
    const c = await v.connect();
    const pledges = Array.from({ length: 5 }, fresh);
    await send(c, pledges);
    await eventually(async () => (await recorded(v.validator, pledges)) >= 3, "3 recorded");
    await eventually(
      async () =>
        (await v.validator.ask<ValidatorStats>({ type: "stats" })).newKeyPledgesRefused === 2,
      "the 2 refused to be counted",
    );
    assert.equal(await recorded(v.validator, pledges), 3);
    await c.close();
  } finally {
    await v.close();
  }
});

Deno.test("an address budget's reserve: the shared buckets keep it for a block's first take in its period and an unaddressed connection's first; other takes leave it", () => {
  const clock = { t: 0 };
  const budget = new AddressBudget({
    perGroup: { burst: 10, refillMs: 60_000 },
    unaddressed: { burst: 4, refillMs: 60_000 },
    node: { burst: 6, refillMs: 60_000 },
    reserve: { room: 2, refillMs: 600_000 },
    now: () => clock.t,
  });
  let taken = 0;
  while (budget.room("192.0.2.1").take()) taken++;
  // Down to the reserve (4), then its block's one reserved take in the period.
  assert.equal(taken, 5, "one group takes the node's room down to the reserve, then one more");
  assert.equal(budget.take("192.0.2.1"), false, "one reserved take a period");
  assert.equal(budget.room(addressGroup("2001:db8:1:1::1")).take(), true, "another block's first");
  clock.t += 60_000; // one of the node's room back, none of the blocks' firsts
  assert.equal(
    budget.room(addressGroup("2001:db8:1:2::1")).take(),
    false,
    "same /48: its first is spent",
  );
  assert.equal(budget.room(undefined).take(), true, "an unaddressed connection's first");
  clock.t += 120_000; // two of the node's room back: the reserve
  const swarm = budget.room(undefined);
  assert.equal(swarm.take(), true, "another connection's first");
  assert.equal(swarm.take(), false, "its second leaves the reserve (one left)");
});
