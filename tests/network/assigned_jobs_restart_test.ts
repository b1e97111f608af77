/**
 * A router remembers the jobs it assigned across a restart (review s78, gap 1 of stop 77's
 * `duplicate_job` refusal): a client ran a job to its end through the router, the router assigned
 * its worker's receipt, restarted, and the client sent the same job again (same nonce: the same job
 * id). Before, the restarted router had forgotten it, forwarded the retry to a second worker, and
 * its second assignment of the job was refused `double_assignment`: the first worker's credit was
 * voided with it, and neither worker was paid. Now the retry is refused `duplicate_job` before any
 * worker runs it, and the first worker is paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ASSIGNED_JOBS_FILE } from "../../network/network_inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { clientJob } from "./_proving_worker.ts";
import { startRouter, WORKER_STAKE } from "./_assigned_job_router.ts";

/** The job's limit: a few tokens, run to its end. */
const MAX_TOKENS = 6;

Deno.test("a restarted router refuses a client's retry (same nonce) of a job whose receipt it assigned before the restart as duplicate_job; no second worker runs it, and the first worker is paid", async () => {
  const r = await startRouter("assigned-restart");
  try {
    const file = `${r.dir}/${ASSIGNED_JOBS_FILE}`;
    const first = await r.worker("first");
    const second = await r.worker("second");
    const job = clientJob("assigned-restart", MAX_TOKENS);

    // The client runs the job to its end on the first worker; its receipt is assigned.
    r.network.connection = first.connection;
    const before = r.port({ assignedJobsFile: file });
    const handle = await before.submit(job);
    for await (const _ of handle.tokens) { /* the client reads every token */ }
    const done = await handle.done;
    const whole = done.receipt as Receipt | undefined;
    assert.ok(whole !== undefined && whole.end === undefined, `no receipt: ${done.error?.code}`);
    await eventually(
      async () => (await r.reads.record(receiptId(whole)))?.requester !== undefined,
      "the first worker's receipt to be recorded assigned",
      { timeoutMs: 3_000 },
    );

    // The router restarts (a new port over the same file); its only worker now is the second.
    r.network.connection = second.connection;
    const after = r.port({ assignedJobsFile: file });
    await assert.rejects(() => after.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      assert.match(error.message, /already ran to its end and its receipt was assigned/);
      return true;
    });
    assert.equal((await second.local.stats()).jobsStarted, 0, "a second worker ran the retry");

    await r.reads.closeWindow();
    // What the job earns (its credit when recorded: the ledger's price of its tokens), all paid.
    const credit = (await r.reads.record(receiptId(whole)))!.credit;
    assert.ok(credit > 0, "the first worker's receipt was recorded earning nothing");
    const paid = await r.reads.account(first.identity.publicKey);
    const theirs = await r.reads.account(second.identity.publicKey);
    assert.equal(paid.balance, credit, "the first worker lost its pay");
    assert.equal(paid.stake, WORKER_STAKE);
    assert.equal(theirs.balance, 0);
    assert.equal(theirs.stake, WORKER_STAKE);
  } finally {
    await r.close();
  }
});
