/**
 * The clock and timers a `Connection` runs on: request timeouts, keepalive, idle timeout, the
 * close grace period and the handshake deadline all go through one {@link ConnectionTimers},
 * so tests can pass a fake clock and advance it instead of sleeping against deadlines.
 *
 * @example
 * ```ts
 * import { SYSTEM_TIMERS } from "./connection_timers.ts";
 * const handle = SYSTEM_TIMERS.setTimeout(() => console.log("later"), 10);
 * SYSTEM_TIMERS.clearTimeout(handle);
 * console.log(SYSTEM_TIMERS.now() >= 0); // true
 * ```
 *
 * @module
 */

/** The longest delay a timer takes (a longer one fires at once: setTimeout's 32-bit bound). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A monotonic clock in milliseconds and one-shot timers on it. */
export interface ConnectionTimers {
  /** Current time in milliseconds (monotonic; only differences matter). */
  now(): number;
  /** Call `callback` once after `ms` milliseconds; returns a handle for {@link clearTimeout}. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancel a timer (a handle already fired or cleared is ignored). */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and the global timers. */
export const SYSTEM_TIMERS: ConnectionTimers = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, ms: number): unknown => setTimeout(callback, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as number),
});
