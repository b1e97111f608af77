/**
 * Test fixture: a "proof withheld" fault as a validator's catch-up keeps it — the verdict by a
 * validator about a fresh receipt of a worker, with that receipt and its job as evidence, the
 * job's prompt of a size the test picks (to fill the catch-up's byte bounds).
 *
 * @module
 */
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { proveOn, START, textJob, withheldVerdict } from "./_validator_fixture.ts";

/** A kept verdict with its evidence. */
export type WithheldFault = Extract<CatchUpItem, { kind: "verdict" }>;

/**
 * A fault's verdict by `by` (made at `START`) about a fresh receipt of `worker`, with its receipt
 * and a job whose prompt is `promptBytes` long. The receipt takes its shape from a job named
 * `shapeTag` that `worker` ran, signed anew for the job of the fault.
 */
export async function withheldFault(
  worker: Identity,
  by: Identity,
  promptBytes: number,
  shapeTag: string,
): Promise<WithheldFault> {
  const requester = Identity.generate();
  const job: TextJob = {
    ...textJob(requester, crypto.randomUUID()),
    prompt: "y".repeat(promptBytes),
  };
  const { receipt: shape } = await proveOn(textJob(requester, shapeTag), worker);
  const { sig: _sig, worker: _worker, ...unsigned } = shape;
  const receipt: Receipt = signReceipt(
    { ...unsigned, jobId: jobId(job), inputHash: inputHashOf(job) },
    worker,
  );
  const verdict = withheldVerdict(receiptId(receipt), worker.publicKey, START, by);
  return { kind: "verdict", verdict, evidence: { receipt, job } };
}
