/**
 * How many of one storage peer's `prove` and `get_chunk` requests the StorageActor answers at
 * once (`storage_actor.ts`). Both read whole chunks (a `prove` of 64 CIDs reads and hashes
 * 16 MiB for a request of about 4 KB), and both are answered outside the actor's mailbox, so
 * one peer's backlog never sits in front of another peer's audit challenge. Without a bound per
 * asking key, one peer could still start any number of them at once and share the disk and CPU
 * with an auditor's challenge a thousand to one; with it, a request past the bound is refused at
 * once with `busy` (the code the connection's own admission refuses a flood with), and each other
 * key keeps its whole budget: a flood from one key spends nothing of an auditor's. Keys cost
 * nothing, so the proves of every key that gave this node no chunk also share one small lane
 * ({@link MAX_STRANGER_PROVES_IN_FLIGHT}); a key that placed chunks here meets its own bound only.
 *
 * Counted per key the connection proved (`from`). A request with no key (an in-process caller:
 * the node's own code, a test) is not counted: a peer's request always carries one.
 * Not part of the public API.
 *
 * @module
 */
import { BusyError } from "../protocols/protocol_errors.ts";

/**
 * A peer's `prove` requests answered at once. An auditor refused `busy` signs `no_response`
 * against the holder (`storage/audit.ts`), so this must cover every challenge one honest node
 * sends one holder at once: its audit round asks each holder once and in turn, and each repair
 * running (a `repair` ask, a holder repair pass, the round's repair of what failed) checks one
 * chunk at a time, one proof per holder: four at once. Eight is twice that; a key's eight 64-chunk
 * proves are 8 chunk reads in flight (each prove reads its chunks one after another), which an
 * auditor's challenge of 4 chunks (another key) waits behind for milliseconds, not seconds.
 */
export const MAX_PEER_PROVES_IN_FLIGHT = 8;

/**
 * A peer's `get_chunk` requests answered at once. An honest reader asks one holder for up to
 * `DEFAULT_FILE_CONCURRENCY` (16) chunks per file it reads, and a gateway reads several files at
 * once; a refused read goes to the next replica, so this bounds a flood's work (64 chunk reads,
 * 16 MiB in memory) without refusing a busy honest reader in the common case.
 */
export const MAX_PEER_CHUNK_READS_IN_FLIGHT = 64;

/**
 * `prove` requests answered at once, all together, for every key that gave this node nothing
 * (`ChunkStore.heldFor` of it is 0): such a key has no chunk here to audit, and keys cost nothing,
 * so a per-key bound alone let 32 fresh keys keep 256 proves of 64 chunks in flight and push an
 * honest holder's answer to its owner's 64-chunk sweep past the 5 s deadline (review s81 vaudit2,
 * F2). They share this one lane; past it they are refused `busy` whatever their number. A key that
 * gave this node chunks (the one with a reason to audit them, charged for each one it placed) is
 * not in that lane: its own bound per key is all it meets, so its audit runs beside at most these
 * 8 proves of strangers, not behind them.
 */
export const MAX_STRANGER_PROVES_IN_FLIGHT = 8;

/** The requests a {@link PeerRequestBudget} counts. */
export type BudgetedPeerRequest = "prove" | "get_chunk";

/** The bound per key of each {@link BudgetedPeerRequest}. */
const LIMITS: Readonly<Record<BudgetedPeerRequest, number>> = {
  prove: MAX_PEER_PROVES_IN_FLIGHT,
  get_chunk: MAX_PEER_CHUNK_READS_IN_FLIGHT,
};

/** Counts each key's budgeted requests in flight, and refuses one past its bound. */
export class PeerRequestBudget {
  /** In flight per request type and key; a key with none is dropped, so idle peers cost nothing. */
  readonly #inFlight: Record<BudgetedPeerRequest, Map<string, number>> = {
    prove: new Map(),
    get_chunk: new Map(),
  };

  /** `prove` requests in flight of keys that gave this node nothing (the strangers' lane). */
  #strangerProves = 0;

  /** `prove` requests of keys that gave this node nothing, in flight now. */
  get strangerProves(): number {
    return this.#strangerProves;
  }

  /**
   * Take one slot of `from`'s budget for `type`, or throw {@link BusyError} when its bound is
   * reached. Returns the release (call it once, when the answer is settled). A request without a
   * key is not counted. `gave`: whether `from` gave this node chunks it holds for it; a `prove` of
   * a key that gave nothing also takes a slot of the strangers' shared lane
   * ({@link MAX_STRANGER_PROVES_IN_FLIGHT}).
   */
  take(type: BudgetedPeerRequest, from: string | undefined, gave = false): () => void {
    if (from === undefined) return () => {};
    const counts = this.#inFlight[type];
    const held = counts.get(from) ?? 0;
    if (held >= LIMITS[type]) {
      throw new BusyError(
        `peer ${
          from.slice(0, 16)
        }… has ${held} ${type} requests running here (the most one peer may)`,
      );
    }
    const stranger = type === "prove" && !gave;
    if (stranger && this.#strangerProves >= MAX_STRANGER_PROVES_IN_FLIGHT) {
      throw new BusyError(
        `${this.#strangerProves} prove requests of peers that placed no chunk here are running ` +
          `(the most they may together)`,
      );
    }
    counts.set(from, held + 1);
    if (stranger) this.#strangerProves++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (stranger) this.#strangerProves--;
      const left = (counts.get(from) ?? 1) - 1;
      if (left > 0) counts.set(from, left);
      else counts.delete(from);
    };
  }
}
