/**
 * Review s59: a "proof withheld" claim a node took over reaches, through that node's catch-up, a
 * ledger that connects only to it after the claim's author went away.
 *
 * The set-up: validator V decides a fault about worker W (W withheld from it) and gossips the
 * claim to node N, which takes it over (W withholds from N too: slashed in N's ledger). V then
 * goes away for good. Ledger L had W's receipt through others and was away at the gossip; it
 * connects only to N. Every ledger runs on the test's clock; asserted on L's ledger after the
 * window: the receipt's status and W's account.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  textJob,
} from "../actors/_validator_fixture.ts";
import { inLedgerSetting, joinLedgerNodes, spawnLedgerNode, withholds } from "./_ledger_node.ts";

const STAKE = 1_000_000;

Deno.test("a claim a node took over (the worker withheld from it too) reaches a ledger that connects only to it after the claim's author left: the worker is slashed there, not paid", () =>
  inLedgerSetting("s59-catch-up-takeover", async ({ dir, clock, system }) => {
    const [v, n, l, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const spawn = (name: string, identity: Identity, p: number) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        models: HONEST_MODELS,
        clock,
        validator: { challengeProbability: p, source: withholds },
      });
    const nodeV = await spawn("v", v, 1);
    const nodeN = await spawn("n", n, 0);
    const nodeL = await spawn("l", l, 0);
    for (const node of [nodeV, nodeN, nodeL]) {
      for (const key of [worker, v, n]) {
        await node.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
    }
    // N and L recorded W's receipt through its requester.
    for (const node of [nodeN, nodeL]) {
      assert.equal(
        (await announceAssigned(node.validator, receipt, job, requester)).recorded,
        true,
      );
    }
    const readsN = ledgerReads(() => nodeN.validator, clock);
    const readsL = ledgerReads(() => nodeL.validator, clock);

    // V decides with N connected: its claim reaches N, which takes it over and slashes W.
    const vn = await joinLedgerNodes(nodeN, nodeV);
    const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
    assert.equal(handled.challenged, true);
    await handled.result;
    await eventually(
      async () => (await readsN.stats()).peerVerdicts >= 1,
      "N to record V's claim",
    );
    await readsN.drained();
    assert.equal((await readsN.record(id))?.status, "fraud", "N slashed W on V's claim");
    assert.equal((await readsN.stats()).challenged, 1, "N took V's claim over");
    // V goes away for good.
    await vn.close();

    // L, away until now, connects only to N.
    const kept = await nodeN.validator.ask<CatchUpItem[]>({ type: "catch_up" });
    // What N keeps is its own takeover's fault (`_challenges.ts`), not V's claim, which it only
    // recorded: the claim a ledger that meets only N takes over.
    assert.deepEqual(
      kept.map((item) =>
        item.kind === "verdict" &&
        [item.verdict.subjectId, item.verdict.reason, toHex(item.verdict.validator)]
      ),
      [[id, "proof_unavailable", toHex(n.publicKey)]],
      "N keeps its own claim about W for the peers that connect",
    );
    await joinLedgerNodes(nodeL, nodeN);
    await eventually(
      async () => (await readsL.stats()).peerVerdicts >= 1,
      "L to record a claim from N's catch-up",
      { timeoutMs: 5_000 },
    ).catch(() => {});
    await readsL.drained();
    const record = (await readsL.record(id))!;
    assert.equal((await readsL.stats()).challenged, 1, "L took N's claim over");
    await readsL.closeWindow();
    assert.equal((await readsL.record(id))?.status, "fraud", "L paid the worker that withheld");
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: STAKE - record.locked, locked: 0 },
      "slashed in L as in V and N, not paid",
    );
  }));
