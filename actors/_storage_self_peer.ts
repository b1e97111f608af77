/**
 * This node's store as one of its own holders (the StorageActor's `holdHere` option): the
 * {@link SelfPeer} the actor puts first in its peer set, and the {@link SelfPeerHooks} it asks
 * the actor (`storage_actor.ts`). Built by the actor at its start; its own puts write through
 * {@link SelfPeer.putOwn} (`_storage_put.ts`). Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import type { BlockStore } from "../storage/block_store.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import { LocalStoragePeer, type PeerCallOptions } from "../storage/storage_peer.ts";

/** What a {@link SelfPeer} asks its actor. */
export interface SelfPeerHooks {
  /** A chunk was written here as one of its holders: holder repair notes its placement. */
  noted(key: string): void;
  /**
   * True when a pin here that is not `local`, or a put of this node's still running, reaches
   * `key`: this node's own file, whose copy here that pin (or put) keeps.
   */
  ownedHere(key: string): Promise<boolean>;
}

/**
 * This node's store as one of its own holders (with `holdHere`). Every write is reported with
 * `noted`, like a peer's `put_chunk`, for holder repair.
 *
 * What roots a copy written here depends on whose file it is. This node's own put writes through
 * {@link SelfPeer.putOwn} into that put's record, and the file's pin keeps it: unpinned, it is
 * garbage like a single node's file. Any other write ({@link SelfPeer.putChunk}: a read repair, a
 * repair) is held for the network as a replica (`replicas/`, never released) — this node is a
 * holder of another node's chunk, whose owner may audit it — unless this node's own file reaches
 * the chunk, whose pin keeps it already. A peer's own `put_chunk` never comes through here: the
 * actor records it as a replica whatever this node pins, so a chunk shared between this node's
 * file and a peer's stays when the file goes.
 *
 * It knows the calls still running on it (`LocalStoragePeer.settled`), and the actor's stop waits
 * them out. A `ReplicatedStore` races each holder's call against its caller's signal and the peer
 * timeout, so a read its caller gave up on (a client gone, a gateway request whose response was
 * sent once a remote replica answered) settles there and goes on here: a chunk store read checks
 * its signal only as it starts. The replicated store's `flush` cannot see it, and the actor's
 * `postStop` returned while it still read (and could make `quarantine/` again in) the store's
 * directory, which a restart opens next (review s59, `tests/actors/storage_node_stop_test.ts`).
 * These are local store operations, so unlike a remote peer's they end.
 */
export class SelfPeer extends LocalStoragePeer {
  readonly #hooks: SelfPeerHooks;
  constructor(store: ChunkStore, publicKey: Uint8Array, hooks: SelfPeerHooks) {
    super(store, publicKey);
    this.#hooks = hooks;
  }

  override putChunk(
    cid: string,
    bytes: Uint8Array,
    options?: PeerCallOptions & { repair?: boolean },
  ): Promise<void> {
    return this.track(this.#putChunk(cid, bytes, options));
  }

  async #putChunk(
    cid: string,
    bytes: Uint8Array,
    options?: PeerCallOptions & { repair?: boolean },
  ): Promise<void> {
    const key = storageKey(cid);
    if (await this.#hooks.ownedHere(key)) {
      await this.store.put(bytes, {
        cid,
        verifyExisting: options?.repair,
        signal: options?.signal,
      });
    } else await super.putChunk(cid, bytes, options); // a replica
    this.#hooks.noted(key);
  }

  /**
   * This node's own put writing the copy it holds of `cid` into `into` (the put's
   * {@link PendingPut}, which records it until the file is pinned; the store itself once the put
   * is closing, when only the pin can root it).
   */
  putOwn(
    cid: string,
    bytes: Uint8Array,
    into: BlockStore,
    options: PeerCallOptions,
  ): Promise<void> {
    return this.track((async () => {
      await into.put(bytes, { signal: options.signal });
      this.#hooks.noted(storageKey(cid));
    })());
  }
}
