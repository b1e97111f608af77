/**
 * The StorageActor over a disk that refuses writes (review s70, findings 3 and 4): a peer's
 * `put_chunk` or a `pin` whose write the OS refuses (`EROFS`, `ENOSPC`) is answered with a typed
 * error and the actor goes on serving reads, rather than crashing (a raw error crashes it, and its
 * restart failed on the same directory); a restart on a directory it cannot write opens the store
 * read-only, says so in the log, and serves what it holds. The OS errors are injected through the
 * store's fault hooks, so the tests hold as root too.
 */
import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageCapacity,
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

/** An OS error as Deno throws it (`code` and the OS's message). */
function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The code of the typed error `message` was answered with (a thrown error fails the test). */
async function refusedWith(actor: StorageActor, message: StorageMessage): Promise<string> {
  const reply = await actor.receive(message) as StorageReply<unknown>;
  assert.equal(reply.ok, false, `${message.type} was not refused`);
  return (reply as { error: { code: string } }).error.code;
}

Deno.test("a peer's put_chunk and a pin the disk refuses are answered with typed errors, and the actor still serves reads", async () => {
  const dir = await Deno.makeTempDir();
  let refuse: "EROFS" | "ENOSPC" | null = null;
  const readOnly = () => {
    if (refuse === "EROFS") throw osError("EROFS", "Read-only file system (os error 30)");
  };
  const full = () => {
    readOnly();
    if (refuse === "ENOSPC") throw osError("ENOSPC", "No space left on device (os error 28)");
  };
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    // The disk full with room for one pack still: a record after it hits ENOSPC.
    store: { durable: false, faults: { beforeWrite: readOnly, beforeRecordWrite: full } },
  });
  await actor.preStart();
  const data = pseudoRandomBytes(4096, 3);
  const put = await actor.receive({ type: "put", source: streamOf(data), name: "a.txt" });
  const { cid } = await (put as PutHandle).done;
  const before = unwrapReply<StorageCapacity>(await actor.receive({ type: "capacity" }));

  refuse = "EROFS";
  const chunk = pseudoRandomBytes(100, 5);
  const putChunk: StorageMessage = {
    type: "put_chunk",
    cid: cidOf(chunk),
    bytes: chunk,
    from: "ab".repeat(32),
  };
  assert.equal(await refusedWith(actor, putChunk), "storage_unwritable");
  refuse = "ENOSPC";
  assert.equal(await refusedWith(actor, putChunk), "disk_full");
  // The file's pin, written again with its label: its record hits the full disk.
  assert.equal(await refusedWith(actor, { type: "pin", cid }), "disk_full");

  // Still the same actor, serving what it holds; the refused chunk was kept nowhere.
  const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid }));
  assert.deepEqual(bytes, data);
  const after = unwrapReply<StorageCapacity>(await actor.receive({ type: "capacity" }));
  assert.equal(after.replicaCount, 0);
  assert.equal(after.replicaBytes, 0);
  assert.equal(after.objectCount, before.objectCount + 1, "its pack landed, unrooted");

  // Once the disk takes writes again, the peer's retry is held.
  refuse = null;
  assert.equal(unwrapReply(await actor.receive(putChunk)), undefined);
  const held = unwrapReply<StorageCapacity>(await actor.receive({ type: "capacity" }));
  assert.equal(held.replicaCount, 1);
  await actor.postStop();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a restart on a directory it cannot write opens the store read-only, logs it, serves reads and refuses writes", async () => {
  const dir = await Deno.makeTempDir();
  const first = new StorageActor({ dir, chunkSize: 1024, store: { durable: false } });
  await first.preStart();
  const data = pseudoRandomBytes(4096, 6);
  const { cid } = await (await first.receive({ type: "put", source: streamOf(data) }) as PutHandle)
    .done;
  await first.postStop();

  const lines: string[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    store: { durable: false, faults: { refusesWrites: () => true } },
    log: (line) => lines.push(line),
  });
  await actor.preStart();
  assert.ok(
    lines.some((line) => /read-only/.test(line) && line.includes(dir)),
    `no log line says the store is read-only: ${JSON.stringify(lines)}`,
  );
  const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid }));
  assert.deepEqual(bytes, data);
  const chunk = pseudoRandomBytes(100, 7);
  assert.equal(
    await refusedWith(actor, { type: "put_chunk", cid: cidOf(chunk), bytes: chunk }),
    "storage_unwritable",
  );
  assert.equal(await refusedWith(actor, { type: "unpin", cid }), "storage_unwritable");
  assert.equal(await refusedWith(actor, { type: "gc", graceMs: 0 }), "storage_unwritable");
  // Still serving after the refusals.
  assert.deepEqual(unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid })), data);
  await actor.postStop();
  await Deno.remove(dir, { recursive: true });
});
