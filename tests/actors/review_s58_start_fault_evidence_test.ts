/**
 * Review s58: a "proof withheld" fault applied at the validator's start from its kept ending
 * (`actors/_challenge_endings.ts`, `ValidatorRestart.applyKeptEndings`) goes to the peers that
 * connect later (the catch-up, `actors/_catch_up.ts`) and to those connected now
 * (`publish_verdict`) after its receipt and job (`ClaimEvidence`), as a fault decided without a
 * restart does. A peer takes a claim over only while it remembers the receipt and job: before,
 * the job was not kept past the challenge's opening, the start's fault went alone, and a peer that
 * had forgotten the receipt (or never had it) held the claim for good — the worker that withheld
 * was paid there, or kept its stake, slashed here. Now the kept ending holds them.
 *
 * The set-up: the worker withholds from a validator that challenges everything; the write of its
 * verdict fails (`_ledger_write_fault.ts`), the validator crashes and its restart applies the kept
 * fault. Asserted: what its catch-up and its network were told, while the window is open.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { endingWriteFails, STAKE } from "./_ledger_write_fault.ts";

Deno.test("a withheld fault applied at the start from its kept ending is sent after its receipt and job: in the catch-up of the peers that connect later, and to those connected now", async () => {
  let items: CatchUpItem[] = [];
  const out = await endingWriteFails("withheld", "recordVerdict", "append", {
    network: true,
    beforeClose: async (validator) => {
      items = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
    },
  });
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash);
  const faults = items.flatMap((item) => item.kind === "verdict" ? [item] : []);
  assert.equal(faults.length, 1, "the fault applied at the start is kept for the catch-up");
  const [fault] = faults;
  assert.ok(
    fault.evidence !== undefined,
    "the start's fault goes without its receipt and job: a late peer that forgot the receipt holds the claim for good",
  );
  assert.equal(receiptId(fault.evidence.receipt), fault.verdict.subjectId);
  assert.equal(jobId(fault.evidence.job), fault.evidence.receipt.jobId);
  const published = out.told.flatMap((m) => m.type === "publish_verdict" ? [m] : []);
  assert.equal(published.length, 1);
  assert.deepEqual(published[0].evidence, fault.evidence, "told the network without its evidence");
});
