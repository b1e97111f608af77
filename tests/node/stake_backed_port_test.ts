/**
 * A worker refuses a job its own ledger shows it cannot back, before the work
 * (`node/_stake_backed_port.ts`, review s78 vprompt F2): the ledger outcomes of each branch —
 * backed (admitted, its receipt locks what was checked and is paid), not backed (refused, nothing
 * computed, nothing locked or recorded), jobs in flight holding their lock, and no ledger kept.
 */
import assert from "node:assert/strict";
import type { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import type { PromptTokenCount } from "../../network/_prompt_token_claim.ts";
import { JobUnbackedError, ownStakeIn, refusingUnbacked } from "../../node/_stake_backed_port.ts";
import type { StallingPort } from "../inference/_stalling_port.ts";
import {
  earningJob,
  held,
  PROMPT_TOKENS,
  receiptOf,
  requester,
  withStakedLedger,
  worker,
} from "./_stake_backed_fixture.ts";

/** The worker's port over `ledger`'s account of it, counting `count` prompt tokens. */
function workerPort(
  ledger: Ledger | undefined,
  inner: StallingPort,
  count: () => PromptTokenCount = () => PROMPT_TOKENS,
) {
  return refusingUnbacked(inner, {
    self: toHex(worker.publicKey),
    ledger: ledger && (() => ownStakeIn(ledger, worker.publicKey)),
    count,
  });
}

async function record(ledger: Ledger, job: TextJob): Promise<void> {
  await ledger.recordReceipt(receiptOf(job), {
    assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
  });
}

const lockOf = (job: TextJob) => jobStakeLock(job, PROMPT_TOKENS);

Deno.test("a worker's free stake equal to the job's worst-case lock admits it, and the receipt of that worst case locks exactly that stake and is paid at the window's end", async () => {
  const job = earningJob("backed");
  const lock = lockOf(job);
  // 20 × (8 output + 200 prompt / 16) at price 1.
  assert.equal(lock, 410);
  await withStakedLedger(lock, async (ledger, clock) => {
    const inner = held();
    const handle = await workerPort(ledger, inner).submit(job);
    assert.equal(inner.submits, 1);
    handle.cancel();
    await handle.done;
    await record(ledger, job);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
    // Paid its reward (the lock / slashMultiplier), its stake free again.
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: lock / DEFAULT_ECONOMICS.slashMultiplier,
      stake: lock,
      locked: 0,
    });
  });
});

Deno.test("a worker whose free stake is short of the job's lock refuses it insufficient_stake before the work: nothing computed, nothing locked or recorded in its ledger", async () => {
  const job = earningJob("short");
  const lock = lockOf(job);
  const stake = lock - 1;
  await withStakedLedger(stake, async (ledger) => {
    const inner = held();
    const error = await workerPort(ledger, inner).submit(job).then(() => undefined, (e) => e);
    assert.ok(error instanceof JobUnbackedError, String(error));
    assert.equal(error.code, "insufficient_stake");
    assert.match(error.message, new RegExp(`up to ${lock} of its stake.*has ${stake} free`));
    assert.equal(inner.submits, 0, "the job was computed");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake, locked: 0 });
    assert.equal(ledger.receiptOfJob(jobId(job)), undefined);
    // Computed anyway, its receipt would have been refused for the same want, unpaid.
    await assert.rejects(record(ledger, job), { code: "insufficient_stake" });
  });
});

Deno.test("a worker's own ledger locks count: with one job's receipt locked, a second job the rest of the stake cannot back is refused", async () => {
  const first = earningJob("first");
  const second = earningJob("second");
  await withStakedLedger(lockOf(first) + lockOf(second) - 1, async (ledger) => {
    await record(ledger, first);
    const inner = held();
    await assert.rejects(workerPort(ledger, inner).submit(second), { code: "insufficient_stake" });
    assert.equal(inner.submits, 0);
    assert.equal(ledger.account(worker.publicKey).locked, lockOf(first));
  });
});

Deno.test("jobs admitted and running hold their worst-case lock: a second job the stake cannot back beside the first is refused, and admitted once the first ended", async () => {
  const first = earningJob("running");
  const second = earningJob("beside");
  await withStakedLedger(lockOf(first) + lockOf(second) - 1, async (ledger) => {
    const inner = held();
    const port = workerPort(ledger, inner);
    const running: InferenceHandle = await port.submit(first);
    await assert.rejects(port.submit(second), { code: "insufficient_stake" });
    assert.equal(inner.submits, 1);
    running.cancel();
    await running.done;
    const next = await port.submit(second);
    assert.equal(inner.submits, 2);
    next.cancel();
    await next.done;
  });
});

Deno.test("a job refused by the port under the stake check gives its held lock back", async () => {
  const job = earningJob("inner-refused");
  await withStakedLedger(lockOf(job), async (ledger) => {
    const inner = held();
    let refuse = true;
    const port = refusingUnbacked({
      submit: (j, o) => refuse ? Promise.reject(new Error("full")) : inner.submit(j, o),
      models: () => inner.models(),
      stats: () => inner.stats(),
    }, {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
    });
    await assert.rejects(port.submit(job), /full/);
    refuse = false;
    const handle = await port.submit(earningJob("after"));
    handle.cancel();
    await handle.done;
  });
});

Deno.test("a worker that keeps no ledger of its own (no validator role) admits the job", async () => {
  const inner = held();
  const handle = await workerPort(undefined, inner).submit(earningJob("no-ledger"));
  handle.cancel();
  await handle.done;
  assert.equal(inner.submits, 1);
});

Deno.test("a worker with no stake in its own ledger (its pledge made elsewhere, or late) admits the job: such a receipt is held for the pledge, not lost", async () => {
  await withStakedLedger(0, async (ledger) => {
    const inner = held();
    const handle = await workerPort(ledger, inner).submit(earningJob("unstaked"));
    assert.equal(inner.submits, 1);
    handle.cancel();
    await handle.done;
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 0, locked: 0 });
  });
});

Deno.test("a job of the worker's own (no requester, or itself as requester) earns nothing and is not checked against its stake", async () => {
  await withStakedLedger(1, async (ledger) => {
    const inner = held();
    let asked = 0;
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => {
        asked++;
        return ownStakeIn(ledger, worker.publicKey);
      },
      count: () => PROMPT_TOKENS,
    });
    const { requester: _r, ...own } = earningJob("own");
    const self = { ...earningJob("self"), requester: toHex(worker.publicKey) };
    for (const job of [own, self]) {
      const handle = await port.submit(job);
      handle.cancel();
      await handle.done;
    }
    assert.equal(inner.submits, 2);
    assert.equal(asked, 0);
    await assert.rejects(port.submit(earningJob("earning")), { code: "insufficient_stake" });
  });
});

Deno.test("a prompt bounded by the model's window (tokenizer not read yet) is counted exactly before a refusal: a job its exact count fits is admitted", async () => {
  const job = earningJob("window");
  await withStakedLedger(lockOf(job), async (ledger) => {
    const inner = held();
    let read = false;
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => read ? PROMPT_TOKENS : { atMost: 4_095 },
      prepare: () => {
        read = true;
        return Promise.resolve();
      },
    });
    const handle = await port.submit(job);
    assert.equal(inner.submits, 1);
    handle.cancel();
    await handle.done;
  });
});
