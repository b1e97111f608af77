/**
 * The chunks this node is challenging a holder on right now (`_storage_audits.ts`, each audit from
 * the challenge sent to its answer or its deadline, `AUDIT_ANSWER_TIMEOUT_MS` at most), which it
 * serves to no one meanwhile: not to a peer (`_storage_peer_requests.ts`, `get_chunk`), nor to a
 * client of its gateway (`storage_actor.ts`: `get_block`, `export_car`, `get`). A holder that keeps
 * nothing answered each challenge by fetching the chunk from this node, its auditor, under a second
 * key (a fresh key costs nothing: review s81 store, F1) or from its gateway, which needs no key
 * (review s81 vaudit, F1), and passed every round. Refused to everyone, for the few chunks asked
 * and only while asked: the holder learns the challenge when it arrives, so the hold tells a
 * colluding reader nothing sooner. This node's own reads (the audit's reference copies, repair)
 * are not held. Owned by the StorageActor (its `StorageCore`). Not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { AUDIT_ANSWER_TIMEOUT_MS } from "../storage/audit.ts";
import { ChunkUnderAuditError } from "../storage/errors.ts";

/** `Retry-After` of a refusal: the hold ends by the holder's answer deadline at the latest. */
const HOLD_RETRY_AFTER_S = Math.ceil(AUDIT_ANSWER_TIMEOUT_MS / 1000);

/** Chunks (storage keys) under an open challenge here, counted: two audits may ask one chunk. */
export class ChallengedChunks {
  readonly #open = new Map<string, number>();
  /** Per held key, the reads waiting for its hold to end ({@link whenReleased}). */
  readonly #waiting = new Map<string, Set<() => void>>();

  /**
   * Hold `cids` (CIDs or storage keys) until the returned release is called (once; later calls do
   * nothing).
   */
  hold(cids: Iterable<string>): () => void {
    const keys = [...new Set([...cids].map(keyOf))];
    for (const key of keys) this.#open.set(key, (this.#open.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of keys) {
        const left = (this.#open.get(key) ?? 1) - 1;
        if (left > 0) this.#open.set(key, left);
        else {
          this.#open.delete(key);
          const waiting = this.#waiting.get(key);
          this.#waiting.delete(key);
          for (const wake of waiting ?? []) wake();
        }
      }
    };
  }

  /**
   * Settle once `cid` is not held (at once when it is not), for a read already streaming a file to
   * a gateway client, which a refusal would break after its headers (review s81 vaudit2, F3). The
   * hold ends with the holder's answer or its deadline, so this waits {@link AUDIT_ANSWER_TIMEOUT_MS}
   * at most; held still then (a new challenge of the chunk), it throws {@link ChunkUnderAuditError}
   * as {@link refuseHeld}. Delaying the bytes past the holder's deadline gives a holder relaying
   * them nothing. `signal` (the client gone) ends the wait with its reason.
   */
  async whenReleased(cid: string, signal?: AbortSignal): Promise<void> {
    const key = keyOf(cid);
    if (!this.#open.has(key)) return;
    signal?.throwIfAborted();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let waiting = this.#waiting.get(key);
    if (waiting === undefined) this.#waiting.set(key, waiting = new Set());
    waiting.add(resolve);
    const timer = setTimeout(resolve, AUDIT_ANSWER_TIMEOUT_MS);
    const abort = () => reject(signal!.reason);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await promise;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      this.#waiting.get(key)?.delete(resolve);
      if (this.#waiting.get(key)?.size === 0) this.#waiting.delete(key);
    }
    this.refuseHeld(cid);
  }

  /** How many reads wait for a hold to end ({@link whenReleased}). */
  get waiting(): number {
    let n = 0;
    for (const set of this.#waiting.values()) n += set.size;
    return n;
  }

  /** Whether `cid` (a CID or a storage key) is under an open challenge here. */
  has(cid: string): boolean {
    return this.#open.has(keyOf(cid));
  }

  /** Throw {@link ChunkUnderAuditError} when `cid` is held: a read of it others asked for. */
  refuseHeld(cid: string): void {
    if (this.has(cid)) throw new ChunkUnderAuditError(cid, HOLD_RETRY_AFTER_S);
  }

  /** How many chunks are held. */
  get size(): number {
    return this.#open.size;
  }
}

/** `cid`'s storage key; a string that is no CID as it is (no chunk here has it). */
function keyOf(cid: string): string {
  try {
    return storageKey(cid);
  } catch {
    return cid;
  }
}
