/**
 * Review (stop 59): a StorageActor's stop waits out the calls still running on its own copy.
 *
 * With `holdHere` the node is one of its own holders (`SelfPeer`, `_storage_self_peer.ts`). A read
 * asks two holders at once. `ReplicatedStore` races each holder's call against the caller's signal
 * and the peer timeout, so once the caller's signal aborts, the raced call settles while the read
 * of this node's own store goes on (a chunk store read checks its signal only as it starts):
 * `ReplicatedStore.flush` waits for the raced call, not for that read, and `postStop` returned
 * while it still read the store's directory (and may make `quarantine/` there again). A restart
 * opening the same directory, or an operator moving it once the node stopped, met a store still in
 * use; stop 57's CI failure ("Directory not empty") was this shape with a plain peer. The caller's
 * signal aborts in two common ways: a gateway request's once its response is sent (the remote
 * replica answered first), and a client that went away mid-read.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { delay } from "../_helpers/wait.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { removePeers, trackedPeer } from "../storage/_tracked_peer.ts";

/**
 * How long the held read stays held after the stop began, unless the stop ends first. It only
 * gives a stop that does not wait for the read the time to end (a few file operations); a stop
 * that waits ends after the read whatever this is, so a loaded machine cannot fail the test.
 */
const HOLD_AFTER_STOP_MS = 500;

/**
 * A node holding here and on one remote replica reads a one-chunk file with a signal, while the
 * read of its own copy is held (a slow disk); the remote answers once it is held. `end` aborts the
 * signal: after the read returned (a response sent), or before the remote answered (the client
 * went away). Then the node stops. Answers whether the held read still ran when `postStop`
 * resolved, and the read's reply.
 */
async function stopWithSelfReadHeld(
  end: "after the answer" | "mid-read",
): Promise<{ stoppedWhileRunning: boolean; reply: StorageReply<Uint8Array>; data: Uint8Array }> {
  const dir = await Deno.makeTempDir({ prefix: "self-peer-stop-" });
  const remote = await trackedPeer();
  let armed = false;
  let held = false;
  let running = false;
  /** Resolved once the read of this node's copy is held. */
  const holding = Promise.withResolvers<void>();
  const caller = new AbortController();
  const getChunk = remote.getChunk.bind(remote);
  remote.getChunk = async (cid, options) => {
    if (!armed) return await getChunk(cid, options);
    await holding.promise;
    if (end === "mid-read") caller.abort(new DOMException("client gone", "AbortError"));
    return await getChunk(cid, options);
  };
  let stopped: Promise<void> | null = null;
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    identity: Identity.generate(),
    holdHere: true,
    peers: [remote],
    replication: { replicas: 2, writeQuorum: 2 },
    store: {
      durable: false,
      faults: {
        // The first read of this node's store once armed is held, and let go once the stop
        // has had its chance to end.
        async afterRead() {
          if (!armed || held) return;
          held = running = true;
          holding.resolve();
          try {
            while (stopped === null) await delay(0); // the test's own steps until the stop
            await Promise.race([stopped, delay(HOLD_AFTER_STOP_MS)]);
          } finally {
            running = false;
          }
        },
      },
    },
  });
  let stoppedWhileRunning: boolean | undefined;
  try {
    await actor.preStart();
    const data = pseudoRandomBytes(1000, 59); // one chunk: its CID is the file's
    const handle = await actor.receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    assert.equal(await remote.hasChunk(cid), true, "the remote replica holds the chunk");
    armed = true;
    const reply = await actor.receive({
      type: "get_block",
      cid: storageKey(cid),
      signal: caller.signal,
    }) as StorageReply<Uint8Array>;
    if (end === "after the answer") caller.abort(); // the response is sent
    assert.ok(held && running, "the read of this node's copy is still running");
    stopped = actor.postStop().then(() => {
      stoppedWhileRunning = running;
    });
    await stopped;
    return { stoppedWhileRunning: stoppedWhileRunning!, reply, data };
  } finally {
    await removePeers([remote]);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a StorageActor's postStop waits out a read of its own copy still running when a remote replica answered and the request ended", async () => {
  const { stoppedWhileRunning, reply, data } = await stopWithSelfReadHeld("after the answer");
  assert.ok(reply.ok, "the remote replica answered");
  assert.deepEqual(reply.value, data);
  assert.equal(stoppedWhileRunning, false, "postStop resolved only after the read of its copy");
});

Deno.test("a StorageActor's postStop waits out a read of its own copy whose caller went away", async () => {
  const { stoppedWhileRunning, reply } = await stopWithSelfReadHeld("mid-read");
  assert.equal(reply.ok ? "ok" : reply.error.code, "read_aborted");
  assert.equal(stoppedWhileRunning, false, "postStop resolved only after the read of its copy");
});
