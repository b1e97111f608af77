/**
 * Job ids and the refusal check shared by the tests of a router's assigned-jobs memory
 * (`network/_assigned_jobs.ts`): `assigned_jobs_window_test.ts` and
 * `assigned_job_file_full_disk_test.ts` name their jobs by label and ask whether each is still
 * refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobError, type AssignedJobs } from "../../network/_assigned_jobs.ts";
import { sha256, toHex } from "../../protocols/hash.ts";

/** A job id (64 hex digits) named by `label`. */
export function id(label: string): string {
  return toHex(sha256(new TextEncoder().encode(label)));
}

/** Whether `jobs` refuses `jobId` as assigned (any other error fails the test). */
export function refused(jobs: AssignedJobs, jobId: string): boolean {
  try {
    jobs.check(jobId);
    return false;
  } catch (error) {
    assert.ok(error instanceof AssignedJobError, String(error));
    return true;
  }
}
