/**
 * The StorageActor's `pin` of a file whose blocks may live on the peers (another node put it):
 * its root and inner nodes (what GC walks) are made this node's own, fetched from the peers where
 * the store lacks them, through a {@link PendingPut}, so each is recorded in `pending/<id>` before
 * it is stored and a GC beside the node (`cli.ts gc --grace-ms 0`) between the fetches and the pin
 * takes none of them; the put's commit pins the root. Before, they were stored bare, one network
 * read after another, and pinned after: a GC in between took them, and the pin failed
 * `chunk_not_found` or rooted a hole (`tests/actors/storage_pin_gc_race_test.ts`). Not part of the
 * public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import type { PinLabel } from "../storage/chunk_store.ts";
import { isDagNode } from "../storage/dag_links.ts";
import { FileStore } from "../storage/file_store.ts";
import { PendingPut } from "../storage/pending_put.ts";
import type { StorageCore } from "./_storage_core.ts";

/**
 * Pin `cid` with `label` in the actor's store, its root and inner nodes held here first (from the
 * peers, when there are any and the store lacks them).
 */
export async function pinFile(
  core: StorageCore,
  cid: string,
  label: PinLabel | undefined,
): Promise<void> {
  const store = core.store();
  const replicated = core.replicated();
  // A `local` file never leaves this node, and without peers there is nowhere to fetch from: the
  // store's own pin checks, under its lock, that the root is here.
  if (label?.local || !replicated) return await store.pin(cid, label);
  const fetch = (block: string) => () => replicated.get(storageKey(block));
  const pending = await PendingPut.begin(store);
  try {
    await pending.hold(cid, fetch(cid));
    // A UnixFS root over 174 chunks links inner nodes: GC walks them, so they are held too.
    if (isDagNode(cid)) {
      const remote = new FileStore(replicated, core.fileOptions());
      for (const block of await remote.blocks(cid)) {
        if (isDagNode(block) && block !== cid) await pending.hold(block, fetch(block));
      }
    }
    await pending.commit(cid, label);
  } finally {
    await pending.release();
  }
}
