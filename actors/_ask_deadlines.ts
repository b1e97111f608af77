/**
 * Ask timeouts without a timer per ask.
 *
 * A `setTimeout` + `clearTimeout` pair costs more than a whole ask round trip here (measured:
 * ~14x fewer asks per second with one timer each). Asks with the same timeout expire in the
 * order they were made, so each distinct timeout value gets one FIFO of deadlines and a single
 * timer armed for its oldest live entry. Answered asks are dropped from the head as they settle
 * (answers mostly come back in order) and the FIFO is compacted when dead entries pile up
 * behind a slow one, so memory stays proportional to the asks still pending.
 *
 * @module
 */

/** What a deadline queue needs from a pending ask. */
export interface Expirable {
  /** True once answered, rejected or expired. */
  readonly settled: boolean;
  /** Rejects the ask with a timeout error; must end up calling `release` on its queue. */
  expire(): void;
}

/**
 * Distinct timeout values whose (empty) queues are kept for reuse; beyond it empty queues are
 * swept, so callers computing per-request timeouts cannot grow the map without bound.
 */
const MAX_IDLE_QUEUES = 64;

/**
 * The longest wait a timer takes (2^31 - 1 ms, about 24.8 days); a longer one is clamped to 1 ms
 * by the runtime. Longer deadlines are reached by re-arming on each early fire.
 */
const MAX_TIMER_MS = 2_147_483_647;

/** Compact a queue when at least this many entries are dead and they outnumber the live ones. */
const COMPACT_MIN_DEAD = 1024;

/** One FIFO of asks sharing a timeout value. */
export class DeadlineQueue {
  readonly #timeoutMs: number;
  #entries: Expirable[] = [];
  #deadlines: number[] = [];
  #head = 0;
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly #fireBound = () => this.#fire();

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** True when no ask is pending on this queue. */
  get empty(): boolean {
    return this.#live === 0;
  }

  /** Starts the clock for `entry`. */
  add(entry: Expirable): void {
    this.#entries.push(entry);
    this.#deadlines.push(performance.now() + this.#timeoutMs);
    this.#live++;
    if (this.#timer === undefined) this.#arm();
  }

  /** Called by an entry once it settled (any way). */
  release(): void {
    if (--this.#live === 0) {
      this.#reset();
      return;
    }
    const entries = this.#entries;
    while (this.#head < entries.length && entries[this.#head].settled) this.#head++;
    const dead = entries.length - this.#live;
    if (dead >= COMPACT_MIN_DEAD && dead > this.#live) this.#compact();
  }

  #reset(): void {
    this.#entries = [];
    this.#deadlines = [];
    this.#head = 0;
    this.#live = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #compact(): void {
    const entries: Expirable[] = [];
    const deadlines: number[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      if (this.#entries[i].settled) continue;
      entries.push(this.#entries[i]);
      deadlines.push(this.#deadlines[i]);
    }
    this.#entries = entries;
    this.#deadlines = deadlines;
    this.#head = 0;
  }

  #arm(): void {
    const wait = Math.max(0, this.#deadlines[this.#head] - performance.now());
    // Clamped: #fire finds the head not yet due and arms again for the rest.
    this.#timer = setTimeout(this.#fireBound, Math.min(MAX_TIMER_MS, Math.ceil(wait)));
  }

  #fire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const expired: Expirable[] = [];
    const entries = this.#entries;
    while (this.#head < entries.length) {
      const entry = entries[this.#head];
      if (!entry.settled) {
        if (this.#deadlines[this.#head] > now) break;
        expired.push(entry);
      }
      this.#head++;
    }
    // Expire after the scan: each expiry re-enters `release`, which may reset the arrays.
    for (const entry of expired) entry.expire();
    if (this.#live > 0 && this.#timer === undefined) {
      while (this.#entries[this.#head].settled) this.#head++;
      this.#arm();
    }
  }
}

/** All deadline queues of one actor system, by timeout value. */
export class AskDeadlines {
  #queues = new Map<number, DeadlineQueue>();

  /** The queue for `timeoutMs` (created on demand). */
  queueFor(timeoutMs: number): DeadlineQueue {
    let queue = this.#queues.get(timeoutMs);
    if (queue === undefined) {
      if (this.#queues.size >= MAX_IDLE_QUEUES) {
        for (const [key, q] of this.#queues) if (q.empty) this.#queues.delete(key);
      }
      queue = new DeadlineQueue(timeoutMs);
      this.#queues.set(timeoutMs, queue);
    }
    return queue;
  }
}
