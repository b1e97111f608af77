/**
 * The one interface the file layer needs from whatever holds chunks: put bytes under their CID,
 * get them back verified. The local {@link ChunkStore} implements it, and so does the
 * replicated store that spreads chunks over storage peers, so the file logic (chunking,
 * manifests, encryption, ranges) is written once.
 *
 * @module
 */

/** Options accepted by every {@link BlockStore} call. */
export interface BlockStoreCallOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
  /**
   * `get` on a replicated store: false leaves a holder that failed the read without the good
   * copy (no read repair). An audit's reference read: a holder about to be challenged on the
   * chunk must not be handed it first. Default true; other stores ignore it.
   */
  readRepair?: boolean;
  /**
   * `get` on a replicated store: called before the read walks past the chunk's r holders and
   * `READ_PEERS_PAST_HOLDERS` peers more (a deep walk, toward every peer in rank); it returns the
   * function that ends the walk, called with whether the read found the chunk, or throws to refuse
   * it (the read then rejects with that error, never `chunk_not_found`). Without it a deep walk is
   * not bounded (the node's own reads: repair, audits, owner reads). The HTTP gateway's reads pass
   * one that spends the client's budget on the walks that miss (`server/deep_reads.ts`). Other
   * stores ignore it.
   */
  deepWalk?: DeepWalkGate;
}

/**
 * {@link BlockStoreCallOptions.deepWalk}: starts a deep walk and returns its end, or throws. The end
 * is told whether the read found the chunk (`found`: it returned verified bytes).
 */
export type DeepWalkGate = () => (found: boolean) => void;

/** A content-addressed store of immutable blobs. */
export interface BlockStore {
  /**
   * Store `bytes`; resolves with their CID once they are durable (for a replicated store: once
   * the write quorum acknowledged).
   */
  put(bytes: Uint8Array, options?: BlockStoreCallOptions): Promise<string>;
  /**
   * The bytes of `cid`, verified against it. Rejects with `chunk_not_found` when nobody has it
   * and `corrupt_chunk` when only bad copies were found; never resolves with wrong bytes.
   */
  get(cid: string, options?: BlockStoreCallOptions): Promise<Uint8Array>;
  /** True when the store holds `cid` (without verifying it). */
  has(cid: string, options?: BlockStoreCallOptions): Promise<boolean>;
  /**
   * True when raw-labelled `cid` is a manifest written before UnixFS, by the store's own record
   * (see `legacy_manifests.ts`). A store without the method (or one that answers false) has
   * none: its raw objects are leaves, whatever their bytes look like.
   */
  isLegacyManifest?(cid: string): Promise<boolean>;
}
