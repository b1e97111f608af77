/**
 * Review s62: a receipt passed on by a relay (a node that neither did the work nor assigned it)
 * while the relay has no other ledger-keeping peer: is it kept by the relay and delivered when a
 * ledger comes, or lost there? A forwards W's job and announces W's receipt to R, its one peer;
 * R records it and passes it on to its other peers — none yet. C then connects to R, and only to
 * R. Asserted on C's ledger after the window: W is paid in C as in A and R.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, textJob } from "../actors/_validator_fixture.ts";
import { recordAssigned } from "./_assigned_receipt.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  type LedgerSetting,
  spawnSettingNode,
  STAKE,
} from "./_ledger_node.ts";

/**
 * Nodes A, R and C, each staking worker W; R joined to A alone; W's receipt for a job A assigned
 * (named `job`) recorded in A and, passed on, in R.
 */
async function relayed(setting: LedgerSetting, job: string) {
  const { system, clock } = setting;
  const [a, r, c, worker] = [1, 2, 3, 4].map(() => Identity.generate());
  const nodeA = await spawnSettingNode(setting, system, "a", a);
  const nodeR = await spawnSettingNode(setting, system, "r", r);
  const nodeC = await spawnSettingNode(setting, system, "c", c);
  for (const node of [nodeA, nodeR, nodeC]) {
    await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
  }
  await joinLedgerNodes(nodeR, nodeA);
  const { id, tokens } = await recordAssigned(nodeA, a, worker, textJob(a, job));
  const readsR = ledgerReads(() => nodeR.validator, clock);
  await eventually(async () => (await readsR.record(id)) !== undefined, "R to record it");
  return { clock, worker, nodeA, nodeR, nodeC, id, tokens, readsR };
}

Deno.test("review s62: a receipt R passed on while no other ledger was connected to it reaches C, which connects to R only: the honest worker is paid in C as in A", () =>
  inLedgerSetting("s62-relay-no-validator", async (setting) => {
    const { clock, worker, nodeR, nodeC, id, tokens, readsR } = await relayed(
      setting,
      "s62-relay",
    );

    await joinLedgerNodes(nodeC, nodeR);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it")
      .catch(() => {}); // lost: the ledger tells below
    await readsR.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsR.account(worker.publicKey)).balance, paid, "paid in R");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker went unpaid in a ledger that hears of the job only through a relay",
    );
  }));

Deno.test("review s62: a ledger that has A's receipt already is sent it again in R's catch-up and takes it as a copy: the honest worker is paid once there", () =>
  inLedgerSetting("s62-relay-copy", async (setting) => {
    const { clock, worker, nodeA, nodeR, nodeC, id, tokens } = await relayed(
      setting,
      "s62-relay-copy",
    );

    // C hears of it first from A's catch-up, then again from R's.
    await joinLedgerNodes(nodeC, nodeA);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(async () => (await readsC.record(id)) !== undefined, "C to record it");
    const copiesBefore = (await readsC.stats()).copiesFromPeers;
    await joinLedgerNodes(nodeC, nodeR);
    await eventually(
      async () => (await readsC.stats()).copiesFromPeers > copiesBefore,
      "R's catch-up to send it to C again",
    );
    await readsC.closeWindow();
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsC.account(worker.publicKey)).balance, paid, "paid once in C");
  }));
