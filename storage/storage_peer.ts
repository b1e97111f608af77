/**
 * What replication and audits need from a storage peer, and the in-process implementation.
 *
 * {@link StoragePeer} is deliberately small — put, get, has, prove — so the replicated store and
 * the auditor do not care whether a peer is a {@link ChunkStore} in this process
 * ({@link LocalStoragePeer}) or a node on the other end of a `Connection`
 * (`storage/connection_storage_peer.ts`).
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { digestOf } from "./_hash.ts";
import { ChunkNotFoundError, CorruptChunkError } from "./errors.ts";

/** Options accepted by every peer call. */
export interface PeerCallOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
}

/** Options of {@link StoragePeer.putChunk}. */
export interface PutChunkOptions extends PeerCallOptions {
  /** The write is a repair. */
  repair?: boolean;
  /**
   * Hex of the key of the node that asked, where a store serves a remote writer
   * (`serveStoragePeer` sets it from the key the connection proved; a client never sends it):
   * the chunk is counted against that writer's fair share of what the store holds for peers
   * (`ChunkPutOptions.giver`). Unset: counted for no peer.
   */
  from?: string;
}

/** Options of {@link StoragePeer.proveChunks}. */
export interface ProveChunksOptions extends PeerCallOptions {
  /**
   * Hex of the key of the node that asked, where a store serves a remote auditor
   * (`serveStoragePeer` sets it from the key the connection proved): a chunk the asker now counts
   * as given, which the StorageActor keeps for it, is counted against that peer's fair share, as
   * its `put_chunk` would be ({@link PutChunkOptions.from}). Unset: counted for no peer.
   */
  from?: string;
  /**
   * Called, before the proofs resolve, with the challenged CIDs the peer proved but keeps for no
   * one on the asker's behalf: it holds them (its own files' chunks), but has no replica room left
   * for the asker, so they go when it unpins its own file. A proof of one is a good answer to an
   * audit, never a copy placed there: the asker does not record it as given, and places the copy
   * elsewhere (review s81 vaudit2, F1). Not called when there is none, nor for a chunk whose
   * proof is `null`. A peer on older code never calls it (an answer it kept nothing for read as a
   * copy, as before). Unset, the asker says it does not read unkept: the peer answers `null` for
   * such a chunk, as older code did, so an asker that would record the proof as a copy never
   * blames the holder for it later (review s82 vstore, F1).
   */
  onUnkept?: (cids: readonly string[]) => void;
}

/** Options of {@link StoragePeer.getChunk}. */
export interface ReadChunkOptions extends PeerCallOptions {
  /**
   * Hex of the key of the node that asked, where a store serves a remote reader
   * (`serveStoragePeer` sets it from the key the connection proved): a holder the StorageActor
   * gave the chunk that asks for it says it lost its copy. Unset: anyone.
   */
  from?: string;
}

/** A node that holds chunks for others. */
export interface StoragePeer {
  /** Stable id of the peer (hex of its public key); rendezvous hashing ranks peers by it. */
  readonly id: string;
  /** The peer's ed25519 public key; audit verdicts name it as their target. */
  readonly publicKey: Uint8Array;
  /**
   * Store `bytes` as `cid`. The peer verifies the bytes against the CID, and an existing copy
   * before it answers (the writer counts the answer as a good copy); `repair` says the write is
   * a repair.
   */
  putChunk(cid: string, bytes: Uint8Array, options?: PutChunkOptions): Promise<void>;
  /** The bytes of `cid`; callers verify them again (a peer may lie). */
  getChunk(cid: string, options?: ReadChunkOptions): Promise<Uint8Array>;
  /** Whether the peer claims to hold `cid`. */
  hasChunk(cid: string, options?: PeerCallOptions): Promise<boolean>;
  /**
   * Proof of possession: for each CID, {@link possessionProof} under the peer's own key, or
   * `null` when the peer does not hold a valid copy. Those it holds but keeps for no one on the
   * asker's behalf are named to {@link ProveChunksOptions.onUnkept}.
   */
  proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
    options?: ProveChunksOptions,
  ): Promise<(Uint8Array | null)[]>;
}

