/**
 * What a `ReplicatedStore`'s read path (`_replica_reads.ts`) and repair
 * (`_replica_repair.ts`) share of the store: its peer set and placement, its one bounded call to
 * a peer, and the parts it owns (failure reports, the per-peer records, the background work). The
 * store builds one {@link ReplicaCore} in its constructor; the peer set is read through a call, at
 * each use, as the store's own field was, since `setPeers` replaces it. Not part of the public
 * API.
 *
 * @module
 */
import type { BackgroundWork } from "./_background_work.ts";
import type { FailureReports } from "./_replica_failures.ts";
import type { ReplicaRecords } from "./_replica_records.ts";
import type { StoragePeer } from "./storage_peer.ts";

/** The store's state and calls its parts share (see the module doc). */
export interface ReplicaCore {
  /** The current peer set (`ReplicatedStore.peers`). */
  peers(): StoragePeer[];
  /** Copies of each chunk (r). */
  readonly replicas: number;
  /** The peer that is this node's own store, if any (`ReplicatedStoreOptions.selfId`). */
  readonly selfId: string | undefined;
  /** The r peers that should hold `cid`, best first (`ReplicatedStore.holders`). */
  holders(cid: string): StoragePeer[];
  /** Every peer in the order `cid` is placed on them (`ReplicatedStore.placement`). */
  placement(cid: string): StoragePeer[];
  /**
   * One call to a peer: `fn` under a signal that aborts with `outer` or at the peer timeout, and
   * rejected at the timeout even if the peer ignores its signal.
   */
  call<T>(outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Tells the store's observer of replica failures. */
  readonly failures: FailureReports;
  /** What each peer was given, missed, and served. */
  readonly records: ReplicaRecords;
  /** The store's background work: `flush` waits for it. */
  readonly background: BackgroundWork;
}
