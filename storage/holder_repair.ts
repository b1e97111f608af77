/**
 * Repair after holders leave: when storage peers drop out of the peer set, the chunks they held
 * have fewer than r copies. Every node that holds such a chunk can tell (rendezvous placement is
 * computed from the peer set alone), and exactly one of them should restore it: the surviving
 * holder that ranked first for that chunk. It runs {@link ReplicatedStore.repair} on those
 * chunks, which puts a copy on each new holder (the next-ranked peers) that lacks one.
 *
 * Placement is judged under the peer sets the chunks were written under, not only the one just
 * before the departure. A peer that joined after a chunk was written ranks among its holders
 * without having it (joining moves no copies), and may push the peer that does have it out of
 * the first r: judged under the set just before the departure, the chunk's best survivor would
 * be the newcomer, which does not have it to list, or the departed copy-holder would not count
 * as a holder at all — and the chunk would stay below r copies. So each node remembers, until its
 * next pass, which chunks it took in under which peer set ({@link HolderRepair.noteWrite}), and a
 * pass ranks each such chunk under that set too ({@link planRepair}). A chunk whose holders under
 * it now differ from its holders under the new set — a holder left, or a newcomer took a place —
 * is repaired by the best surviving holder under it, which has it. A departure with no join since
 * the chunks came in is judged exactly as before, at the same cost.
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

/**
 * What a node is to check of one chunk it repairs: every holder (`null`: a holder left, so its
 * replacement needs the chunk and any survivor may lack it, as before), or only these holder ids
 * (newcomers that took a holder's place since the chunk was written).
 */
export type RepairTargets = ReadonlySet<string> | null;

/** A peer set a chunk may have been placed under, for {@link planRepair}. */
export interface PlacementView {
  /** The peer set. */
  peers: readonly { readonly id: string }[];
  /** The chunks (storage keys) that came in under it; absent: every chunk held. */
  chunks?: ReadonlySet<string>;
}

/**
 * The chunks among `held` this node (`selfId`) should repair now that the peer set is `after`,
 * judging each under every view in `views` that covers it (the set just before the change covers
 * every chunk; a set chunks came in under covers those), with the holders to check for each.
 * Under a view V, a chunk needs repair when its first `r` holders under V are not all its first
 * `r` holders under `after`: then the best-ranked of them still present repairs it (if none is,
 * every node that holds it does). A holder of V that left means every holder is checked; only
 * newcomers taking places means only they are. With the one view `before` and no newcomer, this
 * is {@link chunksToRepair}, every holder checked.
 *
 * With `deferred` (what {@link HolderRepair} passes), a holder may have missed the chunk's write
 * (the put gave its copy to the next-ranked peer): a departure of the peer ranked r + 1 counts as
 * a holder's, and for a chunk whose best survivor is another node, this node — a surviving holder
 * below it — repairs it too, every holder checked, after asking the survivors ranked above it
 * (their ids go in `deferred`; see `RepairOptions.defer`), which lack it if they missed the write.
 *
 * @example
 * ```ts
 * import { planRepair } from "./holder_repair.ts";
 * const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
 * const written = [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }];
 * const before = [...written, { id: "e" }]; // "e" joined after the write
 * const after = before.filter((p) => p.id !== "d");
 * const views = [{ peers: written, chunks: new Set([cid]) }, { peers: before }];
 * const plan = planRepair([cid], views, after, "a", 3);
 * ```
 */
export function planRepair(
  held: Iterable<string>,
  views: readonly PlacementView[],
  after: readonly { readonly id: string }[],
  selfId: string,
  r: number,
  deferred?: Map<string, Set<string>>,
): Map<string, RepairTargets> {
  const alive = new Set(after.map((p) => p.id));
  // Per view: can a holder under it have left, or a peer it lacks now hold a place?
  const judged = views.filter((v) => v.peers.length > 0).map(({ peers, chunks }) => {
    const ids = new Set(peers.map((p) => p.id));
    return {
      peers,
      chunks,
      departures: peers.some((p) => !alive.has(p.id)),
      newcomers: after.some((p) => !ids.has(p.id)),
    };
  }).filter((v) => v.departures || v.newcomers);
  const out = new Map<string, RepairTargets>();
  if (judged.length === 0) return out;
  for (const cid of held) {
    let every = false;
    let some: Set<string> | undefined;
    let holdersAfter: string[] | undefined;
    let defer: Set<string> | undefined;
    for (const { peers, chunks, newcomers } of judged) {
      if (chunks && !chunks.has(cid)) continue;
      const ranked = rankPeers(cid, peers);
      const holders = ranked.slice(0, r);
      const survivors = holders.filter((p) => alive.has(p.id));
      // A holder that missed the chunk's write (down, slow, full) left its copy to the next-ranked
      // peer: that one leaving loses a copy too.
      const lost = survivors.length < holders.length ||
        (deferred !== undefined && ranked.length > r && !alive.has(ranked[r].id));
      if (survivors.length > 0 && survivors[0].id !== selfId) {
        // Theirs to repair — if they have it: one that missed the write has nothing to list. So
        // a surviving holder below them that has it asks them first (`deferred`).
        const at = survivors.findIndex((p) => p.id === selfId);
        if (deferred && at > 0 && lost) {
          defer ??= new Set();
          for (const p of survivors.slice(0, at)) defer.add(p.id);
        }
        continue;
      }
      if (lost) {
        every = true; // a holder left
        continue;
      }
      if (!newcomers) continue;
      holdersAfter ??= rankPeers(cid, after).slice(0, r).map((p) => p.id);
      const before = new Set(holders.map((p) => p.id));
      for (const id of holdersAfter) {
        if (!before.has(id)) (some ??= new Set()).add(id);
      }
    }
    if (every) out.set(cid, null);
    else if (defer) {
      out.set(cid, null);
      deferred!.set(cid, defer);
    } else if (some) out.set(cid, some);
  }
  return out;
}

