/**
 * Review s65 (helper P): the pledges a node pushes to a ledger-keeping peer on connect
 * (`PledgeSync.sendPledges`) were asked of its validator once: a validator down at that moment
 * (stopped, restarting after a crash, too busy) sent that peer none of them for as long as the
 * connection lasted. The catch-up on the same connection waits for the validator since 437a412
 * (`network/_validator_ask.ts`), so the peer was then sent this node's convictions — each a fraud
 * proof that counts in a ledger only from an accuser with stake there — but never the accusers'
 * pledges, which only that push carries (`network/catch_up.ts`). The peer held the proof for a
 * pledge nothing sent, and paid the cheat this node slashed.
 *
 * A holds the accuser's pledge (C does not), and has settled the accuser's fraud proof of the
 * cheat's receipt, which both ledgers recorded; A's validator stops; C connects to A; A's
 * validator comes back. Asserted on both ledgers: C records the accuser's pledge, and the
 * conviction settles in C as in A (the receipt fraud, the cheat's stake the same in both).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS } from "../actors/_validator_fixture.ts";
import {
  caughtCheat,
  inLedgerSetting,
  joinWhileValidatorDown,
  type LedgerNode,
  spawnSettingNode,
  STAKE,
  stakeIn,
} from "./_ledger_node.ts";

const ACCUSER_STAKE = 50_000;

Deno.test("review s65: a ledger that connects while A's validator is down is sent A's pledges once the validator is back: the accuser's stake is recorded in C, and A's conviction settles in C as in A", () =>
  inLedgerSetting("s65-pledge-validator-back", async (setting) => {
    const { dir, clock, system } = setting;
    const [a, c, worker, accuser, requester] = [1, 2, 3, 4, 5].map(() => Identity.generate());
    const nodeA = await spawnSettingNode(setting, system, "a", a);
    const nodeC = await spawnSettingNode(setting, system, "c", c);
    const peer = "dd".repeat(32); // where the accuser's pledge and proof reach A from
    const pledge = signStakePledge(accuser, ACCUSER_STAKE, 1);
    assert.equal(await nodeA.validator.ask({ type: "pledge", pledge, origin: peer }), true);
    const { id, fraudProof } = await caughtCheat(
      [nodeA, nodeC],
      { worker, requester, accuser, tag: "s65-pledge-validator-back" },
      [worker],
      STAKE,
    );
    const handled = await nodeA.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: peer,
    });
    await handled.result;
    const recordIn = (node: LedgerNode) =>
      node.validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    assert.equal((await recordIn(nodeA))?.status, "fraud");
    assert.equal(await stakeIn(nodeC, accuser), 0, "C has not heard of the accuser");

    const aAgain = await joinWhileValidatorDown(system, dir, nodeC, nodeA, {
      identity: a,
      models: HONEST_MODELS,
      clock,
    });

    await eventually(
      async () => (await stakeIn(nodeC, accuser)) === ACCUSER_STAKE,
      "C to record the accuser's pledge from A's push, once A's validator is back",
    );
    await eventually(
      async () => (await recordIn(nodeC))?.status === "fraud",
      "C to settle the conviction it held for the accuser's pledge",
    );
    assert.equal((await recordIn(aAgain))?.status, "fraud");
    assert.equal(await stakeIn(nodeC, worker), await stakeIn(aAgain, worker), "slashed alike");
    assert.ok(await stakeIn(nodeC, worker) < STAKE, "the cheat is slashed in C");
  }));
