/**
 * The file a forwarding node keeps its assigned jobs in (`network/_assigned_job_file.ts`, review
 * s78): read back by the next `AssignedJobs` over it (a restart), bounded, and never stopping the
 * node when it is torn or garbage.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobError, AssignedJobs } from "../../network/_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { sha256Hex } from "../../protocols/hash.ts";

/** A job id (64 hex digits) for `name`. */
const id = (name: string) => sha256Hex(new TextEncoder().encode(name));

/** Bytes of the file's header and of one record (`_assigned_job_file.ts`). */
const HEADER_BYTES = 8;
const RECORD_BYTES = 44; // version 3: a 4-byte mark, the id, the field and the check

/** An `AssignedJobs` over `file`, read back; `max`: a bound by count alone, however young. */
async function opened(file: string, max?: number): Promise<AssignedJobs> {
  const jobs = new AssignedJobs({ file, max, hardMax: max });
  await jobs.loaded;
  return jobs;
}

/** Whether `jobs` refuses `jobId` as assigned, and the refusal's message. */
function refusal(jobs: AssignedJobs, jobId: string): string | undefined {
  try {
    jobs.check(jobId);
    return undefined;
  } catch (error) {
    assert.ok(error instanceof AssignedJobError);
    assert.equal(error.code, "duplicate_job");
    return error.message;
  }
}

async function inTempDir(body: (file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(`${dir}/${ASSIGNED_JOBS_FILE}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("assigned jobs kept in a file are refused after a restart, a finished and a cancelled one each as before; past the bound the oldest is forgotten", async () => {
  await inTempDir(async (file) => {
    const before = await opened(file, 2);
    await before.assigned(id("a"), 3);
    await before.assigned(id("b"));
    const after = await opened(file, 2);
    assert.match(refusal(after, id("a")) ?? "", /cancelled at 3 tokens/);
    assert.match(refusal(after, id("b")) ?? "", /already ran to its end/);
    assert.equal(after.stats().droppedRecords, 0);
    await after.assigned(id("c"));
    const third = await opened(file, 2);
    assert.equal(refusal(third, id("a")), undefined, "the oldest was kept past the bound");
    assert.ok(refusal(third, id("b")) !== undefined);
    assert.ok(refusal(third, id("c")) !== undefined);
    // Rewritten at load with what it keeps: the bound holds on disk too.
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES + 2 * RECORD_BYTES);
  });
});

Deno.test("a torn tail of the assigned jobs' file (a crash mid-append) is skipped and the records before it kept; a damaged record is skipped alone", async () => {
  await inTempDir(async (file) => {
    const before = await opened(file);
    for (const name of ["a", "b", "c"]) await before.assigned(id(name));
    const bytes = await Deno.readFile(file);
    bytes[HEADER_BYTES + RECORD_BYTES + 5] ^= 0xff; // "b" damaged
    const torn = new Uint8Array([...bytes, ...bytes.subarray(HEADER_BYTES, HEADER_BYTES + 17)]);
    await Deno.writeFile(file, torn);
    const after = await opened(file);
    assert.equal(after.stats().droppedRecords, 2, "the damaged record and the torn tail");
    assert.ok(refusal(after, id("a")) !== undefined);
    assert.equal(refusal(after, id("b")), undefined);
    assert.ok(refusal(after, id("c")) !== undefined);
    // Appends follow whole records again: the next restart reads them all.
    await after.assigned(id("d"));
    const third = await opened(file);
    assert.equal(third.stats().droppedRecords, 0);
    for (const name of ["a", "c", "d"]) assert.ok(refusal(third, id(name)) !== undefined, name);
  });
});

Deno.test("a garbage assigned jobs' file does not stop the port: it is read as empty, replaced, and what is assigned after is kept", async () => {
  await inTempDir(async (file) => {
    await Deno.writeFile(file, new TextEncoder().encode("not a log of assigned jobs at all\n"));
    const jobs = await opened(file);
    assert.equal(jobs.stats().droppedRecords, 1);
    assert.equal(refusal(jobs, id("a")), undefined);
    await jobs.assigned(id("a"));
    const after = await opened(file);
    assert.equal(after.stats().droppedRecords, 0);
    assert.ok(refusal(after, id("a")) !== undefined);
  });
});

Deno.test("the assigned jobs' file is compacted once it holds more than twice the bound", async () => {
  await inTempDir(async (file) => {
    const jobs = await opened(file, 2);
    for (let i = 0; i < 5; i++) await jobs.assigned(id(`job-${i}`));
    // 5 records appended over a bound of 2: rewritten with the newest 2 at the fifth.
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES + 2 * RECORD_BYTES);
    const after = await opened(file, 2);
    assert.ok(refusal(after, id("job-4")) !== undefined);
    assert.ok(refusal(after, id("job-3")) !== undefined);
    assert.equal(refusal(after, id("job-2")), undefined);
  });
});

Deno.test("assignments made while a write of the file runs join the next write: each resolves once on disk, and all are read back", async () => {
  await inTempDir(async (file) => {
    const jobs = await opened(file);
    const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    await Promise.all(names.map((name) => jobs.assigned(id(name))));
    assert.equal((await Deno.stat(file)).size, HEADER_BYTES + names.length * RECORD_BYTES);
    const after = await opened(file);
    for (const name of names) assert.ok(refusal(after, id(name)) !== undefined, name);
  });
});
