/**
 * How the chunk store keeps its work apart: per-CID write slots ({@link CidSlots}: two writers of
 * one chunk in one process share one write, and a quarantine check is never interleaved with a
 * write of its CID), the maintenance turn ({@link MaintenanceTurn}: index rebuilds and pack
 * rewrites one after another), and the store lock ({@link STORE_LOCK}), a file lock shared by
 * every process on the directory while one collects garbage or rewrites packs. `ChunkStore` owns
 * a `CidSlots` and a `MaintenanceTurn`; it and `_temp_sweeps.ts` take the store lock through
 * {@link openStoreLock}. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/**
 * Lock file (in the store directory) held while any process collects garbage or rewrites packs,
 * so two processes never remove objects at once and each decides on the other's packs.
 */
export const STORE_LOCK = "store.lock";

/** Open (creating if needed) the store lock file of the store in `dir`; closing it releases it. */
export async function openStoreLock(dir: string): Promise<Deno.FsFile> {
  return await Deno.open(join(dir, STORE_LOCK), {
    read: true,
    write: true,
    create: true,
    mode: OWNER_FILE_MODE,
  });
}

/** One slot per CID: a write (or check) of a CID runs after any of that CID already in flight. */
export class CidSlots {
  /** Writes in flight per CID, so two writers of one chunk in this process share one write. */
  readonly #inflight = new Map<string, Promise<unknown>>();

  /** True while a write (or check) of `cid` holds its slot. */
  has(cid: string): boolean {
    return this.#inflight.has(cid);
  }

  /** Run `fn` while holding `cid`'s slot (after any write of `cid` already in flight). */
  async run<T>(cid: string, fn: () => Promise<T>): Promise<T> {
    for (let pending = this.#inflight.get(cid); pending; pending = this.#inflight.get(cid)) {
      await pending.catch(() => {});
    }
    const run = fn();
    this.#inflight.set(cid, run);
    try {
      return await run;
    } finally {
      if (this.#inflight.get(cid) === run) this.#inflight.delete(cid);
    }
  }
}

/** One task at a time, in call order: the store's index rebuilds and pack rewrites. */
export class MaintenanceTurn {
  /** Serializes index rebuilds and pack rewrites. */
  #maintenance: Promise<unknown> = Promise.resolve();

  /** Run `fn` after every earlier maintenance task (reloads, rewrites) has finished. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#maintenance.then(fn);
    this.#maintenance = run.catch(() => {});
    return run;
  }
}
