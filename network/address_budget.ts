/**
 * A budget per address group: token buckets keyed by the `addressGroup` of a connection's remote
 * address (`connection_limits.ts`: an IPv4 address, an IPv6 /64, this machine's loopback), with
 * one bucket that every connection with no address shares, and optionally one the whole node
 * shares besides.
 *
 * Why: a key costs a peer one ed25519 key pair and one handshake, so a bound per peer key holds
 * nobody who makes a fresh key per connection (review s71). An address costs more: a bound per
 * address group holds one host, however many keys it makes. Not every connection has an address:
 * a Hyperswarm peer comes through the swarm host (its UDP address is the host's to know, and may
 * be a relay's), an in-memory link has none; they share the {@link AddressBudgetOptions.unaddressed}
 * bucket, the node-wide fallback. The {@link AddressBudgetOptions.node} bucket, when given, is
 * drawn on by every take as well: it bounds what many addresses together can take.
 *
 * Used for the pledges of keys a ledger has never seen (`peer_services.ts`) and for the catch-ups
 * sent on connect (`catch_up.ts`); the sizes are the callers'. Bounded memory: past
 * {@link MAX_REMEMBERED_GROUPS} groups, the one used longest ago is forgotten (it gets a full
 * bucket if it comes back; the node's bucket still holds many groups together).
 *
 * @example
 * ```ts
 * import { AddressBudget } from "./address_budget.ts";
 * const budget = new AddressBudget({
 *   perGroup: { burst: 2, refillMs: 60_000 },
 *   unaddressed: { burst: 1, refillMs: 60_000 },
 *   now: () => 0,
 * });
 * console.log(budget.take("192.0.2.7"), budget.take("192.0.2.7"), budget.take("192.0.2.7"));
 * // true true false: that address's bucket is empty
 * console.log(budget.take("198.51.100.1")); // true: another address, its own bucket
 * console.log(budget.take(undefined), budget.take(undefined)); // true false: no address, one bucket
 * ```
 *
 * @module
 */
import { PledgeBudget } from "./pledge_budget.ts";

/**
 * Address groups whose buckets are remembered: a flood from more addresses than this forgets the
 * oldest (about 100 bytes each: 400 KB at most), and the node bucket bounds what they take.
 */
export const MAX_REMEMBERED_GROUPS = 4_096;

/** The size of one token bucket: `burst` at once, then one more per `refillMs`. */
export interface BucketSize {
  /** Takes a full bucket holds (a positive integer). */
  burst: number;
  /** One take of room comes back per this many ms (positive). */
  refillMs: number;
}

/** Options of {@link AddressBudget}. */
export interface AddressBudgetOptions {
  /** The bucket of each address group. */
  perGroup: BucketSize;
  /**
   * The one bucket every connection with no address shares (swarm, in-memory): the node-wide
   * fallback. Absent: such a take draws on {@link node} alone (one of the two must be given).
   */
  unaddressed?: BucketSize;
  /** A bucket the whole node shares, drawn on by every take besides its group's (absent: none). */
  node?: BucketSize;
  /** Clock in ms (default `Date.now`; tests pass a fake one). */
  now?: () => number;
}

/**
 * Room for one take from one connection's address group, handed to whoever decides whether the
 * take is needed (the validator takes one only for a key its ledger has never seen). A class, so
 * that a message carrying it still encodes as CBOR (a held message's size is measured so).
 */
export class AddressRoom {
  readonly #budget: AddressBudget;
  readonly #group: string | undefined;

  /**
   * Room in `budget` for a connection from `group`.
   * @param budget The budget it takes from.
   * @param group The connection's address group (undefined: it has no address).
   */
  constructor(budget: AddressBudget, group: string | undefined) {
    this.#budget = budget;
    this.#group = group;
  }

  /** Take one: true when it fitted (see {@link AddressBudget.take}). */
  take(): boolean {
    return this.#budget.take(this.#group);
  }
}

/** Token buckets per address group; see the module doc. */
export class AddressBudget {
  readonly #options: AddressBudgetOptions;
  readonly #groups = new Map<string, PledgeBudget>();
  readonly #unaddressed?: PledgeBudget;
  readonly #node?: PledgeBudget;

  /**
   * Full buckets.
   * @param options See {@link AddressBudgetOptions}.
   * @throws {RangeError} when neither `unaddressed` nor `node` is given, or a size is not positive.
   */
  constructor(options: AddressBudgetOptions) {
    if (options.unaddressed === undefined && options.node === undefined) {
      throw new RangeError("an address budget needs an unaddressed or a node bucket");
    }
    this.#options = options;
    this.#unaddressed = options.unaddressed && this.#bucket(options.unaddressed);
    this.#node = options.node && this.#bucket(options.node);
  }

  /**
   * Take one from `group`'s bucket (the unaddressed one for undefined) and from the node's, both
   * or neither.
   * @returns whether it fitted.
   */
  take(group: string | undefined): boolean {
    const own = this.#own(group);
    if ((own?.room ?? 1) < 1 || (this.#node?.room ?? 1) < 1) return false;
    own?.take();
    this.#node?.take();
    return true;
  }

  /** Milliseconds until a take for `group` may fit again (0: it fits now). */
  nextInMs(group: string | undefined): number {
    return Math.max(this.#own(group)?.nextInMs ?? 0, this.#node?.nextInMs ?? 0);
  }

  /** Room for one take for `group`, to be taken later by whoever decides (see {@link AddressRoom}). */
  room(group: string | undefined): AddressRoom {
    return new AddressRoom(this, group);
  }

  /** `group`'s own bucket (the unaddressed one for undefined), made full the first time. */
  #own(group: string | undefined): PledgeBudget | undefined {
    if (group === undefined) return this.#unaddressed;
    let bucket = this.#groups.get(group);
    if (bucket !== undefined) this.#groups.delete(group); // to the back: used now
    bucket ??= this.#bucket(this.#options.perGroup);
    this.#groups.set(group, bucket);
    while (this.#groups.size > MAX_REMEMBERED_GROUPS) {
      this.#groups.delete(this.#groups.keys().next().value!);
    }
    return bucket;
  }

  #bucket(size: BucketSize): PledgeBudget {
    if (!Number.isInteger(size.burst) || size.burst < 1 || !(size.refillMs > 0)) {
      throw new RangeError("a bucket's burst must be a positive integer, its refill positive");
    }
    // `PledgeBudget` is a plain token bucket; its defaults (the pledges') are not used here.
    return new PledgeBudget({ ...size, now: this.#options.now });
  }
}
