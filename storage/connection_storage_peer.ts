/**
 * Storage peers over the wire: {@link ConnectionStoragePeer} is the client side of a
 * `Connection` to a remote storage node, and {@link serveStoragePeer} answers the storage
 * messages on a connection from a local {@link StoragePeer}. With both, the replicated store
 * and the auditor work across nodes exactly as they do in-process.
 *
 * The remote side's typed failures come back as the connection's `RemoteError` with the same
 * `code`; the two that replication reasons about (`chunk_not_found`, `corrupt_chunk`) are turned
 * back into their storage error classes.
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import { toHex } from "../protocols/hash.ts";
import { RemoteError } from "../protocols/protocol_errors.ts";
import {
  GetChunkMessage,
  HasChunkMessage,
  ProveMessage,
  PutChunkMessage,
} from "../protocols/storage_messages.ts";
import { ChunkNotFoundError, CorruptChunkError } from "./errors.ts";
import type {
  PeerCallOptions,
  ProveChunksOptions,
  PutChunkOptions,
  StoragePeer,
} from "./storage_peer.ts";

/** Options of {@link ConnectionStoragePeer}. */
export interface ConnectionStoragePeerOptions {
  /** Per-request timeout (ms). Default: the connection's request timeout. */
  timeoutMs?: number;
  /**
   * The address group the node is reached from, as the placing node sees it
   * (`storage/rendezvous.ts`: placement spreads a chunk's holders over groups). Absent: none known.
   */
  group?: string;
}

/** A remote storage node, reached over a `Connection`. */
export class ConnectionStoragePeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  /** See {@link ConnectionStoragePeerOptions.group}. */
  readonly group?: string;
  readonly #connection: Connection;
  readonly #timeoutMs: number | undefined;

  /**
   * A client for the storage node at the other end of `connection`.
   *
   * @param connection An open connection to the storage node.
   * @param publicKey The node's public key (its identity on that connection).
   * @param options Timeouts.
   *
   * @example
   * ```ts
   * import { Connection } from "../protocols/connection.ts";
   * import { memoryDuplexPair } from "../protocols/memory_duplex.ts";
   * import { Identity } from "../protocols/identity.ts";
   * import { ChunkStore } from "./chunk_store.ts";
   * import { LocalStoragePeer } from "./storage_peer.ts";
   * import { ConnectionStoragePeer, serveStoragePeer } from "./connection_storage_peer.ts";
   * const key = Identity.generate().publicKey;
   * const [a, b] = memoryDuplexPair();
   * serveStoragePeer(
   *   new Connection(b),
   *   new LocalStoragePeer(await ChunkStore.open(await Deno.makeTempDir()), key),
   * );
   * const remote = new ConnectionStoragePeer(new Connection(a), key);
   * ```
   */
  constructor(
    connection: Connection,
    publicKey: Uint8Array,
    options?: ConnectionStoragePeerOptions,
  ) {
    this.#connection = connection;
    this.publicKey = publicKey;
    this.id = toHex(publicKey);
    this.#timeoutMs = options?.timeoutMs;
    this.group = options?.group;
  }

  /**
   * Store a chunk on the remote node. `options.from` is not sent: the remote node counts the
   * chunk for the key this connection proved, whatever a writer would claim.
   */
  async putChunk(cid: string, bytes: Uint8Array, options?: PutChunkOptions): Promise<void> {
    await this.#request(
      () =>
        this.#connection.request(PutChunkMessage, { cid, bytes, repair: options?.repair }, {
          signal: options?.signal,
          timeoutMs: this.#timeoutMs,
        }),
      cid,
    );
  }

  /** Read a chunk from the remote node (the caller verifies it). */
  async getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    const reply = await this.#request(
      () =>
        this.#connection.request(GetChunkMessage, { cid }, {
          signal: options?.signal,
          timeoutMs: this.#timeoutMs,
        }),
      cid,
    );
    return reply.bytes;
  }

  /** Whether the remote node holds a chunk. */
  async hasChunk(cid: string, options?: PeerCallOptions): Promise<boolean> {
    const reply = await this.#request(
      () =>
        this.#connection.request(HasChunkMessage, { cid }, {
          signal: options?.signal,
          timeoutMs: this.#timeoutMs,
        }),
      cid,
    );
    return reply.present;
  }

  /**
   * Challenge the remote node to prove possession; the chunks it names unkept go to
   * `options.onUnkept` (a node on older code names none). The challenge says the asker reads
   * `unkept` only where `options.onUnkept` is set: else the holder answers `null` for such a
   * chunk, as older code did. A chunk named unkept with no proof is not passed on: the word says
   * what a proof is, so with none it says nothing (review s82 vstore, F2).
   */
  async proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
    options?: ProveChunksOptions,
  ): Promise<(Uint8Array | null)[]> {
    const body = { nonce, cids: [...cids], ...(options?.onUnkept && { unkept: true }) };
    const reply = await this.#request(
      () =>
        this.#connection.request(ProveMessage, body, {
          signal: options?.signal,
          timeoutMs: this.#timeoutMs,
        }),
      cids[0] ?? "",
    );
    const unkept = [...new Set(reply.unkept ?? [])]
      .filter((i) => i < cids.length && reply.proofs[i] instanceof Uint8Array);
    if (unkept.length > 0) options?.onUnkept?.(unkept.map((i) => cids[i]));
    return reply.proofs;
  }

  async #request<T>(send: () => Promise<T>, cid: string): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (error instanceof RemoteError) {
        if (error.code === "chunk_not_found") throw new ChunkNotFoundError(cid, `peer ${this.id}`);
        if (error.code === "corrupt_chunk") throw new CorruptChunkError(cid, `peer ${this.id}`);
      }
      throw error;
    }
  }
}

/**
 * Answer the storage messages arriving on `connection` from `peer` (usually a
 * {@link LocalStoragePeer} over this node's chunk store). Returns the connection.
 */
export function serveStoragePeer(connection: Connection, peer: StoragePeer): Connection {
  return connection
    .handle(PutChunkMessage, async ({ cid, bytes, repair }, { signal }) => {
      // Counted against the writer's fair share by the key its handshake proved (none without).
      const from = connection.peerKey && toHex(connection.peerKey);
      await peer.putChunk(cid, bytes, { repair, signal, from });
      return {};
    })
    // A reader by the key its handshake proved: a holder asking for a chunk it was given says
    // it lost its copy (`actors/_storage_peer_requests.ts`).
    .handle(GetChunkMessage, async ({ cid }, { signal }) => ({
      bytes: await peer.getChunk(cid, {
        signal,
        from: connection.peerKey && toHex(connection.peerKey),
      }),
    }))
    .handle(HasChunkMessage, async ({ cid }, { signal }) => ({
      present: await peer.hasChunk(cid, { signal }),
    }))
    .handle(ProveMessage, async ({ nonce, cids, unkept: readsUnkept }, { signal }) => {
      // What the prover keeps for the asker is counted for the key its handshake proved, too.
      const from = connection.peerKey && toHex(connection.peerKey);
      const unkept = new Set<string>();
      // Only an asker that reads `unkept` is told (`ProveBody.unkept`); any other gets `null` for
      // such a chunk, as from older code.
      const onUnkept = readsUnkept === true
        ? (named: readonly string[]) => named.forEach((cid) => unkept.add(cid))
        : undefined;
      const proofs = await peer.proveChunks(nonce, cids, { signal, from, onUnkept });
      if (unkept.size === 0) return { proofs };
      return { proofs, unkept: cids.flatMap((cid, i) => unkept.has(cid) ? [i] : []) };
    });
}
