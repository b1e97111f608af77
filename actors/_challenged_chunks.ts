/**
 * The chunks this node is challenging a holder on right now (`_storage_audits.ts`, each audit from
 * the challenge sent to its answer or its deadline), which it serves to no peer meanwhile
 * (`_storage_peer_requests.ts`, `get_chunk`): a holder that keeps nothing answered each challenge
 * by fetching the chunk from this node, its auditor, under a second key (a fresh key costs
 * nothing), and passed every round (review s81 store, F1). Refused to every key, for the few
 * chunks asked and only while asked: the holder learns the challenge when it arrives, so the hold
 * tells a colluding key nothing sooner. Owned by the StorageActor (its `StorageCore`). Not part of
 * the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";

/** Chunks (storage keys) under an open challenge here, counted: two audits may ask one chunk. */
export class ChallengedChunks {
  readonly #open = new Map<string, number>();

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
        else this.#open.delete(key);
      }
    };
  }

  /** Whether `cid` (a CID or a storage key) is under an open challenge here. */
  has(cid: string): boolean {
    return this.#open.has(keyOf(cid));
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
