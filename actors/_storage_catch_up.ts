/**
 * When the StorageActor (`storage_actor.ts`) starts a catch-up of copies never sent
 * (`HolderRepair.catchUp`, `storage/holder_repair.ts`), over what, and what the operator reads of
 * it. Two events start one (review s79, F1):
 *
 * - **A holder joins or comes back** ({@link StorageCatchUp.peersSet}): a holder that was down
 *   during a put, or that is new, was never given the chunks it now holds a place for.
 * - **A pin appears that this node did not write** ({@link StorageCatchUp.pinsCheck}, the
 *   `pins_check` message the actor's timer sends every {@link PINS_CHECK_MS}): `cli.ts put` into a
 *   running node's directory stores the file here only; no peer was given a chunk of it.
 *
 * Either way the catch-up goes over the blocks of this node's own files (pins but `local` ones),
 * checks every holder the given-chunks log says lacks one, and reports its progress as log lines
 * and as {@link StorageCatchUp.short} (`veriflow_storage_chunks_short`). What starts one is
 * bounded (review s79 F4–F6): a join's checks only the holders that joined, over every file at
 * most once per {@link CATCH_UP_REJOIN_MS} each; the pins check lists `pins/` outside the mailbox,
 * and not when this node's own pin writes explain the change; a root unpinned before its turn is
 * skipped. Owned by the actor, built in its constructor on its {@link StorageCore}. Not part of
 * the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { STAMP_TRUST_MS } from "../storage/_dir_stamp.ts";
import type { BlockStore } from "../storage/block_store.ts";
import { ChunkNotFoundError, CorruptChunkError } from "../storage/errors.ts";
import { FileStore } from "../storage/file_store.ts";
import type { CatchUpProgress, CatchUpSources } from "../storage/holder_repair.ts";
import type { StoragePeer } from "../storage/storage_peer.ts";
import type { StorageCore } from "./_storage_core.ts";

/**
 * How often the actor looks for pins another process made (one `stat` of `pins/`, a listing only
 * when it changed): a file put with the CLI beside the node starts reaching its holders within
 * this, where it waited for audit rounds before. A stat every few seconds costs nothing.
 */
export const PINS_CHECK_MS = 5_000;

/**
 * Longest a pins check goes on trusting that this node's own pin writes explain every change of
 * `pins/` without listing it (review s79 F4): a listing of 100,000 pins costs 0.5–1 s, which a
 * busy node's puts would otherwise start every {@link PINS_CHECK_MS}. Two stats around a write
 * cannot rule out another process's pin landing between them, or in the same tick of a coarse
 * clock, so a pin hidden that way is still found, this late at most.
 */
export const PINS_RELIST_MS = 60_000;

/**
 * Least time between two full join catch-ups of one holder (review s79 F5). A full one walks
 * every block of this node's files (about 0.1 ms a block: 100 s at a million), so a peer that
 * flaps, or reconnects on purpose, would keep this node's repair busy at will. A holder back
 * sooner is caught up on the files pinned here since its last catch-up only (none: no walk);
 * when more were pinned than `StorageScope.pinLog` remembers, its full one waits for the
 * window's end (the next pins check after it), the audit round's placement check covering it
 * meanwhile as before catch-ups existed. Ten minutes is the default audit interval: a holder
 * back is never worse off than then.
 */
export const CATCH_UP_REJOIN_MS = 10 * 60_000;

/** The StorageActor's catch-ups: what starts them, what they go over, what they report. */
export class StorageCatchUp {
  readonly #core: StorageCore;
  /** The pins seen at the last {@link pinsCheck}; `null` until the first, which only records. */
  #known: Set<string> | null = null;
  /** The pins directory's stamp at the last {@link pinsCheck}. */
  #stamp = -1;
  /** When `pins/` was last listed ({@link #now}). */
  #listedAt = 0;
  /** Whether a check since that listing took a changed stamp for this node's own writes. */
  #skipped = false;
  /** The pins check running (outside the mailbox): a check asked meanwhile waits for it. */
  #checking: Promise<number> | null = null;
  /**
   * Per holder id, when its last full join catch-up started ({@link CATCH_UP_REJOIN_MS}) and the
   * last pin (`StorageScope.pinSeq`) a catch-up of its went over.
   */
  readonly #caughtUp = new Map<string, { at: number; seq: number }>();
  /** Holders that came back inside their window: caught up by a pins check after it. */
  readonly #deferred = new Set<string>();
  readonly #now: () => number;

  /**
   * @param core The actor's state and calls (its store, the given log, its holder repair).
   * @param now The clock of the rate limit and the relist bound (ms). Default `Date.now`.
   */
  constructor(core: StorageCore, now: () => number = Date.now) {
    this.#core = core;
    this.#now = now;
  }

  /** What a catch-up reads: this node's files' blocks, and what each peer was given. */
  readonly sources: CatchUpSources = {
    blocks: (roots) => this.#blocks(roots),
    wasGiven: (peerId, cid) => this.#core.given().has(peerId, cid),
    unpins: () => this.#core.scope.unpins,
  };

