/**
 * The free space a put is judged on is read from the disk (statfs) while the store goes on: a
 * write whose pack lands after the disk was read, and whose in-flight reserve is taken off before
 * the answer comes back, was counted neither on the disk nor in flight, and a put was admitted
 * past the room (CI, stop 81: "stored 5 of 32" where the disk had room for 4). The disk here is
 * the store's `freeBytes` test hook: it reads the free space when asked and answers when the test
 * lets it, and each pack takes its size off as it lands (`beforeIndex`, before the store counts it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { OBJECT_OVERHEAD_BYTES, PACK_OVERHEAD_BYTES } from "../../storage/_chunk_costs.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { DiskFullError } from "../../storage/errors.ts";
import { admissionCost } from "../../storage/_put_admission.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { CHUNK_SIZE, FLOOR } from "./_small_disk.ts";

const UPLOAD = 8 * CHUNK_SIZE;
/** What the store charges one chunk written alone. */
const CHUNK_COST = CHUNK_SIZE + OBJECT_OVERHEAD_BYTES + PACK_OVERHEAD_BYTES;

/** A disk of `free` bytes whose next read can be held: a read is what was free when it was made. */
class SlowDisk {
  free: number;
  #next: { made: () => void; answered: Promise<void> } | undefined;

  constructor(free: number) {
    this.free = free;
  }

  /** The store's `freeBytes` hook. */
  read = async (): Promise<number> => {
    const now = this.free;
    const held = this.#next;
    this.#next = undefined;
    if (held) {
      held.made();
      await held.answered;
    }
    return now;
  };

  /** The store's `beforeIndex` hook: a pack in place takes its size off the disk. */
  landed = (packPath: string): void => {
    this.free -= Deno.statSync(packPath).size;
  };

  /** Hold the next read: `made` resolves once it has read the disk, `answer` lets it return. */
  holdNext(): { made: Promise<void>; answer: () => void } {
    const made = Promise.withResolvers<void>();
    const answered = Promise.withResolvers<void>();
    this.#next = { made: made.resolve, answered: answered.promise };
    return { made: made.promise, answer: answered.resolve };
  }
}

Deno.test("an upload whose disk read predates another upload's landed writes is refused, not admitted past the room", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cost = admissionCost(UPLOAD, CHUNK_SIZE);
    // Room above the floor for one upload and half of another.
    const disk = new SlowDisk(FLOOR + cost + cost / 2);
    const store = await ChunkStore.open(dir, {
      durable: false,
      putMinFreeBytes: FLOOR,
      faults: { freeBytes: disk.read, beforeIndex: disk.landed },
    });
    const first = await store.admitPut(UPLOAD, CHUNK_SIZE);
    const chunks = Array.from({ length: 8 }, (_, i) => pseudoRandomBytes(CHUNK_SIZE, 1 + i));
    try {
      const read = disk.holdNext();
      const second = store.admitPut(UPLOAD, CHUNK_SIZE);
      second.catch(() => {}); // judged once its read is answered
      await read.made;
      // While the second's read is under way, the first writes more than the half upload beyond
      // its own room, and it lands: off the disk, and off the first's promise.
      for (const chunk of chunks.slice(0, 5)) await store.put(chunk, { admission: first });
      read.answer();
      // Before: judged on the disk as it was and the promises as they are now, it was admitted,
      // and the two uploads' room was more than the disk held.
      await assert.rejects(second, DiskFullError);
      // The first still has its room: its rest is written, and the floor is kept.
      for (const chunk of chunks.slice(5)) await store.put(chunk, { admission: first });
      assert.ok(disk.free >= FLOOR, `${disk.free} free, below the floor ${FLOOR}`);
    } finally {
      first.release();
    }
    assert.equal((await store.stats()).objectCount, 8);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a put not admitted ahead, whose disk read predates another write's landing, is judged on what that write took", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Room above the floor for one chunk and half of another.
    const disk = new SlowDisk(FLOOR + CHUNK_COST + CHUNK_COST / 2);
    const store = await ChunkStore.open(dir, {
      durable: false,
      putMinFreeBytes: FLOOR,
      faults: { freeBytes: disk.read, beforeIndex: disk.landed },
    });
    const read = disk.holdNext();
    const late = store.put(pseudoRandomBytes(CHUNK_SIZE, 1));
    late.catch(() => {}); // judged once its read is answered
    await read.made;
    const early = await store.put(pseudoRandomBytes(CHUNK_SIZE, 2));
    read.answer();
    // Before: both were written, the second below the floor.
    await assert.rejects(late, DiskFullError);
    assert.ok(disk.free >= FLOOR, `${disk.free} free, below the floor ${FLOOR}`);
    assert.equal((await store.stats()).objectCount, 1);
    assert.ok(await store.has(early));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
