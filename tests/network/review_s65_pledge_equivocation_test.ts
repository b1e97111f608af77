/**
 * Review s65 red team (helper G): a key that signs two pledges of different amounts and hands one
 * to each of two honest ledgers. Each ledger records a key's pledge once, the first it sees
 * (`protocols/stake_pledge.ts`, `proof/_ledger_pledges.ts`), and refuses every later one of that
 * key; the pledge push on connect (`PledgeSync.sendPledges`) then carries each ledger's pledge to
 * the other, which refuses it as a second pledge of a staked key. The two ledgers hold different
 * stakes for that key for good: a receipt of it that locks more than the smaller stake is recorded
 * in one and refused (`insufficient_stake`) in the other, and a conviction slashes each its own
 * amount — the honest ledgers end with different balances.
 *
 * LEFT OPEN (`ignore: true`): the fix is not contained in the gossip/catch-up files. Two valid
 * pledges of one key are a proof of equivocation anyone can check; the ledgers would need a rule
 * they all reach whatever the order (say: the key's stake becomes the smaller of the two, or none,
 * once both are seen), a ledger entry kind that records the second pledge (the ledger drops it
 * now, so nothing could pass it on), and the pledge gossip passing on a conflicting pledge of a
 * staked key instead of dropping it. Until then the amount a key's stake has differs between
 * ledgers that first heard of it from different peers.
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

Deno.test({
  name:
    "review s65 (open): a key's two pledges of different amounts, one handed to each of two honest ledgers, leave its stake different in them for good, even after they meet",
  ignore: true,
  fn: () =>
    inLedgerSetting("s65-pledge-equivocation", async (setting) => {
      const { system } = setting;
      const [b, c, hostile] = [1, 2, 3].map(() => Identity.generate());
      const nodeB = await spawnSettingNode(setting, system, "b", b);
      const nodeC = await spawnSettingNode(setting, system, "c", c);
      const low = signStakePledge(hostile, 1_000, 1);
      const high = signStakePledge(hostile, 1_000_000, 2);
      const origin = toHex(hostile.publicKey);
      await nodeB.validator.ask({ type: "pledge", pledge: low, origin });
      await nodeC.validator.ask({ type: "pledge", pledge: high, origin });
      const stakeIn = async (node: typeof nodeB) =>
        (await node.validator.ask<Account>({ type: "account", key: hostile.publicKey })).stake;
      assert.equal(await stakeIn(nodeB), 1_000);

      // The honest ledgers meet: each pushes the pledge it holds to the other.
      await joinLedgerNodes(nodeB, nodeC);
      await eventually(
        async () => (await stakeIn(nodeB)) === (await stakeIn(nodeC)),
        "B and C to agree on the key's stake",
        { timeoutMs: 2_000 },
      ).catch(() => {}); // they never do: asserted below
      assert.equal(
        await stakeIn(nodeC),
        await stakeIn(nodeB),
        "the key's stake differs between two honest ledgers for good",
      );
    }),
});
