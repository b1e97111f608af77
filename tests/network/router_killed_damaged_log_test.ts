/**
 * A router killed after two of its clients got `done`, its assigned jobs' file damaged in the
 * first job's record (stop 80): before, the reader stopped at the damaged length, and the second
 * job's receipt handoff, whole on disk, was lost with it: its worker was paid in no ledger. Now
 * the reader finds the next record and the restarted router hands that receipt over.
 *
 * @module
 */
import assert from "node:assert/strict";
import { receiptId } from "../../protocols/receipt.ts";
import { clientJob } from "./_proving_worker.ts";
import {
  jobIdAt,
  killedPort,
  receiptOfRun,
  recordedAssigned,
  startRouter,
} from "./_assigned_job_router.ts";

/** The jobs' limit: a few tokens, run to their end. */
const MAX_TOKENS = 6;

Deno.test("a damaged record in the middle of a killed router's assigned jobs' file costs that job only: the next job's receipt is handed over at the restart, recorded assigned and its worker paid", async () => {
  const r = await startRouter("damaged-log");
  const { file, killed } = killedPort(r);
  try {
    const worker = await r.worker("first");
    r.network.connection = worker.connection;
    const first = await receiptOfRun(killed, clientJob("damaged-log-1", MAX_TOKENS));
    const second = await receiptOfRun(killed, clientJob("damaged-log-2", MAX_TOKENS));
    assert.ok(first !== undefined && second !== undefined, "a client got no receipt");

    // The first job's handoff length (after its id and its field, in version 2 and 3 alike)
    // damaged, as a bad sector or a stray write would.
    const bytes = Deno.readFileSync(file);
    const at = jobIdAt(bytes, first.jobId);
    assert.ok(at >= 0, "the first job is not in the file");
    const view = new DataView(bytes.buffer);
    view.setUint32(at + 36, view.getUint32(at + 36) + 7);
    Deno.writeFileSync(file, bytes);

    const restarted = r.port({ assignedJobsFile: file });
    try {
      await recordedAssigned(r, second, "the second receipt to be recorded after the restart");
      await r.reads.closeWindow();
      const credit = (await r.reads.record(receiptId(second)))!.credit;
      assert.ok(credit > 0, "the second receipt was recorded earning nothing");
      // Paid for the second job only: the first one's handoff was in the damaged record.
      assert.equal(await r.reads.record(receiptId(first)), undefined);
      assert.equal((await r.reads.account(worker.identity.publicKey)).balance, credit);
    } finally {
      await restarted.close();
    }
  } finally {
    await killed.close();
    await r.close();
  }
});
