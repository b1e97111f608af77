/**
 * The StorageActor's messages and answers: what a node's other actors, its network edge and
 * library users ask of its storage role, and what it says back. The actor itself is in
 * `storage_actor.ts`; the wire messages another node's store is asked with are in
 * `protocols/storage_messages.ts`.
 *
 * Expected failures — an unknown CID, a corrupt chunk, a full quota, a wrong key: anything typed
 * as a {@link VeriflowError} — are normal outcomes for a store, so they are answered as
 * `{ ok: false, error }` ({@link StorageReply}) and the actor carries on. Anything else (an I/O
 * error the store does not understand) crashes the actor and its supervisor restarts it from a
 * fresh, re-opened store ("let it crash"). {@link unwrapReply} turns a reply back into a value
 * or a thrown typed error.
 *
 * Messages that serve other nodes (`put_chunk`, `get_chunk`, `has_chunk`, `prove`) mirror the
 * {@link StoragePeer} interface one to one; `protocols/storage_messages.ts` carries them over
 * the wire.
 *
 * @module
 */
import type { VeriflowError } from "../protocols/errors.ts";
import type { AuditResult } from "../storage/audit.ts";
import type { DeepWalkGate } from "../storage/block_store.ts";
import type { AuditRoundReport } from "../storage/audit_round.ts";
import type { ChunkStoreStats, GcResult } from "../storage/chunk_store.ts";
import type { FileInfo, PutFileResult } from "../storage/file_store.ts";
import type { PendingPut } from "../storage/pending_put.ts";
import type { CarScope } from "../storage/car.ts";
import type { ShareRecord } from "../storage/share_links.ts";
import type { LeafCheck } from "../storage/unixfs.ts";
import type { RepairReport, ReplicaFailureReason } from "../storage/replicated_store.ts";
import type { StoragePeer } from "../storage/storage_peer.ts";
import type { FileCounts } from "./_storage_pin_counts.ts";
export type { FileCounts } from "./_storage_pin_counts.ts";

/** Store a file. Answered at once with a {@link PutHandle}. */
export interface StoragePutMessage {
  /** Message tag. */
  type: "put";
  /** The file's bytes. */
  source: ReadableStream<Uint8Array>;
  /** Optional name for the manifest. */
  name?: string;
  /** Optional MIME type for the manifest. */
  mime?: string;
  /** Encrypt with the actor's owner key (private tier). Default `false`. */
  private?: boolean;
  /**
   * Keep it in this node's own store only, never on storage peers (a trainer's private shard:
   * not even its ciphertext leaves the node). Default `false`.
   */
  local?: boolean;
  /** Pin the file so GC keeps it. Default `true`. */
  pin?: boolean;
  /** Aborts the put. */
  signal?: AbortSignal;
  /**
   * The size the file declares (an upload's `Content-Length`): a put kept in this node's store
   * is admitted for all of it against `storage.putMinFreeBytes` before it is read
   * (`PendingPut`'s `declaredBytes`). Default: none, each object judged as it is written.
   */
  size?: number;
}
/** Stream a file (or a byte range). Answered with a `ReadableStream<Uint8Array>`. */
export interface StorageGetMessage {
  /** Message tag. */
  type: "get";
  /** File id. */
  cid: string;
  /** First byte. Default 0. */
  start?: number;
  /** One past the last byte. Default: the file size. */
  end?: number;
  /** Aborts the transfer. */
  signal?: AbortSignal;
  /**
   * Read this node's own store only, never the storage peers (the gateway's
   * `Cache-Control: only-if-cached`): a block not held here is `chunk_not_found`. Default `false`.
   */
  local?: boolean;
  /**
   * Asked before a read walks deep into the storage peers' ranking (`BlockStoreCallOptions`
   * `deepWalk`): the HTTP gateway's spends its client's budget. Default: none (not bounded).
   */
  deepWalk?: DeepWalkGate;
}
/**
 * The whole content named by a CID, as bytes (a file id or a raw object CID). This is what
 * inference uses to resolve model and prompt CIDs. Answered with a `Uint8Array`.
 */
