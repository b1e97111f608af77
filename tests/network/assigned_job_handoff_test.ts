/**
 * What a router hands its validator for a job it assigned, kept in its assigned jobs' file
 * (`network/_assigned_jobs.ts`, review s79 crash, F1) until the validator took it: read back at a
 * restart and handed over again, dropped once taken, and a file of the format before it still read.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobError, AssignedJobs } from "../../network/_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { sha256, sha256Hex } from "../../protocols/hash.ts";

/** A job id (64 hex digits) for `name`. */
const id = (name: string) => sha256Hex(new TextEncoder().encode(name));

/** An `AssignedJobs` over `file`, read back; the handoffs it recovers, in order. */
async function reopened(file: string): Promise<{ jobs: AssignedJobs; recovered: string[][] }> {
  const recovered: string[][] = [];
  const jobs = new AssignedJobs({
    file,
    recover: (jobId, handoff) => recovered.push([jobId, new TextDecoder().decode(handoff)]),
  });
  await jobs.loaded;
  return { jobs, recovered };
}

async function inTempDir(body: (file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(`${dir}/${ASSIGNED_JOBS_FILE}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a handoff kept with an assignment is handed back at the next load until it is marked taken; the job stays refused either way", async () => {
  await inTempDir(async (file) => {
    const first = await reopened(file);
    await first.jobs.assigned(id("a"), undefined, new TextEncoder().encode("receipt a"));
    await first.jobs.assigned(id("b"), 2, new TextEncoder().encode("receipt b"));
    await first.jobs.assigned(id("c"));

    const second = await reopened(file);
    assert.deepEqual(second.recovered, [[id("a"), "receipt a"], [id("b"), "receipt b"]]);
    await second.jobs.handed(id("a"));
    await second.jobs.close();

    const third = await reopened(file);
    assert.deepEqual(third.recovered, [[id("b"), "receipt b"]]);
    for (const name of ["a", "b", "c"]) {
      assert.throws(() => third.jobs.check(id(name)), AssignedJobError, name);
    }
    assert.throws(() => third.jobs.check(id("b")), /cancelled at 2 tokens/);
    assert.equal(third.jobs.stats().droppedRecords, 0);
    await third.jobs.close();
  });
});

Deno.test("an assigned jobs' file of version 1 (fixed records, no handoff) is still read: its jobs are refused, nothing recovered", async () => {
  await inTempDir(async (file) => {
    // Written as version 1 wrote it: header, then id | cancelled at (all ones: finished) | check.
    const record = (jobId: string, cancelledAt: number) => {
      const bytes = new Uint8Array(40);
      bytes.set(Uint8Array.from(jobId.match(/../g)!, (h) => parseInt(h, 16)));
      new DataView(bytes.buffer).setUint32(32, cancelledAt);
      bytes.set(sha256(bytes.subarray(0, 36)).subarray(0, 4), 36);
      return bytes;
    };
    const header = new TextEncoder().encode("vf-asg01");
    await Deno.writeFile(
      file,
      Uint8Array.from([...header, ...record(id("x"), 0xffff_ffff), ...record(id("y"), 5)]),
    );
    const { jobs, recovered } = await reopened(file);
    assert.deepEqual(recovered, []);
    assert.equal(jobs.stats().droppedRecords, 0);
    assert.throws(() => jobs.check(id("x")), /already ran to its end/);
    assert.throws(() => jobs.check(id("y")), /cancelled at 5 tokens/);
    await jobs.close();
  });
});
