/**
 * Per-API-key limits: how many jobs one key may have at once (`http.perKeyConcurrency`) and how
 * many it may start per minute (`http.perKeyRequestsPerMinute`, a token bucket that holds one
 * minute's worth, so a quiet key may burst). One key cannot take the whole node: the node's own
 * queue (`inference.queueLimit`) is shared by every key.
 *
 * @module
 */
import { EdgeError } from "./http_errors.ts";

/** Options of {@link KeyLimits}. */
export interface KeyLimitsOptions {
  /** Jobs one key may have running or queued. */
  concurrency: number;
  /** Jobs one key may start per minute. */
  requestsPerMinute: number;
  /** Clock in milliseconds; default `performance.now`. Tests pass their own. */
  now?: () => number;
}

const MS_PER_MINUTE = 60_000;
const MS_PER_S = 1000;

interface KeyState {
  running: number;
  /** Starts left in the bucket (fractional while refilling). */
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
}

/** Admits jobs per key within the limits. */
export class KeyLimits {
  #concurrency: number;
  #perMinute: number;
  #now: () => number;
  #keys = new Map<string, KeyState>();

  /**
   * Create it.
   *
   * @param options The limits and the clock.
   */
  constructor(options: KeyLimitsOptions) {
    this.#concurrency = options.concurrency;
    this.#perMinute = options.requestsPerMinute;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Admit one job of `keyId`, or throw a 429 (`key_concurrency_exceeded`, `rate_limited`)
   * with the seconds after which a retry can succeed. Call the returned function when the job
   * has ended; with `refund` true when the node refused it before it started (no room), which
   * gives its start back: the key pays for the jobs it starts, not for the node being full.
   */
  admit(keyId: string): (refund?: boolean) => void {
    const now = this.#now();
    const state = this.#keys.get(keyId) ?? { running: 0, tokens: this.#perMinute, at: now };
    state.tokens = Math.min(
      this.#perMinute,
      state.tokens + (now - state.at) * this.#perMinute / MS_PER_MINUTE,
    );
    state.at = now;
    this.#keys.set(keyId, state);
    if (state.running >= this.#concurrency) {
      throw new EdgeError(
        "key_concurrency_exceeded",
        `this API key already has ${state.running} jobs running or queued, its limit ` +
          `(http.perKeyConcurrency); wait for one to end`,
        { retryAfterS: 1 },
      );
    }
    if (state.tokens < 1) {
      const waitMs = (1 - state.tokens) * MS_PER_MINUTE / this.#perMinute;
      throw new EdgeError(
        "rate_limited",
        `this API key has started ${this.#perMinute} jobs in the last minute, its limit ` +
          `(http.perKeyRequestsPerMinute); retry after the Retry-After seconds`,
        { retryAfterS: Math.ceil(waitMs / MS_PER_S) },
      );
    }
    state.tokens -= 1;
    state.running++;
    let released = false;
    return (refund = false) => {
      if (released) return;
      released = true;
      state.running--;
      if (refund) state.tokens = Math.min(this.#perMinute, state.tokens + 1);
    };
  }
}
