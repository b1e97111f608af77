/**
 * Review of today's split of `training/training_validator.ts` (2de9abd, 5ef8020, d11ebd0) and of
 * the behaviour commit between (54fc99d: peers' proofs taken and not settled kept on disk):
 *
 * - a check's failure used to change the state of the incarnation that ran it (a closure over
 *   it); it is now an `unchecked` message to `ctx.self`, which is the actor cell's ref and
 *   outlives a crash: the failure of a check the crashed incarnation ran lands in the restarted
 *   one and forgets the copy that one took again from `taken-training-proofs/` and is checking;
 *   the next stop writes the folder without it, and the lazy trainer is paid here;
 * - a proof released from its pledge hold and held again for its receipt is held from the time
 *   it is held again (its first `since` is not told with it): as before today, and harmless.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { onLedgerNode, PEER } from "./_gated_ledger_node.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

Deno.test("a check the crashed training validator ran, failing after its restart, does not make the restarted one forget the copy it took again from disk: a stop after it keeps the proof, and the lazy trainer is slashed", () =>
  onLedgerNode("s42-stale-unchecked", async (node) => {
    const accuser = Identity.generate();
    await node.pledge(accuser, 10 * PENALTY);
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await node.recordLazy(proof);
    const first = node.models.gate();
    const second = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true });
    await first.entered; // the first incarnation's check under way
    await eventually(async () => (await node.kept("taken-training-proofs")).length === 1, "kept");

    // A message it cannot take crashes the training validator; its supervisor restarts it in
    // the same cell, which takes the kept proof again and checks it.
    await node.training().tell({ type: "fraud_proof", body: undefined!, origin: PEER });
    await second.entered; // the restarted incarnation's check of the copy read back
    // The crashed incarnation's check fails now (its start model out of reach): nothing settled.
    first.fail(new Error("start model out of reach (simulated)"));
    // Told (after the microtasks of the failure) to the cell's mailbox, ahead of this ask.
    await delay(0);
    await node.training().ask({ type: "stats" });

    // The restarted incarnation's check is still under way when the node stops it (its stop
    // keeps what it has taken), and the next start takes up what was kept.
    await node.restartTraining();
    // The stopped incarnation's check ends unsettled too (two re-runs at once share tfjs's engine).
    second.fail(new Error("stopped (simulated)"));
    // Waited for as long as any effect (EVENTUALLY_GIVE_UP_MS), not 5 s: the re-run takes over a
    // second here, several on a loaded machine, and a window closed while it ran paid the trainer.
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle")
      .catch(() => undefined);
    await node.closeWindow();
    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here");
    const trainer = await node.account(proof.receipt.trainer);
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
  }));

Deno.test("candidate: a training fraud proof released from its pledge hold and held again for its receipt is held from the time it is held again (as before today), and no hold's time bound is extended by it", () =>
  onLedgerNode("s42-since", async (node, dir) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const heldAt = node.advance(0);
    // Neither its receipt nor its accuser's pledge here: held for the pledge.
    assert.deepEqual(await node.send(proof), {
      queued: false,
      skipped: "receipt_unknown",
      awaitingPledge: true,
    });
    const later = node.advance(60_000);
    await node.pledge(accuser, 10 * PENALTY);
    // Released at the recheck after the pledge, its receipt still unknown: held for it now.
    await eventually(
      async () => (await node.kept("receipt-held-training-proofs")).length === 1,
      "held again for the receipt",
    );
    await eventually(
      async () => (await node.kept("pledge-held-training-proofs")).length === 0,
      "out of the pledge hold",
    );
    const [name] = await node.kept("receipt-held-training-proofs");
    const kept = join(dir, "ledger", "receipt-held-training-proofs", name);
    const { since } = decodeCbor(await Deno.readFile(kept)) as { since: number };
    assert.notEqual(since, heldAt, "its hold time restarted when held again");
    assert.equal(since, later);
    // The receipt hold has no time bound: the proof still settles when its receipt comes.
    await node.recordLazy(proof);
    const id = trainingReceiptId(proof.receipt);
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle");
  }));
