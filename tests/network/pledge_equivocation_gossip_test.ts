/**
 * A key's two pledges reach a ledger that holds neither and never meets the ledger that held the
 * other: the conviction travels by gossip. B holds the key's small pledge, C its large one, D
 * gets C's on connect; B and C then meet and each convicts the key, and C passes on the second
 * pledge it learned (B's) with its first, so D convicts the key too though it never connects to
 * B. The gossip is the pledge gossip, out of each peer's pledge budget (`network/pledge_sync.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Account } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { inLedgerSetting, joinLedgerNodes, spawnSettingNode } from "./_ledger_node.ts";

Deno.test("a key's two pledges: a ledger that got only one of them on connect convicts the key too, once a peer that came to hold both passes the other on", () =>
  inLedgerSetting("pledge-equivocation-gossip", async (setting) => {
    const { system } = setting;
    const [b, c, d, hostile] = [1, 2, 3, 4].map(() => Identity.generate());
    const nodeB = await spawnSettingNode(setting, system, "b", b);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const nodeD = await spawnSettingNode(setting, system, "d", d);
    const origin = toHex(hostile.publicKey);
    await nodeB.validator.ask({
      type: "pledge",
      pledge: signStakePledge(hostile, 1_000, 1),
      origin,
    });
    await nodeC.validator.ask({
      type: "pledge",
      pledge: signStakePledge(hostile, 1_000_000, 2),
      origin,
    });
    const accountIn = (node: typeof nodeB) =>
      node.validator.ask<Account>({ type: "account", key: hostile.publicKey });

    await joinLedgerNodes(nodeC, nodeD);
    await eventually(
      async () => (await accountIn(nodeD)).stake === 1_000_000,
      "D to record C's pledge of the key",
      { timeoutMs: 10_000 },
    );
    await joinLedgerNodes(nodeB, nodeC);
    await eventually(
      async () => (await accountIn(nodeD)).stake === 0,
      "D to convict the key of pledge equivocation",
      { timeoutMs: 10_000 },
    );
    for (const node of [nodeB, nodeC, nodeD]) {
      assert.deepEqual(await accountIn(node), { balance: 0, stake: 0, locked: 0 });
      assert.equal(await node.validator.ask({ type: "convicted", key: hostile.publicKey }), true);
    }
  }));
