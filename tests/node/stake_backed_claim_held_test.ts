/**
 * The worker's admission by its stake (`node/_stake_backed_port.ts`) when another worker's
 * receipt holds the job its receipt is for (review s80 vadm F1, F3): a copier's receipt recorded
 * without an assignment holds it only until the router's assigned copy of the worker's receipt
 * comes and takes the job over, locking the worker's stake; so the worker's refused receipt (or
 * its claim kept) keeps its job's lock, and the next job the stake cannot back with it is refused
 * before the work, not computed and left unpaid. A holder recorded with its assignment holds the
 * job for good: the lock goes at once. Whatever the refusal, the lock goes once the receipt is
 * stale (`STALE_RECEIPT_AGE_MS`): no intake records it any more.
 */
import assert from "node:assert/strict";
import type { InferencePort } from "../../inference/inference_port.ts";
import type { Ledger } from "../../proof/ledger.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { InsufficientStakeError, LedgerRejectedError } from "../../proof/ledger_errors.ts";
import { STALE_RECEIPT_AGE_MS } from "../../proof/challenge_timing.ts";
import { ownStakeIn, refusingUnbacked } from "../../node/_stake_backed_port.ts";
import {
  earningJob,
  held,
  outcomeOf,
  PROMPT_TOKENS,
  receiptOf,
  requester,
  signing,
  withStakedLedger,
  worker,
} from "./_stake_backed_fixture.ts";

const copier = Identity.generate(); // the client's confederate, staked

const assignmentOf = (job: TextJob, to = worker) =>
  signAssignment({ job, worker: to.publicKey, issuedAt: 0 }, requester);

/** A ledger where the worker's stake backs one job and the copier has as much. */
async function withLedger(
  fn: (ledger: Ledger, lock: number, admissionClock: { t: number }) => Promise<void>,
): Promise<void> {
  const lock = jobStakeLock(earningJob("lock"), PROMPT_TOKENS);
  await withStakedLedger(lock, async (ledger) => {
    await ledger.deposit(copier.publicKey, lock);
    await fn(ledger, lock, { t: 0 });
  });
}

/** The admission over `inner`, against `ledger`, reading receipts' age on `clock`. */
const admission = (inner: InferencePort, ledger: Ledger, clock: { t: number }) =>
  refusingUnbacked(inner, {
    self: toHex(worker.publicKey),
    ledger: () => ownStakeIn(ledger, worker.publicKey),
    count: () => PROMPT_TOKENS,
    now: () => clock.t,
  });

/** Admits and ends `job` on `port`: its receipt not handed to the ledger yet. */
async function ran(port: InferencePort, job: TextJob): Promise<void> {
  const handle = await port.submit(job);
  handle.cancel();
  await handle.done;
}

/** The router's assigned copy of the worker's receipt for `job` arrives: recorded. */
async function assignedCopy(ledger: Ledger, job: TextJob): Promise<void> {
  const record = await ledger.recordReceipt(receiptOf(job), { assignment: assignmentOf(job) });
  assert.equal(record.worker, toHex(worker.publicKey), "the assigned copy took the job over");
}

/** The second job's receipt, had it been computed: refused for want of stake. */
async function secondRefusedUnpaid(ledger: Ledger, job: TextJob): Promise<void> {
  await assert.rejects(
    ledger.recordReceipt(receiptOf(job), { assignment: assignmentOf(job) }),
    InsufficientStakeError,
  );
}

Deno.test("a copier's unassigned receipt holding the job keeps the worker's lock: the next job is refused before the work, and the router's assigned copy then locks the stake (review s80 vadm F1)", async () => {
  const first = earningJob("copied-first");
  const second = earningJob("copied-second");
  await withLedger(async (ledger, lock, clock) => {
    const inner = held();
    const port = admission(signing(inner), ledger, clock);
    await ran(port, first);
    await ledger.recordReceipt(receiptOf(first, copier)); // no assignment: only the router signs one
    assert.equal(ledger.receiptRefusal(receiptOf(first)), "job_already_recorded");
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1, "the second job was not computed");
    await assignedCopy(ledger, first);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
    await secondRefusedUnpaid(ledger, second);
  });
});

Deno.test("the worker's own unassigned receipt kept as its claim against a copier's unassigned one keeps its lock: the assigned copy still takes the job (review s80 vadm F3)", async () => {
  const first = earningJob("claim-first");
  const second = earningJob("claim-second");
  await withLedger(async (ledger, lock, clock) => {
    const inner = held();
    const port = admission(signing(inner), ledger, clock);
    await ran(port, first);
    await ledger.recordReceipt(receiptOf(first, copier));
    // The prover's own hand-in (no assignment): refused, kept as the worker's claim.
    await assert.rejects(
      ledger.recordReceipt(receiptOf(first)),
      (e) => e instanceof LedgerRejectedError && e.code === "job_already_recorded",
    );
    assert.ok(ledger.keepsClaim(jobId(first), worker.publicKey));
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1, "the second job was not computed");
    await assignedCopy(ledger, first);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
    await secondRefusedUnpaid(ledger, second);
  });
});

Deno.test("another worker's assigned receipt holding the job holds it for good: the worker's refused receipt gives its lock back at once, and the next job is admitted and paid", async () => {
  const first = earningJob("assigned-first");
  const second = earningJob("assigned-second");
  await withLedger(async (ledger, lock, clock) => {
    const inner = held();
    const port = admission(signing(inner), ledger, clock);
    await ran(port, first);
    // The requester assigned the job to the copier too: its receipt holds the job, assigned.
    await ledger.recordReceipt(receiptOf(first, copier), {
      assignment: assignmentOf(first, copier),
    });
    // The worker's assigned copy is a double assignment: not recorded, nothing locked.
    await assert.rejects(
      ledger.recordReceipt(receiptOf(first), { assignment: assignmentOf(first) }),
      (e) => e instanceof LedgerRejectedError && e.code === "double_assignment",
    );
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: 0 });
    assert.equal(await outcomeOf(port.submit(second)), "admitted");
    assert.equal(inner.submits, 2, "the second job was computed");
    const record = await ledger.recordReceipt(receiptOf(second), {
      assignment: assignmentOf(second),
    });
    assert.equal(record.locked, lock);
    assert.ok(record.credit > 0, "the second job is paid");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
  });
});

Deno.test("a lock held for a refusal that is only for now goes once the receipt is stale: no intake records it any more", async () => {
  const first = earningJob("stale-first");
  const second = earningJob("stale-second");
  await withLedger(async (ledger, lock, clock) => {
    const inner = held();
    const port = admission(signing(inner), ledger, clock);
    await ran(port, first);
    await ledger.recordReceipt(receiptOf(first, copier));
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    // The receipt's signed end (`receiptFor`: at 0) is more than STALE_RECEIPT_AGE_MS behind.
    const signed = receiptOf(first).timings;
    clock.t = signed.startedAt + signed.totalMs + STALE_RECEIPT_AGE_MS + 1;
    assert.equal(await outcomeOf(port.submit(second)), "admitted");
    assert.equal(inner.submits, 2);
    await ledger.recordReceipt(receiptOf(second), { assignment: assignmentOf(second) });
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
  });
});
