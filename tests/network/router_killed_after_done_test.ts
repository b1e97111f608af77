/**
 * A router killed right after its client got `done` (review s79 crash, F1): the worker's receipt
 * was in the client's hands, but the router's assignment of it and its handover to the validator
 * ran after `done`, in memory only. Killed there, the receipt was assigned in no ledger, the worker
 * paid in none, and a retry (same nonce) of a job whose assignment alone had reached the file was
 * refused "its receipt was assigned" for good. Now `done` waits for the assignment's append to the
 * assigned jobs' file, with what the validator is handed, and a restarted router hands it over.
 *
 * The kill is a port whose validator never takes what it is handed (the handover died with the
 * process) and that is never closed; the restart, a fresh port over the same file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { VeriflowError } from "../../protocols/errors.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { clientJob } from "./_proving_worker.ts";
import {
  jobIdAt,
  killedPort,
  receiptOfRun,
  recordedAssigned,
  startRouter,
} from "./_assigned_job_router.ts";

/** The job's limit: a few tokens, run to its end. */
const MAX_TOKENS = 6;

Deno.test("a router killed right after its client got done hands the worker's receipt to its validator at its restart: recorded assigned, the worker paid, and the retry (same nonce) refused as a job assigned", async () => {
  const r = await startRouter("killed-after-done");
  const { file, killed } = killedPort(r);
  try {
    const worker = await r.worker("first");
    r.network.connection = worker.connection;
    const job = clientJob("killed-after-done", MAX_TOKENS);

    const receipt = await receiptOfRun(killed, job);
    assert.ok(receipt !== undefined, "the client got no receipt");
    assert.equal(await r.reads.record(receiptId(receipt)), undefined, "recorded before the kill");

    // The router restarts on its data directory; its validator gets what the dead one lost.
    const restarted = r.port({ assignedJobsFile: file });
    try {
      await recordedAssigned(r, receipt, "the receipt to be recorded assigned after the restart");
      await assert.rejects(() => restarted.submit(job), (error: unknown) => {
        assert.ok(error instanceof VeriflowError, String(error));
        assert.equal(error.code, "duplicate_job", error.message);
        return true;
      });
      await r.reads.closeWindow();
      const credit = (await r.reads.record(receiptId(receipt)))!.credit;
      assert.ok(credit > 0, "the receipt was recorded earning nothing");
      assert.equal((await r.reads.account(worker.identity.publicKey)).balance, credit);
    } finally {
      await restarted.close();
    }
  } finally {
    await killed.close();
    await r.close();
  }
});

Deno.test("a router's assignment of a receipt is in its assigned jobs' file by the time its client gets done", async () => {
  const r = await startRouter("durable-at-done");
  const { file, killed: first } = killedPort(r);
  try {
    const worker = await r.worker("first");
    r.network.connection = worker.connection;
    const job = clientJob("durable-at-done", MAX_TOKENS);
    const receipt = await receiptOfRun(first, job);
    assert.ok(receipt !== undefined, "the client got no receipt");
    // Read now, synchronously after `done`: nothing more of the first port's may run first.
    const bytes = Deno.readFileSync(file);
    const found = jobIdAt(bytes, receipt.jobId);
    assert.ok(found >= 0, "the job is not in the assigned jobs' file when its client got done");
  } finally {
    await first.close();
    await r.close();
  }
});
