/**
 * A StorageActor whose store directory is on a read-only mount and never held a store (the data
 * directory of a node first started there): it starts with an empty read-only store — reads find
 * nothing, a put is refused `storage_unwritable` (503), `/healthz`'s storage condition is
 * `storage_unwritable` — where its start used to fail (the store's folders could not be made) and
 * its supervisor restarted it until it gave up and took the node down. The mount is injected
 * (`tests/storage/_read_only_mount.ts`), so this holds as root too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageCapacity,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { STORAGE_UNWRITABLE, storageConditions } from "../../actors/storage_conditions.ts";
import { cidOf } from "../../protocols/cid.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { readOnlyMount } from "../storage/_read_only_mount.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

Deno.test("a storage actor whose never-used store folder is on a read-only mount starts with an empty read-only store: reads find nothing, puts are 503 storage_unwritable, /healthz says storage_unwritable", async () => {
  const parent = await Deno.makeTempDir();
  const dir = join(parent, "store");
  const mount = readOnlyMount(parent);
  const lines: string[] = [];
  const system = new ActorSystem({ name: "read-only-empty" });
  const crashes: string[] = [];
  const unsubscribe = system.events.subscribe((event) => {
    if (event.type === "restarted" || event.type === "crashed") crashes.push(event.type);
  });
  try {
    // Failed before the fix: the spawn rejected, StorageUnwritableError from the store's open.
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: 1024,
          store: { durable: false },
          log: (line) => lines.push(line),
        }) as never,
    });
    const capacity = unwrapReply<StorageCapacity>(await ref.ask({ type: "capacity" }));
    assert.equal(capacity.readOnly, true);
    assert.equal(capacity.objectCount, 0);
    assert.equal(capacity.pinCount, 0);
    assert.ok(
      lines.some((line) => /read-only/.test(line) && line.includes(dir)),
      `no log line says the store is read-only: ${JSON.stringify(lines)}`,
    );

    const [condition, ...others] = await storageConditions(ref);
    assert.deepEqual(others, []);
    assert.equal(condition.code, STORAGE_UNWRITABLE);
    assert.match(condition.message, /opened read-only/);

    const missing = cidOf(pseudoRandomBytes(100, 1));
    const read = await ref.ask({ type: "get_bytes", cid: missing, local: true });
    assert.equal((read as { ok: boolean }).ok, false);
    assert.equal((read as { error: { code: string } }).error.code, "chunk_not_found");

    const handle = await ref.ask<PutHandle>({
      type: "put",
      source: streamOf(pseudoRandomBytes(2_000, 2)),
    });
    await assert.rejects(handle.done, (error: Error & { code?: string }) => {
      assert.equal(error.code, STORAGE_UNWRITABLE, String(error));
      assert.equal(httpStatusOf(error), 503);
      return true;
    });

    // Still the condition after the refused put (now naming the write the mount refused).
    assert.deepEqual(
      (await storageConditions(ref)).map((c) => c.code),
      [STORAGE_UNWRITABLE],
    );
    assert.deepEqual(crashes, [], "the storage actor crashed");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(parent)), [], "nothing made on the mount");
  } finally {
    unsubscribe();
    await system.shutdown();
    mount.restore();
    await Deno.remove(parent, { recursive: true });
  }
});
