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
 * and as {@link StorageCatchUp.short} (`veriflow_storage_chunks_short`). Owned by the actor, built
 * in its constructor on its {@link StorageCore}. Not part of the public API.
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

/** The StorageActor's catch-ups: what starts them, what they go over, what they report. */
export class StorageCatchUp {
  readonly #core: StorageCore;
  /** The pins seen at the last {@link pinsCheck}; `null` until the first, which only records. */
  #known: Set<string> | null = null;
  /** The pins directory's stamp at the last {@link pinsCheck}. */
  #stamp = -1;

  /** @param core The actor's state and calls (its store, the given log, its holder repair). */
  constructor(core: StorageCore) {
    this.#core = core;
  }

  /** What a catch-up reads: this node's files' blocks, and what each peer was given. */
  readonly sources: CatchUpSources = {
    blocks: (roots) => this.#blocks(roots),
    wasGiven: (peerId, cid) => this.#core.given().has(peerId, cid),
  };

  /** Chunks known short of a copy on a holder (0 without holder repair). */
  get short(): number {
    return this.#core.holderRepair()?.short ?? 0;
  }

  /**
   * The peer set went from `before` to what the replicated store has now (`fresh`: it was just
   * built, as at the node's start): catch up for the holders that joined, or all of them.
   */
  peersSet(before: readonly StoragePeer[], fresh: boolean, signal?: AbortSignal): void {
    const replicated = this.#core.replicated();
    const repair = this.#core.holderRepair();
    if (replicated === null || repair === null) return;
    const had = new Set(before.map((p) => p.id));
    const selfId = this.#core.self()?.id;
    const joined = replicated.peers.filter((p) => p.id !== selfId && !had.has(p.id));
    if (!fresh && joined.length === 0) return;
    const reason = fresh
      ? `${joined.length} storage peer(s) found`
      : `${joined.length} holder(s) joined or came back`;
    repair.catchUp(replicated, null, reason, signal);
  }

  /**
   * Look for pins made here by another process since the last check (`cli.ts put` into this
   * store) and catch up their copies. The first check only records what is pinned: the catch-up
   * of the node's start ({@link peersSet} with `fresh`) covers every file there was. Resolves to
   * how many new pins it found.
   */
  async pinsCheck(signal?: AbortSignal): Promise<number> {
    const store = this.#core.store();
    const stamp = await store.pinsStamp();
    // An unchanged stamp proves nothing while it is this recent: a pin may have come in its tick.
    if (stamp === this.#stamp && Date.now() - stamp >= STAMP_TRUST_MS) return 0;
    this.#stamp = stamp;
    const pins = await store.pins();
    const known = this.#known;
    this.#known = new Set(pins);
    // This node's own puts and pins sent their chunks to the holders as they went (a catch-up
    // would ask proofs of, and copy again, the copies past the quorum still on their way).
    const mine = this.#core.scope.pinnedHere;
    const added = known === null ? [] : pins.filter((root) => !known.has(root) && !mine.has(root));
    mine.clear();
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

  /** The log lines of a catch-up (see `HolderRepairOptions.onCatchUp`). */
  report(progress: CatchUpProgress): void {
    const log = this.#core.options.log;
    if (log === undefined) return;
    const { short, checked, repaired, failedChecks, lost } = progress;
    if (progress.done) {
      log(
        `storage: catch-up done (${progress.reason}): ${short} chunk(s) some holder was never ` +
          `given checked, ${repaired} copies placed` +
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
