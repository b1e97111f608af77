/**
 * The worker's admission by its stake (`node/_stake_backed_port.ts`) once its own ledger refused
 * the receipt of a job it admitted for good (stop 80): its lock is given back then, not held
 * until the receipt is stale (`STALE_RECEIPT_AGE_MS`, 7.5 min) while the worker refused jobs its
 * stake backs. A refusal for now (its stake short: review s80 vadm F2; its job held by an
 * unassigned receipt: `stake_backed_claim_held_test.ts`) keeps it, as does a receipt the ledger
 * would still record (its validator restarting, a read-only ledger:
 * `stake_backed_held_receipt_test.ts`).
 */
import assert from "node:assert/strict";
import type { InferencePort } from "../../inference/inference_port.ts";
import type { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { InsufficientStakeError, LedgerRejectedError } from "../../proof/ledger_errors.ts";
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

const assignmentOf = (job: TextJob) =>
  signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);

/** The admission over `inner`, against `ledger`, on a clock where no receipt goes stale. */
const admission = (inner: InferencePort, ledger: Ledger) =>
  refusingUnbacked(inner, {
    self: toHex(worker.publicKey),
    ledger: () => ownStakeIn(ledger, worker.publicKey),
    count: () => PROMPT_TOKENS,
    now: () => 0,
  });

Deno.test("a receipt the worker's ledger refuses as invalid gives its job's lock back at once: the next job its stake backs is admitted, computed, and its receipt locks that stake", async () => {
  const first = earningJob("invalid-first");
  const second = earningJob("invalid-second");
  const lock = jobStakeLock(first, PROMPT_TOKENS);
  await withStakedLedger(lock, async (ledger) => {
    const inner = held();
    // Its signature broken after signing: every ledger refuses it `receipt_rejected`.
    const forged = (job: TextJob) => ({ ...receiptOf(job), tokenCount: 7 });
    const port = admission(
      signing(inner, (job) => job === first ? forged(job) : receiptOf(job)),
      ledger,
    );
    const a = await port.submit(first);
    a.cancel();
    const { receipt } = await a.done;
    // The validator's intake, before the prover releases the receipt.
    await assert.rejects(
      ledger.recordReceipt(receipt as Receipt, { assignment: assignmentOf(first) }),
      (e) => e instanceof LedgerRejectedError && e.code === "receipt_rejected",
    );
    assert.equal(ledger.receiptOfJob(jobId(first)), undefined);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: 0 });
    // Nothing of the stake is locked, nor will be by that receipt: the second job is backed.
    assert.equal(await outcomeOf(port.submit(second)), "admitted");
    assert.equal(inner.submits, 2, "the second job was computed");
    await ledger.recordReceipt(receiptOf(second), { assignment: assignmentOf(second) });
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
  });
});

Deno.test("a receipt the worker's ledger refuses insufficient_stake only for now keeps its job's lock: once the stake frees, the receipt sent again is recorded and locks it, and the next job was refused before the work (review s80 vadm F2)", async () => {
  const first = earningJob("short-first");
  const earlier = earningJob("short-earlier");
  const second = earningJob("short-second");
  const lock = jobStakeLock(first, PROMPT_TOKENS);
  await withStakedLedger(lock, async (ledger, clock) => {
    const inner = held();
    const port = admission(signing(inner, receiptOf), ledger);
    const a = await port.submit(first);
    // Meanwhile a receipt of the worker's the ledger heard from a peer (signed before a restart)
    // takes the whole stake: the first job's receipt is refused for want of it.
    await ledger.recordReceipt(receiptOf(earlier), { assignment: assignmentOf(earlier) });
    a.cancel();
    const { receipt } = await a.done;
    await assert.rejects(
      ledger.recordReceipt(receipt as Receipt, { assignment: assignmentOf(first) }),
      InsufficientStakeError,
    );
    assert.equal(ledger.receiptOfJob(jobId(first)), undefined, "the refused receipt holds no job");
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    // Its window ends: paid, its lock released.
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    assert.equal((await ledger.finalizeDue()).length, 1);
    const paid = ledger.account(worker.publicKey).balance;
    assert.ok(paid > 0);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: paid, stake: lock, locked: 0 });
    // The refusal was for now: the first receipt may still be recorded, so its lock holds.
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1, "the second job was not computed");
    // Sent again (the router's announcement), the first receipt is recorded and takes the stake.
    await ledger.recordReceipt(receiptOf(first), { assignment: assignmentOf(first) });
    assert.equal(
      ledger.receipt(ledger.receiptOfJob(jobId(first))!)?.worker,
      toHex(worker.publicKey),
    );
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: paid,
      stake: lock,
      locked: lock,
    });
  });
});

Deno.test("a receipt its ledger would still record (not handed to it yet) keeps its job's lock: refusal, not absence, gives it back", async () => {
  const first = earningJob("unheard-first");
  const second = earningJob("unheard-second");
  const lock = jobStakeLock(first, PROMPT_TOKENS);
  await withStakedLedger(lock, async (ledger) => {
    const inner = held();
    const port = admission(signing(inner, receiptOf), ledger);
    const a = await port.submit(first);
    a.cancel();
    await a.done;
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1);
    await ledger.recordReceipt(receiptOf(first), { assignment: assignmentOf(first) });
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
  });
});