export interface StorageGetBytesMessage {
  /** Message tag. */
  type: "get_bytes";
  /** File id or raw object CID. */
  cid: string;
  /** Read this node's own store only (a file put with `local`). Default `false`. */
  local?: boolean;
}
/** Store small bytes as a file. Answered with the {@link PutFileResult}. */
export interface StoragePutBytesMessage {
  /** Message tag. */
  type: "put_bytes";
  /** The bytes. */
  bytes: Uint8Array;
  /** Optional name. */
  name?: string;
  /** Optional MIME type. */
  mime?: string;
  /** Encrypt with the owner key (see {@link StoragePutMessage.private}). Default `false`. */
  private?: boolean;
  /** This node's store only (see {@link StoragePutMessage.local}). Default `false`. */
  local?: boolean;
  /** Pin it. Default `true`. */
  pin?: boolean;
}
/** A file's metadata. Answered with {@link FileInfo}. */
export interface StorageStatMessage {
  /** Message tag. */
  type: "stat";
  /** File id. */
  cid: string;
  /**
   * Read this node's own store only, never the storage peers (the gateway's
   * `Cache-Control: only-if-cached`): a block not held here is `chunk_not_found`. Default `false`.
   */
  local?: boolean;
  /**
   * Asked before a read walks deep into the storage peers' ranking (`BlockStoreCallOptions`
   * `deepWalk`): the HTTP gateway's spends its client's budget. Default: none (not bounded).
   */
  deepWalk?: DeepWalkGate;
}
/**
 * Pin or unpin a root. Answered with `true` when the pin set changed (pin: always `true`). A pin of
 * a file whose blocks are on the storage peers is answered once they are fetched and held here,
 * which runs outside the actor's mailbox; an `unpin` of it taken meanwhile finds it not pinned yet.
 */
export interface StoragePinMessage {
  /** Message tag. */
  type: "pin" | "unpin";
  /** File id. */
  cid: string;
}
/**
 * Internal: the actor tells itself that the blocks of a `pin` it took are held here (fetched from
 * the peers outside its mailbox, `_storage_pin.ts`), and the file is pinned in its mailbox, in
 * order with `unpin` and `set_peers`. Answered with `true`. Never sent by another: an answer to a
 * `pin` is that pin's.
 */
export interface StoragePinHeldMessage {
  /** Message tag. */
  type: "pin_held";
  /** File id. */
  cid: string;
  /**
   * The put that recorded the fetched blocks, which the pin commits; `null`: nothing was fetched
   * (a `local` file, or no peers), and the store pins what it holds.
   */
  held: PendingPut | null;
}
/** Collect unreferenced objects. Answered with {@link GcResult}. */
export interface StorageGcMessage {
  /** Message tag. */
  type: "gc";
  /** Override the grace period (ms). */
  graceMs?: number;
}
/** Capacity and usage. Answered with {@link StorageCapacity}. */
export interface StorageCapacityMessage {
  /** Message tag. */
  type: "capacity";
}
/** Answer to `capacity`: the store's usage, and how its storage peers have failed it. */
export interface StorageCapacity extends ChunkStoreStats {
  /**
   * Storage peers' failures since the actor started, by reason (`ReplicaFailureReason`): reads
   * answered with garbage (`corrupt`) or not at all, writes refused, proofs and repair copies
   * failed. Each is logged too, a few lines per peer at a time.
   */
  replicaFailures: Record<ReplicaFailureReason, number>;
  /**
   * The store opened read-only: its directory refused writes then (`ChunkStore.readOnly`); every
   * write is refused `storage_unwritable` until a restart finds it writable.
   */
  readOnly: boolean;
  /**
   * The last write the OS refused (`storage_unwritable`: a directory turned read-only, no
   * permission, a failing device) while no write has succeeded since; absent while writes
   * succeed. `/healthz` shows it, and {@link readOnly}, as the `storage_unwritable` condition
   * (`storage_conditions.ts`).
   */
  writeFault?: StorageWriteFault;
  /**
   * The last write refused for want of space (`disk_full`), while none has succeeded since and
   * one was refused so in the last five minutes (`_storage_write_faults.ts`); absent otherwise.
   * `/healthz` shows it as the `storage_disk_full` condition.
   */
  diskFull?: StorageWriteFault;
  /** Free bytes of the store's filesystem now; null when the OS would not say. */
  diskFreeBytes: number | null;
  /**
   * Free bytes the store keeps for itself (`replicaMinFreeBytes`: peers' chunks never take them;
   * 0: none). Free space under it is the `storage_disk_low` condition.
   */
  minFreeBytes: number;
  /**
   * Chunks of this node's files known to be short of a copy on some holder: a catch-up after a
   * holder joined or a pin appeared is placing them, or their check failed and waits for a retry
   * (`HolderRepair.short`). 0 once every holder has its copies.
   */
  chunksShort: number;
}

