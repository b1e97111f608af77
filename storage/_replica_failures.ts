/**
 * How a `ReplicatedStore`'s replicas fail: the classes an operator counts
 * ({@link ReplicaFailureReason}, {@link replicaFailureReason}), the event its observer is told
 * ({@link ReplicaFailure}), and {@link FailureReports}, which tells the observer each failure once
 * and none of a call its caller cut off. The store owns one {@link FailureReports}; its reads
 * (`_replica_reads.ts`) and repairs (`_replica_repair.ts`) report through it. The public names
 * here are exported from `replicated_store.ts`; the module itself is not part of the public API.
 *
 * @module
 */
import type { StoragePeer } from "./storage_peer.ts";

/**
 * Why a replica failed, in a few classes an operator can count (the node's
 * `veriflow_storage_replica_failures_total`):
 * - `corrupt`: it answered a read with bytes that do not match the CID (garbage), or said so of
 *   its own copy;
 * - `missing`: it does not hold the chunk (`chunk_not_found`);
 * - `timeout`: it did not answer within the peer timeout (or the connection's);
 * - `full`: it holds no more (`replica_quota_exceeded`, `quota_exceeded`, `disk_full`);
 * - `error`: anything else (unreachable, refused, an error of its own).
 */
export type ReplicaFailureReason = "corrupt" | "missing" | "timeout" | "full" | "error";

/** Every {@link ReplicaFailureReason}, in a fixed order (metrics list each from the start). */
export const REPLICA_FAILURE_REASONS: readonly ReplicaFailureReason[] = [
  "corrupt",
  "missing",
  "timeout",
  "full",
  "error",
];

/** A replica that failed an operation. */
export interface ReplicaFailure {
  /** Which operation. */
  op: "put" | "get" | "prove" | "repair";
  /** The peer. */
  peerId: string;
  /** The chunk. */
  cid: string;
  /** What went wrong. */
  error: unknown;
  /** `error`'s class (see {@link ReplicaFailureReason}). */
  reason: ReplicaFailureReason;
}

/** The {@link ReplicaFailureReason} of a replica's failure `error`. */
export function replicaFailureReason(error: unknown): ReplicaFailureReason {
  if (isTimeout(error)) return "timeout";
  switch ((error as { code?: unknown } | null)?.code) {
    case "corrupt_chunk":
      return "corrupt";
    case "chunk_not_found":
      return "missing";
    case "replica_quota_exceeded":
    case "quota_exceeded":
    case "disk_full":
      return "full";
    default:
      return "error";
  }
}

/** A call that ran out of time: the store's peer timeout, or the connection's request timeout. */
export function isTimeout(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "TimeoutError" || e?.code === "request_timeout";
}

/** Tells a store's observer (`ReplicatedStoreOptions.onReplicaFailure`) of replica failures. */
export class FailureReports {
  readonly #onFailure: ((event: ReplicaFailure) => void) | undefined;
  /** Failures already told to {@link #onFailure} (see {@link report}). */
  readonly #reported = new WeakSet<object>();

  /** Reports to `onFailure`, if any. */
  constructor(onFailure: ((event: ReplicaFailure) => void) | undefined) {
    this.#onFailure = onFailure;
  }

  /**
   * Tell the observer that `peer` failed `op` on `cid`, unless the call was cut off by its caller
   * (`outer` aborted: a client gone, the node stopping): every holder in flight then fails the
   * same way, and none of them misbehaved.
   */
  report(
    op: ReplicaFailure["op"],
    peer: StoragePeer,
    cid: string,
    error: unknown,
    outer?: AbortSignal,
  ): void {
    if (outer?.aborted) return;
    if (typeof error === "object" && error !== null) {
      // One failure told once: a holder that timed out in a repair fails its later checks with
      // that same timeout (`ReplicaRepair.#ask`), which is not one more timeout per chunk.
      if (this.#reported.has(error)) return;
      this.#reported.add(error);
    }
    this.#onFailure?.({ op, peerId: peer.id, cid, error, reason: replicaFailureReason(error) });
  }
}
