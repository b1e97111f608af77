/**
 * The node's read-only state on a full disk (`node/disk_room.ts`), alone: the reserve file is
 * freed at every start and written again only with room; a full disk is read-only, said once in
 * the log with the free bytes and the floor; room that comes back ends it, seen by the timer (the
 * injected clock) or by the next refused write. The disk's free space is a fake probe.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DISK_RESERVE_BYTES,
  DISK_RESERVE_FILE,
  DISK_ROOM_CHECK_MS,
  DiskRoom,
} from "../../node/disk_room.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

const MiB = 1024 ** 2;
/** The floor of the tests: what `storage.putMinFreeBytes` would be. */
const FLOOR = 4 * MiB;

Deno.test("on a full disk the reserve is freed at open, the room is read-only saying the free bytes and the floor, and refusals are disk_full", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const reserve = join(dir, DISK_RESERVE_FILE);
    await Deno.writeFile(reserve, new Uint8Array(DISK_RESERVE_BYTES));
    const lines: string[] = [];
    const timers = new FakeTimers();
    const room = await DiskRoom.open({
      dir,
      floorBytes: FLOOR,
      freeBytes: () => MiB,
      timers,
      log: (line) => lines.push(line),
    });
    try {
      await assert.rejects(Deno.stat(reserve), Deno.errors.NotFound);
      assert.equal(room.readOnly, true);
      assert.deepEqual(room.state(), { readOnly: true, freeBytes: MiB, needsBytes: FLOOR });
      assert.equal(lines.length, 1);
      assert.match(lines[0], /^disk: read-only: 1048576 bytes free/);
      assert.match(lines[0], /needs 4194304 \(storage\.putMinFreeBytes\)/);
      const refused = await room.refusal();
      assert.ok(refused instanceof DiskFullError);
      assert.equal(refused.code, "disk_full");
      assert.equal(room.refusalNow()?.code, "disk_full");
      const [condition] = room.conditions();
      assert.equal(condition.code, "disk_full");
      assert.equal(condition.status, "degraded");
      assert.match(condition.message, /^read-only: /);
      // Still full: not written again, and said only once.
      timers.fireFor(DISK_ROOM_CHECK_MS);
      await turns(5);
      await assert.rejects(Deno.stat(reserve), Deno.errors.NotFound);
      assert.equal(lines.length, 1);
    } finally {
      room.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("room that comes back ends read-only on the timer, says so, and writes the reserve again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let free = MiB;
    const lines: string[] = [];
    const timers = new FakeTimers();
    const room = await DiskRoom.open({
      dir,
      floorBytes: FLOOR,
      freeBytes: () => free,
      timers,
      log: (line) => lines.push(line),
    });
    try {
      assert.equal(room.readOnly, true);
      free = 64 * MiB;
      // Only the timer asks: nothing changes before it fires.
      await turns(5);
      assert.equal(room.readOnly, true);
      timers.fireFor(DISK_ROOM_CHECK_MS);
      await turns(20);
      assert.equal(room.readOnly, false);
      assert.equal(room.refusalNow(), undefined);
      assert.deepEqual(room.conditions(), []);
      assert.match(lines.at(-1)!, /^disk: 67108864 bytes free: writes are taken again/);
      assert.equal((await Deno.stat(join(dir, DISK_RESERVE_FILE))).size, DISK_RESERVE_BYTES);
      // The disk is still watched: one timer, for a disk that fills again.
      assert.equal(timers.armed.size, 1);
    } finally {
      room.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a refused write asks the disk again: the write that finds room is taken, with no timer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let free = 0;
    const room = await DiskRoom.open({
      dir,
      floorBytes: FLOOR,
      freeBytes: () => free,
      timers: new FakeTimers(),
    });
    try {
      assert.equal((await room.refusal())?.code, "disk_full");
      free = FLOOR;
      assert.equal(await room.refusal(), undefined);
      assert.equal(room.readOnly, false);
    } finally {
      room.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with room at open the node writes, and the reserve is written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const room = await DiskRoom.open({ dir, floorBytes: FLOOR, freeBytes: () => 64 * MiB });
    try {
      assert.equal(room.readOnly, false);
      assert.equal(await room.refusal(), undefined);
      assert.equal((await Deno.stat(join(dir, DISK_RESERVE_FILE))).size, DISK_RESERVE_BYTES);
    } finally {
      room.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with no floor (putMinFreeBytes 0) the disk is never asked and the node never turns read-only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const timers = new FakeTimers();
    const room = await DiskRoom.open({
      dir,
      floorBytes: 0,
      freeBytes: () => {
        throw new Error("asked");
      },
      timers,
    });
    try {
      assert.equal(room.readOnly, false);
      assert.equal(await room.refusal(), undefined);
      assert.equal(timers.armed.size, 0);
    } finally {
      room.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
