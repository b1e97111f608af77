/**
 * Peers dialled by their key for a while: the NetworkActor's `reach`. A validator that must
 * fetch a challenged worker's proof data and has no connection to it asks for one; over
 * Hyperswarm a node can connect to any peer by its public key through the DHT, whatever topics
 * either is on, so a worker is not at the mercy of the routes a validator happens to have (a
 * requester that answers "none" for it, a partition of the peers the validator knows).
 *
 * Each dial lasts until its own deadline (a later reach for the same key extends it), during
 * which the swarm reconnects if the connection drops (a worker that restarts); then it is
 * undialled, and an open connection stays open like any other. Every reach dials again: the
 * swarm tries a dialled peer it cannot reach ever more rarely (after its first few tries, about
 * once in 10 minutes), and a worker that was down when first dialled must be tried again at
 * each of the validator's rounds. At most {@link MAX_DIALS} keys
 * are dialled at once: a dial costs DHT lookups and a connection, and the keys come from
 * receipts other nodes sent, so their number must not be theirs to choose.
 *
 * @example
 * ```ts
 * import { KeyDials } from "./dial_by_key.ts";
 * const dialled: string[] = [];
 * const dials = new KeyDials({
 *   dial: (key) => dialled.push(`dial ${key[0]}`),
 *   undial: (key) => dialled.push(`undial ${key[0]}`),
 * });
 * dials.reach(new Uint8Array(32).fill(7), 60_000); // true
 * dials.stop();
 * console.log(dialled); // ["dial 7", "undial 7"]
 * ```
 *
 * @module
 */
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { toHex } from "../protocols/hash.ts";

/** Most keys dialled at once (see the module doc). */
export const MAX_DIALS = 32;

/** What dials: the swarm host (`SwarmHost.dial` / `undial`). */
export interface KeyDialer {
  /** Connect to `key` and keep reconnecting until {@link undial}. */
  dial(key: Uint8Array): void;
  /** Stop dialling `key`. */
  undial(key: Uint8Array): void;
}

interface Dial {
  key: Uint8Array;
  until: number;
  timer: unknown;
}

/** The keys dialled now, each until its deadline. */
export class KeyDials {
  readonly #dialer: KeyDialer;
  readonly #timers: ConnectionTimers;
  readonly #dials = new Map<string, Dial>();

  /**
   * @param dialer What dials.
   * @param timers Clock and timers (default the system's; tests pass a fake).
   */
  constructor(dialer: KeyDialer, timers: ConnectionTimers = SYSTEM_TIMERS) {
    this.#dialer = dialer;
    this.#timers = timers;
  }

  /** How many keys are dialled now. */
  get size(): number {
    return this.#dials.size;
  }

  /** Whether `key` is dialled now. */
  has(key: Uint8Array): boolean {
    return this.#dials.has(toHex(key));
  }

  /**
   * Dial `key` for `forMs` from now, or dial it again and extend a dial of it under way to that.
   * @returns Whether `key` is dialled now: false when {@link MAX_DIALS} others are.
   */
  reach(key: Uint8Array, forMs: number): boolean {
    const hex = toHex(key);
    const until = this.#timers.now() + Math.max(0, forMs);
    const dial = this.#dials.get(hex);
    if (dial !== undefined) {
      if (until > dial.until) this.#arm(hex, dial, until);
      this.#dialer.dial(dial.key);
      return true;
    }
    if (this.#dials.size >= MAX_DIALS) return false;
    const fresh: Dial = { key: key.slice(), until, timer: undefined };
    this.#dials.set(hex, fresh);
    this.#arm(hex, fresh, until);
    this.#dialer.dial(fresh.key);
    return true;
  }

  /** Undial every key (the node is stopping, or its swarm went away). */
  stop(): void {
    for (const hex of [...this.#dials.keys()]) this.#end(hex);
  }

  #arm(hex: string, dial: Dial, until: number): void {
    this.#timers.clearTimeout(dial.timer);
    dial.until = until;
    dial.timer = this.#timers.setTimeout(() => this.#end(hex), until - this.#timers.now());
  }

  #end(hex: string): void {
    const dial = this.#dials.get(hex);
    if (dial === undefined) return;
    this.#dials.delete(hex);
    this.#timers.clearTimeout(dial.timer);
    this.#dialer.undial(dial.key);
  }
}