  /** Chunks known short of a copy on a holder (0 without holder repair). */
  get short(): number {
    return this.#core.holderRepair()?.short ?? 0;
  }

  /**
   * The peer set went from `before` to what the replicated store has now (`fresh`: it was just
   * built, as at the node's start): catch up for the holders that joined (every holder when
   * fresh): over every file at most once per {@link CATCH_UP_REJOIN_MS} per holder, over the
   * files pinned since its last catch-up when it is back sooner.
   */
  peersSet(before: readonly StoragePeer[], fresh: boolean, signal?: AbortSignal): void {
    const replicated = this.#core.replicated();
    const repair = this.#core.holderRepair();
    if (replicated === null || repair === null) return;
    const had = new Set(fresh ? [] : before.map((p) => p.id));
    const selfId = this.#core.self()?.id;
    const joined = replicated.peers.filter((p) => p.id !== selfId && !had.has(p.id));
    const scope = this.#core.scope;
    const now = this.#now();
    for (const [id, last] of this.#caughtUp) {
      if (now - last.at >= CATCH_UP_REJOIN_MS && !this.#deferred.has(id)) this.#caughtUp.delete(id);
    }
    const full: string[] = [];
    const recent: string[] = [];
    const roots = new Set<string>();
    let idle = 0;
    let later = 0;
    for (const peer of joined) {
      const last = this.#caughtUp.get(peer.id);
      if (last === undefined || now - last.at >= CATCH_UP_REJOIN_MS) {
        full.push(peer.id);
        continue;
      }
      // Back within its window: it lacks at most the files pinned since its last catch-up.
      const since = scope.pinnedSince(last.seq);
      if (since === null) {
        this.#deferred.add(peer.id); // too many to name: all of them, at the window's end
        later++;
      } else if (since.length === 0) idle++;
      else {
        for (const root of since) roots.add(root);
        recent.push(peer.id);
        last.seq = scope.pinSeq;
      }
    }
    if (idle > 0 || later > 0) {
      this.#core.options.log?.(
        `storage: ${idle + later} holder(s) back within ${CATCH_UP_REJOIN_MS / 1000} s of ` +
          `their last catch-up: ${idle} with nothing pinned since, not caught up again; ` +
          `${later} caught up at that time's end`,
      );
    }
    if (recent.length > 0) {
      repair.catchUp(
        replicated,
        roots,
        `${recent.length} holder(s) back, ${roots.size} file(s) pinned since their last catch-up`,
        signal,
        recent,
      );
    }
    if (full.length === 0) return;
    const reason = fresh
      ? `${full.length} storage peer(s) found`
      : `${full.length} holder(s) joined or came back`;
    this.#start(full, reason, signal);
  }

  /**
   * Look for pins made here by another process since the last check (`cli.ts put` into this
   * store) and catch up their copies; start the join catch-ups deferred past their window. The
   * first check only records what is pinned: the catch-up of the node's start ({@link peersSet}
   * with `fresh`) covers every file there was. Runs outside the actor's mailbox (its listing of
   * a large `pins/` takes a second); a check asked while one runs waits for it. Resolves to how
   * many new pins it found.
   */
  pinsCheck(signal?: AbortSignal): Promise<number> {
    this.#checking ??= this.#check(signal).finally(() => this.#checking = null);
    return this.#checking;
  }

  /** Start a join catch-up for the holders `ids`, remembering when ({@link CATCH_UP_REJOIN_MS}). */
  #start(ids: readonly string[], reason: string, signal?: AbortSignal): void {
    const replicated = this.#core.replicated();
    const repair = this.#core.holderRepair();
    if (replicated === null || repair === null) return;
    const last = { at: this.#now(), seq: this.#core.scope.pinSeq };
    for (const id of ids) {
      this.#caughtUp.set(id, { ...last });
      this.#deferred.delete(id);
    }
    repair.catchUp(replicated, null, reason, signal, ids);
  }

