/**
 * Peers dialled by their key for a while: the NetworkActor's `reach`. A validator that must
 * fetch a challenged worker's proof data and has no connection to it asks for one; over
 * Hyperswarm a node can connect to any peer by its public key through the DHT, whatever topics
 * either is on, so a worker is not at the mercy of the routes a validator happens to have (a
 * requester that answers "none" for it, a partition of the peers the validator knows).
 *
 * Each dial lasts until its own deadline (a later reach for the same key extends it) or until
 * every caller that wanted it has released it (a fetch that got its proof), during
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
  /** Who wants it (a challenged receipt's id), and until when each does. */
  holders: Map<string, number>;
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
   * Dial `key` for `forMs` from now on behalf of `holder`, or dial it again and extend a dial
   * of it under way to that. The dial lasts while any holder's time lasts, or until every
   * holder has {@link release}d it.
   * @param key The peer's key.
   * @param forMs How long `holder` wants it.
   * @param holder Who wants it (default: one anonymous holder).
   * @returns Whether `key` is dialled now: false when {@link MAX_DIALS} others are.
   */
  reach(key: Uint8Array, forMs: number, holder = ""): boolean {
    const hex = toHex(key);
    const until = this.#timers.now() + Math.max(0, forMs);
    let dial = this.#dials.get(hex);
    if (dial === undefined) {
      if (this.#dials.size >= MAX_DIALS) return false;
      dial = { key: key.slice(), holders: new Map(), until: -Infinity, timer: undefined };
      this.#dials.set(hex, dial);
    }
    dial.holders.set(holder, Math.max(until, dial.holders.get(holder) ?? -Infinity));
    if (until > dial.until) this.#arm(hex, dial, until);
    this.#dialer.dial(dial.key);
    return true;
  }

  /**
   * `holder` no longer needs `key` (its proof came, or its challenge ended): the dial ends once
   * no holder is left, else lasts as long as the others want it.
   */
  release(key: Uint8Array, holder = ""): void {
    const hex = toHex(key);
    const dial = this.#dials.get(hex);
    if (dial === undefined || !dial.holders.delete(holder)) return;
    if (dial.holders.size === 0) this.#end(hex);
    else this.#arm(hex, dial, Math.max(...dial.holders.values()));
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
