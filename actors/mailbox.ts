/**
 * A bounded FIFO mailbox: a ring buffer plus a queue of senders waiting for space.
 *
 * This is the actor runtime's hot path, so it is shaped for throughput:
 * - messages and their (optional) ask replies sit in two parallel ring arrays sized to a power
 *   of two, so enqueueing a `tell` allocates nothing;
 * - an accepted message returns one shared, already-resolved promise, so `await ref.tell(m)`
 *   costs a microtask but no allocation;
 * - only a sender that meets a full mailbox (policy `backpressure`) gets a promise of its own. It
 *   keeps its message until a slot frees, so the ring never exceeds `capacity` and waiting
 *   senders are admitted strictly in arrival order. At most {@link MAX_WAITING_SENDERS} wait: a
 *   sender that does not await its `tell` (a timer, a stream callback) cannot be slowed down,
 *   only refused, and without that bound a stuck actor's waiting queue grew with every send.
 *
 * Overflow policies when the mailbox is full:
 * - `backpressure` (default): `push` returns a pending promise that resolves once the message
 *   is admitted; with {@link MAX_WAITING_SENDERS} already waiting it is rejected with
 *   {@link MailboxFullError}.
 * - `drop`: a tell is discarded (counted in {@link Mailbox.dropped}); an ask is rejected with
 *   {@link MailboxFullError}, because a silently dropped ask would only hang its caller.
 * - `fail`: the push is rejected with {@link MailboxFullError}.
 *
 * @module
 */

import { MailboxFullError } from "./errors.ts";

/** What to do with a message that arrives at a full mailbox. */
export type OverflowPolicy = "backpressure" | "drop" | "fail";

/** Mailbox configuration of one actor. */
export interface MailboxOptions {
  /** Maximum queued messages. Default {@link DEFAULT_MAILBOX_CAPACITY}. */
  capacity?: number;
  /** Policy when full. Default `"backpressure"`. */
  overflow?: OverflowPolicy;
}

/**
 * Default capacity: large enough that a producer runs ahead of a fast consumer for a whole
 * drain batch (so throughput is not capped by handoffs), small enough that a stuck actor holds
 * little memory.
 */
export const DEFAULT_MAILBOX_CAPACITY = 1024;

/** Largest accepted capacity; the ring is preallocated, so this bounds its memory. */
export const MAX_MAILBOX_CAPACITY = 1 << 24;

/**
 * Most senders that may wait for space in one `backpressure` mailbox; the next one is rejected
 * with {@link MailboxFullError}. Far above any fan-in of senders that await their push (each of
 * those is a task of its own), so only senders ignoring backpressure meet it; it bounds what a
 * stuck actor holds to this many messages beyond its capacity.
 */
export const MAX_WAITING_SENDERS = 1 << 16;

/** Waiter-queue prefix length after which the consumed prefix is compacted away. */
const WAITERS_COMPACT_THRESHOLD = 1024;

/** The one promise every admitted push returns; sharing it keeps the fast path allocation-free. */
const ADMITTED: Promise<void> = Promise.resolve();

/**
 * True when `push` admitted the message at once (it returned the shared resolved promise), so a
 * caller can skip attaching handlers on the fast path.
 */
export function isAdmitted(pushed: Promise<void>): boolean {
  return pushed === ADMITTED;
}

interface Waiter<T, R> {
  message: T;
  reply: R | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Bounded FIFO of messages, each with an optional reply handle `R` (the runtime uses it for
 * asks). Single consumer: the owning actor calls {@link Mailbox.shift}.
 *
 * @example
 * ```ts
 * import { Mailbox } from "./mailbox.ts";
 * const box = new Mailbox<string, never>("demo", { capacity: 1 });
 * await box.push("a", undefined);
 * const waiting = box.push("b", undefined); // full: resolves once "a" is shifted
 * box.shift(); // "a" (and "b" moves in)
 * await waiting;
 * ```
 */
export class Mailbox<T, R> {
  #messages: (T | undefined)[];
  #replies: (R | undefined)[];
  #mask: number;
  #head = 0;
  #size = 0;
  readonly #capacity: number;
  readonly #overflow: OverflowPolicy;
  readonly #owner: string;
  #waiters: Waiter<T, R>[] = [];
  #waitersHead = 0;
  #closedWith: unknown = undefined;
  #closed = false;
  #dropped = 0;
  #lastReply: R | undefined = undefined;

