/**
 * The dashboard's node-wide socket caps (`dashboard_routes.ts`): {@link OpenSockets}, sockets of
 * one kind open at once in all or per key (anonymous readers; sockets waiting for their `auth`
 * per address), and {@link AuthPendingSockets}, the sockets waiting for their `auth` in all,
 * where one more pushes out the one that waited longest. Not part of the public API.
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

  /** Take a place for one socket of `key`, or throw the refusal; call the result at its close. */
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
 */
export class AuthPendingSockets {
  readonly #limit: number;
  /** Each waiting socket's push-out, oldest first (a `Set` keeps insertion order). */
  readonly #waiting = new Set<() => void>();

  /** At most `limit` sockets waiting at once. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /**
   * Add one socket, first pushing out the oldest ones past the cap (`pushOut` is called on each,
   * and that one has left); call the result when it leaves (an accepted `auth`, its close).
   */
  join(pushOut: () => void): () => void {
    for (const oldest of this.#waiting) {
      if (this.#waiting.size < this.#limit) break;
      this.#waiting.delete(oldest);
      oldest();
    }
    const entry = () => pushOut(); // its own identity, whatever `pushOut` is
    this.#waiting.add(entry);
    return () => void this.#waiting.delete(entry);
  }
}
