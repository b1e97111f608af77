/**
 * A router refuses a client's retry of a job it has already assigned (review s77, the router side
 * of the cancelled-job receipts): its client cancelled at k, the router fetched the worker's
 * cancelled receipt and sent it to its validator with its assignment, and the client then sent the
 * same job again (same nonce: the same job id). Before, the router forwarded the retry to another
 * worker, which ran it to its end, and the router's second assignment of the job was refused
 * `double_assignment`: neither worker was paid. Now the retry is refused `duplicate_job` at
 * submission, before any worker runs it; the same prompt with a new nonce runs, and its finisher
 * is paid.
 *
 * Three nodes in memory: the router (a `NetworkInferencePort` whose validator keeps a real
 * ledger) and two workers (InferenceActor, ProverActor, the honest model). The router's network
 * stand-in offers the first worker, then the finisher.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobError, AssignedJobs } from "../../network/_assigned_jobs.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { clientJob } from "./_proving_worker.ts";
import { recordedAssigned, startRouter, WORKER_STAKE } from "./_assigned_job_router.ts";

/** Tokens the client reads before it cancels. */
const READ = 3;
/** The job's limit: past {@link READ}, so the cancel comes before the job's end. */
const MAX_TOKENS = 12;

const JOB: TextJob = clientJob("retry-assigned-job", MAX_TOKENS);

Deno.test("a router refuses a retry (same nonce) of a job whose cancelled receipt it assigned as duplicate_job before any worker runs it; the cancelled worker keeps its pay, and a retry with a new nonce runs and its finisher is paid", async () => {
  const r = await startRouter("retry-assigned");
  const { network, reads } = r;
  const port = r.port();
  try {
    const cancelled = await r.worker("cancelled");
    const finisher = await r.worker("finisher");
    // The client reads k tokens on the first worker and cancels.
    network.connection = cancelled.connection;
    const handle = await port.submit(JOB);
    const reader = handle.tokens.getReader();
    for (let i = 0; i < READ; i++) {
      const next = await reader.read();
      assert.ok(!next.done && next.value.finishReason === undefined, "the job ended early");
    }
    await reader.cancel();
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt | undefined;
    assert.ok(receipt?.end === "cancelled", "the router got no cancelled receipt");
    assert.equal(receipt.tokenCount, READ);
    await recordedAssigned(
      r,
      receipt,
      "the cancelled receipt to be recorded assigned in the router's ledger",
    );

    // The client retries the same job; the router's only worker now is the finisher.
    network.connection = finisher.connection;
    const refused = await assert.rejects(() => port.submit(JOB), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      assert.match(error.message, new RegExp(`cancelled at ${READ} tokens`));
      assert.match(error.message, /new nonce/);
      return true;
    }).then(() => true);
    assert.ok(refused);
    assert.equal((await finisher.local.stats()).jobsStarted, 0, "a worker ran the retry");

    // The same prompt with a new nonce is a new job: it runs, and its finisher is paid for it.
    const fresh = await port.submit({ ...JOB, nonce: "retry-assigned-job-2" });
    for await (const _ of fresh.tokens) { /* the client reads every token */ }
    const done = await fresh.done;
    const whole = done.receipt as Receipt | undefined;
    assert.ok(whole !== undefined && whole.end === undefined, `no receipt: ${done.error?.code}`);
    await recordedAssigned(r, whole, "the finisher's receipt to be recorded assigned");

    await reads.closeWindow();
    const price = DEFAULT_ECONOMICS.defaultTokenPrice;
    const paid = await reads.account(cancelled.identity.publicKey);
    const theirs = await reads.account(finisher.identity.publicKey);
    assert.equal(paid.balance, paidFor(receipt, price), "the cancelled worker lost its pay");
    assert.equal(paid.stake, WORKER_STAKE);
    assert.equal(theirs.balance, paidFor(whole, price), "the finisher was not paid");
    assert.equal(theirs.stake, WORKER_STAKE);
  } finally {
    await r.close();
  }
});

Deno.test("the router's memory of assigned jobs is bounded: past its size the oldest job id is forgotten (its retry is forwarded again), and a finished job's refusal says so", () => {
  const jobs = new AssignedJobs(2);
  jobs.assigned("a", READ);
  jobs.assigned("b");
  assert.throws(() => jobs.check("a"), (error: unknown) => {
    assert.ok(error instanceof AssignedJobError);
    assert.equal(error.code, "duplicate_job");
    assert.match(error.message, new RegExp(`cancelled at ${READ} tokens`));
    return true;
  });
  assert.throws(() => jobs.check("b"), /already ran to its end and its receipt was assigned/);
  jobs.assigned("c");
  jobs.check("a"); // forgotten: no refusal
  assert.throws(() => jobs.check("b"), AssignedJobError);
  assert.throws(() => jobs.check("c"), AssignedJobError);
});
