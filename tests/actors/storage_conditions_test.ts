/**
 * `/healthz`'s conditions from the node's store (`actors/storage_conditions.ts`, review s71,
 * finding 3: a store that could not write was `ok`): a write the OS refuses is the `storage`
 * condition `storage_unwritable` (degraded), logged once, until a write succeeds (one line says
 * so); a store opened read-only is the same condition while it is; a StorageActor that does not
 * answer is a condition too; a node with no store has none. The OS errors are injected through the
 * store's fault hooks, as in `storage_write_failure_test.ts`, so this holds as root too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { StorageActor, type StorageActorOptions } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { ConditionOnsets } from "../../actors/condition_onsets.ts";
import { PendingAsks } from "../../actors/pending_asks.ts";
import {
  STORAGE_DISK_FULL,
  STORAGE_DISK_LOW,
  STORAGE_UNWRITABLE,
  storageConditions,
} from "../../actors/storage_conditions.ts";
import type { StorageAnswers } from "../../actors/storage_actor_messages.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

/** An OS error as Deno throws it (`code` and the OS's message). */
function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A StorageActor on a fresh directory, in a system, with `options`; `close` removes both. */
async function storageIn(options: Omit<StorageActorOptions, "dir">) {
  const dir = await Deno.makeTempDir();
  // The store as a node's first start leaves it (its folders made): a later start may find the
  // directory unwritable.
  await ChunkStore.open(dir, { durable: false });
  const system = new ActorSystem({ name: "storage-conditions" });
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, chunkSize: 1024, ...options }) as never,
  });
  return {
    dir,
    ref,
    put: async (seed: number) => {
      const handle = await ref.ask<PutHandle>({
        type: "put",
        source: streamOf(pseudoRandomBytes(2_000, seed)),
      });
      return await handle.done;
    },
    close: async () => {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a put the OS refuses makes the storage condition storage_unwritable, logged once; the next write that succeeds clears it, in one line", async () => {
  let refuse = false;
  const lines: string[] = [];
  const s = await storageIn({
    store: {
      durable: false,
      faults: {
        beforeWrite: () => {
          if (refuse) throw osError("EROFS", "Read-only file system (os error 30)");
        },
      },
    },
    log: (line) => lines.push(line),
  });
  try {
    const { cid } = await s.put(1);
    assert.deepEqual(await storageConditions(s.ref), []);
    refuse = true;
    for (const seed of [2, 3]) {
      await assert.rejects(
        s.put(seed),
        (e: Error & { code?: string }) => e.code === STORAGE_UNWRITABLE,
      );
    }
    // Failed before the fix: the store's figures said nothing of it, and `/healthz` was ok.
    const [condition, ...others] = await storageConditions(s.ref);
    assert.deepEqual(others, []);
    assert.equal(condition.component, "storage");
    assert.equal(condition.status, "degraded");
    assert.equal(condition.code, STORAGE_UNWRITABLE);
    assert.ok(condition.message.includes(s.dir), condition.message);
    assert.match(condition.message, /EROFS/);
    const errors = () => lines.filter((line) => line.startsWith("error: storage:"));
    assert.equal(errors().length, 1, lines.join("\n"));
    // A pin is a write too: one that succeeds clears the condition.
    refuse = false;
    assert.equal((await s.ref.ask<{ ok: boolean }>({ type: "pin", cid })).ok, true);
    assert.deepEqual(await storageConditions(s.ref), []);
    assert.ok(
      lines.some((line) => /writes succeed again \(2 refused/.test(line)),
      lines.join("\n"),
    );
    assert.equal(errors().length, 1);
  } finally {
    await s.close();
  }
});

Deno.test("a store opened read-only is the storage condition storage_unwritable while it is", async () => {
  const s = await storageIn({
    store: { durable: false, faults: { refusesWrites: () => true } },
  });
  try {
    const [condition, ...others] = await storageConditions(s.ref);
    assert.deepEqual(others, []);
    assert.equal(condition.code, STORAGE_UNWRITABLE);
    assert.match(condition.message, /opened read-only/);
  } finally {
    await s.close();
  }
});

Deno.test("a StorageActor that does not answer is a storage condition; a node with no store has none", async () => {
  assert.deepEqual(await storageConditions(undefined), []);
  const silent = {
    ask: () =>
      Promise.reject(
        Object.assign(new Error("ask timed out after 2000 ms"), { code: "ask_timeout" }),
      ),
  } as unknown as ActorRef<StorageMessage>;
  const [condition] = await storageConditions(silent, () => 42);
  assert.deepEqual(condition, {
    component: "storage",
    status: "degraded",
    code: "ask_timeout",
    message: "the storage actor did not answer: ask timed out after 2000 ms",
    since: 42,
  });
});

// Review s74 F2: a node refusing every put with 507 disk_full answered /healthz `ok`, and no series
// showed the free space.
Deno.test("a put refused disk_full makes the storage condition storage_disk_full until a write succeeds; the capacity answer carries the free bytes", async () => {
  let full = false;
  const lines: string[] = [];
  const s = await storageIn({
    store: {
      durable: false,
      faults: {
        beforeWrite: () => {
          if (full) throw osError("ENOSPC", "No space left on device (os error 28)");
        },
        freeBytes: () => (full ? 1_000 : 50_000_000),
      },
    },
    log: (line) => lines.push(line),
  });
  try {
    await s.put(1);
    assert.deepEqual(await storageConditions(s.ref), []);
    full = true;
    for (const seed of [2, 3]) {
      await assert.rejects(s.put(seed), (e: Error & { code?: string }) => e.code === "disk_full");
    }
    const [condition, ...others] = await storageConditions(s.ref);
    assert.deepEqual(others, []);
    assert.equal(condition.code, STORAGE_DISK_FULL);
    assert.equal(condition.status, "degraded");
    assert.match(condition.message, /2 write\(s\) refused disk_full.*1000 bytes free/);
    const capacity = unwrapReply<StorageAnswers["capacity"]>(
      await s.ref.ask({ type: "capacity" }),
    );
    assert.equal(capacity.diskFreeBytes, 1_000);
    assert.equal(capacity.writeFault, undefined, "not storage_unwritable");
    assert.equal(lines.filter((l) => l.includes("disk_full")).length, 1, "logged once");
    full = false;
    await s.put(4);
    assert.deepEqual(await storageConditions(s.ref), []);
  } finally {
    await s.close();
  }
});

Deno.test("free space under the store's floor (replicaMinFreeBytes) is the storage_disk_low condition, not storage_disk_full (review verify4, F5: alerts tell refused replicas from refused puts)", async () => {
  let free = 10_000_000;
  const s = await storageIn({
    store: { durable: false, replicaMinFreeBytes: 5_000_000, faults: { freeBytes: () => free } },
  });
  try {
    assert.deepEqual(await storageConditions(s.ref), []);
    free = 4_000_000;
    const [condition] = await storageConditions(s.ref);
    assert.equal(condition.code, STORAGE_DISK_LOW);
    assert.match(condition.message, /4000000 bytes free, under the 5000000/);
  } finally {
    await s.close();
  }
});

Deno.test("free space under the floor and a store opened read-only keep the since of when they were first seen, across checks; a condition that clears and comes back begins anew (review verify4, F5)", async () => {
  let free = 4_000_000;
  const s = await storageIn({
    store: {
      durable: false,
      replicaMinFreeBytes: 5_000_000,
      faults: { freeBytes: () => free, refusesWrites: () => true },
    },
  });
  try {
    const asks = new PendingAsks();
    const onsets = new ConditionOnsets();
    let clock = 1_000_000;
    const check = async () =>
      (await storageConditions(s.ref, () => clock, asks, onsets)).map((c) => [c.code, c.since]);
    assert.deepEqual(await check(), [[STORAGE_DISK_LOW, 1_000_000], [
      STORAGE_UNWRITABLE,
      1_000_000,
    ]]);
    clock += 5_000;
    assert.deepEqual(await check(), [[STORAGE_DISK_LOW, 1_000_000], [
      STORAGE_UNWRITABLE,
      1_000_000,
    ]]);
    free = 10_000_000;
    clock += 5_000;
    assert.deepEqual(await check(), [[STORAGE_UNWRITABLE, 1_000_000]]);
    free = 4_000_000;
    clock += 5_000;
    assert.deepEqual(await check(), [[STORAGE_DISK_LOW, 1_015_000], [
      STORAGE_UNWRITABLE,
      1_000_000,
    ]]);
  } finally {
    await s.close();
  }
});