/** A storage write fault held by the StorageActor (see {@link StorageCapacity.writeFault}). */
export interface StorageWriteFault {
  /** What the OS said, with the directory or file it refused. */
  message: string;
  /** Unix ms of the first refusal since a write last succeeded. */
  since: number;
  /** Writes refused since then. */
  failures: number;
}

/** The pinned files. Answered with {@link FileInfo}[]. */
export interface StorageListMessage {
  /** Message tag. */
  type: "list";
}
/**
 * How many files are pinned, how many of them public, and their chunks: what `list` would give
 * the dashboard, kept by the actor so the answer reads no manifest (`_storage_pin_counts.ts`).
 * Answered with {@link FileCounts}.
 */
export interface StorageFileCountsMessage {
  /** Message tag. */
  type: "file_counts";
}
/** A peer stores a chunk here. Answered with `undefined`. */
export interface StoragePutChunkMessage {
  /** Message tag. */
  type: "put_chunk";
  /** Claimed CID (verified). */
  cid: string;
  /** The chunk. */
  bytes: Uint8Array;
  /** Re-verify an existing copy and replace it if bad. */
  repair?: boolean;
  /**
   * Hex of the key of the writer, as its connection proved it: the chunk is counted against that
   * writer's fair share of what this node holds for peers. Unset: counted for no peer.
   */
  from?: string;
}
/** A peer reads a chunk. Answered with `Uint8Array`. */
export interface StorageGetChunkMessage {
  /** Message tag. */
  type: "get_chunk";
  /** The chunk's CID. */
  cid: string;
  /**
   * Hex of the key of the asker, as its connection proved it: a holder this node gave the chunk
   * asking for it says it lost its copy (`_storage_peer_requests.ts`). Unset: anyone.
   */
  from?: string;
}
/** A peer asks whether a chunk is here. Answered with `boolean`. */
export interface StorageHasChunkMessage {
  /** Message tag. */
  type: "has_chunk";
  /** The chunk's CID. */
  cid: string;
}
/** An audit challenge. Answered with one proof (or `null`) per CID. */
export interface StorageProveMessage {
  /** Message tag. */
  type: "prove";
  /** Fresh validator nonce. */
  nonce: Uint8Array;
  /** Sampled chunk CIDs. */
  cids: string[];
  /**
   * Hex of the key of the asker, as its connection proved it: a chunk this node keeps because
   * that peer now counts it as given here is counted against its fair share, as its `put_chunk`
   * would be. Unset: counted for no peer.
   */
  from?: string;
  /**
   * Told the CIDs proven but kept for no one on the asker's behalf (no replica room left for
   * it): `ProveChunksOptions.onUnkept`, called before the answer. Unset (an asker that does not
   * read unkept), each such chunk is answered `null` instead.
   */
  onUnkept?: (cids: readonly string[]) => void;
}
/** Restore replication of `cids` (default: every chunk of every pinned file). */
export interface StorageRepairMessage {
  /** Message tag. */
  type: "repair";
  /** CIDs to check. */
  cids?: string[];
}
/** Audit a holder on `cids`. Answered with {@link AuditResult}. */
export interface StorageAuditMessage {
  /** Message tag. */
  type: "audit";
  /** The holder. */
  holder: StoragePeer;
  /** Chunks it should hold. */
  cids: string[];
}

