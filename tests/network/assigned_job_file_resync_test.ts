/**
 * The assigned jobs' file (`network/_assigned_job_file.ts`) past a damaged record in its middle,
 * and the cost of keeping it bounded (stop 80): a damaged length lost every later record (every
 * later job's receipt handoff, paid in no ledger after a restart), and a file holding more than
 * its byte bound of handoffs not taken yet was rewritten whole at every append.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssignedJobError, AssignedJobs } from "../../network/_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE } from "../../network/_assigned_job_file.ts";
import { sha256, sha256Hex } from "../../protocols/hash.ts";

/** A job id (64 hex digits) for `name`. */
const id = (name: string) => sha256Hex(new TextEncoder().encode(name));

/** A handoff of `size` bytes, each `fill`: easy to find in the file. */
const handoffOf = (fill: number, size = 300) => new Uint8Array(size).fill(fill);

/** An `AssignedJobs` over `file`, read back, with the handoffs it recovered and what it logged. */
async function reopened(file: string, maxFileBytes?: number): Promise<{
  jobs: AssignedJobs;
  recovered: Map<string, Uint8Array>;
  logged: string[];
}> {
  const recovered = new Map<string, Uint8Array>();
  const logged: string[] = [];
  const jobs = new AssignedJobs({
    file,
    maxFileBytes,
    recover: (jobId, handoff) => recovered.set(jobId, handoff),
    log: (line) => logged.push(line),
  });
  await jobs.loaded;
  return { jobs, recovered, logged };
}

