/**
 * The StorageActor's `pin` of a file whose blocks may live on the peers (another node put it), and
 * its `gc`'s care of the pinned files: their root and inner nodes (what GC walks) are made this
 * node's own, fetched from the peers where the store lacks them.
 *
 * A pin's fetch runs outside the actor's mailbox, as a put does, and the actor commits the pin by
 * a message to itself (`pin_held`): run inside `receive`, one network read after another, it held
 * every other message back for the whole fetch, and a peer's `has_chunk` waited 4.4 s behind a pin
 * of 31 nodes; with the auditor's 30 s timeout, an honest node pinning a file of 300 inner nodes
 * (about 13 GiB at 256 KiB chunks) was signed `invalid` (`no_response`) by a writer that audited
 * it meanwhile (review s76 vstore F2). What it fetches goes through a {@link PendingPut}, so each
 * block is recorded in `pending/<id>` before it is stored, and a GC beside the fetch (the node's
 * own `gc`, which no longer waits behind it, or `cli.ts gc --grace-ms 0`) takes none of them; the
 * commit pins the root. Stored bare and pinned after, a GC in between took them, and the pin failed
 * `chunk_not_found` or rooted a hole (`tests/actors/storage_pin_gc_race_test.ts`). Each node is
 * read once: the walk that finds the links reads the bytes it stores (it read each inner node from
 * the peers twice, once to walk and once to hold). Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import type { PinLabel } from "../storage/chunk_store.ts";
import { dagBlocks, isDagNode, MAX_DAG_DEPTH } from "../storage/dag_links.ts";
import { ChunkNotFoundError, CorruptChunkError } from "../storage/errors.ts";
import { PendingPut } from "../storage/pending_put.ts";
import type { StorageCore } from "./_storage_core.ts";

/**
 * Hold the root and inner nodes of `cid` here for its pin: read from the store, or fetched from
 * the peers where it lacks them, each recorded in a {@link PendingPut} before it is stored. Runs
 * outside the actor's mailbox.
 *
 * @returns The put holding them, for the actor to commit (`pin_held`) and the caller to release;
 * `null` when there is nothing to fetch: a `local` file never leaves this node, and without peers
 * there is nowhere to fetch from (the store's own pin checks, under its lock, that the root is
 * here).
 * @throws {DagTooDeepError} `dag_too_deep` when the DAG the peers hold goes deeper than
 * `MAX_DAG_DEPTH`, as a CAR export or an import refuses it: the walk stops there (the peers'
 * replica chose the depth, and made this node fetch a node per level), what it fetched is released
 * and nothing is pinned.
 */
export async function fetchPin(
  core: StorageCore,
  cid: string,
  label: PinLabel | undefined,
  signal: AbortSignal | undefined,
): Promise<PendingPut | null> {
  const replicated = core.replicated();
  if (label?.local || !replicated) return null;
  const pending = await PendingPut.begin(core.store());
  try {
    await walkNodes(
      cid,
      (block) =>
        pending.hold(block, (options) => replicated.get(storageKey(block), options), { signal }),
      MAX_DAG_DEPTH,
    );
    return pending;
  } catch (error) {
    await pending.release();
    throw error;
  }
}

/**
 * Make sure the store holds the root and inner nodes of pinned `root` (with peers, the missing
 * ones fetched from them), so GC can walk it. Runs outside the actor's mailbox. Stored plainly: the
 * pin already roots them.
 */
export async function holdPinned(
  core: StorageCore,
  root: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const replicated = core.replicated();
  if (!replicated) return;
  const store = core.store();
  await walkNodes(root, async (block) => {
    const here = await store.get(block, { signal }).catch((error) => {
      if (error instanceof ChunkNotFoundError || error instanceof CorruptChunkError) return null;
      throw error;
    });
    if (here !== null) return here;
    const bytes = await replicated.get(storageKey(block), { signal });
    await store.put(bytes, { signal, verifyExisting: true });
    return bytes;
  });
}

/**
 * Read `root` with `read`, and, when it is a UnixFS or private root, every node under it that
 * links others (a root over 174 chunks links inner nodes: GC walks them), each once; leaves are
 * not read. A raw root (a leaf, an old manifest) links no inner node.
 *
 * @param maxDepth Most links below `root` the walk follows (`dag_too_deep` past it); none for a
 * file already pinned (`holdPinned`): GC must keep whatever its pin reaches.
 */
async function walkNodes(
  root: string,
  read: (cid: string) => Promise<Uint8Array>,
  maxDepth?: number,
): Promise<void> {
  if (!isDagNode(root)) {
    await read(root);
    return;
  }
  for await (const _block of dagBlocks(root, read, { maxDepth })) {
    // Each node is read (and so held) by the walk itself.
  }
}