  /**
   * Creates an empty mailbox.
   *
   * @param owner Name of the owning actor, for error messages.
   * @param options Capacity and overflow policy.
   */
  constructor(owner: string, options?: MailboxOptions) {
    const capacity = options?.capacity ?? DEFAULT_MAILBOX_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_MAILBOX_CAPACITY) {
      throw new RangeError(
        `mailbox capacity must be an integer in 1..${MAX_MAILBOX_CAPACITY}, got ${capacity}`,
      );
    }
    const overflow = options?.overflow ?? "backpressure";
    if (overflow !== "backpressure" && overflow !== "drop" && overflow !== "fail") {
      throw new RangeError(`unknown mailbox overflow policy: ${overflow}`);
    }
    let ringSize = 1;
    while (ringSize < capacity) ringSize <<= 1;
    this.#messages = new Array(ringSize);
    this.#replies = new Array(ringSize);
    this.#mask = ringSize - 1;
    this.#capacity = capacity;
    this.#overflow = overflow;
    this.#owner = owner;
  }

  /** Messages in the ring (not counting senders waiting for space). */
  get size(): number {
    return this.#size;
  }

  /** Maximum messages in the ring. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The overflow policy. */
  get overflow(): OverflowPolicy {
    return this.#overflow;
  }

  /** Senders currently waiting for space (`backpressure` only). */
  get waiting(): number {
    return this.#waiters.length - this.#waitersHead;
  }

  /** Tells discarded by the `drop` policy since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  /** True once {@link Mailbox.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The reply handle of the message returned by the last {@link Mailbox.shift}. */
  get lastReply(): R | undefined {
    return this.#lastReply;
  }

  /**
   * Enqueues a message. Resolves when it is admitted to the ring; see the module docs for what
   * happens when the mailbox is full, and rejects with the close reason once closed.
   */
  push(message: T, reply: R | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedWith);
    if (this.#size < this.#capacity) {
      const index = (this.#head + this.#size) & this.#mask;
      this.#messages[index] = message;
      this.#replies[index] = reply;
      this.#size++;
      return ADMITTED;
    }
    return this.#overflowPush(message, reply);
  }

  #overflowPush(message: T, reply: R | undefined): Promise<void> {
    if (this.#overflow === "backpressure" && this.waiting < MAX_WAITING_SENDERS) {
      return new Promise<void>((resolve, reject) => {
        this.#waiters.push({ message, reply, resolve, reject });
      });
    }
    // Past here: `drop`, `fail`, or a `backpressure` mailbox with MAX_WAITING_SENDERS waiting.
    if (this.#overflow === "drop" && reply === undefined) {
      this.#dropped++;
      return ADMITTED;
    }
    return Promise.reject(new MailboxFullError(this.#owner, this.#capacity));
  }

  /**
   * Removes and returns the oldest message; its reply handle is then in
   * {@link Mailbox.lastReply}. Admits the first waiting sender into the freed slot.
   * Call only when `size > 0`.
   */
  shift(): T {
    const head = this.#head;
    const message = this.#messages[head] as T;
    this.#lastReply = this.#replies[head];
    this.#messages[head] = undefined;
    this.#replies[head] = undefined;
    this.#head = (head + 1) & this.#mask;
    this.#size--;
    if (this.#waitersHead < this.#waiters.length) this.#admitWaiter();
    return message;
  }

  #admitWaiter(): void {
    const waiter = this.#takeWaiter();
    const index = (this.#head + this.#size) & this.#mask;
    this.#messages[index] = waiter.message;
    this.#replies[index] = waiter.reply;
    this.#size++;
    waiter.resolve();
  }

  #takeWaiter(): Waiter<T, R> {
    const waiter = this.#waiters[this.#waitersHead];
    this.#waiters[this.#waitersHead++] = undefined as unknown as Waiter<T, R>;
    // Compact once the consumed prefix dominates, so a long backpressure episode does not
    // leave an ever-growing array of holes behind.
    if (this.#waitersHead === this.#waiters.length) {
      this.#waiters = [];
      this.#waitersHead = 0;
    } else if (
      this.#waitersHead > WAITERS_COMPACT_THRESHOLD && this.#waitersHead * 2 > this.#waiters.length
    ) {
      this.#waiters = this.#waiters.slice(this.#waitersHead);
      this.#waitersHead = 0;
    }
    return waiter;
  }

  /**
   * Empties the mailbox: every queued message, then every waiting sender's message, is passed to
   * `discard` (which rejects asks). Waiting senders are resolved: their message was accepted,
   * then discarded with the rest. Returns how many messages were discarded.
   */
  clear(discard: (message: T, reply: R | undefined) => void): number {
    let count = 0;
    while (this.#size > 0) {
      const message = this.shift();
      discard(message, this.#lastReply);
      count++;
    }
    while (this.#waitersHead < this.#waiters.length) {
      const waiter = this.#takeWaiter();
      discard(waiter.message, waiter.reply);
      waiter.resolve();
      count++;
    }
    this.#lastReply = undefined;
    return count;
  }

  /**
   * Closes the mailbox: waiting senders and every later push are rejected with `reason`. Queued
   * messages stay until {@link Mailbox.clear}.
   */
  close(reason: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closedWith = reason;
    while (this.#waitersHead < this.#waiters.length) {
      const waiter = this.#takeWaiter();
      waiter.reject(reason);
    }
  }
}
