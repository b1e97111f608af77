/**
 * The dashboard's node-wide socket caps (`dashboard_routes.ts`): {@link OpenSockets}, sockets of
 * one kind open at once in all or per key (anonymous readers; sockets waiting for their `auth`
 * per address; `/v1/stream`'s sockets, `stream_sockets.ts`), and {@link AuthPendingSockets}, the
 * sockets waiting for their `auth` in all, where one more pushes out the one that waited longest.
 * A place is given back when the socket's `onclose` fires, never when the node calls `close()`:
 * Deno keeps reading a socket that has not answered the close (a fragmented message of any size:
 * its 64 MiB limit is per frame), until the node drops it after the close's grace
 * (`websocket_drop.ts`). Not part of the public API.
 *
 * @module
 */
import type { EdgeError } from "./http_errors.ts";

/**
 * Sockets of one kind open at once, with a cap, in all (`key` left out) or per key: the
 * dashboard's anonymous readers and its sockets still to send their `auth`, which no API key
 * bounds (one client may connect from any number of addresses). A key with nothing open is
 * forgotten, so what is kept is bounded by the sockets open.
 */
export class OpenSockets {
  readonly #limit: number;
  readonly #refusal: (open: number) => EdgeError;
  readonly #open = new Map<string, number>();

  /** `refusal` is the error thrown when `open` sockets (the cap) are already open. */
  constructor(limit: number, refusal: (open: number) => EdgeError) {
    this.#limit = limit;
    this.#refusal = refusal;
  }

  /**
   * Take a place for one socket of `key`, or throw the refusal; call the result at its `onclose`
   * (not when closing it: see the module's text). A second call does nothing.
   */
  take(key = ""): () => void {
    const open = this.#open.get(key) ?? 0;
    if (open >= this.#limit) throw this.#refusal(open);
    this.#open.set(key, open + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left === 0) this.#open.delete(key);
      else this.#open.set(key, left);
    };
  }
}

/**
 * The sockets still to send their `auth`, node-wide, oldest first, with a cap. One more past it
 * pushes the oldest out rather than being refused: refusing the newest let anyone who kept the
 * places full (a socket from each of a few addresses every 10 s) keep out every page that must
 * send a key, while pushed out, a page that sends its token as it opens (as the dashboard's does)
 * gets in unless the places turn over faster than its first message arrives.
 *
 * A pushed-out socket still counts until it has really closed (its `onclose`, when the route calls
 * the result of {@link join}), not when it is told to: a client that never answers the close
 * handshake keeps its connection, and the partial message Deno is reading for it (of any size: 64
 * MiB is Deno's limit per frame, not per message), until the node drops it after the close's grace
 * (`websocket_drop.ts`). So at most `limit` sockets wait and at most `limit` more are pushed out
 * and not yet closed; with both full, a new socket is refused (`refusal`, 429) instead of pushing
 * out another. Honest pushed-out pages close within a round trip, and others within the grace, so
 * the second group stays empty unless someone keeps refilling it.
 */
export class AuthPendingSockets {
  readonly #limit: number;
  readonly #refusal: (leaving: number) => EdgeError;
  /** Each waiting socket's push-out, oldest first (a `Set` keeps insertion order). */
  readonly #waiting = new Set<() => void>();
  /** The sockets pushed out whose close has not fired yet. */
  readonly #leaving = new Set<() => void>();

  /**
   * At most `limit` sockets waiting at once, and `limit` pushed out and not yet closed; `refusal`
   * is the error thrown when `leaving` (the cap) pushed-out sockets have not closed yet.
   */
  constructor(limit: number, refusal: (leaving: number) => EdgeError) {
    this.#limit = limit;
    this.#refusal = refusal;
  }

  /**
   * Add one socket, first pushing out the oldest one past the cap (`pushOut` is called on it; it
   * counts on until its own `leave`), or throw the refusal when the pushed-out places are full
   * too. Call `leave` when the socket leaves (an accepted `auth`, its `onclose`), and `closing`
   * when the node closes it for another reason (its auth deadline): see {@link AuthPendingPlace}.
   */
  join(pushOut: () => void): AuthPendingPlace {
    if (this.#waiting.size >= this.#limit && this.#leaving.size >= this.#limit) {
      throw this.#refusal(this.#leaving.size);
    }
    for (const oldest of this.#waiting) {
      if (this.#waiting.size < this.#limit) break;
      this.#waiting.delete(oldest);
      this.#leaving.add(oldest);
      oldest();
    }
    const entry = () => pushOut(); // its own identity, whatever `pushOut` is
    this.#waiting.add(entry);
    return {
      leave: () => {
        this.#waiting.delete(entry);
        this.#leaving.delete(entry);
      },
      closing: () => {
        // Only while the pushed-out places have room: both groups stay within `limit`.
        if (!this.#waiting.has(entry) || this.#leaving.size >= this.#limit) return;
        this.#waiting.delete(entry);
        this.#leaving.add(entry);
      },
    };
  }
}

/** One socket's place among those waiting for their `auth` ({@link AuthPendingSockets.join}). */
export interface AuthPendingPlace {
  /** The socket has left (an accepted `auth`, its `onclose`): its place is free. Once only. */
  leave(): void;
  /**
   * The node has closed the socket (its auth deadline passed): it moves to the places of those
   * pushed out, which count on until its `onclose`, so its waiting place turns over at once
   * instead of when a client that never answers the close lets it go (review s75 verify F2).
   * Stays waiting when those places are full.
   */
  closing(): void;
}
