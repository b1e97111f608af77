/**
 * Repair after holders leave: when storage peers drop out of the peer set, the chunks they held
 * have fewer than r copies. Every node that holds such a chunk can tell (rendezvous placement is
 * computed from the peer set alone), and exactly one of them should restore it: the surviving
 * holder that ranked first for that chunk. It runs {@link ReplicatedStore.repair} on those
 * chunks, which puts a copy on each new holder (the next-ranked peers) that lacks one.
 *
 * Nobody coordinates: nodes that see the same peer set pick the same repairer per chunk. Two
 * nodes with different views may both repair a chunk (harmless: the second finds it present),
 * and a chunk held only by the departed peers is lost (counted as such in the report).
 *
 * @module
 */
import { rankPeers } from "./rendezvous.ts";
import type { RepairReport, ReplicatedStore } from "./replicated_store.ts";

/**
 * The chunks among `held` this node (`selfId`) should repair after the peer set changed from
 * `before` to `after`: those a departed peer was a holder of (one of the first `r` ranked), of
 * which this node is the best-ranked surviving holder — or, if none of the r survived, which
 * this node still holds.
 *
 * @example
 * ```ts
 * import { chunksToRepair } from "./holder_repair.ts";
 * const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
 * const before = [{ id: "a" }, { id: "b" }, { id: "c" }];
 * const after = before.filter((p) => p.id !== "b");
 * // With r = 3 everyone held it; "b" left, so the best survivor repairs it.
 * const mine = chunksToRepair([cid], before, after, "a", 3);
 * ```
 */
export function chunksToRepair(
  held: Iterable<string>,
  before: readonly { readonly id: string }[],
  after: readonly { readonly id: string }[],
  selfId: string,
  r: number,
): string[] {
  const alive = new Set(after.map((p) => p.id));
  if (before.every((p) => alive.has(p.id))) return []; // nobody left
  const out: string[] = [];
  for (const cid of held) {
    const holders = rankPeers(cid, before).slice(0, r);
    if (holders.every((p) => alive.has(p.id))) continue; // all its holders are still here
    const survivors = holders.filter((p) => alive.has(p.id));
    if (survivors.length === 0 || survivors[0].id === selfId) out.push(cid);
  }
  return out;
}

/** Chunks ranked between two turns of the event loop. */
const RANK_SLICE = 512;

/** What one repair pass after a departure did (for logs and tests). */
export interface HolderRepairPass extends RepairReport {
  /** Hex ids of the peers whose departure started it. */
  departed: string[];
}

/** Options of {@link HolderRepair}. */
export interface HolderRepairOptions {
  /** This node's holder id (hex public key). */
  selfId: string;
  /**
   * What this node holds for the network (replicas peers gave it, its objects of pins that are
   * not `local`): listed when a pass starts. Only these are ever copied to peers, so a block that
   * must stay on this node (a `local` file's) must not be listed.
   */
  held: () => AsyncIterable<string>;
  /** This node's own copy of a chunk (read instead of a replica's). */
  read?: (cid: string) => Promise<Uint8Array | undefined>;
  /** Called after each pass. */
  onPass?: (pass: HolderRepairPass) => void;
  /** Called when a pass fails as a whole (a store error); the next change retries. */
  onError?: (error: unknown) => void;
}

/**
 * Runs {@link chunksToRepair} passes, one at a time, as the peer set changes. A change that
 * comes while a pass runs waits for it (the next pass sees the newest set).
 */
export class HolderRepair {
  readonly #options: HolderRepairOptions;
  #running: Promise<void> = Promise.resolve();
  #passes = 0;

  /** @param options Who this node is, what it holds, where reports go. */
  constructor(options: HolderRepairOptions) {
    this.#options = options;
  }

  /** Passes finished so far. */
  get passes(): number {
    return this.#passes;
  }

  /**
   * The peer set of `store` changed from `before` (its peers are already `after`): queue a pass
   * if anyone left. Resolves when that pass is done (never rejects).
   */
  peersChanged(
    store: ReplicatedStore,
    before: readonly { readonly id: string }[],
    signal?: AbortSignal,
  ): Promise<void> {
    const after = store.peers;
    const alive = new Set(after.map((p) => p.id));
    const departed = before.filter((p) => !alive.has(p.id)).map((p) => p.id);
    if (departed.length === 0) return this.#running;
    const pass = this.#running.then(async () => {
      if (signal?.aborted) return;
      try {
        // Ranking is a hash per peer per chunk: done in slices, so a large store does not
        // hold the event loop (HTTP, actors, token streams) for the whole pass.
        const mine: string[] = [];
        let slice: string[] = [];
        const rank = async () => {
          mine.push(...chunksToRepair(slice, before, after, this.#options.selfId, store.replicas));
          slice = [];
          await new Promise((resolve) => setTimeout(resolve, 0));
        };
        for await (const cid of this.#options.held()) {
          slice.push(cid);
          if (slice.length === RANK_SLICE) await rank();
        }
        await rank();
        // Missing copies are what a departure leaves: ask the holders whether they have it
        // (a few bytes each) and send our own copy to those without.
        const report = await store.repair(mine, {
          signal,
          presence: true,
          local: this.#options.read,
        });
        this.#passes++;
        this.#options.onPass?.({ ...report, departed });
      } catch (error) {
        if (!signal?.aborted) this.#options.onError?.(error);
      }
    });
    this.#running = pass;
    return pass;
  }

  /** Resolves when the queued passes are done. */
  idle(): Promise<void> {
    return this.#running;
  }
}
