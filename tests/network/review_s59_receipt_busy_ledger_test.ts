/**
 * Review s59: a `validation.receipt` announcement refused `busy` by the receiving connection.
 *
 * A receipt announcement is a request. The receiving connection refuses it `busy` at admission when
 * it already handles `maxInboundRequests` of the peer's messages (`_connection_responder.ts`): a
 * burst of the same peer's announcements, in flight while the validator works. The request failed
 * with `RemoteError busy`, which the NetworkActor only logged, and nothing announced the receipt to
 * that peer again (a peer's catch-up carries convictions and verdicts, not receipts). So the honest
 * worker's receipt was never recorded in that ledger, and it was paid there less than in the
 * others; and a "proof withheld" claim whose receipt went ahead of it (`sendClaimEvidence`) went
 * out without it, and was held there for good: the worker that withheld was not slashed there.
 *
 * The set-up (`_busy_connection.ts`): B — C in memory. C's connection handles `MAX_INBOUND` peer messages at once;
 * its validator is held (a gate in front of it) while a burst of `MAX_INBOUND` receipt
 * announcements from B's side of the connection is in flight there. B's connection, and the
 * NetworkActor's backoff with it, runs on the test's clock (`ConnectionOptions.timers`), which the
 * test moves past any backoff once C's burst is over. Every ledger runs on the test's ledger clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  ledgerReads,
  proveOn,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import { busySetting } from "./_busy_connection.ts";
import { inLedgerSetting, servesProof, withholds } from "./_ledger_node.ts";

const STAKE = 1_000_000;

Deno.test("review s59: a receipt announcement refused busy by a peer's connection is asked again after a backoff: the honest worker is paid in that ledger as in the announcer's", () =>
  inLedgerSetting("s59-receipt-busy", async ({ dir, clock, system }) => {
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const setting = await busySetting(system, dir, clock, [worker], STAKE);
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // An honest worker's receipt, assigned by its requester, reaches B (from another peer) while
    // C's connection is full: B's validator records it and its NetworkActor passes it on.
    const job = textJob(requester, "s59-receipt-busy-honest");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    await setting.fill();
    assert.equal((await announceAssigned(nodeB.validator, receipt, job, requester)).recorded, true);
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse B's announcement busy",
    );
    await setting.release();
    await setting.pastBackoff();
    await eventually(
      async () => (await readsC.record(id)) !== undefined,
      "C to record the receipt",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // lost: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final");
    assert.equal((await readsC.record(id))?.status, "final", "C never recorded the receipt");
    const paidB = (await readsB.account(worker.publicKey)).balance;
    assert.ok(paidB > 0);
    assert.equal(
      (await readsC.account(worker.publicKey)).balance,
      paidB,
      "the honest worker was paid less in C than in B",
    );
  }));

Deno.test("review s59: a claim's receipt refused busy is asked again before the claim goes: the worker that withholds is slashed in a ledger that never had the receipt, not left unslashed", () =>
  inLedgerSetting("s59-claim-receipt-busy", async ({ dir, clock, system }) => {
    const [worker, requester, claimant] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, "s59-claim-receipt-busy");
    const proved = await proveOn(job, worker);
    const id = receiptId(proved.receipt);
    // The worker serves B (B's takeover clears it) and withholds from C.
    const serves = servesProof(id, proved.proof, worker);
    // The receipt is recorded in B before B and C meet: C never had it.
    const setting = await busySetting(system, dir, clock, [worker, claimant], STAKE, {
      sources: { b: serves, c: withholds },
      beforeJoin: async (nodeB) =>
        assert.equal(
          (await announceAssigned(nodeB.validator, proved.receipt, job, requester)).recorded,
          true,
        ),
    });
    const { nodeB, nodeC, refusedByC } = setting;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    const readsC = ledgerReads(() => nodeC.validator, clock);

    // The claimant's claim reaches B while C's connection is full; B passes it on with its
    // receipt ahead.
    await setting.fill();
    const recorded = await nodeB.validator.ask<string | undefined>({
      type: "verdict",
      verdict: withheldVerdict(id, worker.publicKey, clock.t, claimant),
      origin: toHex(claimant.publicKey),
    });
    assert.ok(recorded, "B records the claim");
    await eventually(
      () => refusedByC.includes("busy validation.receipt"),
      "C to refuse the claim's receipt busy",
    );
    await setting.release();
    await setting.pastBackoff();
    await readsB.drained();
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to take the claim over and slash the worker",
      { timeoutMs: 3_000 },
    ).catch(() => {}); // held without its receipt: the window closes below, and the ledger tells

    await readsC.closeWindow();
    await nodeB.validator.ask({ type: "finalize" });
    assert.equal((await readsB.record(id))?.status, "final", "the worker served B: paid there");
    assert.equal((await readsC.record(id))?.status, "fraud", "C never recorded the receipt");
    assert.ok(
      (await readsC.account(worker.publicKey)).stake < STAKE,
      "the worker that withheld from C was not slashed in C",
    );
  }));
