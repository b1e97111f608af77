/**
 * The router's assigned-jobs file on a full disk (review s78 vassign, F2 and F3), with the disk
 * fault injected (`_assigned_jobs_disk_fault.ts`): a restart whose rewrite of the file fails keeps
 * every id it read (before, the failure was swallowed with the memory empty, and every retry ran
 * again); an append cut short leaves the file on its record grid, so later appends survive a
 * restart (before, they sat off the grid and were all dropped at the next load). Both are counted
 * in the port's stats (`/metrics`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobs } from "../../network/_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { clientJob } from "./_proving_worker.ts";
import { receiptOfRun, recordedAssigned, startRouter } from "./_assigned_job_router.ts";
import { id, refused } from "./_assigned_job_ids.ts";
import { diskUnder } from "./_assigned_jobs_disk_fault.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { inferenceCollector } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { parsePrometheusText, valueOf } from "../server/_prometheus_text.ts";

/** Bytes of the file's header and of one record (`_assigned_job_file.ts`). */
const HEADER_BYTES = 8;
const RECORD_BYTES = 44; // version 3: a 4-byte mark, the id, the field and the check
/** Room that cuts one record short: part of it is written, then `ENOSPC`. */
const SHORT_ROOM = 24;

/** An `AssignedJobs` over `file`, read back. */
async function opened(file: string): Promise<AssignedJobs> {
  const jobs = new AssignedJobs({ file });
  await jobs.loaded;
  return jobs;
}

Deno.test("a restart whose rewrite of the assigned-jobs file fails on a full disk keeps every id it read, counts the failure, and later appends are kept", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/${ASSIGNED_JOBS_FILE}`;
  const disk = diskUnder(file);
  try {
    const before = await opened(file);
    await before.assigned(id("a"));
    await before.assigned(id("b"), 3);
    disk.room = 0; // the disk fills up before the restart
    const after = await opened(file);
    assert.ok(refused(after, id("a")), "a was forgotten");
    assert.ok(refused(after, id("b")), "b was forgotten");
    assert.equal(after.stats().loadFailures, 1);
    disk.room = Infinity; // space freed
    await after.assigned(id("c"));
    const third = await opened(file);
    for (const label of ["a", "b", "c"]) assert.ok(refused(third, id(label)), `${label} lost`);
    assert.equal(third.stats().droppedRecords, 0);
  } finally {
    disk.restore();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an append cut short by a full disk is truncated back and counted: the appends after it stay on the record grid and survive a restart", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/${ASSIGNED_JOBS_FILE}`;
  const disk = diskUnder(file);
  try {
    const jobs = await opened(file);
    await jobs.assigned(id("a"));
    disk.room = SHORT_ROOM; // b's record is written in part, then ENOSPC
    await jobs.assigned(id("b"));
    assert.ok(refused(jobs, id("b")), "b is not kept in memory");
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES + RECORD_BYTES, "torn bytes left");
    disk.room = Infinity;
    await jobs.assigned(id("c"));
    await jobs.assigned(id("d"));
    const after = await opened(file);
    assert.equal(after.stats().droppedRecords, 0);
    for (const label of ["a", "c", "d"]) assert.ok(refused(after, id(label)), `${label} lost`);
    assert.ok(!refused(after, id("b")), "b was never written whole");
    assert.equal(jobs.stats().appendFailures, 1);
  } finally {
    disk.restore();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a router restarting on a full disk still refuses the client's retry of a job it assigned, and the first worker is paid", async () => {
  const r = await startRouter("assigned-full-disk");
  const file = `${r.dir}/${ASSIGNED_JOBS_FILE}`;
  const disk = diskUnder(file);
  try {
    const first = await r.worker("first");
    const second = await r.worker("second");
    const job = clientJob("assigned-full-disk", 6);
    r.network.connection = first.connection;
    const whole = await receiptOfRun(r.port({ assignedJobsFile: file }), job);
    assert.ok(whole !== undefined, "no receipt");
    await recordedAssigned(r, whole, "the first worker's receipt to be recorded assigned");

    disk.room = 0; // full when the router restarts
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
    // Counted where an operator sees it: the router's /metrics.
    const metrics = new MetricsRegistry();
    metrics.register(inferenceCollector(new InferenceGateway({ inference: after })));
    const series = parsePrometheusText(await metrics.render());
    const faults = (kind: string) =>
      valueOf(series, "veriflow_router_assigned_jobs_faults_total", { kind });
    assert.equal(faults("loadFailures"), 1);
    assert.equal(faults("appendFailures"), 0);
  } finally {
    disk.restore();
    await r.close();
  }
});