/**
 * SHA-256(nonce ‖ prover ‖ bytes): the possession proof for one chunk by the holder whose public
 * key is `prover`. The key binds the answer to the holder asked: without it any node holding the
 * chunk (another holder, or the auditor itself, which serves `prove` for its own files) computed
 * the same 32 bytes, so a holder that had thrown the chunk away passed every audit and repair
 * check by passing the challenge on (a review found it at stop 33). Now only a node with the
 * bytes can compute a holder's answer, so a relaying holder must fetch the whole chunk to
 * answer. The nonce comes first, so no midstate over the chunk can be kept in its place.
 */
export async function possessionProof(
  nonce: Uint8Array,
  prover: Uint8Array,
  bytes: Uint8Array,
): Promise<Uint8Array> {
  const input = new Uint8Array(nonce.length + prover.length + bytes.length);
  input.set(nonce);
  input.set(prover, nonce.length);
  input.set(bytes, nonce.length + prover.length);
  return await digestOf(input);
}

/**
 * Answer a proof-of-possession challenge from a local chunk store, as the holder whose public
 * key is `prover`. A chunk that is missing or fails verification (it is quarantined by the read)
 * yields `null`: an honest holder admits a lost chunk rather than hashing bad bytes.
 */
export async function proveFromStore(
  store: ChunkStore,
  prover: Uint8Array,
  nonce: Uint8Array,
  cids: readonly string[],
): Promise<(Uint8Array | null)[]> {
  const out: (Uint8Array | null)[] = [];
  for (const cid of cids) {
    try {
      out.push(await possessionProof(nonce, prover, await store.get(cid)));
    } catch (error) {
      if (error instanceof ChunkNotFoundError || error instanceof CorruptChunkError) {
        out.push(null);
      } else throw error;
    }
  }
  return out;
}

/**
 * A storage peer backed by a {@link ChunkStore} in this process (a node's own copy, tests,
 * simulations). It knows the calls still running on it ({@link LocalStoragePeer.settled}): a call
 * its caller stopped waiting for (a read cancelled when a faster replica answered, one past its
 * timeout) goes on in the store, which re-reads its directories and may make `quarantine/` again,
 * so whoever closes or removes the store waits them out first.
 */
export class LocalStoragePeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly #store: ChunkStore;
  /** The calls running on this peer, each until it settles. */
  readonly #calls = new Set<Promise<unknown>>();

  /**
   * A peer serving `store`.
   *
   * @param store The chunk store this peer serves.
   * @param publicKey The peer's public key (its id is the hex of it).
   *
   * @example
   * ```ts
   * import { ChunkStore } from "./chunk_store.ts";
   * import { LocalStoragePeer } from "./storage_peer.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const peer = new LocalStoragePeer(
   *   await ChunkStore.open(await Deno.makeTempDir()),
   *   Identity.generate().publicKey,
   * );
   * ```
   */
  constructor(store: ChunkStore, publicKey: Uint8Array) {
    this.#store = store;
    this.publicKey = publicKey;
    this.id = toHex(publicKey);
  }

  /** The underlying store. */
  get store(): ChunkStore {
    return this.#store;
  }

  /** Resolves once no call is running on this peer. */
  async settled(): Promise<void> {
    while (this.#calls.size > 0) await Promise.allSettled([...this.#calls]);
  }

  /** Count `call` as running on this peer until it settles ({@link LocalStoragePeer.settled}). */
  protected track<T>(call: Promise<T>): Promise<T> {
    this.#calls.add(call);
    const done = () => this.#calls.delete(call);
    call.then(done, done);
    return call;
  }

  /**
   * Store a chunk after checking it hashes to `cid`. A copy already here is verified first
   * (whether or not this is a `repair`): the writer counts this answer as a good copy towards its
   * quorum, so a rotten one is replaced, never acknowledged.
   */
  putChunk(cid: string, bytes: Uint8Array, options?: PutChunkOptions): Promise<void> {
    return this.track(
      this.#store.put(bytes, {
        cid,
        verifyExisting: true,
        signal: options?.signal,
        replica: true, // held for another node: GC keeps it
        giver: options?.from,
      }).then(() => {}),
    );
  }

  /** Read a verified chunk. */
  getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return this.track(this.#store.get(cid, options));
  }

  /** Whether the chunk file exists. */
  hasChunk(cid: string): Promise<boolean> {
    return this.track(this.#store.has(cid));
  }

  /** Prove possession of `cids` under `nonce`. */
  proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    return this.track(proveFromStore(this.#store, this.publicKey, nonce, cids));
  }
}