  /** The deferred join catch-ups whose window ended, for the holders still here. */
  #startDeferred(signal?: AbortSignal): void {
    if (this.#deferred.size === 0) return;
    const here = new Set(this.#core.replicated()?.peers.map((p) => p.id) ?? []);
    const now = this.#now();
    const due: string[] = [];
    for (const id of this.#deferred) {
      if (!here.has(id)) this.#deferred.delete(id); // gone again: its next join decides
      else if (now - (this.#caughtUp.get(id)?.at ?? 0) >= CATCH_UP_REJOIN_MS) due.push(id);
    }
    if (due.length > 0) this.#start(due, `${due.length} holder(s) came back earlier`, signal);
  }

  /** One pins check ({@link pinsCheck}). */
  async #check(signal?: AbortSignal): Promise<number> {
    this.#startDeferred(signal);
    const store = this.#core.store();
    const scope = this.#core.scope;
    const now = this.#now();
    const stamp = await store.pinsStamp();
    const stale = this.#skipped && now - this.#listedAt >= PINS_RELIST_MS;
    // An unchanged stamp proves nothing while it is this recent: a pin may have come in its tick.
    if (stamp === this.#stamp && Date.now() - stamp >= STAMP_TRUST_MS && !stale) return 0;
    const known = this.#known;
    if (known !== null && !stale && stamp !== this.#stamp && this.#ownWritesExplain(stamp)) {
      // Only this node's own pins and unpins moved the stamp: their chunks went with them.
      for (const root of scope.pinnedHere) known.add(root);
      for (const root of scope.unpinnedHere) known.delete(root);
      scope.pinnedHere.clear();
      scope.unpinnedHere.clear();
      scope.forgetPinWrites(stamp);
      this.#stamp = stamp;
      this.#skipped = true;
      return 0;
    }
    this.#stamp = stamp;
    this.#listedAt = now;
    this.#skipped = false;
    // Taken before the listing: a pin of this node's that lands during it is judged next time.
    const mine = new Set(scope.pinnedHere);
    scope.pinnedHere.clear();
    scope.unpinnedHere.clear();
    const pins = await store.pins();
    scope.forgetPinWrites(stamp);
    this.#known = new Set(pins);
    // This node's own puts and pins sent their chunks to the holders as they went (a catch-up
    // would ask proofs of, and copy again, the copies past the quorum still on their way).
    const added = known === null ? [] : pins.filter((root) => !known.has(root) && !mine.has(root));
    for (const root of added) scope.notePinned(root); // a holder away now lacks it too
    const replicated = this.#core.replicated();
    const repair = this.#core.holderRepair();
    if (added.length === 0 || replicated === null || repair === null) return added.length;
    repair.catchUp(
      replicated,
      added,
      `${added.length} file(s) pinned here by another process (cli.ts put)`,
      signal,
    );
    return added.length;
  }

  /**
   * Whether this node's own writes of `pins/` ({@link StorageScope.pinWrite}) span every change
   * from the last check's stamp to `stamp`: each stamp from there on was one read just before or
   * just after one of them.
   */
  #ownWritesExplain(stamp: number): boolean {
    const writes = this.#core.scope.pinWrites;
    let reached = this.#stamp;
    for (let grew = true; grew && reached !== stamp;) {
      grew = false;
      for (const write of writes) {
        if (write.before <= reached && write.after > reached) {
          reached = write.after;
          grew = true;
        }
      }
    }
    return reached === stamp;
  }

  /** The log lines of a catch-up (see `HolderRepairOptions.onCatchUp`). */
  report(progress: CatchUpProgress): void {
    const log = this.#core.options.log;
    if (log === undefined) return;
    const { short, checked, repaired, failedChecks, lost, walked } = progress;
    if (progress.done) {
      log(
        `storage: catch-up done (${progress.reason}): ${walked} block(s) walked, ${short} ` +
          `chunk(s) some holder was never given checked, ${repaired} copies placed` +
          (lost > 0 ? `, ${lost} lost (no valid copy anywhere)` : "") +
          (failedChecks > 0
            ? `; ${failedChecks} still short, retried later (${this.short} short now)`
            : ""),
      );
    } else if (checked === 0) {
      log(
        `storage: catching up (${progress.reason}): ${short} chunk(s) some holder was never ` +
          "given; copying them now",
      );
    } else {
      log(
        `storage: catch-up: ${checked} of ${short} chunk(s) checked, ${repaired} copies placed, ` +
          `${this.short} still short`,
      );
    }
  }

  /** The storage keys of the blocks of this node's own files under `roots` (null: every pin). */
  async *#blocks(roots: ReadonlySet<string> | null): AsyncGenerator<string> {
    const store = this.#core.store();
    const files = new FileStore(this.#listing(), this.#core.fileOptions());
    for (const root of roots ?? await store.pins()) {
      // Unpinned since the catch-up was asked (review s79 F6): its copies are no longer owed.
      if (roots !== null && !await store.isPinned(root)) continue;
      const label = await store.pinLabel(root).catch(() => undefined);
      if (label?.local === true) continue; // a `local` file never leaves this node
      // One unreadable now yields what this store can walk (its retry is the next catch-up's).
      const blocks = await files.blocks(root).then(
        (cids) => cids.map(storageKey),
        () => this.#core.scope.reached(root),
      );
      yield* blocks;
    }
  }

  /**
   * Where a catch-up reads a file's inner nodes to list its blocks: this node's store, else its
   * holders (this node need not hold every block of its own files), without read repair — a
   * read repair would place the block before the catch-up looks, and its failed reads on the
   * holders that lack it would be logged as their failures.
   */
  #listing(): BlockStore {
    const store = this.#core.store();
    const replicated = this.#core.replicated();
    return {
      put: (bytes, options) => store.put(bytes, options),
      get: async (cid, options) => {
        try {
          return await store.get(cid, options);
        } catch (error) {
          const elsewhere = error instanceof ChunkNotFoundError ||
            error instanceof CorruptChunkError;
          if (!elsewhere || replicated === null) throw error;
        }
        return await replicated.get(cid, { ...options, readRepair: false });
      },
      has: (cid) => store.has(cid),
      isLegacyManifest: (cid) => store.isLegacyManifest(cid),
    };
  }
}
