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
 * Fixed (stop 66): two valid pledges of one key that differ are a proof of its equivocation. A
 * ledger that holds both records the second (`pledge_equivocation`) and convicts the key: its
 * stake and balance are forfeited (`proof/ledger_state.ts`), whichever pledge it heard first; and
 * it passes the second on, with the first, to its peers, so each honest ledger that holds either
 * comes to hold both. Here each ledger's connect push carries its pledge to the other, and both
 * end with the key's stake at nothing (`tests/proof/ledger_pledge_equivocation_test.ts` pins the
 * ledger rule with receipts recorded in between).
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
    "review s65: a key's two pledges of different amounts, one handed to each of two honest ledgers, convict it in both once they meet: its stake is forfeited alike",
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
        async () => (await stakeIn(nodeB)) === 0 && (await stakeIn(nodeC)) === 0,
        "B and C to convict the key of pledge equivocation",
        { timeoutMs: 10_000 },
      );
      for (const node of [nodeB, nodeC]) {
        assert.deepEqual(
          await node.validator.ask<Account>({ type: "account", key: hostile.publicKey }),
          { balance: 0, stake: 0, locked: 0 },
        );
        assert.equal(
          await node.validator.ask({ type: "convicted", key: hostile.publicKey }),
          true,
        );
      }
    }),
});
