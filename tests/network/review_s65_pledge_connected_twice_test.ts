/**
 * Review s65 (helper P): a node connected to a peer more than once pushes its pledges on each
 * connection, out of one budget, the peer key's (`pledge_budget.ts`): its own pledge at once, then
 * those its ledger recorded once its validator answers. With the validator slow or down at the
 * connects (since review s65 it is waited for, `network/_validator_ask.ts`), the later
 * connections' copies of the own pledge went before the first connection's push and took the room
 * of pledges it carries: the peer never recorded them (one pledge per extra connection), though
 * the copies were of a pledge it had. This is what made `review_s46_peers_test.ts` ("connected
 * three times") fail once the connect push waited for the validator: its validator answered after
 * the second connection's copy. Now a pledge an open connection of the key carried in the last
 * minute is not pushed again on another (`PledgeSync.pushPledges`).
 *
 * A holds 100 pledges besides its own; its validator is held while C connects to it three times,
 * then answers. Asserted on C's ledger: every pledge of A's connect push is recorded there, with
 * its amount.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  PLEDGES_PUSHED_ON_CONNECT,
  signStakePledge,
  type StakePledge,
} from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS } from "../actors/_validator_fixture.ts";
import { Gated } from "./_busy_connection.ts";
import { joinLedgerNodes, spawnLedgerNode } from "./_ledger_node.ts";

Deno.test("review s65: a node connected three times to a peer while its validator is slow pushes it every pledge of its connect push: the later connections' copies of its own pledge take none of their room", async () => {
  const system = new ActorSystem({ name: "s65-pledge-connected-twice" });
  const dir = await Deno.makeTempDir();
  const now = () => 1_000_000; // the budgets' clock never moves: no room comes back
  const gate = { open: Promise.resolve() };
  try {
    const [a, c] = [Identity.generate(), Identity.generate()];
    const node = (name: string, identity: Identity, held: boolean) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, 5_000, 1),
        models: HONEST_MODELS,
        now,
        wrap: held ? (real) => new Gated(real, gate) : undefined,
      });
    const [nodeA, nodeC] = [await node("a", a, true), await node("c", c, false)];
    for (let i = 0; i < 100; i++) {
      const pledge = signStakePledge(Identity.generate(), 1_000 + i, 2);
      await nodeA.validator.ask({ type: "pledge", pledge, origin: "local" });
    }
    // What A's connect push carries besides its own pledge (as `PledgeSync.sendPledges` picks).
    const pushed = (await nodeA.validator.ask<StakePledge[]>({
      type: "pledges",
      limit: PLEDGES_PUSHED_ON_CONNECT + 2,
    })).filter((p) => !bytesEqual(p.key, a.publicKey) && !bytesEqual(p.key, c.publicKey))
      .slice(0, PLEDGES_PUSHED_ON_CONNECT);
    assert.equal(pushed.length, PLEDGES_PUSHED_ON_CONNECT);

    // A's validator is held while C connects three times: every connection's own pledge goes
    // before the validator's answer to the first.
    let open!: () => void;
    gate.open = new Promise((resolve) => open = resolve);
    for (let i = 0; i < 3; i++) await joinLedgerNodes(nodeA, nodeC);
    open();

    const stakeInC = async (key: Uint8Array) =>
      (await nodeC.validator.ask<Account>({ type: "account", key })).stake;
    await eventually(
      async () => (await stakeInC(pushed.at(-1)!.key)) > 0,
      "C to record the last pledge of A's push",
    );
    assert.equal(await stakeInC(a.publicKey), 5_000, "A's own pledge");
    for (const pledge of pushed) {
      assert.equal(await stakeInC(pledge.key), pledge.amount, "each pledge of A's push, in C");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
