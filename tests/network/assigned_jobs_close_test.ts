/**
 * A router's assigned-jobs file is closed with its port as the node stops
 * (`NetworkInferencePort.close`, `AssignedJobs.close`): the load (a rewrite of the file) and every
 * append asked before have landed when the close resolves, and nothing is written after. A load
 * nobody waited for rewrote the file after the node stopped, and the removal of its data
 * directory failed "Directory not empty" (a flaky node test, s78). The disk is held by the test
 * (`_held_disk.ts`), so the order is fixed whatever the machine's speed.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { AssignedJobError, AssignedJobs } from "../../network/_assigned_jobs.ts";
import {
  ASSIGNED_JOBS_FILE,
  AssignedJobFile,
  AssignedJobFileClosedError,
} from "../../network/_assigned_job_file.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { delay } from "../_helpers/wait.ts";
import { holdDisk } from "./_held_disk.ts";

/** A job id (64 hex digits) for `name`. */
const id = (name: string) => sha256Hex(new TextEncoder().encode(name));

/** Whether `jobs` refuses `jobId` as assigned. */
function refuses(jobs: AssignedJobs, jobId: string): boolean {
  try {
    jobs.check(jobId);
    return false;
  } catch (error) {
    if (error instanceof AssignedJobError) return true;
    throw error;
  }
}

async function inTempDir(body: (dir: string, file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir, `${dir}/${ASSIGNED_JOBS_FILE}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Call `close` while the disk holds the load's rewrite, and let the disk go only after a
 * macrotask, by which time a close that does not wait has resolved (a pause that orders, not one
 * that races a deadline). Marks `closed` in the disk's record when it resolves.
 */
async function closeWhileHeld(
  disk: ReturnType<typeof holdDisk>,
  close: () => Promise<void>,
): Promise<void> {
  await disk.held;
  const closed = close().then(() => void disk.ops.push("closed"));
  await delay(0);
  disk.release();
  await closed;
}

Deno.test("a router's port closed right after it started waits for its assigned-jobs file's rewrite, and its data directory holds still after", async () => {
  await inTempDir(async (dir, file) => {
    const disk = holdDisk(file);
    try {
      // Its network is asked nothing: no job is submitted.
      const network = {} as ActorRef<NetworkMessage>;
      const port = new NetworkInferencePort(network, undefined, undefined, {
        assignedJobsFile: file,
      });
      await closeWhileHeld(disk, () => port.close());
      assert.deepEqual(disk.ops, ["open tmp", "renamed", "closed"]);
      const files = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.deepEqual(files, [ASSIGNED_JOBS_FILE], "no temporary file left behind");
      await port.close(); // idempotent
      assert.deepEqual(disk.ops, ["open tmp", "renamed", "closed"]);
    } finally {
      disk.restore();
    }
  });
});

Deno.test("assigned jobs closed mid-load: the assignment asked before lands before the close resolves, one after is kept in memory only", async () => {
  await inTempDir(async (_dir, file) => {
    const disk = holdDisk(file);
    const jobs = new AssignedJobs({ file });
    try {
      // Asked before the close, while the load is held: it waits for the load, then is appended.
      const before = jobs.assigned(id("before"));
      await closeWhileHeld(disk, () => jobs.close());
      await before;
      await jobs.assigned(id("after"));
      assert.deepEqual(disk.ops, ["open tmp", "renamed", "open", "closed"]);
      assert.ok(refuses(jobs, id("after")), "still refused by this port, from memory");
    } finally {
      disk.restore();
    }
    const restarted = new AssignedJobs({ file });
    await restarted.loaded;
    assert.ok(refuses(restarted, id("before")), "the assignment asked before the close is on disk");
    assert.ok(!refuses(restarted, id("after")), "nothing was written after the close");
    await restarted.close();
  });
});

Deno.test("a closed assigned-jobs file refuses every later load, append and compaction with assigned_jobs_closed", async () => {
  await inTempDir(async (_dir, path) => {
    const file = new AssignedJobFile(path);
    await file.load(8);
    await file.close();
    for (
      const asked of [
        () => file.append({ jobId: id("a") }),
        () => file.compact([]),
        () => file.load(8),
      ]
    ) {
      const error = await asked().then(() => undefined, (e) => e);
      assert.ok(error instanceof AssignedJobFileClosedError, String(error));
      assert.equal(error.code, "assigned_jobs_closed");
    }
  });
});
