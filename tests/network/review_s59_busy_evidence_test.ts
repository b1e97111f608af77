/**
 * Review s59: one-way evidence refused `busy` by the receiving connection.
 *
 * A peer's `validation.fraud_proof` is a one-way notify, passed on once per connection. The
 * receiving connection refuses it `busy` when it already handles `maxInboundRequests` of the
 * peer's messages (`protocols/_connection_responder.ts`): a burst of `validation.receipt`
 * requests from the same peer, in flight while the validator works. The refusal goes back as an
 * `error` frame `about` the envelope, which nobody on the sender acted on: the proof was lost on
 * that connection, the receipt's window closed there without it, and the cheat every other ledger
 * slashed was paid in this one.
 *
 * The set-up (`_busy_connection.ts`): B — C in memory, the cheat's receipt in both ledgers, the accuser's stake in both.
 * C's connection handles `MAX_INBOUND` peer messages at once; its validator is held (a
 * gate in front of it) while B's burst of `MAX_INBOUND` receipt announcements is in flight,
 * and B passes its confirmed proof on then. B's connection runs on the test's clock, which the
 * test moves past the sender's backoff once C's burst is over.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import { type CaughtCheat, caughtCheat, inLedgerSetting } from "./_ledger_node.ts";
import { busySetting } from "./_busy_connection.ts";

const STAKE = 1_000_000;

Deno.test("review s59: a fraud proof refused busy by a peer's connection (a burst of its receipt announcements in flight) is sent again after a backoff: the cheat is slashed there too, not paid", () =>
  inLedgerSetting("s59-busy-evidence", async ({ dir, clock, system }) => {
    const [b, c, accuser, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    // C's validator is held while B's burst of receipt announcements (the cheat's receipt) is in
    // flight there.
    let cheat!: CaughtCheat;
    const setting = await busySetting(system, dir, clock, [], STAKE, {
      keys: { b, c },
      pledged: true,
      beforeJoin: async (nodeB, nodeC) => {
        cheat = await caughtCheat(
          [nodeB, nodeC],
          { worker, requester, accuser, tag: "s59-busy-evidence" },
          [worker, accuser],
          STAKE,
        );
      },
    });
    const { nodeB, nodeC, toC, refusedByC } = setting;
    const { id, fraudProof, job, proved } = cheat;

    const readsB = ledgerReads(() => nodeB.validator, clock);
    await setting.fill({ receipt: proved.receipt, job });
    // Inside the receipt's window, A's proof reaches B, which confirms it and passes it on
    // while C's connection is full.
    clock.t += 60_000;
    assert.ok(clock.t < START + DEFAULT_ECONOMICS.challengeWindowMs / 2);
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "dd".repeat(32),
    });
    assert.equal(handled.queued, true);
    await handled.result;
    assert.equal((await readsB.record(id))?.status, "fraud");
    await eventually(
      () => refusedByC.includes("busy validation.fraud_proof"),
      "C to refuse B's proof busy",
    );
    await setting.release();
    assert.equal(toC.stats().resentOneWay, 0, "nothing is sent again before its backoff");
    // B's connection clock moves on: past any backoff the sender keeps.
    await setting.pastBackoff();
    const readsC = ledgerReads(() => nodeC.validator, clock);
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the cheat B slashed");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the cheat was paid in C");
    assert.equal(account.stake, (await readsB.account(worker.publicKey)).stake);
    assert.ok(account.stake < STAKE, "the cheat was not slashed in C");
  }));
