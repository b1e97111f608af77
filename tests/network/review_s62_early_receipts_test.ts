/**
 * Review s62: more of an honest worker's receipts reach a ledger before its pledge than the ledger
 * keeps waiting for it (`MAX_AWAITING_STAKE_PER_WORKER`, 16, `actors/_validator_memory.ts`).
 *
 * A forwards 20 jobs to worker W, whose pledge A holds; C, connected to A, lacks it (A's connect
 * push carried the pledges of keys more active than W, `PLEDGES_PUSHED_ON_CONNECT`). A's
 * announcements reach C before the pledge A sends C at its first `insufficient_stake` refusal
 * (`PledgeSync.sendNeeded`): C refuses all 20. It kept the first 16 for the pledge and dropped
 * the rest, answered `insufficient_stake` all the same, so A never learnt that four were not kept
 * and never sent them again, and W was paid for 16 jobs in C and for 20 in A. Asserted on C's
 * ledger after the window: W is paid for every job in C as in A.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptHandled } from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, proveOn, textJob } from "../actors/_validator_fixture.ts";
import { inLedgerSetting, joinLedgerNodes, spawnSettingNode } from "./_ledger_node.ts";

/** More jobs than a ledger keeps waiting for one worker's pledge (16). */
const JOBS = 20;
const WORKER_STAKE = 1_000_000;

Deno.test("review s62: 20 of an honest worker's receipts reach C before its pledge: every one is paid in C as in A (C told A of those it did not keep, and A sent them again after the pledge)", () =>
  inLedgerSetting("s62-early-receipts", async (setting) => {
    const { system, clock } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const pledge = (key: Identity) =>
      nodeA.validator.ask<boolean>({
        type: "pledge",
        pledge: signStakePledge(key, WORKER_STAKE, 1),
        origin: "local",
      });
    assert.equal(await pledge(worker), true);
    // Keys more active than W, pledged after it: A's connect push carries theirs, not W's.
    for (let i = 0; i < PLEDGES_PUSHED_ON_CONNECT + 1; i++) {
      const other = Identity.generate();
      assert.equal(await pledge(other), true);
      await nodeA.validator.ask({ type: "deposit", key: other.publicKey, amount: 1 });
    }
    await joinLedgerNodes(nodeC, nodeA);
    assert.equal(
      await nodeC.validator.ask<boolean>({ type: "has_staked", key: worker.publicKey }),
      false,
      "C lacks W's stake",
    );

    // A's forwarding port hands its validator W's receipts as their jobs end, all at once.
    const proved = [];
    for (let n = 0; n < JOBS; n++) {
      const job = textJob(a, `s62-early-${n}`);
      proved.push({ job, receipt: (await proveOn(job, worker)).receipt });
    }
    const handled = await Promise.all(
      proved.map(({ job, receipt }) =>
        nodeA.validator.ask<ReceiptHandled>({
          type: "receipt",
          receipt,
          job,
          assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, a),
          origin: toHex(worker.publicKey),
          announce: true,
        })
      ),
    );
    assert.ok(handled.every((h) => h.recorded), "A records every receipt");

    const readsA = ledgerReads(() => nodeA.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);
    const ids = proved.map(({ receipt }) => receiptId(receipt));
    await eventually(
      async () => {
        for (const id of ids) if ((await readsC.record(id)) === undefined) return false;
        return true;
      },
      "C to record every receipt of W's",
    ).catch(() => {}); // lost: the ledgers tell below
    assert.ok(
      (await readsC.stats()).refused >= JOBS,
      "every one of W's receipts reached C before its pledge (the case under test)",
    );
    await readsA.closeWindow();
    await nodeC.validator.ask({ type: "finalize" });
    const tokens = proved.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
    const paid = tokens * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.equal((await readsA.account(worker.publicKey)).balance, paid, "paid in A");
    const unrecorded = [];
    for (const [n, id] of ids.entries()) {
      if ((await readsC.record(id)) === undefined) unrecorded.push(n);
    }
    assert.deepEqual(unrecorded, [], "W's receipts C never recorded");
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paid,
      "the honest worker was paid in C for fewer jobs than it served",
    );
  }));
