/**
 * Review s65 red team (helper G): a hostile requester answers one honest ledger and never the
 * other. A forwards W's job and announces W's receipt to R alone, its one peer, then goes away for
 * good (it never connects to C, nor sends C its catch-up). R records the receipt and passes it
 * on to its other ledgers — none yet — and keeps it in its catch-up as a relay's
 * (`CatchUp.addRelayed`). R's process then restarts before C connects; C connects to R only.
 *
 * Before review s65 a relay's catch-up was memory only: the restart lost it, and the honest worker
 * that delivered every token was paid in R's ledger and in no ledger that met R only afterwards —
 * the two honest ledgers ended different for ever. Asserted on both ledgers after the window: W is
 * paid tokens × price in R and in C, under A's assignment.
 *
 * A new process is stood in for by R's ledger directory copied under another name while R is down
 * (the catch-up is one per ledger directory in a process, `CatchUp.of`), as
 * `review_s60_catchup_receipts_test.ts` does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, textJob } from "../actors/_validator_fixture.ts";
import { recordAssigned } from "./_assigned_receipt.ts";
import {
  copyDir,
  inLedgerSetting,
  joinLedgerNodes,
  spawnSettingNode,
  STAKE,
} from "./_ledger_node.ts";

Deno.test("review s65: a receipt a relay R recorded and passed on to no ledger reaches C after R's process restarted, though its requester never talks to C: the honest worker is paid in C as in R", () =>
  inLedgerSetting("s65-relay-restart", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, r, c, worker] = [1, 2, 3, 4].map(() => Identity.generate());

    // R's first life, beside A (in a system of their own): A's receipt reaches R and no other
    // ledger.
    const first = new ActorSystem({ name: "s65-relay-first-life" });
    let recorded: { id: string; tokens: number };
    try {
      const nodeA = await spawnSettingNode(setting, first, "a", a);
      const nodeR = await spawnSettingNode(setting, first, "r", r);
      for (const node of [nodeA, nodeR]) {
        await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      }
      await joinLedgerNodes(nodeR, nodeA);
      recorded = await recordAssigned(nodeA, a, worker, textJob(a, "s65-relay-restart"));
      const readsR = ledgerReads(() => nodeR.validator, clock);
      const id = recorded.id;
      await eventually(async () => (await readsR.record(id)) !== undefined, "R to record it");
    } finally {
      // A is gone for good, and so is R's first process.
      await first.shutdown();
    }
    await copyDir(`${dir}/r`, `${dir}/r2`);

    // R's second life; C, away until now, connects to it alone.
    const nodeR2 = await spawnSettingNode(setting, system, "r2", r);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    await nodeC.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    await joinLedgerNodes(nodeC, nodeR2);

    const { id, tokens } = recorded;
    const readsR = ledgerReads(() => nodeR2.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it")
      .catch(() => {}); // lost: the ledgers tell below
    await readsR.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsR.account(worker.publicKey)).balance, paid, "paid in R");
    assert.equal(
      (await readsC.record(id))?.requester,
      toHex(a.publicKey),
      "C never heard of A's assignment: R's restart lost it",
    );
    assert.equal((await readsC.record(id))?.status, "final");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker went unpaid in a ledger that met the relay only after its restart",
    );
  }));
