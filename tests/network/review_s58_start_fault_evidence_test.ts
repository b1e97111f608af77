/**
 * Review s58: a "proof withheld" fault the validator applies at its start from its kept ending
 * (`actors/_challenge_endings.ts`: the write of its verdict failed and crashed the validator, or a
 * stop came first) is sent in the catch-up of a peer that connects afterwards after its receipt
 * and job (`ClaimEvidence`), as a fault decided without a restart is
 * (`review_s58_catch_up_evidence_test.ts`). Before, the job was not kept past the challenge's
 * opening and the start's fault went alone: a late peer that never had the receipt (or had
 * forgotten it) held the claim for good, and the worker that withheld kept its stake there (or
 * was paid), slashed here.
 *
 * The set-up: the validator V challenges the worker's receipt (it withholds from V: a fault),
 * alone; the write of V's verdict fails once (`_ledger_write_fault.ts`), V crashes and its
 * restart applies the kept fault. The late peer L, which never had the receipt, then connects to
 * V. Every ledger runs on the test's clock; asserted on L's ledger after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  ledgerReads,
  proveOn,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { failDuring } from "../actors/_ledger_write_fault.ts";
import { latePeerCatchesUp, spawnValidatorAndLatePeer } from "./_ledger_node.ts";

const STAKE = 1_000_000;

Deno.test("a withheld fault applied at the validator's start goes in its catch-up after its receipt and job: a late peer that never had the receipt takes the claim over and slashes the worker that withholds there too", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s58-start-fault-evidence" });
  let restarts = 0;
  system.events.subscribe((event) => {
    if (event.name === "v/validator" && event.type === "restarted") restarts++;
  });
  const restore = failDuring("recordVerdict", "append", 1);
  try {
    const [v, worker, requester] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const { nodeV, nodeL } = await spawnValidatorAndLatePeer({ dir, clock, system }, v, {
      staked: [worker, v],
      stake: STAKE,
    });
    // V decides alone; the write of its verdict fails, and its restart applies the kept fault.
    const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
    assert.equal(handled.challenged, true);
    handled.result?.catch(() => {});
    const readsV = ledgerReads(() => nodeV.validator, clock);
    await eventually(() => restarts > 0, "V to crash and be restarted");
    await eventually(
      async () => (await readsV.record(id))?.status === "fraud",
      "V's restart to apply its kept fault",
    );

    // Before the fix nothing came that L could record: the claim was held for a receipt that
    // never came, so the wait for it gave up and the ledger tells the rest.
    const { readsL, record, before } = await latePeerCatchesUp(nodeL, nodeV, clock, id, worker);
    assert.equal(
      (await readsL.record(id))?.status,
      "fraud",
      `L ${record === undefined ? "never recorded the receipt" : "did not slash the worker"}` +
        ` (its stake there: ${before.stake} of ${STAKE})`,
    );
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: STAKE - record!.locked, locked: 0 },
      "slashed in L as in V",
    );
  } finally {
    restore();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
