/**
 * What a router remembers of workers that refused a job as full (`too_many_jobs`, `busy`:
 * `CAPACITY_REFUSAL_CODES` in `failover.ts`), so they stop winning the choice of worker
 * (`worker_choice.ts`) on a claim their own answer contradicts.
 *
 * The choice ranks workers by the load their hellos claim. A worker that claims room and
 * refuses as full is either honest and just filled up (its hello lags) or lying (fake workers
 * in a review claimed to be idle and refused every job, and took every try of every job ahead
 * of a busy honest worker). Either way its claim is not to be believed for a while: the router
 * asks it only when no other eligible worker is left (`NetworkInferencePort`).
 *
 * The router counts as such a refusal, too, a job the worker kept without sending its first token
 * (no `start` in time, or none of its tokens within the stall timeout) and a connection lost
 * under a job (`NetworkInferencePort`).
 *
 * The while starts at one hello interval (an honest worker's next hello, within it, tells its
 * real load, which the choice's capacity rule then weighs), or at what the job waited on the
 * worker when that was longer (a job kept without a token for the queue hold: asked again
 * sooner, the worker costs the next job that wait again, whatever its hellos claim), and doubles
 * each time the worker, asked again after it, refuses again, up to
 * {@link REFUSED_MODEL_COOLDOWN_MS} (the while a router keeps a worker off a model it refused). A
 * job the worker runs to its end forgets it all (its `start` alone does not: a worker that starts
 * each job and goes silent would be forgiven each time it is asked). Refusals within the while (a
 * burst of jobs that all picked it before the first refusal came back) do not double it; one that
 * cost its job a wait longer than the while has left makes it last that wait from now (review
 * s54), as it would have had it come first.
 *
 * @module
 */
import { DEFAULT_HELLO_INTERVAL_MS, REFUSED_MODEL_COOLDOWN_MS } from "./network_actor.ts";

/**
 * Most workers remembered: as many as the refusals of a model the network actor remembers.
 * Past it, the ones whose while ended go first, then the oldest.
 */
export const MAX_BUSY_WORKERS = 4_096;

/** Options of {@link BusyRefusals}. */
export interface BusyRefusalsOptions {
  /** The first while, ms (default {@link DEFAULT_HELLO_INTERVAL_MS}). */
  firstMs?: number;
  /** The longest while, ms (default {@link REFUSED_MODEL_COOLDOWN_MS}). */
  maxMs?: number;
  /** Most workers remembered, at least 1 (default {@link MAX_BUSY_WORKERS}). */
  maxWorkers?: number;
  /** Clock in ms (default `Date.now`; tests pass a fake one). */
  now?: () => number;
}

/** One worker's last refusal as full. */
interface Entry {
  /** Until when (ms) it is asked last. */
  until: number;
  /** How long that while was (the next one is twice as long). */
  whileMs: number;
}

/**
 * Workers that lately refused a job as full, by hex key.
 *
 * @example
 * ```ts
 * import { BusyRefusals } from "./busy_refusals.ts";
 * let now = 0;
 * const busy = new BusyRefusals({ now: () => now });
 * busy.refused("aa");
 * console.log(busy.askedLast()); // ["aa"]
 * now += 1_000;
 * console.log(busy.askedLast()); // []
 * ```
 */
export class BusyRefusals {
  readonly #firstMs: number;
  readonly #maxMs: number;
  readonly #maxWorkers: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  /**
   * Create an empty memory.
   * @param options See {@link BusyRefusalsOptions}.
   * @throws {RangeError} when `maxWorkers` is below 1 (or NaN): none could be remembered, and
   *   making room for one would never end.
   */
  constructor(options: BusyRefusalsOptions = {}) {
    this.#firstMs = options.firstMs ?? DEFAULT_HELLO_INTERVAL_MS;
    this.#maxMs = options.maxMs ?? REFUSED_MODEL_COOLDOWN_MS;
    this.#maxWorkers = options.maxWorkers ?? MAX_BUSY_WORKERS;
    if (!(this.#maxWorkers >= 1)) {
      throw new RangeError(`maxWorkers must be at least 1, got ${this.#maxWorkers}`);
    }
    this.#now = options.now ?? Date.now;
  }

  /**
   * Worker `key` refused a job as full.
   * @param costMs How long the job waited on the worker before it moved on (default 0: a
   *   refusal, one round trip). The while is at least this long (up to the longest while): a
   *   worker that kept a job without a token for the queue hold, asked again one hello interval
   *   later, cost the next job the hold again, until its doubled whiles outgrew the hold.
   */
  refused(key: string, costMs = 0): void {
    const now = this.#now();
    const last = this.#entries.get(key);
    if (last !== undefined && now < last.until) {
      // The same while: one refusal, but not a shorter one than what this job waited (it was
      // sent before the refusal that started the while; dropped, a worker that refused one job
      // at once just before another's wait ran out was asked again after the first while and
      // cost the next job that wait again).
      const costlier = Math.min(costMs, this.#maxMs);
      if (now + costlier > last.until) {
        last.until = now + costlier;
        last.whileMs = Math.max(last.whileMs, costlier);
      }
      return;
    }
    // Asked again after its while and refused again: twice as long. Quiet for the longest
    // while since: it starts over.
    const doubled = last === undefined || now >= last.until + this.#maxMs
      ? this.#firstMs
      : last.whileMs * 2;
    const whileMs = Math.min(Math.max(doubled, costMs), this.#maxMs);
    this.#entries.delete(key);
    this.#makeRoom(now);
    this.#entries.set(key, { until: now + whileMs, whileMs });
  }

  /** Worker `key` ran a job to its end: its refusals are forgotten. */
  took(key: string): void {
    this.#entries.delete(key);
  }

  /** Whether `key` is within its while now (one of {@link askedLast}). */
  isAskedLast(key: string): boolean {
    const entry = this.#entries.get(key);
    return entry !== undefined && this.#now() < entry.until;
  }

  /** Hex keys of the workers to ask only when no other is eligible, now. */
  askedLast(): string[] {
    const now = this.#now();
    const keys: string[] = [];
    for (const [key, entry] of this.#entries) if (now < entry.until) keys.push(key);
    return keys;
  }

  /** Make room for one more: forget the ones whose while ended, then the oldest. */
  #makeRoom(now: number): void {
    if (this.#entries.size < this.#maxWorkers) return;
    for (const [key, entry] of this.#entries) if (now >= entry.until) this.#entries.delete(key);
    // A Map keeps insertion order, and a refusal re-inserts: the first is the oldest.
    while (this.#entries.size >= this.#maxWorkers) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }
}