/**
 * Run one audit round over this node's replicated files (`storage/audit_round.ts`; the actor
 * runs one every `auditIntervalMs` by itself). Answered at once with an {@link AuditRoundHandle}:
 * the round runs without holding the actor's mailbox, and one asked while another runs is that
 * one.
 */
export interface StorageAuditRoundMessage {
  /** Message tag. */
  type: "audit_round";
}
/**
 * Look for pins another process made in this node's store since the last look (`cli.ts put` into
 * its directory) and start a catch-up of their copies (`actors/_storage_catch_up.ts`). The actor
 * sends it to itself every `PINS_CHECK_MS`. Answered with how many new pins it found.
 */
export interface StoragePinsCheckMessage {
  /** Message tag. */
  type: "pins_check";
}
/** Answer to `audit_round`. */
export interface AuditRoundHandle {
  /** Settles when the round (audits, then the repair of what failed) is over. */
  done: Promise<AuditRoundReport>;
}

/** One verified block by any CID of it (gateway `?format=raw`). Answered with `Uint8Array`. */
export interface StorageGetBlockMessage {
  /** Message tag. */
  type: "get_block";
  /** The block's CID (raw, dag-pb or dag-cbor). */
  cid: string;
  /** Aborts the read, and its fetch from the storage peers. */
  signal?: AbortSignal;
  /**
   * Read this node's own store only, never the storage peers (the gateway's
   * `Cache-Control: only-if-cached`): a block not held here is `chunk_not_found`. Default `false`.
   */
  local?: boolean;
  /**
   * Asked before a read walks deep into the storage peers' ranking (`BlockStoreCallOptions`
   * `deepWalk`): the HTTP gateway's spends its client's budget. Default: none (not bounded).
   */
  deepWalk?: DeepWalkGate;
}
/**
 * Whether reads of blocks may succeed (`GatewayStorage.mayRead`, `leavesReadable`): a block fails
 * only when this node's store lacks it and there is nowhere else to read it. Many in one message
 * (a file node's leaves), so a file's check is one mailbox turn per node, not per leaf. Answered
 * with a `LeafCheck` (`storage/unixfs.ts`).
 */
export interface StorageMayReadMessage {
  /** Message tag. */
  type: "may_read";
  /** The blocks' CIDs, checked in order up to the first that no read can get. */
  cids: readonly string[];
  /** Count this node's own store only (see {@link StorageGetBlockMessage.local}). */
  local?: boolean;
}
/** A CAR of a DAG. Answered with a `ReadableStream<Uint8Array>`. */
export interface StorageExportCarMessage {
  /** Message tag. */
  type: "export_car";
  /** The root. */
  cid: string;
  /** The whole DAG (default) or the root block only. */
  scope?: CarScope;
  /** Aborts the export. */
  signal?: AbortSignal;
  /**
   * Read this node's own store only, never the storage peers (the gateway's
   * `Cache-Control: only-if-cached`): a block not held here is `chunk_not_found`. Default `false`.
   */
  local?: boolean;
  /**
   * Asked before a read walks deep into the storage peers' ranking (`BlockStoreCallOptions`
   * `deepWalk`): the HTTP gateway's spends its client's budget. Default: none (not bounded).
   */
  deepWalk?: DeepWalkGate;
}
/** A share record (`<store>/shares/<id>`). Answered with {@link ShareRecord} or `null`. */
export interface StorageShareMessage {
  /** Message tag. */
  type: "share";
  /** The share id. */
  id: string;
}

/** Replace the storage peers files are replicated over (a peer joined or was lost). */
export interface StorageSetPeersMessage {
  /** Message tag. */
  type: "set_peers";
  /** The new peer set; empty turns replication off (files stay local). */
  peers: readonly StoragePeer[];
}

/**
 * The NetworkActor named in the actor's `network` option went down (crashed, or stopped to be
 * restarted), closing every connection to a storage peer it had made. The actor tells itself this
 * when it hears so in its actor system's events: in its mailbox, behind any `set_peers` that network
 * sent before, so the peers told from then on come from the next one (`_storage_network_restarts.ts`).
 */
