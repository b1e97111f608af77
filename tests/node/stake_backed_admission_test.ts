/**
 * The worker's admission by its stake (`node/_stake_backed_port.ts`) over the gaps a verify
 * review found (review s79 vmoney): a job's lock held until its receipt is in the ledger, not
 * only until the job ends (F1), and given back when the receipt never comes; the free stake read
 * from the open ledger while the validator's mailbox is busy, and a job refused when no ledger is
 * open (F2); one requester's open jobs held to a share of the free stake (F6).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { InferenceHandle } from "../../inference/inference_port.ts";
import type { Ledger } from "../../proof/ledger.ts";
import { cidOf } from "../../protocols/cid.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { jobPromptText } from "../../protocols/job_input.ts";
import { MAX_JOB_TOKENS } from "../../protocols/job_token_bounds.ts";
import { proveJob } from "../../proof/prover.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { STALE_RECEIPT_AGE_MS } from "../../proof/challenge_timing.ts";
import {
  type LedgerStakeReads,
  ownStakeIn,
  refusingUnbacked,
  REQUESTER_STAKE_SHARE,
  RequesterShareError,
  StakeUnknownError,
} from "../../node/_stake_backed_port.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
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

/** node/_config_schema.ts's `selfStake` default. */
const DEFAULT_SELF_STAKE = 1_000_000;

async function record(ledger: Ledger, job: TextJob): Promise<void> {
  await ledger.recordReceipt(receiptOf(job), {
    assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
  });
}

Deno.test("a job ended with a receipt the worker's ledger does not hold yet keeps its lock: a second job its stake cannot back beside it is refused before the work, and the first receipt is paid its lock", async () => {
  const first = earningJob("first");
  const second = earningJob("second");
  const lock = jobStakeLock(first, PROMPT_TOKENS);
  await withStakedLedger(lock, async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(signing(inner), {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
      // The receipts' clock (`receiptFor` signs startedAt 0): by `Date.now` they are stale at
      // once, no intake records them, and their lock goes at the job's end.
      now: () => 0,
    });
    const a = await port.submit(first);
    a.cancel();
    assert.ok((await a.done).receipt !== undefined);
    // Signed, not recorded yet (the prover's ask in the validator's mailbox).
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1, "the second job was computed");
    await record(ledger, first);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: lock, locked: lock });
    // Recorded: its lock is the ledger's now, not counted twice; still nothing free.
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    assert.equal(inner.submits, 1);
  });
});

Deno.test("once the ledger holds the ended job's receipt, the stake it leaves free admits the next job", async () => {
  const first = earningJob("recorded-first");
  const second = earningJob("recorded-second");
  const lock = jobStakeLock(first, PROMPT_TOKENS);
  await withStakedLedger(2 * lock, async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(signing(inner), {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
    });
    const a = await port.submit(first);
    a.cancel();
    await a.done;
    await record(ledger, first);
    // Counted once (the ledger's lock), not twice (the ledger's and the admission's).
    assert.equal(await outcomeOf(port.submit(second)), "admitted");
    assert.equal(inner.submits, 2);
  });
});

Deno.test("a receipt that never reaches the worker's ledger holds its job's lock only until no intake would record it (STALE_RECEIPT_AGE_MS after its signed end)", async () => {
  const first = earningJob("lost-first");
  const second = earningJob("lost-second");
  await withStakedLedger(jobStakeLock(first, PROMPT_TOKENS), async (ledger) => {
    const clock = { t: 5_000 };
    const inner = held();
    const port = refusingUnbacked(signing(inner), {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
      now: () => clock.t,
    });
    const a = await port.submit(first);
    a.cancel();
    await a.done;
    // `receiptFor` signs startedAt 0 and totalMs 0: the intake still records it at this age.
    clock.t = STALE_RECEIPT_AGE_MS;
    assert.equal(await outcomeOf(port.submit(second)), "refused insufficient_stake");
    clock.t += 1;
    assert.equal(await outcomeOf(port.submit(second)), "admitted");
    assert.equal(inner.submits, 2);
  });
});

Deno.test("a job that ended with no receipt (cancelled before its first token) gives its lock back at its end", async () => {
  const first = earningJob("unsigned-first");
  await withStakedLedger(jobStakeLock(first, PROMPT_TOKENS), async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
    });
    const a = await port.submit(first);
    a.cancel();
    assert.equal((await a.done).receipt, undefined);
    assert.equal(await outcomeOf(port.submit(earningJob("unsigned-second"))), "admitted");
  });
});

Deno.test("a worker whose ledger is not open now (its validator restarting) refuses the job before the work, never admits it unchecked", async () => {
  const inner = held();
  const port = refusingUnbacked(inner, {
    self: toHex(worker.publicKey),
    ledger: () => undefined,
    count: () => PROMPT_TOKENS,
  });
  const error = await port.submit(earningJob("closed")).then(() => undefined, (e) => e);
  assert.ok(error instanceof StakeUnknownError, String(error));
  assert.equal(error.code, "insufficient_stake");
  assert.equal(inner.submits, 0);
});

