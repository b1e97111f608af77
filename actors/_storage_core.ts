/**
 * What the StorageActor's parts share (`storage_actor.ts`): its options, the stores it opens at
 * its start and rebuilds on `set_peers` (read through a call at each use, as the actor's own
 * fields were), this node as one of its holders, the blocks and files every part reads through,
 * and what its pins reach. The actor builds one {@link StorageCore} in its constructor and hands
 * it to its parts: the put (`_storage_put.ts`), the answers to storage peers
 * (`_storage_peer_requests.ts`) and the audits (`_storage_audits.ts`). Not part of the public API.
 *
 * @module
 */
import type { BlockStore } from "../storage/block_store.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import type { FileStore, FileStoreOptions } from "../storage/file_store.ts";
import type { GivenChunks } from "../storage/given_chunks.ts";
import type { HolderRepair } from "../storage/holder_repair.ts";
import type { ReplicatedStore } from "../storage/replicated_store.ts";
import type { ChallengedChunks } from "./_challenged_chunks.ts";
import type { NetworkRestarts } from "./_storage_network_restarts.ts";
import type { SelfPeer } from "./_storage_self_peer.ts";
import type { StorageScope } from "./_storage_scope.ts";
import type { StorageWriteFaults } from "./_storage_write_faults.ts";
import type { StorageActorOptions } from "./storage_actor.ts";

/** The StorageActor's state and calls its parts share (see the module doc). */
export interface StorageCore {
  /** The actor's options. */
  readonly options: StorageActorOptions;
  /** The local chunk store, open from the actor's start. */
  store(): ChunkStore;
  /** Which chunks each peer was given or proved (`given-chunks.log`), open from the start. */
  given(): GivenChunks;
  /** The replicated store over the storage peers; `null` while there are none. */
  replicated(): ReplicatedStore | null;
  /** This node's own store as one of its holders (with `holdHere`), from the start. */
  self(): SelfPeer | null;
  /** Holder repair of what this node holds for the network (with `holdHere`), from the start. */
  holderRepair(): HolderRepair | null;
  /** The files over `blocks()`, as rebuilt on the last peer change. */
  files(): FileStore;
  /** Where blocks are read and written: the peers when there are any, else the local store. */
  blocks(): BlockStore;
  /** The chunk size and in-memory bound of the files the actor reads and writes. */
  fileOptions(): FileStoreOptions;
  /** What the pins here reach, and the blocks running puts hold. */
  readonly scope: StorageScope;
  /**
   * Aborted once this node is stopping ({@link StorageCore.stopped}): the audits under way are
   * called off with it, judging no one.
   */
  readonly stopping: AbortSignal;
  /**
   * Whether this node is stopping: the actor's stop has begun, or its actor system's shutdown. The
   * shutdown stops the NetworkActor, and every connection to a storage peer with it, before this
   * actor (the network first: it says goodbye), so a peer's call that fails from then on failed by
   * this node's stop, not the peer's fault. The first call that sees the shutdown aborts
   * {@link StorageCore.stopping}.
   */
  stopped(): boolean;
  /**
   * Which network each storage peer came from, and whether that network has gone down since (its
   * stop closed the peer's connection: a call then failed on this node's side). See
   * `_storage_network_restarts.ts`.
   */
  readonly network: NetworkRestarts;
  /** Writes the OS refused, held until one succeeds: the `capacity` answer's `writeFault`. */
  readonly writeFaults: StorageWriteFaults;
  /**
   * The chunks an audit here is challenging a holder on now: served to no peer until its answer
   * (`_challenged_chunks.ts`).
   */
  readonly challenged: ChallengedChunks;
}
