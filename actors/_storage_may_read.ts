/**
 * The StorageActor's answer to `may_read` (`storage_actor.ts`): which of a file node's leaves no
 * read can get, checked in one mailbox turn (one index lookup per leaf), so a route's check before
 * its `200` costs one actor round trip per node, not per leaf (review s76 vcar F1). Not part of
 * the public API.
 *
 * @module
 */
import type { ChunkStore } from "../storage/chunk_store.ts";
import type { LeafCheck } from "../storage/unixfs.ts";
import type { StorageScope } from "./_storage_scope.ts";

/**
 * The first of `cids` that no read can get: not in `store`, and with nowhere else to read it
 * (`local` asked, no storage peers, or an object kept from them: {@link StorageScope.localOnly}).
 * The peers are not asked, so on a node with peers a leaf not held here passes unless kept from
 * them; when nothing here is kept from them (no `local` pin, no `local` put running), no leaf can
 * fail and the answer says so at once (`checks: false`) without a lookup.
 *
 * @param peers True when the node has storage peers to read from.
 */
export async function leavesReadable(
  store: ChunkStore,
  scope: StorageScope,
  peers: boolean,
  cids: readonly string[],
  local: boolean,
): Promise<LeafCheck> {
  const viaPeers = peers && !local;
  if (viaPeers && (await scope.read()).local.size === 0 && scope.localPuts.size === 0) {
    return { checks: false };
  }
  for (
    let at = await store.firstMissing(cids);
    at >= 0;
    at = await store.firstMissing(cids, at + 1)
  ) {
    if (viaPeers && !await scope.localOnly(cids[at])) continue;
    return { missing: cids[at], checks: true };
  }
  return { checks: true };
}
