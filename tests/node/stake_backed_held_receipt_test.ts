/**
 * The worker's admission by its stake (`node/_stake_backed_port.ts`) over review s79 vcrash:
 * a receipt the validator holds past a minute (its ledger read-only on a full disk) and records
 * later keeps its job's lock until then, so no second job runs on that stake and ends unpaid
 * (F1); one peer's jobs are held to their share of the free stake by the key the port is told
 * submitted them (`SubmitOptions.client`, the connection's key), whatever `requester` each job
 * names (F2).
 */
import assert from "node:assert/strict";
import type { InferenceHandle, InferencePort } from "../../inference/inference_port.ts";
import type { Ledger } from "../../proof/ledger.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { MAX_JOB_TOKENS } from "../../protocols/job_token_bounds.ts";
import { jobStakeLock } from "../../network/_job_stake_lock.ts";
import { ownStakeIn, refusingUnbacked } from "../../node/_stake_backed_port.ts";
import {
  earningJob,
  held,
  PROMPT_TOKENS,
  receiptOf,
  requester,
  signing,
  withStakedLedger,
  worker,
} from "./_stake_backed_fixture.ts";

/** node/_config_schema.ts's `selfStake` default. */
const DEFAULT_SELF_STAKE = 1_000_000;
/** The old release after a job's end (5b13e6a's RECEIPT_RECORD_WAIT_MS) and a second more. */
const PAST_THE_OLD_WAIT_MS = 61_000;
/** `DEFAULT_MAX_JOBS_PER_PEER`: the most jobs one peer may have open at a worker. */
const PEER_JOB_PLACES = 32;

async function record(ledger: Ledger, job: TextJob): Promise<string> {
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return await ledger.recordReceipt(receiptOf(job), { assignment }).then(
    () => "recorded",
    (error) => `refused ${error.code}`,
  );
}

Deno.test("a receipt the validator holds past a minute (read-only ledger) keeps its job's lock: the next job is refused before the work until the receipt is recorded, then admitted and paid", async () => {
  const first = earningJob("held-first");
  const second = earningJob("held-second");
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
    assert.ok((await a.done).receipt !== undefined);
    clock.t += PAST_THE_OLD_WAIT_MS;
    const refused = await port.submit(second).then(() => undefined, (error) => error);
    assert.equal(refused?.code, "insufficient_stake", "admitted on the held receipt's stake");
    assert.equal(inner.submits, 1, "the second job was computed");
    // The disk frees: the held receipt is recorded, and its lock is the ledger's.
    assert.equal(await record(ledger, first), "recorded");
    const b = await port.submit(second).then(() => undefined, (error) => error);
    assert.equal(b?.code, "insufficient_stake", "the recorded lock leaves nothing free");
    // A deposit frees room: the second job runs and its receipt is recorded, not refused.
    await ledger.deposit(worker.publicKey, jobStakeLock(second, PROMPT_TOKENS));
    const handle = await port.submit(second);
    handle.cancel();
    await handle.done;
    assert.equal(await record(ledger, second), "recorded");
  });
});

/** Submit one peer's `PEER_JOB_PLACES` largest jobs, each naming `requesterOf(n)`. */
async function fill(
  port: InferencePort,
  client: string,
  requesterOf: (n: number) => string,
  open: InferenceHandle[],
): Promise<number> {
  let admitted = 0;
  for (let n = 0; n < PEER_JOB_PLACES; n++) {
    const job = earningJob(`peer-${n}`, MAX_JOB_TOKENS, requesterOf(n));
    await port.submit(job, { client }).then((h) => (open.push(h), admitted++), () => {});
  }
  return admitted;
}

for (const naming of ["one requester", "a fresh requester per job"] as const) {
  Deno.test(`one peer's jobs naming ${naming} are held to half the free stake: another peer's job is admitted`, async () => {
    await withStakedLedger(DEFAULT_SELF_STAKE, async (ledger) => {
      const port = refusingUnbacked(held(), {
        self: toHex(worker.publicKey),
        ledger: () => ownStakeIn(ledger, worker.publicKey),
        count: () => PROMPT_TOKENS,
      });
      const hostilePeer = toHex(Identity.generate().publicKey);
      const fixed = toHex(Identity.generate().publicKey);
      const open: InferenceHandle[] = [];
      try {
        const requesterOf = naming === "one requester"
          ? () => fixed
          : () => toHex(Identity.generate().publicKey);
        const hostile = await fill(port, hostilePeer, requesterOf, open);
        assert.ok(hostile > 1 && hostile < PEER_JOB_PLACES, `admitted ${hostile}`);
        const honestPeer = toHex(Identity.generate().publicKey);
        const honest = await port.submit(earningJob("honest", MAX_JOB_TOKENS, honestPeer), {
          client: honestPeer,
        }).then((h) => (open.push(h), "admitted"), (e) => `refused ${e.code}`);
        assert.equal(honest, "admitted");
      } finally {
        for (const handle of open) handle.cancel();
        await Promise.all(open.map((handle) => handle.done));
      }
    });
  });
}
