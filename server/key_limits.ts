/**
 * Per-API-key limits: how many jobs one key may have at once (`http.perKeyConcurrency`) and how
 * many it may start per minute (`http.perKeyRequestsPerMinute`, a token bucket that holds one
 * minute's worth, so a quiet key may burst). One key cannot take the whole node: the node's own
 * queue (`inference.queueLimit`) is shared by every key. The dashboard limits its sockets and
 * state reads per client the same way (`dashboard_routes.ts`, {@link KeyLimitsOptions.things}).
 * A key idle for a minute is forgotten, so what is kept is bounded by the keys seen lately.
 *
 * @module
 */
import { EdgeError } from "./http_errors.ts";

/** How a refusal names what is limited, for the client reading it (see {@link JOB_LIMITS}). */
export interface LimitedThings {
  /** Who is limited: `this API key`. */
  holder: string;
  /** What it holds at once: `jobs running or queued`. */
  held: string;
  /** What it starts: `jobs`. */
  started: string;
  /** Where the operator sets the limit at once, if anywhere: `http.perKeyConcurrency`. */
  concurrencySetting?: string;
  /** Where the operator sets the limit per minute, if anywhere. */
  rateSetting?: string;
}

/** The `/v1` jobs of one API key: the default of {@link KeyLimitsOptions.things}. */
export const JOB_LIMITS: LimitedThings = Object.freeze({
  holder: "this API key",
  held: "jobs running or queued",
  started: "jobs",
  concurrencySetting: "http.perKeyConcurrency",
  rateSetting: "http.perKeyRequestsPerMinute",
});

/**
 * The `/v1` jobs of one client address without a key (`http.allowUnauthenticatedRemote`), under
 * the per-key settings.
 */
export const ADDRESS_JOB_LIMITS: LimitedThings = Object.freeze({
  ...JOB_LIMITS,
  holder: "this address (a client without an API key)",
});

/** Options of {@link KeyLimits}. */
export interface KeyLimitsOptions {
  /** Jobs (or whatever is admitted) one key may have running or queued. */
  concurrency: number;
  /** Jobs (or whatever is admitted) one key may start per minute. */
  requestsPerMinute: number;
  /** Clock in milliseconds; default `performance.now`. Tests pass their own. */
  now?: () => number;
  /** What is admitted, as the refusals name it; default {@link JOB_LIMITS}. */
  things?: LimitedThings;
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
  #things: LimitedThings;
  #keys = new Map<string, KeyState>();
  /** When idle keys were last forgotten ({@link KeyLimits.#forgetIdle}). */
  #sweptAt = Number.NEGATIVE_INFINITY;

  /**
   * Create it.
   *
   * @param options The limits and the clock.
   */
  constructor(options: KeyLimitsOptions) {
    this.#concurrency = options.concurrency;
    this.#perMinute = options.requestsPerMinute;
    this.#now = options.now ?? (() => performance.now());
    this.#things = options.things ?? JOB_LIMITS;
  }

  /** How many keys (clients) it keeps a state for now. */
  get size(): number {
    return this.#keys.size;
  }

  /**
   * Admit one job (or whatever {@link KeyLimitsOptions.things} names) of `keyId`, or throw a 429 (`key_concurrency_exceeded`, `rate_limited`)
   * with the seconds after which a retry can succeed. Call the returned function when the job
   * has ended; with `refund` true when the node refused it before it started (no room), which
   * gives its start back: the key pays for the jobs it starts, not for the node being full.
   */
  admit(keyId: string): (refund?: boolean) => void {
    const now = this.#now();
    this.#forgetIdle(now);
    const state = this.#keys.get(keyId) ?? { running: 0, tokens: this.#perMinute, at: now };
    state.tokens = Math.min(
      this.#perMinute,
      state.tokens + (now - state.at) * this.#perMinute / MS_PER_MINUTE,
    );
    state.at = now;
    this.#keys.set(keyId, state);
    const { holder, held, started, concurrencySetting, rateSetting } = this.#things;
    const setting = (name?: string) => name === undefined ? "" : ` (${name})`;
    if (state.running >= this.#concurrency) {
      throw new EdgeError(
        "key_concurrency_exceeded",
        `${holder} already has ${state.running} ${held}, its limit` +
          `${setting(concurrencySetting)}; wait for one to end`,
        { retryAfterS: 1 },
      );
    }
    if (state.tokens < 1) {
      const waitMs = (1 - state.tokens) * MS_PER_MINUTE / this.#perMinute;
      throw new EdgeError(
        "rate_limited",
        `${holder} has started ${this.#perMinute} ${started} in the last minute, its limit` +
          `${setting(rateSetting)}; retry after the Retry-After seconds`,
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

  /**
   * At most once a minute, forget the keys with nothing running that started nothing for a
   * minute: their buckets are full again, so each is as a key never seen. The dashboard's keys
   * include every address that read without one, which no configuration bounds.
   */
  #forgetIdle(now: number): void {
    if (now - this.#sweptAt < MS_PER_MINUTE) return;
    this.#sweptAt = now;
    for (const [keyId, state] of this.#keys) {
      if (state.running === 0 && now - state.at >= MS_PER_MINUTE) this.#keys.delete(keyId);
    }
  }
}
