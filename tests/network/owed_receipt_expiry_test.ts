/**
 * A job whose worker's receipt is owed (every token delivered, its `end` event lost with the
 * connection: `network/_lost_ends.ts`) is refused as "still owed" only while the router keeps that
 * lost end, and is not written to the assigned-jobs file until its receipt is assigned (review
 * s78 vassign, F6). Before, the router wrote it as assigned when the end was lost: a receipt that
 * never came kept the job refused for good, across restarts, saying a receipt was assigned, and
 * nobody was paid. Now, once the lost end is given up, the client's retry runs and its worker is
 * paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LOST_END_KEEP_MS, NetworkInferencePort } from "../../network/network_inference_port.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { clientJob, connectWorker } from "./_proving_worker.ts";
import { recordedAssigned } from "./_assigned_job_router.ts";
import { loseEnd, startOwedReceiptRouter } from "./_owed_receipt_router.ts";

/** Bytes of the assigned-jobs file's header (`_assigned_job_file.ts`): a file with no record. */
const HEADER_BYTES = 8;

Deno.test("a retry of a job whose receipt is owed is refused as still owed; never written as assigned; once the owe is given up the retry runs and its worker is paid", async () => {
  const r = await startOwedReceiptRouter("owed-expiry");
  const { router, owing, other, network, networkRef, validator, reads, otherPort } = r;
  const file = `${r.dir}/${ASSIGNED_JOBS_FILE}`;
  try {
    const timers = new ManualTimers();
    const options = { tokensPerEvent: 1, timers, assignedJobsFile: file };
    const port = new NetworkInferencePort(networkRef, validator, router, options);
    const job = clientJob("owed-expiry");

    const summary = await loseEnd(r, port, job);
    assert.equal(summary.receipt, undefined, "the end event was not lost");

    const second = await connectWorker(router, other, otherPort, r.workerSystem);
    network.connection = second.toWorker;
    // Owed: refused, saying so.
    await assert.rejects(() => port.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job");
      assert.match(error.message, /receipt is still owed/);
      return true;
    });
    // The owing worker never comes back: the lost-end store gives the job up.
    await timers.advance(LOST_END_KEEP_MS + 1);
    // Never written as assigned: the file holds its header alone.
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES, "the owed job was written");
    const retry = await port.submit(job);
    for await (const _ of retry.tokens) { /* the client reads every token */ }
    const done = await retry.done;
    assert.equal(done.error, undefined, JSON.stringify(done.error));
    const receipt = done.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the retry ended without a receipt");
    await recordedAssigned(r, receipt, "the retry's receipt to be recorded assigned");
    await reads.closeWindow();
    const credit = (await reads.record(receiptId(receipt)))!.credit;
    assert.ok(credit > 0, "the retry's receipt earned nothing");
    assert.equal((await reads.account(other.publicKey)).balance, credit);
    assert.equal((await reads.account(owing.publicKey)).balance, 0);
    // Assigned now, and kept so: a restarted router refuses the next retry as assigned.
    const restarted = new NetworkInferencePort(networkRef, validator, router, {
      ...options,
      timers: new ManualTimers(),
    });
    await assert.rejects(() => restarted.submit(job), /its receipt was assigned/);
    await second.toWorker.close();
    await second.atWorker.close();
  } finally {
    await r.close();
  }
});
