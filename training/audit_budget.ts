/**
 * A windowed count of audits per key: at most `limit` per `windowMs`, a key's window opening at
 * its first audit. The training validator keeps one per relaying peer and one per signing
 * coordinator, so that outcomes of fresh models, which each cost a full audit (a start model and
 * a delta file per report fetched, the outer step redone), are bounded by who sent and who
 * signed them, not by the model CID they name. Keys are forgotten oldest window first past
 * `maxKeys`, so the table stays bounded whatever number of keys the network shows it.
 *
 * @example
 * ```ts
 * import { AuditBudget } from "./audit_budget.ts";
 * let t = 0;
 * const budget = new AuditBudget({ limit: 1, windowMs: 1_000, now: () => t });
 * budget.take("a"); // true
 * budget.take("a"); // false: spent in this window
 * t = 1_000;
 * budget.take("a"); // true: a new window
 * ```
 *
 * @module
 */

/**
 * Keys remembered by default: as many as the validator remembers gossip items, far more than the
 * peers and coordinators one node hears from in a window.
 */
const DEFAULT_MAX_KEYS = 4096;

/** Options of {@link AuditBudget}. */
export interface AuditBudgetOptions {
  /** Audits a key may have per window. */
  limit: number;
  /** The window, ms. */
  windowMs: number;
  /** The clock, ms; default `Date.now`. */
  now?: () => number;
  /** Keys remembered at most; default {@link DEFAULT_MAX_KEYS}. */
  maxKeys?: number;
}

/** See the module doc. */
export class AuditBudget {
  readonly #options: AuditBudgetOptions;
  readonly #windows = new Map<string, { audits: number; since: number }>();

  /**
   * Create an empty budget.
   * @param options See {@link AuditBudgetOptions}.
   */
  constructor(options: AuditBudgetOptions) {
    this.#options = options;
  }

  /** Whether `key` may have one more audit now (nothing is taken). */
  has(key: string): boolean {
    const window = this.#windows.get(key);
    return window === undefined || this.#expired(window) ||
      window.audits < this.#options.limit;
  }

  /**
   * Take one audit for `key` if it has one left.
   * @returns Whether it was taken.
   */
  take(key: string): boolean {
    if (!this.has(key)) return false;
    const window = this.#windows.get(key);
    if (window !== undefined && !this.#expired(window)) {
      window.audits++;
      return true;
    }
    this.#windows.delete(key); // re-inserted last: the oldest window is dropped first
    this.#windows.set(key, { audits: 1, since: this.#now() });
    if (this.#windows.size > (this.#options.maxKeys ?? DEFAULT_MAX_KEYS)) {
      this.#windows.delete(this.#windows.keys().next().value!);
    }
    return true;
  }

  #expired(window: { since: number }): boolean {
    return this.#now() - window.since >= this.#options.windowMs;
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }
}