/** Whether `jobs` refuses `jobId` as assigned. */
function refused(jobs: AssignedJobs, jobId: string): boolean {
  try {
    jobs.check(jobId);
    return false;
  } catch (error) {
    assert.ok(error instanceof AssignedJobError);
    return true;
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

/** Where `needle` first occurs in `bytes`. */
function find(bytes: Uint8Array, needle: Uint8Array): number {
  for (let at = 0; at + needle.length <= bytes.length; at++) {
    if (needle.every((b, i) => bytes[at + i] === b)) return at;
  }
  throw new Error("not found");
}

/** The file's version, from its header ("vf-asg02", "vf-asg03"). */
const versionOf = (bytes: Uint8Array) => new TextDecoder().decode(bytes.subarray(0, 8));

Deno.test("a damaged handoff length in the middle of the assigned jobs' file costs that record only: every later job's receipt handoff is recovered at restart, and the skip is logged", async () => {
  await inTempDir(async (file) => {
    const first = await reopened(file);
    const names = ["a", "b", "c", "d"];
    for (const [i, name] of names.entries()) {
      await first.jobs.assigned(id(name), undefined, handoffOf(0xa0 + i));
    }
    await first.jobs.close();
    const bytes = await Deno.readFile(file);
    // The length of b's handoff: just before it (version 2), or before its head check (3).
    const handoffAt = find(bytes, handoffOf(0xa1));
    const lengthAt = handoffAt - (versionOf(bytes) === "vf-asg02" ? 4 : 8);
    new DataView(bytes.buffer).setUint32(lengthAt, 200); // plausible, and wrong
    await Deno.writeFile(file, bytes);

    const after = await reopened(file);
    // What the validator is handed again (what pays each worker): a, c and d, not b.
    assert.deepEqual([...after.recovered.keys()], [id("a"), id("c"), id("d")]);
    assert.deepEqual(after.recovered.get(id("c")), handoffOf(0xa2));
    assert.deepEqual(after.recovered.get(id("d")), handoffOf(0xa3));
    for (const name of ["a", "c", "d"]) assert.ok(refused(after.jobs, id(name)), name);
    assert.equal(refused(after.jobs, id("b")), false, "b's record is lost");
    assert.equal(after.jobs.stats().droppedRecords, 1);
    assert.equal(after.logged.length, 1);
    assert.match(after.logged[0], /skipped \d+ torn or damaged bytes at offset \d+/);
    await after.jobs.close();

    // Rewritten at that load with what it kept: the next restart reads it whole.
    const third = await reopened(file);
    assert.equal(third.jobs.stats().droppedRecords, 0);
    assert.deepEqual([...third.recovered.keys()], [id("a"), id("c"), id("d")]);
    await third.jobs.close();
  });
});

Deno.test("a stretch of zeros across two records of the assigned jobs' file (a lost block) costs those two only; a torn tail after it is skipped too", async () => {
  await inTempDir(async (file) => {
    const first = await reopened(file);
    const names = ["a", "b", "c", "d", "e"];
    for (const [i, name] of names.entries()) {
      await first.jobs.assigned(id(name), i === 4 ? 7 : undefined, handoffOf(0xb0 + i));
    }
    await first.jobs.close();
    const bytes = await Deno.readFile(file);
    // From the middle of b's handoff to the middle of c's.
    bytes.fill(0, find(bytes, handoffOf(0xb1)) + 150, find(bytes, handoffOf(0xb2)) + 150);
    const torn = Uint8Array.from([...bytes, ...bytes.subarray(8, 60)]);
    await Deno.writeFile(file, torn);

    const after = await reopened(file);
    assert.deepEqual([...after.recovered.keys()], [id("a"), id("d"), id("e")]);
    assert.deepEqual(after.recovered.get(id("e")), handoffOf(0xb4));
    assert.throws(() => after.jobs.check(id("e")), /cancelled at 7 tokens/);
    assert.equal(after.jobs.stats().droppedRecords, 2, "the lost block and the torn tail");
    assert.equal(after.logged.length, 2);
    await after.jobs.close();
  });
});

Deno.test("an assigned jobs' file of version 2 (handoffs, records not marked) is still read, its handoffs recovered, and rewritten as version 3", async () => {
  await inTempDir(async (file) => {
    // Written as version 2 wrote it: id | flag and cancelled at | [length | handoff] | check.
    const record = (jobId: string, cancelledAt: number, handoff?: Uint8Array) => {
      const head = 36 + (handoff === undefined ? 0 : 4);
      const body = head + (handoff?.length ?? 0);
      const bytes = new Uint8Array(body + 4);
      bytes.set(Uint8Array.from(jobId.match(/../g)!, (h) => parseInt(h, 16)));
      const view = new DataView(bytes.buffer);
      view.setUint32(32, handoff === undefined ? cancelledAt : (cancelledAt | 0x8000_0000) >>> 0);
      if (handoff !== undefined) {
        view.setUint32(36, handoff.length);
        bytes.set(handoff, head);
      }
      bytes.set(sha256(bytes.subarray(0, body)).subarray(0, 4), body);
      return bytes;
    };
    const header = new TextEncoder().encode("vf-asg02");
    await Deno.writeFile(
      file,
      Uint8Array.from([
        ...header,
        ...record(id("x"), 0x7fff_ffff, handoffOf(0xc0)),
        ...record(id("y"), 5),
        ...record(id("z"), 0x7fff_ffff, handoffOf(0xc2, 50)),
      ]),
    );
    const { jobs, recovered } = await reopened(file);
    assert.deepEqual([...recovered], [[id("x"), handoffOf(0xc0)], [id("z"), handoffOf(0xc2, 50)]]);
    assert.throws(() => jobs.check(id("y")), /cancelled at 5 tokens/);
    assert.equal(jobs.stats().droppedRecords, 0);
    await jobs.close();
    assert.equal(versionOf(await Deno.readFile(file)), "vf-asg03");
    const again = await reopened(file);
    assert.deepEqual([...again.recovered.keys()], [id("x"), id("z")]);
    await again.jobs.close();
  });
});

Deno.test("receipt handoffs not taken past the file's byte bound are not rewritten at every append: compaction waits for as many dead bytes as live ones", async () => {
  await inTempDir(async (file) => {
    const bound = 2048;
    const { jobs } = await reopened(file, bound);
    // 100 handoffs of 300 bytes the validator has not taken: about 30 KiB live, 15 bounds.
    const count = 100;
    for (let i = 0; i < count; i++) {
      await jobs.assigned(id(`job-${i}`), undefined, handoffOf(i));
    }
    assert.equal(jobs.compactions, 0, `${jobs.compactions} compactions, nothing in the file dead`);
    const full = (await Deno.stat(file)).size;
    // Taken one by one: the file is compacted a few times, not at every append, and stays
    // bounded by its live bytes and the bound.
    let largest = 0;
    for (let i = 0; i < count; i++) {
      await jobs.handed(id(`job-${i}`));
      largest = Math.max(largest, (await Deno.stat(file)).size);
    }
    assert.ok(jobs.compactions >= 1 && jobs.compactions <= 6, `${jobs.compactions} compactions`);
    assert.ok(largest <= 2 * full, `${largest} bytes, over twice ${full}`);
    const taken = (await Deno.stat(file)).size;
    const live = 8 + count * 44;
    assert.ok(taken < live + Math.max(live, bound), `${taken} bytes once all were taken`);
    await jobs.close();
    const after = await reopened(file, bound);
    assert.equal(after.recovered.size, 0, "every handoff was taken");
    for (let i = 0; i < count; i++) assert.ok(refused(after.jobs, id(`job-${i}`)));
    await after.jobs.close();
  });
});

Deno.test("assigned and handed at once, job after job, the assigned jobs' file stays within its live bytes and the bound", async () => {
  await inTempDir(async (file) => {
    const bound = 4096;
    const { jobs } = await reopened(file, bound);
    for (let i = 0; i < 150; i++) {
      await jobs.assigned(id(`job-${i}`), undefined, handoffOf(i % 256, 200));
      await jobs.handed(id(`job-${i}`));
      const live = 8 + (i + 1) * 44;
      const size = (await Deno.stat(file)).size;
      assert.ok(size <= live + Math.max(live, bound) + 256, `${size} bytes at job ${i}`);
    }
    assert.ok(jobs.compactions >= 1);
    await jobs.close();
  });
});