/**
 * Peer sets remembered between passes; past this, the middle ones are dropped (their chunks are
 * judged under the set before the change only, as before).
 */
const MAX_VIEWS = 16;
/** Chunks remembered per peer set; past this, it is applied to every chunk held. */
const MAX_NOTED = 1 << 16;

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
 * Runs {@link planRepair} passes, one at a time, as the peer set changes. A change that
 * comes while a pass runs waits for it (the next pass sees the newest set).
 */
export class HolderRepair {
  readonly #options: HolderRepairOptions;
  #running: Promise<void> = Promise.resolve();
  #passes = 0;
  /**
   * Per peer set (the store's own array), the chunks that came in under it since the last pass
   * (see {@link noteWrite}); `null`: too many to list, so every chunk held.
   */
  #views = new Map<readonly { readonly id: string }[], Set<string> | null>();

  /** @param options Who this node is, what it holds, where reports go. */
  constructor(options: HolderRepairOptions) {
    this.#options = options;
  }

  /** Passes finished so far. */
  get passes(): number {
    return this.#passes;
  }

  /**
   * This node took in `cid` (a storage key) to hold for the network — a peer's `put_chunk`, its
   * own put — while the peer set was `peers` (the store's own array, kept by identity until the
   * set changes): remembered until the next pass, which judges its placement under that set too.
   */
  noteWrite(peers: readonly { readonly id: string }[], cid: string): void {
    let chunks = this.#views.get(peers);
    if (chunks === undefined) {
      chunks = new Set();
      this.#views.set(peers, chunks);
      // Bounded: keep the oldest (the longest-displaced holders) and the newest sets.
      if (this.#views.size > MAX_VIEWS) {
        this.#views.delete([...this.#views.keys()][MAX_VIEWS / 2]);
      }
    }
    if (chunks === null) return;
    chunks.add(cid);
    if (chunks.size > MAX_NOTED) this.#views.set(peers, null);
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
      // The set just before the change, for every chunk, and the sets chunks came in under since
      // the last pass, for those chunks; taken now (chunks that come in meanwhile wait for the
      // next pass), and put back if this pass fails.
      const noted = this.#views;
      this.#views = new Map();
      const views: PlacementView[] = [{ peers: before }];
      for (const [peers, chunks] of noted) {
        if (!sameIds(peers, before)) views.push({ peers, chunks: chunks ?? undefined });
      }
      try {
        // Ranking is a hash per peer per chunk: done in slices, so a large store does not
        // hold the event loop (HTTP, actors, token streams) for the whole pass.
        const mine = new Map<string, RepairTargets>();
        const deferred = new Map<string, Set<string>>();
        let slice: string[] = [];
        const rank = async () => {
          const plan = planRepair(
            slice,
            views,
            after,
            this.#options.selfId,
            store.replicas,
            deferred,
          );
          for (const [cid, targets] of plan) mine.set(cid, targets);
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
        const report = await store.repair(mine.keys(), {
          signal,
          presence: true,
          local: this.#options.read,
          only: (cid) => mine.get(cid) ?? undefined,
          defer: (cid) => deferred.get(cid),
        });
        this.#passes++;
        this.#options.onPass?.({ ...report, departed });
      } catch (error) {
        for (const [peers, chunks] of noted) {
          for (const cid of chunks ?? []) this.noteWrite(peers, cid);
          if (chunks === null) this.#views.set(peers, null);
        }
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

/** True when `a` and `b` list the same peer ids. */
function sameIds(
  a: readonly { readonly id: string }[],
  b: readonly { readonly id: string }[],
): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const ids = new Set(a.map((p) => p.id));
  return b.every((p) => ids.has(p.id));
}
