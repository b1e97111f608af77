/**
 * Storage peers' failures as the StorageActor reports them (`storage_actor.ts`): each one its
 * replicated store tells it is counted by reason (the `capacity` answer's `replicaFailures`) and
 * logged, a few lines per peer at a time (`network/log_limiter.ts`). Owned by the actor, built in
 * its constructor. Not part of the public API.
 *
 * @module
 */
import { LogLimiter } from "../network/log_limiter.ts";
import {
  REPLICA_FAILURE_REASONS,
  type ReplicaFailure,
  type ReplicaFailureReason,
} from "../storage/replicated_store.ts";

/** Storage peers' failures since the actor started: counted by reason, and logged. */
export class PeerFailures {
  /**
   * Storage peers' failures (reads, writes, proofs, repair copies) since this actor started, by
   * reason: the `capacity` answer's `replicaFailures`, `/metrics`'
   * `veriflow_storage_replica_failures_total`.
   */
  readonly counts = Object.fromEntries(
    REPLICA_FAILURE_REASONS.map((reason) => [reason, 0]),
  ) as Record<ReplicaFailureReason, number>;
  /** The log lines storage peers cause: a few per peer at a time (`log_limiter.ts`). */
  readonly #peerLog: LogLimiter;

  /** @param log Where the lines go (the actor's `log` option). */
  constructor(log: (line: string) => void) {
    this.#peerLog = new LogLimiter(log);
  }

  /**
   * Count a storage peer's failure by reason and log it, a few lines per peer at a time (the rest
   * are counted in one line when its window ends). Before, the replicated store's failures went to
   * no one: a holder answering reads with garbage, timing out or refusing every write showed in no
   * log line and no metric, and its operator could not see it (a review found it at stop 56).
   */
  failed(event: ReplicaFailure): void {
    this.counts[event.reason]++;
    const short = event.peerId.slice(0, 16);
    const error = event.error as { code?: unknown; message?: unknown } | null;
    const detail = typeof error?.code === "string"
      ? error.code
      : typeof error?.message === "string"
      ? error.message
      : String(event.error);
    this.#peerLog.line(
      `storage: peer ${short}`,
      `storage: peer ${short}: ${event.op} of ${event.cid} failed: ${event.reason} (${detail})`,
    );
  }

  /** Log the count of the peers' lines left out, and stop their timers (the actor's stop). */
  flush(): void {
    this.#peerLog.flush();
  }
}
