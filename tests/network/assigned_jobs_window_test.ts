/**
 * The router keeps each assigned job id for its window, not by count (review s78 vassign, F4): a
 * retry voids the first receipt's pay while that receipt is open, up to `ASSIGNED_JOB_KEEP_MS`
 * (22.5 min) after it; kept by count alone, 16,384 later jobs inside that time (12 a second)
 * pushed an id out, its retry ran on a second worker, and neither worker was paid. Now an id
 * younger than the window goes only when the hard cap (`MAX_ASSIGNED_JOBS_HARD`) forces it, and
 * that is counted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobs, MAX_ASSIGNED_JOBS } from "../../network/_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE, AssignedJobFile } from "../../network/_assigned_job_file.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { clientJob } from "./_proving_worker.ts";
import { receiptOfRun, recordedAssigned, startRouter } from "./_assigned_job_router.ts";
import { id, refused } from "./_assigned_job_ids.ts";

/** The keep window of the unit test, in its own clock's ms. */
const KEEP_MS = 1_000;

Deno.test("past its bound the router forgets only ids older than the keep window; the hard cap forces a younger one out and counts it", () => {
  const clock = { t: 0 };
  const jobs = new AssignedJobs({ max: 2, hardMax: 4, keepMs: KEEP_MS, now: () => clock.t });
  for (const label of ["a", "b", "c", "d"]) jobs.assigned(label);
  // Past the bound of 2, all inside the window: all kept.
  for (const label of ["a", "b", "c", "d"]) assert.ok(refused(jobs, label), `${label} forgotten`);
  assert.equal(jobs.stats().forcedEvictions, 0);
  jobs.assigned("e"); // past the hard cap: the oldest goes, young as it is
  assert.ok(!refused(jobs, "a"));
  assert.equal(jobs.stats().forcedEvictions, 1);
  clock.t += KEEP_MS; // b … e are as old as the window now
  jobs.assigned("f");
  for (const label of ["b", "c", "d"]) assert.ok(!refused(jobs, label), `${label} kept`);
  assert.ok(refused(jobs, "e"));
  assert.ok(refused(jobs, "f"));
  assert.equal(jobs.stats().forcedEvictions, 1, "an old id's eviction was counted as forced");
});

Deno.test("16,384 later assignments inside the window do not push a job out: after a restart its retry is still refused, and its worker is paid", async () => {
  const r = await startRouter("assigned-window");
  try {
    const file = `${r.dir}/${ASSIGNED_JOBS_FILE}`;
    const first = await r.worker("first");
    const second = await r.worker("second");
    const job = clientJob("assigned-window", 4);
    r.network.connection = first.connection;
    const whole = await receiptOfRun(r.port({ assignedJobsFile: file }), job);
    assert.ok(whole !== undefined, "no receipt");
    await recordedAssigned(r, whole, "the first worker's receipt to be recorded assigned");
    // As many other jobs assigned after it, as the port appends them (one batch, same bytes).
    const log = new AssignedJobFile(file);
    await log.load(2 * MAX_ASSIGNED_JOBS);
    const others = Array.from({ length: MAX_ASSIGNED_JOBS }, (_, i) => id(`other-${i}`));
    await Promise.all(others.map((jobId) => log.append({ jobId })));

    r.network.connection = second.connection;
    const after = r.port({ assignedJobsFile: file });
    await assert.rejects(() => after.submit(job), (error: unknown) => {
      assert.ok(error instanceof VeriflowError, String(error));
      assert.equal(error.code, "duplicate_job", error.message);
      return true;
    });
    assert.equal((await second.local.stats()).jobsStarted, 0, "a second worker ran the retry");
    await r.reads.closeWindow();
    const credit = (await r.reads.record(receiptId(whole)))!.credit;
    assert.ok(credit > 0);
    assert.equal((await r.reads.account(first.identity.publicKey)).balance, credit);
    assert.equal((await r.reads.account(second.identity.publicKey)).balance, 0);
    assert.equal((await after.stats()).assignedJobs.forcedEvictions, 0);
  } finally {
    await r.close();
  }
});
