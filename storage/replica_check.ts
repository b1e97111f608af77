/**
 * The chunks a store holds for peers (its `replicas/` records), checked against what is stored:
 * what `cli.ts ls` (and `ls --verify`) reports beside the pinned files. "N chunks held for peers"
 * counts the records, not the objects: a holder whose packs were lost still counted every one,
 * and `ls --verify` exited 0 (review s79, F2). Only the peers' audits found it, and they tell the
 * peer that gave the chunk, not this node's operator.
 *
 * @module
 */
import type { ChunkStore } from "./chunk_store.ts";
import { ChunkNotFoundError, CorruptChunkError } from "./errors.ts";

/** What {@link checkReplicas} found. */
export interface ReplicaCheck {
  /** Chunks held for peers (`replicas/` records). */
  total: number;
  /** Of them, not stored here (lost, or set aside as corrupt by an earlier read). */
  missing: number;
  /** Of them, stored with bytes that do not match the CID (moved to `quarantine/` by the read). */
  corrupt: number;
}

/**
 * Check every chunk `store` holds for peers: looked up in its index, and with `verify` read and
 * hashed (a corrupt copy is moved to `quarantine/`, as any read moves it).
 *
 * @example
 * ```ts
 * import { ChunkStore } from "./chunk_store.ts";
 * import { checkReplicas } from "./replica_check.ts";
 * const store = await ChunkStore.open(await Deno.makeTempDir());
 * const { total, missing, corrupt } = await checkReplicas(store, { verify: true });
 * ```
 */
export async function checkReplicas(
  store: ChunkStore,
  options?: { verify?: boolean },
): Promise<ReplicaCheck> {
  const found: ReplicaCheck = { total: 0, missing: 0, corrupt: 0 };
  for await (const key of store.replicas()) {
    found.total++;
    if (!await store.has(key)) {
      found.missing++;
      continue;
    }
    if (options?.verify !== true) continue;
    try {
      await store.get(key);
    } catch (error) {
      if (error instanceof CorruptChunkError) found.corrupt++;
      else if (error instanceof ChunkNotFoundError) found.missing++;
      else throw error;
    }
  }
  return found;
}
