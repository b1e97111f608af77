/**
 * A router refuses a client's retry (same nonce) of a job whose every token the client got and
 * whose worker's receipt is still owed (its `end` event lost with the connection, asked for later:
 * `network/_lost_ends.ts`; review s78). Before, the job was neither running nor assigned while the
 * receipt was owed: the retry ran on another worker and was assigned, the owed receipt was then
 * assigned too when it came, and the second assignment was refused `double_assignment`, neither
 * worker paid. Now the retry is refused `duplicate_job`, and the owed receipt, when it comes, is
 * paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { clientJob, connectWorker } from "./_proving_worker.ts";
import { recordedAssigned } from "./_assigned_job_router.ts";
import { loseEnd, startOwedReceiptRouter } from "./_owed_receipt_router.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

Deno.test("a router refuses a client's retry (same nonce) of a job whose receipt is still owed (its end event lost after the last token) as duplicate_job; no other worker runs it, and the owed receipt is paid when it comes", async () => {
  const r = await startOwedReceiptRouter("owed-retry");
  const { router, owing, other, network, networkRef, validator, reads, owingPort, otherPort } = r;
  try {
    const timers = new FakeTimers();
    const port = new NetworkInferencePort(networkRef, validator, router, {
      tokensPerEvent: 1,
      timers,
    });
    const job = clientJob("owed-retry");

    // Every token reaches the client; the connection is lost before the worker's end event.
    const summary = await loseEnd(r, port, job);
    assert.equal(summary.receipt, undefined, "the end event (receipt) was not lost");

    // The client retries the job; the router's only worker now is another.
    const second = await connectWorker(router, other, otherPort, r.workerSystem);
    network.connection = second.toWorker;
    await assert.rejects(() => port.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      return true;
    });
    assert.equal(otherPort.job, undefined, "another worker ran the retry");
    await second.toWorker.close();
    await second.atWorker.close();

    // The owing worker is connected again; the router asks for the receipt and assigns it.
    const back = await connectWorker(router, owing, owingPort, r.workerSystem);
    network.connection = back.toWorker;
    timers.fireAll();
    const receipt = owingPort.receipt!;
    await recordedAssigned(r, receipt, "the owed receipt to be recorded assigned");
    await reads.closeWindow();
    const credit = (await reads.record(receiptId(receipt)))!.credit;
    assert.ok(credit > 0, "the owed receipt was recorded earning nothing");
    assert.equal((await reads.account(owing.publicKey)).balance, credit, "its worker lost its pay");
    assert.equal((await reads.account(other.publicKey)).balance, 0);
    await back.toWorker.close();
    await back.atWorker.close();
  } finally {
    await r.close();
  }
});
