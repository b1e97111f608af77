/**
 * The one-way messages of a `Connection` that the peer may still refuse `busy`, and their
 * second tries.
 *
 * A one-way message (`Connection.notify`) has no answer: it resolves once written. The peer's
 * connection refuses it `busy` at admission, as it refuses a request, when it already handles
 * `maxInboundRequests` of our messages (a request, not a one-way message, is refused for a full
 * write budget too: `_connection_responder.ts`), and says so in an `error` frame `about` the
 * envelope's id. A request fails with that error and its caller asks again; a one-way message's
 * sender acted on nothing, so the message was lost on that connection: a peer's fraud proof
 * refused while a burst of its receipt announcements was in flight never reached that ledger, and
 * the cheat every other ledger slashed was paid there (review s59,
 * `tests/network/busy_announcements_test.ts`).
 *
 * So each one-way message is kept here until the peer shows it read past it, and one refused
 * `busy` is sent again, as a new envelope, after a backoff: {@link BUSY_RETRY_BACKOFF_MS}, doubled
 * each time, at most {@link MAX_BUSY_RETRIES} times. `busy` is the peer's load, not a judgement of
 * the message: any other refusal (no handler, a bad body, a handler that failed) is final, as
 * before. The peer refuses at admission in its read loop, in the order our frames came, and writes
 * its frames in order: so its answer to anything we sent later (a reply, a chunk, the end or error
 * of one of our requests, a keepalive's pong) comes after any `busy` about what we sent before,
 * and tells us that message was taken. No frame and no timer is added for that: a connection that
 * carries nothing else forgets its one-way messages at the next keepalive pong.
 *
 * Who pays:
 * - the sender, in memory: at most {@link MAX_KEPT_NOTICES} one-way messages and one write budget
 *   of them (`maxQueuedBytes`, counted as their encoded frames) per connection, kept by reference
 *   until the peer reads past them, or waiting out a backoff; past either bound the oldest is
 *   forgotten (refused then, it is lost, as before);
 * - the sender, on the wire: each refused message at most {@link MAX_BUSY_RETRIES} more times; a
 *   peer that answers `busy` about everything gets every one-way message five times, no more;
 * - the receiver: a copy it refuses costs a decode, a schema check and a small `error` frame;
 *   `busy` refusals do not count towards `maxRefusals` (it is the receiver's load, not the
 *   sender's fault), so an honest sender is not cut off for its retries. The receiver never
 *   stops reading: the waiting is the sender's, but for the `error` frame itself, which waits for
 *   room in the receiver's write queue (at most `maxInboundRequests` such frames at once).
 *
 * Not covered: a `busy` whose `error` frame the peer dropped is not known here, and the message
 * stays lost on that connection until a new one's catch-up. Until review s60 that was every
 * refusal made while the peer's write budget to us was full (we were not reading it): the frame
 * was offered to that very budget, so it was always dropped. Now the peer takes a one-way message
 * whatever its write budget, and its `busy` answers wait for room, in order, like replies
 * (`_connection_responder.ts`): one is dropped only past `maxInboundRequests` of them waiting at
 * once, that is when we have not read the peer through a flood of more refusals than that (who
 * pays: `docs/PROOF.md`, Known limits, "Evidence past a connection's retries";
 * `tests/protocols/connection_busy_test.ts`).
 *
 * @module
 */
import type { MessageDefinition } from "./message_registry.ts";
import type { ConnectionTimers } from "./connection_timers.ts";

/**
 * Most times a one-way message refused `busy` is sent again. With {@link BUSY_RETRY_BACKOFF_MS}
 * the last try goes 3.75 s after the first refusal: a burst of requests that filled the peer's
 * slots (a validator's turn each, milliseconds to a second) is over by then; a peer still full
 * after that is overloaded, and more copies would add to its load.
 */
export const MAX_BUSY_RETRIES = 4;
/**
 * The wait before the first retry; each next one waits twice as long (250, 500, 1000, 2000 ms).
 * A quarter second is several round trips: long enough for the requests that filled the peer to
 * be answered, short enough that evidence arrives well inside a challenge window (minutes).
 */
export const BUSY_RETRY_BACKOFF_MS = 250;
/**
 * Most one-way messages a connection keeps to send again (besides the byte bound, one write
 * budget). Evidence is rare; a hello, a pledge or a verdict is a few hundred bytes: 64 covers a
 * burst of gossip between two answers from the peer.
 */
export const MAX_KEPT_NOTICES = 64;

/** The error code of a `busy` refusal (`BusyError`). */
const BUSY = "busy";

