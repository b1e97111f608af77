/**
 * Review s49 of the one-receipt-per-job guard after review s48 (`ValidatorActor`'s
 * `job_recorded`, asked with this node's key by the InferenceActor's `receiptSigned`): a worker
 * refuses a job it already signed a receipt for, since a second run can sign a receipt with
 * another output, and two receipts of one worker for one job with other outputs are slashed as
 * equivocation. Since s48 only this node's own receipt recorded in its ledger answers yes. But the
 * ledger records one receipt per job: when another key's receipt for the job got there first
 * (a requester that had the job run elsewhere first), this node's own receipt is refused there
 * (`job_already_recorded`), and the prover releases it all the same. After a restart the ledger
 * held no receipt of this node for the job, the job was taken again, and a second receipt could
 * be signed: the ledgers that recorded the first slash the honest worker's stake.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;

Deno.test("review s49: a receipt this node signed that its own ledger refused (another key's receipt held the job) still makes it refuse the job after a restart", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const other = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "front-run-then-mine");
    const fresh = textJob(requester, "front-run-only");
    const { receipt: mine } = await proveOn(job, me);
    const first = new ActorSystem({ name: "s49-own-refused-first" });
    try {
      const validator = await spawnValidator(first, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      for (const key of [me.publicKey, other.publicKey]) {
        await validator.ask({ type: "deposit", key, amount: STAKE });
      }
      // Another key's receipts for both jobs reach this ledger first.
      for (const j of [job, fresh]) {
        const { receipt } = await proveOn(j, other);
        assert.equal((await announceAssigned(validator, receipt, j, requester)).recorded, true);
      }
      // Then this node runs `job`: its prover asks its validator, which refuses its receipt, and
      // releases it (the requester has it, and can announce it anywhere).
      const handled = await validator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: mine,
        job,
        origin: "local",
        announce: true,
      });
      assert.deepEqual([handled.recorded, handled.refusal], [false, "job_already_recorded"]);
    } finally {
      await first.shutdown();
    }

    // What a second receipt for the job costs this worker: a ledger that recorded the first
    // slashes its stake when another output comes for the same job.
    const elsewhere = new ActorSystem({ name: "s49-own-refused-elsewhere" });
    try {
      const clockThere = { t: START };
      const there = await spawnValidator(elsewhere, {
        identity: Identity.generate(),
        ledgerDir: join(ledgerDir, "..", "elsewhere"),
        clock: clockThere,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      await there.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
      assert.equal((await announceAssigned(there, mine, job, requester)).recorded, true);
      const { receipt: second } = await proveOn(job, me, f.otherSeed);
      assert.notEqual(second.outputHash, mine.outputHash);
      const again = await announceAssigned(there, second, job, requester);
      assert.equal(again.refusal, "equivocation");
      const account = await ledgerReads(() => there, clockThere).account(me.publicKey);
      assert.ok(account.stake < STAKE, `stake ${account.stake} was slashed`);
    } finally {
      await elsewhere.shutdown();
    }

    // After a restart, this node's ledger is what keeps it from running `job` a second time.
    const restarted = new ActorSystem({ name: "s49-own-refused-restarted" });
    try {
      const validator = await spawnValidator(restarted, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
      const signed = (j: typeof job) =>
        validator.ask<boolean>({ type: "job_recorded", jobId: jobId(j), worker: me.publicKey });
      assert.equal(await signed(job), true, "this node signed a receipt for the job");
      // Review s48 stays: another key's receipt alone does not make this node refuse a job.
      assert.equal(await signed(fresh), false);
    } finally {
      await restarted.shutdown();
    }
  });
});
