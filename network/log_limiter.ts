/**
 * Log lines that others can cause, kept to a few per kind: a peer that fails handshakes, sends
 * hellos it did not sign, or reconnects over a full table costs itself a TCP connect or a
 * message per line, and the node a line in its log each time (a review at stop 33 wrote 3,000
 * lines with 3,000 connects in 2.3 s). Each kind may write {@link LogLimiterOptions.burst}
 * lines per window; the rest are counted, and the next line of that kind after the window (or
 * {@link LogLimiter.flush} at stop) says how many were left out and shows the last of them.
 *
 * @example
 * ```ts
 * import { LogLimiter } from "./log_limiter.ts";
 * const limiter = new LogLimiter((line) => console.log(line), { burst: 2 });
 * for (let i = 0; i < 5; i++) limiter.line("handshake failed", `peer ${i}: handshake failed`);
 * limiter.flush(); // "handshake failed: 3 more lines left out in … s (last: peer 4: …)"
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
}

/** One kind's window. */
interface KindWindow {
  start: number;
  written: number;
  leftOut: number;
  last: string;
}

/** A log that writes at most a few lines of each kind per window; see the module doc. */
export class LogLimiter {
  readonly #log: (line: string) => void;
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #kinds = new Map<string, KindWindow>();

  /**
   * @param log Where the lines go.
   * @param options Lines per window, the window, the clock.
   */
  constructor(log: (line: string) => void, options: LogLimiterOptions = {}) {
    this.#log = log;
    this.#burst = Math.max(1, options.burst ?? 5);
    this.#windowMs = options.windowMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Write `text`, or count it if `kind` has written its lines for this window. */
  line(kind: string, text: string): void {
    const now = this.#now();
    let window = this.#kinds.get(kind);
    if (window !== undefined && now - window.start >= this.#windowMs) {
      this.#summarize(kind, window, now);
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
  }

  /** Say how many lines each kind left out so far (a node stopping). */
  flush(): void {
    const now = this.#now();
    for (const [kind, window] of this.#kinds) this.#summarize(kind, window, now);
    this.#kinds.clear();
  }

  #summarize(kind: string, window: KindWindow, now: number): void {
    if (window.leftOut === 0) return;
    const seconds = ((now - window.start) / 1000).toFixed(0);
    this.#log(
      `${kind}: ${window.leftOut} more line(s) left out in ${seconds} s (last: ${window.last})`,
    );
  }
}
