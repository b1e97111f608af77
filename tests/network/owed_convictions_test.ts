/**
 * A key convicted of pledge equivocation in A is convicted in every ledger connected to A, however
 * A's send budget to it stands (review s80 vgfx F1, F2): the convictions A owes a peer are kept
 * by key, the heaviest first and never pushed out by lighter throw-away ones, kept while the peer
 * is away, and sent first when it comes back, from the reserve (`network/pledge_sync.ts`).
 *
 * Each run spends A's budget to B (a flood of fresh keys' pledges, then throw-away convictions:
 * a fresh key and two pledges each), then K — staked in A and B — equivocates in A. The clock of
 * the budgets is A's and B's fake one: an hour passes by hand.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { StakeAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { attachValidationPeer, joinLedgerNodes, spawnFreshPledgedNode } from "./_ledger_node.ts";
import { settle } from "../protocols/_helpers.ts";

/** What happens between the budget's flood and the hour that follows K's conviction. */
type Scenario =
  /** B stays connected; `junk` throw-away convictions spend the reserve and fill what is owed. */
  | { kind: "overflow"; junk: number }
  /** K's conviction owed to B, then A-B drops; A relays a pledge while B is away; B comes back. */
  | { kind: "reconnect" }
  /** A-B drops before K's conviction; B comes back at once (A's budget to B still spent). */
  | { kind: "away" };

async function run(scenario: Scenario): Promise<void> {
  let clock = 1_000_000;
  const now = () => clock;
  const system = new ActorSystem({ name: "owed-convictions" });
  const dir = await Deno.makeTempDir();
  try {
    const node = (name: string) => spawnFreshPledgedNode(system, dir, name, now);
    const peer = attachValidationPeer;
    const a = await node("a");
    const b = await node("b");
    let ab = await joinLedgerNodes(a, b);
    const account = (n: typeof a, key: Uint8Array) =>
      n.validator.ask<Account>({ type: "account", key });
    const convicted = (n: typeof a, key: Uint8Array) =>
      n.validator.ask<boolean>({ type: "convicted", key });
    const peersOf = (n: typeof a) => n.network.ask<{ peerKey?: string }[]>({ type: "peers" });
    const drop = async () => {
      await ab.close();
      await eventually(async () => (await peersOf(a)).length <= 2 || undefined, "A drops B");
      await eventually(async () => (await peersOf(b)).length === 0 || undefined, "B drops A");
    };
    await eventually(async () => (await account(b, a.identity.publicKey)).stake > 0, "B has A");

    // K pledges to A; A passes it on: K has stake in A and B.
    const k = Identity.generate();
    const kConn = await peer(a, k);
    await kConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(k, 1_000, 1) });
    await eventually(async () => (await account(b, k.publicKey)).stake === 1_000, "B has K");

    // Fresh keys' pledges spend A's budget to B down to its reserve.
    const flooder = await peer(a);
    for (let i = 0; i < 400 && !flooder.isClosed; i++) {
      await flooder.notify(StakeAnnouncementMessage, {
        pledge: signStakePledge(Identity.generate(), 1_000, 2),
      }).catch(() => {});
    }
    await eventually(() => flooder.isClosed || undefined, "flooder cut off");
    await a.network.ask({ type: "peers" });
    await ab.ping();
    await settle();

    // Throw-away convictions (a stake of 1 each) spend the reserve, and past it are owed.
    const junk = await peer(a);
    const junkKeys: Identity[] = [];
    const junkCount = scenario.kind === "overflow" ? scenario.junk : 8;
    for (let i = 0; i < junkCount; i++) {
      const j = Identity.generate();
      junkKeys.push(j);
      await junk.notify(StakeAnnouncementMessage, { pledge: signStakePledge(j, 1, 1) });
      await junk.notify(StakeAnnouncementMessage, { pledge: signStakePledge(j, 2, 2) });
    }
    if (junkCount > 0) {
      await eventually(
        async () => (await convicted(a, junkKeys.at(-1)!.publicKey)) || undefined,
        "A convicts the junk",
      );
    }
    await a.network.ask({ type: "peers" });
    await settle();

    if (scenario.kind === "away") await drop();
    // K equivocates: A convicts it (stake forfeited) and owes both pledges to B.
    await kConn.notify(StakeAnnouncementMessage, { pledge: signStakePledge(k, 1_000_000, 2) });
    await eventually(() => convicted(a, k.publicKey), "A convicts K");
    await a.network.ask({ type: "peers" });
    await settle();
    if (scenario.kind !== "away" && junkCount >= 8) {
      assert.equal(await convicted(b, k.publicKey), false, "no room: owed, not sent yet");
    }
    if (scenario.kind === "reconnect") {
      await drop();
      // A pledge relayed while B is away runs `sendOwed`: what is owed to B is kept.
      await junk.notify(StakeAnnouncementMessage, {
        pledge: signStakePledge(Identity.generate(), 1, 1),
      });
      await a.network.ask({ type: "peers" });
      await settle();
    }
    // B back at once (the clock has not moved: A's budget to B, remembered by key, still spent).
    if (scenario.kind !== "overflow") ab = await joinLedgerNodes(a, b);
    await settle();

    // An hour: A's budget to B refills, and the timer sends what is owed as it does.
    for (let i = 0; i < 6; i++) {
      clock += 600_000;
      a.network.tell({ type: "send_owed_pledges" });
      await a.network.ask({ type: "peers" });
      await ab.ping();
      await settle();
    }
    await eventually(
      async () => (await convicted(b, k.publicKey)) || undefined,
      "B convicts K",
      { timeoutMs: 5_000 },
    );
    // Every connected ledger: K convicted, its stake forfeited; A and B still connected.
    for (const n of [a, b]) {
      assert.equal(await convicted(n, k.publicKey), true);
      assert.equal((await account(n, k.publicKey)).stake, 0, "K's stake is forfeited");
    }
    // Nobody else touched: each node's stake in the other's ledger whole.
    assert.equal((await account(b, a.identity.publicKey)).stake, 5_000, "A's stake in B");
    assert.equal((await account(a, b.identity.publicKey)).stake, 5_000, "B's stake in A");
    assert.ok(!ab.isClosed, "A and B stay connected: nothing refused");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("with no throw-away convictions ahead of it, K is convicted in B", () =>
  run({ kind: "overflow", junk: 0 }));

Deno.test("16 throw-away convictions (more than the reserve and 16 owed pledges) do not push K's conviction out of what A owes B: K is convicted in B", () =>
  run({ kind: "overflow", junk: 16 }));

Deno.test("a conviction owed to B while it is away (A relaying a pledge meanwhile) is sent when B comes back: K is convicted in B", () =>
  run({ kind: "reconnect" }));

Deno.test("a conviction made while B is away reaches B when it comes back, A's budget to it still spent: K is convicted in B", () =>
  run({ kind: "away" }));
