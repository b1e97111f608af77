/**
 * A router refuses a client's retry (same nonce) of a job that is still running for the client's
 * first submission (review s78, gap 2 of stop 77's `duplicate_job` refusal, which covered only
 * jobs whose receipt was already assigned). Before, the retry went to another worker, both runs
 * ended with a receipt the router assigned, and its second assignment of the job was refused
 * `double_assignment`: the receipt recorded first lost its credit, and neither worker was paid.
 * Now the retry is refused `duplicate_job` at once ("still running"), no other worker runs it, and
 * the first run's worker is paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { VeriflowError } from "../../protocols/errors.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { clientJob } from "./_proving_worker.ts";
import { startRouter, WORKER_STAKE } from "./_assigned_job_router.ts";

/** Tokens the client reads before it retries: the first run is under way. */
const READ = 2;
/** The job's limit: well past {@link READ}, so the first run is still going at the retry. */
const MAX_TOKENS = 10;

Deno.test("a router refuses a client's retry (same nonce) of a job still running for its first submission as duplicate_job; no other worker runs it, the first run ends and its worker is paid", async () => {
  const r = await startRouter("running-retry");
  try {
    const first = await r.worker("first");
    const second = await r.worker("second");
    const job = clientJob("running-retry", MAX_TOKENS);
    const port = r.port();

    r.network.connection = first.connection;
    const handle = await port.submit(job);
    const reader = handle.tokens.getReader();
    for (let i = 0; i < READ; i++) {
      const next = await reader.read();
      assert.ok(!next.done && next.value.finishReason === undefined, "the job ended early");
    }

    // The same job again while the first run is going; the router's only worker now is another.
    r.network.connection = second.connection;
    await assert.rejects(() => port.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      assert.match(error.message, /still running on this node/);
      assert.match(error.message, /new nonce/);
      return true;
    });
    assert.equal((await second.local.stats()).jobsStarted, 0, "another worker ran the retry");

    // The first run goes on to its end, and its receipt is assigned.
    for (;;) if ((await reader.read()).done) break;
    const done = await handle.done;
    const whole = done.receipt as Receipt | undefined;
    assert.ok(whole !== undefined && whole.end === undefined, `no receipt: ${done.error?.code}`);
    await eventually(
      async () => (await r.reads.record(receiptId(whole)))?.requester !== undefined,
      "the first run's receipt to be recorded assigned",
      { timeoutMs: 3_000 },
    );
    // Ended: a retry now is one of an assigned job.
    await assert.rejects(() => port.submit(job), /already ran to its end/);

    await r.reads.closeWindow();
    const credit = (await r.reads.record(receiptId(whole)))!.credit;
    assert.ok(credit > 0, "the first run's receipt was recorded earning nothing");
    const paid = await r.reads.account(first.identity.publicKey);
    const theirs = await r.reads.account(second.identity.publicKey);
    assert.equal(paid.balance, credit, "the first run's worker lost its pay");
    assert.equal(paid.stake, WORKER_STAKE);
    assert.equal(theirs.balance, 0);
    assert.equal(theirs.stake, WORKER_STAKE);
  } finally {
    await r.close();
  }
});

Deno.test("a client's job refused by every worker is not held as running: the same job sent again is forwarded", async () => {
  const r = await startRouter("running-refused");
  try {
    const port = r.port();
    const job = clientJob("running-refused");
    // No worker connected: refused `no_worker`.
    await assert.rejects(() => port.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError);
      assert.equal(error.code, "no_worker", error.message);
      return true;
    });
    const worker = await r.worker("late");
    r.network.connection = worker.connection;
    const handle = await port.submit(job);
    for await (const _ of handle.tokens) { /* the client reads every token */ }
    assert.equal((await handle.done).finishReason, "length");
  } finally {
    await r.close();
  }
});
