/**
 * What an open says while it reads much of the log (review s72): a ledger of a million entries
 * takes minutes to rebuild its history index after an upgrade emptied it, or to replay from
 * genesis without a checkpoint, and a start silent for minutes looks hung. {@link RebuildLog}
 * logs a line when such a read starts (why, how much), one at most every
 * {@link REBUILD_PROGRESS_EVERY_MS} of the ledger's clock while it runs, and one when it ends
 * with the time it took; its signal stops it between two entries (what the index took is kept:
 * the next open goes on from there). Not part of the public API.
 *
 * @module
 */

/**
 * Least time between two progress lines: often enough that an operator sees the start is
 * working, rare enough that a rebuild of minutes logs tens of lines, not thousands.
 */
export const REBUILD_PROGRESS_EVERY_MS = 5_000;

/** Bytes in a MiB, for the sizes the lines give. */
const MIB = 1 << 20;

/** Where an open reports a long read of its log, and what stops it. */
export interface RebuildWatch {
  /** Where the lines go; absent, none is written. */
  log?: (line: string) => void;
  /** Aborting it stops the read before the next entry (the open rejects with its reason). */
  signal?: AbortSignal;
  /** The ledger's clock (unix ms): the interval between lines, the time taken. */
  now: () => number;
}

/** What one long read of the log is, for its first line. */
export interface RebuildScope {
  /** Why the log is read at such length. */
  why: string;
  /** Entries known to lie ahead (those up to the checkpoint), if known. */
  entries?: number;
  /** Byte offset in the log where the read starts. */
  from: number;
  /** Bytes in the log. */
  size: number;
}

/** The lines of one long read of the log (see the module doc). */
export class RebuildLog {
  readonly #watch: RebuildWatch;
  readonly #from: number;
  readonly #size: number;
  readonly #startedAt: number;
  #lastLineAt: number;
  #entries = 0;
  #end: number;

  private constructor(watch: RebuildWatch, scope: RebuildScope) {
    this.#watch = watch;
    this.#from = scope.from;
    this.#end = scope.from;
    this.#size = scope.size;
    this.#startedAt = watch.now();
    this.#lastLineAt = this.#startedAt;
  }

  /** Say that the read starts, and return its log. */
  static start(watch: RebuildWatch, scope: RebuildScope): RebuildLog {
    const progress = new RebuildLog(watch, scope);
    const how = scope.entries === undefined
      ? ""
      : `${scope.entries} entries up to the checkpoint and those after it, `;
    const bytes = mib(scope.size - scope.from);
    const stop = watch.signal === undefined
      ? "it cannot be interrupted (a stop waits for it)"
      : "Ctrl-C stops it (what the index took is kept for the next start)";
    watch.log?.(
      `ledger: rebuilding from the log (${scope.why}): ${how}${bytes} MiB to read; ` +
        `progress every ${REBUILD_PROGRESS_EVERY_MS / 1000} s; ${stop}`,
    );
    return progress;
  }

  /**
   * One entry read, its frame ending at byte `end`: a progress line when one is due.
   * @throws the signal's reason once it is aborted.
   */
  entry(end: number): void {
    this.#watch.signal?.throwIfAborted();
    this.#entries++;
    this.#end = end;
    const now = this.#watch.now();
    if (now - this.#lastLineAt < REBUILD_PROGRESS_EVERY_MS) return;
    this.#lastLineAt = now;
    const done = end - this.#from;
    const total = this.#size - this.#from;
    const elapsed = now - this.#startedAt;
    // The rate so far, by bytes: entries vary in size, the log's bytes are known ahead.
    const left = done > 0 ? Math.round(elapsed * (total - done) / done / 1000) : undefined;
    this.#watch.log?.(
      `ledger: rebuilding: ${this.#entries} entries read, ${percent(done, total)}% of ` +
        `${mib(total)} MiB, ${seconds(elapsed)} s so far` +
        (left === undefined ? "" : `, about ${left} s left`),
    );
  }

  /** Say that the read ended, with the time it took. */
  done(): void {
    this.#watch.log?.(
      `ledger: rebuilt from the log: ${this.#entries} entries in ` +
        `${seconds(this.#watch.now() - this.#startedAt)} s`,
    );
  }

  /** Say that the read stopped (`reason`), and that what the index took is kept. */
  stopped(reason: string): void {
    this.#watch.log?.(
      `ledger: rebuild stopped (${reason}) after ${this.#entries} entries, ` +
        `${percent(this.#end - this.#from, this.#size - this.#from)}% of the log, in ` +
        `${seconds(this.#watch.now() - this.#startedAt)} s; what the index took is kept for the ` +
        `next start`,
    );
  }
}

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function percent(part: number, whole: number): number {
  return whole <= 0 ? 100 : Math.floor(100 * part / whole);
}
