/**
 * Log lines that others can cause, kept to a few per kind: a peer that fails handshakes, sends
 * hellos it did not sign, or reconnects over a full table costs itself a TCP connect or a
 * message per line, and the node a line in its log each time (a review at stop 33 wrote 3,000
 * lines with 3,000 connects in 2.3 s). Each kind may write {@link LogLimiterOptions.burst}
 * lines per window; the rest are counted, and when the window ends (or at
 * {@link LogLimiter.flush}, when the node stops) one line says how many were left out and shows
 * the last of them.
 *
 * @example
 * ```ts
 * import { LogLimiter } from "./log_limiter.ts";
 * const limiter = new LogLimiter((line) => console.log(line), { burst: 2 });
 * for (let i = 0; i < 5; i++) limiter.line("handshake failed", `peer ${i}: handshake failed`);
 * limiter.flush(); // "handshake failed: 3 more line(s) left out in 0 s (last: peer 4: …)"
 * ```
 *
 * @module
 */

/** Options of a {@link LogLimiter}. */
export interface LogLimiterOptions {
  /** Lines of one kind written per window (default 5). */
  burst?: number;
  /** The window, ms (default 10 s). */
  windowMs?: number;
  /** Clock, ms (default `Date.now`; tests pass their own). */
  now?: () => number;
  /**
   * Timers on that clock, to write a window's count when it ends (default the global ones;
   * tests pass their own).
   */
  timers?: {
    setTimeout(callback: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
  };
}

/** One kind's window. */
interface KindWindow {
  start: number;
  written: number;
  leftOut: number;
  last: string;
  /** Armed at the first line left out: writes the count when the window ends. */
  timer?: unknown;
}

const GLOBAL_TIMERS = {
  setTimeout: (callback: () => void, ms: number): unknown => setTimeout(callback, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as number),
};

/** A log that writes at most a few lines of each kind per window; see the module doc. */
export class LogLimiter {
  readonly #log: (line: string) => void;
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #timers: NonNullable<LogLimiterOptions["timers"]>;
  readonly #kinds = new Map<string, KindWindow>();
  /** When {@link #sweep} last ran. */
  #sweptAt = -Infinity;

  /**
   * @param log Where the lines go.
   * @param options Lines per window, the window, the clock.
   */
  constructor(log: (line: string) => void, options: LogLimiterOptions = {}) {
    this.#log = log;
    this.#burst = Math.max(1, options.burst ?? 5);
    this.#windowMs = options.windowMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? GLOBAL_TIMERS;
  }

  /** Kinds with a window open now (what this limiter holds in memory). */
  get kinds(): number {
    return this.#kinds.size;
  }

  /** Write `text`, or count it if `kind` has written its lines for this window. */
  line(kind: string, text: string): void {
    const now = this.#now();
    this.#sweep(now);
    let window = this.#kinds.get(kind);
    if (window !== undefined && now - window.start >= this.#windowMs) {
      this.#end(kind, window, now);
      window = undefined;
    }
    if (window === undefined) {
      window = { start: now, written: 0, leftOut: 0, last: "" };
      this.#kinds.set(kind, window);
    }
    if (window.written < this.#burst) {
      window.written++;
      this.#log(text);
      return;
    }
    window.leftOut++;
    window.last = text;
    if (window.timer === undefined) {
      const ended = window;
      window.timer = this.#timers.setTimeout(
        () => this.#end(kind, ended, this.#now()),
        Math.max(0, ended.start + this.#windowMs - now),
      );
    }
  }

  /** Say how many lines each kind left out so far, and stop every timer (a node stopping). */
  flush(): void {
    const now = this.#now();
    for (const [kind, window] of [...this.#kinds]) this.#end(kind, window, now);
  }

  /**
   * Forget the kinds whose window has ended, at most once a window. A kind whose window left
   * nothing out has no timer to end it, and stayed until its next line: with a kind per peer key
   * (`storage: peer <key>`, and keys are free), one entry per peer ever logged, for good.
   */
  #sweep(now: number): void {
    if (now - this.#sweptAt < this.#windowMs) return;
    this.#sweptAt = now;
    for (const [kind, window] of [...this.#kinds]) {
      if (now - window.start >= this.#windowMs) this.#end(kind, window, now);
    }
  }

  /** End `kind`'s `window`: its count written, its timer stopped, a new window next time. */
  #end(kind: string, window: KindWindow, now: number): void {
    if (this.#kinds.get(kind) === window) this.#kinds.delete(kind);
    if (window.timer !== undefined) this.#timers.clearTimeout(window.timer);
    window.timer = undefined;
    if (window.leftOut === 0) return;
    const seconds = ((now - window.start) / 1000).toFixed(0);
    this.#log(
      `${kind}: ${window.leftOut} more line(s) left out in ${seconds} s (last: ${window.last})`,
    );
    window.leftOut = 0;
  }
}
