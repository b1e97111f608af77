/**
 * The StorageActor reached through its ref, for code that must not know it is an actor: as a
 * {@link StoragePeer} ({@link StorageActorPeer}), so the peer-facing side of the storage protocol
 * goes through the actor that owns the store, and as the HTTP gateway's port
 * ({@link storageGateway}), so the edge never imports actor types.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { FileInfo } from "../storage/file_store.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import type { ShareRecord } from "../storage/share_links.ts";
import type { LeafCheck } from "../storage/unixfs.ts";
import type {
  PeerCallOptions,
  ProveChunksOptions,
  PutChunkOptions,
  ReadChunkOptions,
  StoragePeer,
} from "../storage/storage_peer.ts";
import { type PutHandle, type StorageMessage, unwrapReply } from "./storage_actor_messages.ts";

/** The part of an `ActorRef<StorageMessage>` {@link StorageActorPeer} needs. */
export interface StorageAsker {
  /** Ask the StorageActor. */
  ask<R>(message: StorageMessage, options?: { signal?: AbortSignal }): Promise<R>;
}

/**
 * This node's StorageActor seen as a {@link StoragePeer}, so the peer-facing side of the
 * protocol goes through the actor that owns the store. `network/peer_services.ts` builds one for
 * each connection with the key that connection's handshake authenticated, the remote peer's:
 * `serveStoragePeer(connection, new StorageActorPeer(storageRef, peerKey))`. That key is only the
 * label {@link id} and {@link publicKey} carry: no method reads it (a proof is bound to the
 * StorageActor's own identity, and a chunk's writer is the connection's key, which
 * `serveStoragePeer` passes as `from`).
 */
export class StorageActorPeer implements StoragePeer {
  /** Hex of {@link publicKey}. */
  readonly id: string;
  /** The key it was built with: the remote peer's, as `network/peer_services.ts` builds it. */
  readonly publicKey: Uint8Array;
  readonly #ref: StorageAsker;

  /**
   * A peer backed by the StorageActor behind `ref`.
   *
   * @param ref The StorageActor's ref (anything with its `ask`).
   * @param publicKey The key it goes by: the remote peer's on a served connection (a test
   *   serving a node's own store passes that node's).
   */
  constructor(ref: StorageAsker, publicKey: Uint8Array) {
    this.#ref = ref;
    this.publicKey = publicKey;
    this.id = toHex(publicKey);
  }

  /**
   * Store a chunk (verified against `cid` by the store), counted for `options.from` (the remote
   * writer, where `serveStoragePeer` answers one) against its fair share.
   */
  async putChunk(cid: string, bytes: Uint8Array, options?: PutChunkOptions): Promise<void> {
    const { repair, from } = options ?? {};
    unwrapReply(await this.#ref.ask({ type: "put_chunk", cid, bytes, repair, from }, options));
  }

  /**
   * Read a verified chunk, for `options.from` (the remote reader, where `serveStoragePeer`
   * answers one): a holder this node gave the chunk is refused it (`_storage_peer_requests.ts`).
   */
  async getChunk(cid: string, options?: ReadChunkOptions): Promise<Uint8Array> {
    const from = options?.from;
    return unwrapReply<Uint8Array>(await this.#ref.ask({ type: "get_chunk", cid, from }, options));
  }

  /** Whether the chunk is stored. */
  async hasChunk(cid: string, options?: PeerCallOptions): Promise<boolean> {
    return unwrapReply<boolean>(await this.#ref.ask({ type: "has_chunk", cid }, options));
  }

  /**
   * Answer an audit challenge, asked by `options.from` (the remote auditor, where
   * `serveStoragePeer` answers one): what the node keeps for it is counted against its fair share.
   */
  async proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
    options?: ProveChunksOptions,
  ): Promise<(Uint8Array | null)[]> {
    const { from, onUnkept } = options ?? {};
    return unwrapReply<(Uint8Array | null)[]>(
      await this.#ref.ask({ type: "prove", nonce, cids: [...cids], from, onUnkept }, options),
    );
  }
}

/**
 * The StorageActor behind `ref` as the HTTP gateway's port ({@link GatewayStorage}), so the edge
 * never imports actor types: `gatewayRoutes(() => storageGateway(ref))`.
 *
 * @param ref The StorageActor's ref (anything with its `ask`).
 */
export function storageGateway(ref: StorageAsker): GatewayStorage {
  const ask = async <T>(message: StorageMessage, signal?: AbortSignal): Promise<T> =>
    unwrapReply<T>(await ref.ask(message, signal && { signal }));
  return {
    put: async (source, options) =>
      await (await ref.ask<PutHandle>({ type: "put", source, ...options })).done,
    // The caller's signal goes to the peer fetch itself: a read whose client went away must not
    // hold a connection slot and a chunk's memory until the peer call's own timeout. `local`
    // (`only-if-cached`) keeps each read to this node's own store; `deepWalk` (the gateway's
    // budget) is asked before a read walks deep into the peers' ranking.
    block: (cid, signal, options) =>
      ask<Uint8Array>({ type: "get_block", cid, signal, ...options }, signal),
    stat: (cid, options) => ask<FileInfo>({ type: "stat", cid, ...options }),
    read: (cid, range, options) =>
      ask<ReadableStream<Uint8Array>>({ type: "get", cid, ...range, ...options }),
    mayRead: async (cid, options) =>
      (await ask<LeafCheck>({ type: "may_read", cids: [cid], local: options?.local })).missing ===
        undefined,
    leavesReadable: (cids, options) =>
      ask<LeafCheck>({ type: "may_read", cids, local: options?.local }),
    car: (cid, scope, signal, options) =>
      ask<ReadableStream<Uint8Array>>({
        type: "export_car",
        cid,
        scope,
        signal,
        ...options,
      }),
    share: async (id) => (await ask<ShareRecord | null>({ type: "share", id })) ?? undefined,
  };
}
