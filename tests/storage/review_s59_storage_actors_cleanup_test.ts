/**
 * Review (stop 59) of the storage-actors fixture's cleanup (`_storage_actors.ts`). A read asks two
 * replicas at once and cancels the slower once the faster answered; the fixture's peers ask the
 * other node's actor directly, so the cancelled call goes on inside that node, in the directory the
 * fixture removes next. `remove()` removed the directories at once, while a call still running
 * there reads the store's directories and may make `quarantine/` again under `Deno.remove`
 * ("Directory not empty": the stop 57 CI failure `_tracked_peer.ts` fixed for plain peers).
 * Cleanup must wait the nodes' calls out first.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

Deno.test("the storage-actors fixture removes no node's directory while a read it cancelled is still running in that node", async () => {
  const net = await storageActors(3, { replicas: 3, writeQuorum: 3 });
  const { dirs, actors } = net;
  // The first `get_chunk` nodes 1 and 2 are asked is held inside the node (a slow disk) until
  // the test lets it go; every other call goes straight through.
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  let held = false;
  let running = false;
  for (const i of [1, 2]) {
    const actor: StorageActor = actors[i];
    const receive = actor.receive.bind(actor);
    actor.receive = async (message: StorageMessage) => {
      if (message.type !== "get_chunk" || held) return await receive(message);
      held = running = true;
      try {
        await gate;
        return await receive(message);
      } finally {
        running = false;
      }
    };
  }
  const removeDir = Deno.remove;
  /** For each node directory removed: whether the held call was still running then. */
  const removedWhileRunning: boolean[] = [];
  try {
    for (const a of actors) await a.preStart();
    await net.setPeers([0, 1, 2]);
    const data = pseudoRandomBytes(1000, 59); // one chunk: its CID is the file's
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    // Two of the three holders are asked; the held one loses to the other and is cancelled.
    const read = unwrapReply<Uint8Array>(
      await actors[0].receive({ type: "get_block", cid: storageKey(cid) }),
    );
    assert.deepEqual(read, data);
    assert.ok(held && running, "a cancelled read is still running in its node");
  } finally {
    Deno.remove = (path, options) => {
      if (dirs.includes(String(path))) removedWhileRunning.push(running);
      return removeDir(path, options);
    };
    try {
      const removal = net.remove();
      release(); // the held read goes on now, as a slow one would
      await removal;
    } finally {
      Deno.remove = removeDir;
    }
  }
  assert.deepEqual(
    removedWhileRunning,
    [false, false, false],
    "every node directory removed after the calls running in it",
  );
  for (const dir of dirs) {
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, `${dir} is gone`);
  }
});