/** A one-way message sent and kept. */
interface Notice {
  definition: MessageDefinition;
  body: unknown;
  /** Its encoded frame's bytes (what it counts in the byte bound). */
  bytes: number;
  /** How many times it was sent again before this send. */
  tries: number;
  /** Its backoff timer, while it waits to be sent again. */
  timer?: unknown;
}

/** What {@link Notices.refusedOneWay} knows of a refused one-way message. */
export interface OneWayRefusal {
  /** Whether it will be sent again (`busy`, within its retries). */
  resent: boolean;
  /** Its message type, when it was one kept here (undefined: no message of ours waits on it). */
  type?: string;
}

/** What {@link Notices} needs. */
export interface NoticesOptions {
  /** The connection's clock (the backoff). */
  timers: ConnectionTimers;
  /** Most bytes kept (the connection's write budget). */
  maxBytes: number;
  /** Send a one-way message again (a new envelope), its `tries`-th retry. */
  resend(definition: MessageDefinition, body: unknown, tries: number): void;
}

/** See the module doc. */
export class Notices {
  readonly #o: NoticesOptions;
  /** Sent and not yet read past by the peer, by envelope id (ids grow: oldest first). */
  readonly #sent = new Map<number, Notice>();
  /** Refused `busy`, waiting out their backoff (oldest first). */
  readonly #waiting = new Set<Notice>();
  #bytes = 0;
  #closed = false;
  /** Sent again after a `busy` refusal, in total. */
  resent = 0;

  /** @param options Clock, bound, and how to send again. */
  constructor(options: NoticesOptions) {
    this.#o = options;
  }

  /** One-way messages kept: sent and not yet read past, or waiting to be sent again. */
  get size(): number {
    return this.#sent.size + this.#waiting.size;
  }

  /** A one-way message is being sent as envelope `id` (its `tries`-th retry; 0: the first send). */
  sent(id: number, definition: MessageDefinition, body: unknown, bytes: number, tries = 0): void {
    if (this.#closed) return;
    this.#sent.set(id, { definition, body, bytes, tries });
    this.#bytes += bytes;
    while (this.size > MAX_KEPT_NOTICES || (this.#bytes > this.#o.maxBytes && this.size > 1)) {
      if (!this.#forgetOldest(id)) break;
    }
  }

  /** The peer answered our envelope `re`: it read every one-way message sent before it. */
  readPast(re: number): void {
    for (const [id, notice] of this.#sent) {
      if (id >= re) break;
      this.#sent.delete(id);
      this.#bytes -= notice.bytes;
    }
  }

  /**
   * The peer refused our one-way message `about` with `code`.
   * @returns Whether it will be sent again, and its type (what the refusal is about: a hook that
   * logs it names what was refused, a hello say).
   */
  refusedOneWay(about: number, code: string): OneWayRefusal {
    const notice = this.#sent.get(about);
    if (notice === undefined) return { resent: false };
    this.#sent.delete(about);
    const type = notice.definition.type;
    if (code !== BUSY || notice.tries >= MAX_BUSY_RETRIES || this.#closed) {
      this.#bytes -= notice.bytes;
      return { resent: false, type };
    }
    this.#waiting.add(notice);
    notice.timer = this.#o.timers.setTimeout(() => {
      if (!this.#waiting.delete(notice)) return;
      this.#bytes -= notice.bytes;
      this.resent++;
      this.#o.resend(notice.definition, notice.body, notice.tries + 1);
    }, BUSY_RETRY_BACKOFF_MS * 2 ** notice.tries);
    return { resent: true, type };
  }

  /** The connection is closing: forget everything, send nothing again. */
  close(): void {
    this.#closed = true;
    for (const notice of this.#waiting) this.#o.timers.clearTimeout(notice.timer);
    this.#waiting.clear();
    this.#sent.clear();
    this.#bytes = 0;
  }

  /**
   * Past a bound: forget the oldest sent but `newest` (it is likely read by now), else the oldest
   * waiting (known refused, but older than the one being sent). Returns whether one was forgotten.
   */
  #forgetOldest(newest: number): boolean {
    for (const [id, notice] of this.#sent) {
      if (id === newest) break;
      this.#sent.delete(id);
      this.#bytes -= notice.bytes;
      return true;
    }
    for (const notice of this.#waiting) {
      this.#waiting.delete(notice);
      this.#o.timers.clearTimeout(notice.timer);
      this.#bytes -= notice.bytes;
      return true;
    }
    return false; // only `newest` is kept
  }
}
