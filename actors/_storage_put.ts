/**
 * The StorageActor's put (`storage_actor.ts`, the `put` and `put_bytes` messages): a file stored
 * as one {@link PendingPut}, to the storage peers when there are any, answered at once with a
 * {@link PutHandle} whose `done` settles when the file is stored and pinned. While it runs, the
 * blocks it stored are counted in the actor's `StorageScope` (`_storage_scope.ts`). Started
 * by the actor inside its `receive`, on its {@link StorageCore}. Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import type { BlockStore } from "../storage/block_store.ts";
import { StorageError } from "../storage/errors.ts";
import { FileStore } from "../storage/file_store.ts";
import { isDagNode } from "../storage/dag_links.ts";
import { PendingPut } from "../storage/pending_put.ts";
import type { PeerCallOptions, StoragePeer } from "../storage/storage_peer.ts";
import type { StorageCore } from "./_storage_core.ts";
import type { StorageActorContext } from "./storage_actor.ts";
import type { PutHandle, StoragePutMessage } from "./storage_actor_messages.ts";

/** Take one off the count of each of `keys` in `counts`, dropping those that reach zero. */
function uncount(counts: Map<string, number>, keys: readonly string[]): void {
  for (const key of keys) {
    const n = counts.get(key)! - 1;
    if (n === 0) counts.delete(key);
    else counts.set(key, n);
  }
}

/**
 * A put runs as a {@link PendingPut}, so a GC in any process keeps what it stored until it is
 * pinned. With peers, the chunks go to them and the manifest is also held here: the pin is a
 * root GC can read, and `list` can name the file. The copies this node holds of its own file as
 * one of its holders (`holdHere`) are that put's too ({@link SelfPeer.putOwn}): its pin keeps
 * them, and once unpinned they are garbage.
 */
export function startPut(
  core: StorageCore,
  message: StoragePutMessage,
  ctx: StorageActorContext | undefined,
): PutHandle {
  const replicated = message.local ? null : core.replicated();
  const files = core.files();
  const store = core.store();
  const signals = [message.signal, ctx?.signal].filter((s): s is AbortSignal => !!s);
  const done = (async () => {
    if (message.private && !core.options.ownerKey) {
      throw new StorageError("key_required", "private put needs an owner key on this node");
    }
    // Admitted whole by its declared size when its bytes land here; with peers they go to them,
    // and this node's share is judged object by object (review s75 vcrash F2).
    const pending = await PendingPut.begin(
      store,
      replicated
        ? undefined
        : { declaredBytes: message.size, chunkSize: core.fileOptions().chunkSize },
    );
    // A `local` put's objects are this node's own from the first one stored (see
    // StorageScope.localOnly).
    const stored: string[] = [];
    const local: BlockStore = {
      put: async (bytes, options) => {
        const cid = await pending.put(bytes, options);
        if (message.local) {
          core.scope.localPuts.set(cid, (core.scope.localPuts.get(cid) ?? 0) + 1);
          stored.push(cid);
        }
        return cid;
      },
      get: (cid, options) => pending.get(cid, options),
      has: (cid) => pending.has(cid),
    };
    // This node's own copies (it is one of the holders) go into the put's record; one that a
    // holder's late failure hands to this node after the put stopped recording is written
    // plainly, rooted by the pin alone (or garbage, if the put failed).
    const self = core.self();
    const own: string[] = [];
    const selfWrites = new Set<Promise<unknown>>();
    let recording = true;
    const write = (peer: StoragePeer, cid: string, bytes: Uint8Array, o: PeerCallOptions) => {
      if (peer !== self) return peer.putChunk(cid, bytes, o);
      if (!recording) return self.putOwn(cid, bytes, store, o);
      // The put reaches the chunk from now, not from when its copy here lands: the quorum may
      // answer first, and a read of it (the put's own, of its root) then repairs this node's
      // copy through `SelfPeer.putChunk`, which must find it this put's, not a replica.
      const key = storageKey(cid);
      core.scope.ownPuts.set(key, (core.scope.ownPuts.get(key) ?? 0) + 1);
      own.push(key);
      const written = self.putOwn(cid, bytes, pending, o);
      selfWrites.add(written);
      return written;
    };
    const stopRecording = async () => {
      recording = false;
      await Promise.allSettled(selfWrites); // none writes to the record once it is gone
    };
    try {
      const target = replicated
        ? new FileStore({
          ...core.blocks(),
          put: (bytes, options) => replicated.put(bytes, { ...options, write }),
        }, core.fileOptions())
        : new FileStore(local, core.fileOptions());
      const result = await target.put(message.source, {
        name: message.name,
        mime: message.mime,
        key: message.private ? core.options.ownerKey : undefined,
        signal: signals.length ? AbortSignal.any(signals) : undefined,
      });
      // The root is held here too; a UnixFS file's inner nodes as well (a root over 174
      // chunks links them), so the pin is a root GC and `list` can read without the peers.
      if (replicated) {
        await core.given().flush(); // who was given its chunks, on disk before it is done
        for (const cid of await files.blocks(result.cid)) {
          if (isDagNode(cid) || cid === result.cid) {
            await pending.put(await replicated.get(storageKey(cid)));
          }
        }
      }
      const label = message.private
        ? (message.local ? { local: true } : undefined)
        : { name: message.name, mime: message.mime, local: message.local };
      if (message.pin ?? true) {
        await stopRecording();
        await core.scope.pinWrite(result.cid, true, () => pending.commit(result.cid, label));
        await core.scope.add(result.cid, message.local === true);
      }
      return result;
    } finally {
      await stopRecording();
      await pending.release();
      uncount(core.scope.localPuts, stored);
      uncount(core.scope.ownPuts, own);
    }
  })();
  // The caller observes it through the handle; a put refused by the OS is the store's fault, and
  // one that succeeded wrote (its record, at least): `/healthz` says so (`_storage_write_faults.ts`).
  done.then(() => core.writeFaults.succeeded(), (error) => core.writeFaults.failed(error));
  return { done };
}