/**
 * `fn` runs while a real validator's intake holds its mailbox on a stalled input read (bounded at
 * 2 s, `LOCAL_INPUT_READ_TIMEOUT_MS`), with the validator's ledger as `onLedger` publishes it.
 */
async function busyValidator(fn: (ledger: () => LedgerStakeReads | undefined) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "stake-busy-validator" });
  const peer = Identity.generate();
  let open: LedgerStakeReads | undefined;
  let reading = false;
  try {
    const validator = await spawnValidator(system, {
      identity: worker,
      ledgerDir: `${dir}/ledger`,
      clock: { t: START },
      challengeProbability: 0,
      models: HONEST_MODELS,
      onLedger: (ledger, isOpen) => open = isOpen ? ledger : undefined,
      // A local store that stalls (a slow disk): the intake waits its 2 s bound.
      readInput: (_cid, signal) => {
        reading = true;
        return new Promise((_, reject) =>
          signal?.addEventListener("abort", () => (reading = false, reject(signal.reason)))
        );
      },
    });
    await validator.ask({ type: "deposit", key: peer.publicKey, amount: 1_000_000 });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 1 });
    const input = new TextEncoder().encode("Notes: the river rose two metres overnight.\n");
    const job = textJob(requester, "peer-input", { prompt: "Summary:", input: cidOf(input) });
    const ids = f.honest.tokenizer.encode(jobPromptText(job, input));
    const proved = await proveJob(job, f.honest.generate(ids, job.params), peer, {
      promptTokens: ids.length,
      input,
    });
    // Gossip: not awaited; its intake's read holds the validator's mailbox.
    const gossip = announceAssigned(validator, proved.receipt, job, requester).catch(() => {});
    await eventually(() => reading, "the intake to read the gossiped receipt's input");
    await fn(() => open);
    assert.ok(reading, "the intake's read ended before the admission answered");
    await gossip;
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(open, undefined, "the stopped validator's ledger is still published");
}

Deno.test("with its validator's mailbox held by the intake's input read, a job the worker's 1-credit stake cannot back is refused at once, not admitted unchecked", async () => {
  await busyValidator(async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => {
        const open = ledger();
        return open && ownStakeIn(open, worker.publicKey);
      },
      count: () => PROMPT_TOKENS,
    });
    assert.equal(await outcomeOf(port.submit(earningJob("busy"))), "refused insufficient_stake");
    assert.equal(inner.submits, 0, "the job was computed");
  });
});

Deno.test("one requester's open jobs hold at most REQUESTER_STAKE_SHARE of a default-stake worker's free stake: another requester's small job is still admitted", async () => {
  const heavy = Identity.generate();
  const other = Identity.generate();
  await withStakedLedger(DEFAULT_SELF_STAKE, async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => 3,
    });
    const open: InferenceHandle[] = [];
    try {
      const bigLock = jobStakeLock(earningJob("big", MAX_JOB_TOKENS, heavy), 3);
      // The review's pattern: 12 jobs of MAX_JOB_TOKENS, then 64-token ones, to the first refusal.
      let refusal: unknown;
      for (let n = 0; refusal === undefined; n++) {
        const job = earningJob(`heavy-${n}`, n < 12 ? MAX_JOB_TOKENS : 64, heavy);
        await port.submit(job).then((h) => open.push(h), (e) => refusal = e);
      }
      const heavyJobs = open.length;
      // The other requester: its small job, and as many big ones as the heavy one's first six.
      const small = await outcomeOf(port.submit(earningJob("small", 16, other)));
      assert.equal(small, "admitted", `after ${heavyJobs} of the heavy requester's jobs`);
      assert.ok(refusal instanceof RequesterShareError, String(refusal));
      assert.equal(refusal.code, "insufficient_stake");
      const share = DEFAULT_SELF_STAKE * REQUESTER_STAKE_SHARE;
      assert.equal(Math.floor(share / bigLock), 6);
      for (let n = 0; n < 6; n++) {
        open.push(await port.submit(earningJob(`other-big-${n}`, MAX_JOB_TOKENS, other)));
      }
      assert.equal(inner.submits, heavyJobs + 1 + 6);
      // Nothing locked in the ledger by admissions: only receipts lock it.
      assert.deepEqual(ledger.account(worker.publicKey).locked, 0);
    } finally {
      for (const handle of open) handle.cancel();
      await Promise.all(open.map((handle) => handle.done));
    }
  });
});

Deno.test("a requester's first job is never refused for its share: a worker whose stake backs one job but not two still takes a job bigger than half of it", async () => {
  const job = earningJob("only");
  await withStakedLedger(jobStakeLock(job, PROMPT_TOKENS), async (ledger) => {
    const inner = held();
    const port = refusingUnbacked(inner, {
      self: toHex(worker.publicKey),
      ledger: () => ownStakeIn(ledger, worker.publicKey),
      count: () => PROMPT_TOKENS,
    });
    assert.equal(await outcomeOf(port.submit(job)), "admitted");
    assert.equal(inner.submits, 1);
  });
});