export interface StorageNetworkDownMessage {
  /** Message tag. */
  type: "network_down";
  /** How many times the network has gone down, this one included. */
  generation: number;
}

/** Every message the StorageActor accepts. */
export type StorageMessage =
  | StoragePutMessage
  | StorageGetMessage
  | StorageGetBytesMessage
  | StoragePutBytesMessage
  | StorageStatMessage
  | StoragePinMessage
  | StoragePinHeldMessage
  | StorageGcMessage
  | StorageCapacityMessage
  | StorageListMessage
  | StorageFileCountsMessage
  | StoragePutChunkMessage
  | StorageGetChunkMessage
  | StorageHasChunkMessage
  | StorageMayReadMessage
  | StorageProveMessage
  | StorageRepairMessage
  | StorageAuditMessage
  | StorageAuditRoundMessage
  | StoragePinsCheckMessage
  | StorageSetPeersMessage
  | StorageNetworkDownMessage
  | StorageGetBlockMessage
  | StorageExportCarMessage
  | StorageShareMessage;

/** The answer to every message but `put`: a value, or the typed error that prevented it. */
export type StorageReply<T> = { ok: true; value: T } | { ok: false; error: VeriflowError };

/**
 * The value of a reply, or its error thrown.
 *
 * @example
 * ```ts
 * import { StorageActor } from "./storage_actor.ts";
 * import { unwrapReply } from "./storage_actor_messages.ts";
 * const actor = new StorageActor({ dir: await Deno.makeTempDir() });
 * const stats = unwrapReply(await actor.receive({ type: "capacity" }));
 * ```
 */
export function unwrapReply<T>(reply: StorageReply<T> | unknown): T {
  const r = reply as StorageReply<T>;
  if (r.ok) return r.value;
  throw r.error;
}

/**
 * What each message type is answered with: `put` directly, every other one inside a
 * {@link StorageReply}. Lets callers type their asks:
 * `unwrapReply<StorageAnswers["capacity"]>(await ref.ask({ type: "capacity" }))`.
 */
export interface StorageAnswers {
  /** A handle whose `done` settles when stored. */
  put: PutHandle;
  /** The file's (or range's) verified bytes. */
  get: ReadableStream<Uint8Array>;
  /** The whole content. */
  get_bytes: Uint8Array;
  /** What was stored. */
  put_bytes: PutFileResult;
  /** File metadata. */
  stat: FileInfo;
  /** Always `true`. */
  pin: boolean;
  /** Whether it was pinned. */
  unpin: boolean;
  /** Always `true`. */
  pin_held: boolean;
  /** What GC did. */
  gc: GcResult;
  /** Usage and quota, and the storage peers' failures. */
  capacity: StorageCapacity;
  /** Pinned files. */
  list: FileInfo[];
  /** Counts of the pinned files. */
  file_counts: FileCounts;
  /** Nothing. */
  put_chunk: undefined;
  /** The chunk. */
  get_chunk: Uint8Array;
  /** Whether it is here. */
  has_chunk: boolean;
  /** The first block no read can get, and whether blocks not held here are checked. */
  may_read: LeafCheck;
  /** One proof (or `null`) per CID. */
  prove: (Uint8Array | null)[];
  /** What repair did. */
  repair: RepairReport;
  /** The audit outcome. */
  audit: AuditResult;
  /** The round, running. */
  audit_round: AuditRoundHandle;
  /** How many new pins were found. */
  pins_check: number;
  /** Nothing. */
  set_peers: undefined;
  /** Nothing. */
  network_down: undefined;
  /** The block. */
  get_block: Uint8Array;
  /** The CAR's bytes. */
  export_car: ReadableStream<Uint8Array>;
  /** The share, if recorded. */
  share: ShareRecord | null;
}

/** Answer to `put`: the put runs without holding the actor's mailbox. */
export interface PutHandle {
  /** Settles when the file (all chunks and the manifest) is stored and pinned. */
  done: Promise<PutFileResult>;
}
