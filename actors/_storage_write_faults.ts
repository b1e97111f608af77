/**
 * The StorageActor's writes that the OS refuses (`storage_unwritable`: a directory turned
 * read-only, no permission, a failing device) while the store is open — review s71, finding 3: a
 * store whose directories became unwritable under a running node answered every put with an error
 * while `/healthz` said `ok`. The refused writes are answered to their askers, as before; here the
 * fault is also kept (the `capacity` answer's `writeFault`, the `storage_unwritable` condition on
 * `/healthz`: `storage_conditions.ts`), logged once (`error: storage: …`), and cleared, with one
 * line, by the next write that succeeds. A full disk (`disk_full`) is not this fault: it has its
 * own answer and figures (`/metrics`' free bytes), and clears as space is freed.
 *
 * The actor calls {@link StorageWriteFaults.failed} with each error a write was answered with, and
 * {@link StorageWriteFaults.succeeded} after each write that succeeded. Not part of the public API.
 *
 * @module
 */
import { StorageUnwritableError } from "../storage/errors.ts";
import type { StorageWriteFault } from "./storage_actor_messages.ts";

/** The storage write fault held, if any (see the module doc). */
export class StorageWriteFaults {
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #fault: StorageWriteFault | undefined;

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

  /** A write was answered with `error`: held if the OS refused it (`storage_unwritable`). */
  failed(error: unknown): void {
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

  /** A write succeeded: a fault held is cleared, with one line. */
  succeeded(): void {
    const held = this.#fault;
    if (held === undefined) return;
    this.#fault = undefined;
    this.#log(`storage: writes succeed again (${held.failures} refused since the first)`);
  }
}
