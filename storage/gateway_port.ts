/**
 * What the HTTP gateway (`server/gateway_routes.ts`) needs from a node's storage, as a port: the
 * edge talks to this, not to an actor. `actors/storage_actor_peer.ts` implements it over the
 * StorageActor (`storageGateway`); a test can implement it over a plain store.
 *
 * @module
 */
import type { DeepWalkGate } from "./block_store.ts";
import type { CarScope } from "./car.ts";
import type { FileInfo, PutFileResult } from "./file_store.ts";
import type { ShareRecord } from "./share_links.ts";
import type { LeafCheck } from "./unixfs.ts";

/** How a {@link GatewayStorage} read reaches the storage peers. */
export interface GatewayReadOptions {
  /** This node's own store only (`only-if-cached`): a block not held here is `chunk_not_found`. */
  local?: boolean;
  /**
   * Asked before a block read walks deep into the storage peers' ranking
   * (`BlockStoreCallOptions.deepWalk`): the gateway's spends its client's budget
   * (`server/deep_reads.ts`). Default: none, the walk unbounded (the node's own reads).
   */
  deepWalk?: DeepWalkGate;
}

/**
 * The storage side of the gateway and the file routes.
 *
 * Its reads (`block`, `stat`, `read`, `car`) look in the node's own store and its storage peers
 * (replicas over the network) by default; with `{ local: true }` they keep to this node's own
 * store, as the gateway's `Cache-Control: only-if-cached` asks: a block not held here is
 * `chunk_not_found`, and no peer is asked for it, nor told that it was wanted.
 */
export interface GatewayStorage {
  /** Store a public file (pinned, with its labels); resolves once stored. */
  put(
    source: ReadableStream<Uint8Array>,
    options: {
      name?: string;
      mime?: string;
      signal?: AbortSignal;
      /** The size the upload declares (`Content-Length`): admitted against the disk floor first. */
      size?: number;
    },
  ): Promise<PutFileResult>;
  /** One verified block, by any CID of it (local or from the storage peers). */
  block(cid: string, signal?: AbortSignal, options?: GatewayReadOptions): Promise<Uint8Array>;
  /** A file's metadata (with the labels its pin recorded). */
  stat(cid: string, options?: GatewayReadOptions): Promise<FileInfo>;
  /** A public file's bytes `[start, end)`, verified chunk by chunk. */
  read(
    cid: string,
    range: { start: number; end: number; signal?: AbortSignal },
    options?: GatewayReadOptions,
  ): Promise<ReadableStream<Uint8Array>>;
  /**
   * False only when a read of block `cid` is known to fail with `chunk_not_found`: this node's store
   * does not hold it, and (with `local`, without storage peers, or for an object kept from them)
   * there is nowhere else to read it. The peers are not asked: a route checks a file's leaves with
   * this before its `200` (review s76 F3), and asking the holders would cost a round trip per leaf.
   * Optional: a port without it has every leaf taken as readable.
   */
  mayRead?(cid: string, options?: { local?: boolean }): Promise<boolean>;
  /**
   * {@link mayRead} of many leaves in one call (one node's, for the check a file route makes before
   * its `200`): the first that a read is known to fail on, and whether leaves not held here are
   * checked at all (`checks`: false on a node with storage peers, when nothing here is kept from
   * them, so the caller stops asking). Optional: a port without it has every leaf taken as readable.
   */
  leavesReadable?(cids: readonly string[], options?: { local?: boolean }): Promise<LeafCheck>;
  /** A CAR of the DAG under `cid`. */
  car(
    cid: string,
    scope: CarScope,
    signal?: AbortSignal,
    options?: GatewayReadOptions,
  ): Promise<ReadableStream<Uint8Array>>;
  /** The record of share `id`, if there is one (valid or not: the gateway judges expiry). */
  share(id: string): Promise<ShareRecord | undefined>;
}
