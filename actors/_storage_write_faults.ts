/**
 * The StorageActor's writes that the OS refuses (`storage_unwritable`: a directory turned
 * read-only, no permission, a failing device) while the store is open — review s71, finding 3: a
 * store whose directories became unwritable under a running node answered every put with an error
 * while `/healthz` said `ok`. The refused writes are answered to their askers, as before; here the
 * fault is also kept (the `capacity` answer's `writeFault`, the `storage_unwritable` condition on
 * `/healthz`: `storage_conditions.ts`), logged once (`error: storage: …`), and cleared, with one
 * line, by the next write that succeeds. A full disk (`disk_full`, 507) is kept apart as
 * {@link StorageWriteFaults.diskFull} (review s74 F2: a store refusing every put for want of space
 * left `/healthz` at `ok`): the `storage_disk_full` condition, beside `/metrics`'
 * `veriflow_storage_disk_free_bytes`; it clears when a write succeeds, or once
 * {@link DISK_FULL_RECENT_MS} pass with no write refused so (space freed while nobody writes).
 *
 * The actor calls {@link StorageWriteFaults.failed} with each error a write was answered with, and
 * {@link StorageWriteFaults.succeeded} after each write that succeeded. Not part of the public API.
 *
 * @module
 */
import { DiskFullError, StorageUnwritableError } from "../storage/errors.ts";
import type { StorageWriteFault } from "./storage_actor_messages.ts";

/**
 * How long a write refused `disk_full` keeps the condition held when no write comes after it: a
 * node that still has no room refuses the next put again and holds it anew, and one whose operator
 * freed space (no write has succeeded to say so) is `ok` again within five minutes, a few health
 * probes' intervals.
 */
export const DISK_FULL_RECENT_MS = 5 * 60_000;

/** The storage write fault held, if any (see the module doc). */
export class StorageWriteFaults {
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #fault: StorageWriteFault | undefined;
  #diskFull: (StorageWriteFault & { last: number }) | undefined;

  /**
   * A tracker holding no fault.
   *
   * @param log Where the one line per fault (and per recovery) goes.
   * @param now Unix ms, for the fault's `since`; default `Date.now`.
   */
  constructor(log: (line: string) => void, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** The fault held: a write refused since the last one that succeeded. */
  get fault(): StorageWriteFault | undefined {
    return this.#fault && { ...this.#fault };
  }

  /**
   * The last write refused for want of space (`disk_full`), while none has succeeded since and
   * one was refused so within {@link DISK_FULL_RECENT_MS}.
   */
  get diskFull(): StorageWriteFault | undefined {
    const held = this.#diskFull;
    if (held === undefined) return undefined;
    if (this.#now() - held.last >= DISK_FULL_RECENT_MS) {
      this.#diskFull = undefined;
      this.#log(`storage: no write refused disk_full for ${DISK_FULL_RECENT_MS / 60_000} min`);
      return undefined;
    }
    return { message: held.message, since: held.since, failures: held.failures };
  }

  /**
   * A write was answered with `error`: held if the OS refused it (`storage_unwritable`), or the
   * disk had no room for it (`disk_full`).
   */
  failed(error: unknown): void {
    if (error instanceof DiskFullError) return this.#failedForSpace(error);
    if (!(error instanceof StorageUnwritableError)) return;
    const held = this.#fault;
    this.#fault = {
      message: `${error.message}: puts, pins and peers' chunks are refused storage_unwritable ` +
        "until a write succeeds; check the storage directory (permissions, attributes, the mount)",
      since: held?.since ?? this.#now(),
      failures: (held?.failures ?? 0) + 1,
    };
    if (held === undefined) this.#log(`error: storage: ${this.#fault.message}`);
  }

  #failedForSpace(error: DiskFullError): void {
    const held = this.#diskFull;
    const now = this.#now();
    this.#diskFull = {
      message: `${error.message}: puts and peers' chunks are refused disk_full (507) while the ` +
        "store's disk has no room; free space on it, or move the data directory to a larger one",
      since: held?.since ?? now,
      failures: (held?.failures ?? 0) + 1,
      last: now,
    };
    if (held === undefined) this.#log(`error: storage: ${this.#diskFull.message}`);
  }

  /** A write succeeded: a fault held is cleared, with one line. */
  succeeded(): void {
    const full = this.#diskFull;
    if (full !== undefined) {
      this.#diskFull = undefined;
      this.#log(`storage: writes find room again (${full.failures} refused disk_full)`);
    }
    const held = this.#fault;
    if (held === undefined) return;
    this.#fault = undefined;
    this.#log(`storage: writes succeed again (${held.failures} refused since the first)`);
  }
}
