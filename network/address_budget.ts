/**
 * A budget per address group: token buckets keyed by the `addressGroup` of a connection's remote
 * address (`connection_limits.ts`: an IPv4 address, an IPv6 /64, this machine's loopback), with
 * one bucket that every connection with no address shares, and optionally one the whole node
 * shares besides.
 *
 * Why: a key costs a peer one ed25519 key pair and one handshake, so a bound per peer key holds
 * nobody who makes a fresh key per connection (review s71). An address costs more: a bound per
 * address group holds one host, however many keys it makes. A Hyperswarm peer's address is the
 * one its UDP stream comes from, as the swarm host hands it on (`SwarmPeer.remoteHost`, grouped
 * as a TCP peer's: a local testnet's peers are `loopback`, as TCP peers on this machine are). Not
 * every connection has one: a swarm peer that comes through a blind relay (the relay's address is
 * not its own, and would put every peer behind that relay in one group) or whose address the host
 * does not know, a dialled TCP peer and an in-memory link have none; they share the
 * {@link AddressBudgetOptions.unaddressed} bucket. The {@link AddressBudgetOptions.perBlock} bucket, when given, is drawn on besides the
 * group's: one per `addressBlock` (an IPv6 /48, whose 65,536 /64s are free to one site; review s71
 * verify F2: 5,000 /64s of one /48 took 8 catch-ups each). The {@link AddressBudgetOptions.node}
 * bucket, when given, is drawn on by every take as well: it bounds what many addresses together
 * can take.
 *
 * One taker must not be able to take every refill of the shared buckets (the node's, the
 * unaddressed one) and keep everyone else out (review s71 verify F3: a swarm attacker took all
 * 1,824 new-key pledges of ten minutes, an honest newcomer's 600 tries none). So
 * {@link AddressBudgetOptions.reserve} keeps some of their room back for a *first* take: a block's
 * first in {@link ReserveOptions.refillMs}, or an unaddressed connection's first
 * ({@link AddressRoom}); any other take leaves it. Taking every refill then needs a fresh block
 * (an IPv4 address, an IPv6 /48) or a fresh connection for each reserved take.
 *
 * Used for the pledges of keys a ledger has never seen (`peer_services.ts`) and for the catch-ups
 * sent on connect (`catch_up.ts`); the sizes are the callers'. Bounded memory: past
 * {@link MAX_REMEMBERED_GROUPS} groups (and blocks), a full bucket is forgotten (nothing lost: it
 * comes back full), else the fullest, the one used longest ago among equals: a drained group is
 * forgotten last, so a flood of other groups does not hand it a full bucket again (review s71
 * verify F2), and the node's bucket bounds what the forgotten take.
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
import { addressBlock } from "./connection_limits.ts";

/**
 * Address groups (and blocks) whose buckets are remembered: a flood from more addresses than
 * this forgets the fullest (about 100 bytes each: 400 KB at most per map), and the node bucket
 * bounds what they take.
 */
export const MAX_REMEMBERED_GROUPS = 4_096;

/** The size of one token bucket: `burst` at once, then one more per `refillMs`. */
export interface BucketSize {
  /** Takes a full bucket holds (a positive integer). */
  burst: number;
  /** One take of room comes back per this many ms (positive). */
  refillMs: number;
}

/** Room of the shared buckets kept for first takes (see the module doc). */
export interface ReserveOptions {
  /** Takes of the node's and the unaddressed bucket that only a first take may use. */
  room: number;
  /** A block has one first take per this many ms. */
  refillMs: number;
}

/** Options of {@link AddressBudget}. */
export interface AddressBudgetOptions {
  /** The bucket of each address group. */
  perGroup: BucketSize;
  /** The bucket of each `addressBlock` (an IPv6 /48), drawn on besides its groups' (absent: none). */
  perBlock?: BucketSize;
  /**
   * The one bucket every connection with no address shares (swarm, in-memory). Absent: such a
   * take draws on {@link node} alone (one of the two must be given).
   */
  unaddressed?: BucketSize;
  /** A bucket the whole node shares, drawn on by every take besides its group's (absent: none). */
  node?: BucketSize;
  /** Room of the shared buckets kept for first takes (absent: none kept). */
  reserve?: ReserveOptions;
  /** Clock in ms (default `Date.now`; tests pass a fake one). */
  now?: () => number;
}

/**
 * Room for takes from one connection's address group, handed to whoever decides whether a take
 * is needed (the validator takes one only for a key its ledger has never seen). It knows whether
 * its connection took one yet: an unaddressed connection's first take may use the reserve. A
 * class, so that a message carrying it still encodes as CBOR (a held message's size is measured
 * so).
 */
export class AddressRoom {
  readonly #budget: AddressBudget;
  readonly #group: string | undefined;
  #first = true;

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
    const taken = this.#budget.take(this.#group, this.#first);
    if (taken) this.#first = false;
    return taken;
  }
}

/** Token buckets per address group; see the module doc. */
export class AddressBudget {
  readonly #options: AddressBudgetOptions;
  readonly #groups: RememberedBuckets;
  readonly #blocks?: RememberedBuckets;
  /** Each block's first takes (burst 1): who may use the reserve. */
  readonly #firsts?: RememberedBuckets;
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
    const bucket = (size: BucketSize) => () => this.#bucket(size);
    this.#groups = new RememberedBuckets(bucket(options.perGroup));
    if (options.perBlock) this.#blocks = new RememberedBuckets(bucket(options.perBlock));
    if (options.reserve) {
      const { room, refillMs } = options.reserve;
      if (!Number.isInteger(room) || room < 0) {
        throw new RangeError("a reserve's room must be a non-negative integer");
      }
      this.#firsts = new RememberedBuckets(bucket({ burst: 1, refillMs }));
    }
    this.#unaddressed = options.unaddressed && this.#bucket(options.unaddressed);
    this.#node = options.node && this.#bucket(options.node);
  }

  /**
   * Take one from `group`'s bucket (the unaddressed one for undefined), its block's and the
   * node's, all or none. The shared buckets (the node's, the unaddressed one) keep the reserve
   * back, except for a first take: `group`'s block's first in the reserve's period, or, for no
   * group, `first` (an unaddressed connection's first, {@link AddressRoom}).
   * @returns whether it fitted.
   */
  take(group: string | undefined, first = false): boolean {
    const addressed = group !== undefined;
    const block = addressed ? addressBlock(group) : undefined;
    const own = addressed ? [this.#groups.of(group), this.#blocks?.of(block!)] : [];
    const firstOf = addressed ? this.#firsts?.of(block!) : undefined;
    const fresh = addressed ? (firstOf?.room ?? 0) >= 1 : first;
    // The buckets others share: the reserve is kept in these.
    const shared = [this.#node, addressed ? undefined : this.#unaddressed]
      .filter((bucket) => bucket !== undefined);
    if ([...own, ...shared].some((bucket) => bucket !== undefined && bucket.room < 1)) return false;
    const reserved = shared.some((bucket) => bucket.room <= (this.#options.reserve?.room ?? 0));
    if (reserved && !fresh) return false;
    for (const bucket of [...own, ...shared]) bucket?.take();
    if (reserved) firstOf?.take();
    return true;
  }

  /** Milliseconds until a take for `group` may fit again (0: it may fit now). */
  nextInMs(group: string | undefined): number {
    const own = group === undefined ? this.#unaddressed : this.#groups.of(group);
    const ofBlock = group === undefined ? undefined : this.#blocks?.of(addressBlock(group));
    return Math.max(own?.nextInMs ?? 0, ofBlock?.nextInMs ?? 0, this.#node?.nextInMs ?? 0);
  }

  /** Room for takes for `group`, to be taken later by whoever decides (see {@link AddressRoom}). */
  room(group: string | undefined): AddressRoom {
    return new AddressRoom(this, group);
  }

  #bucket(size: BucketSize): PledgeBudget {
    if (!Number.isInteger(size.burst) || size.burst < 1 || !(size.refillMs > 0)) {
      throw new RangeError("a bucket's burst must be a positive integer, its refill positive");
    }
    // `PledgeBudget` is a plain token bucket; its defaults (the pledges') are not used here.
    return new PledgeBudget({ ...size, now: this.#options.now });
  }
}

/**
 * Buckets by name, made full on first use, at most {@link MAX_REMEMBERED_GROUPS}: past it a full
 * one is forgotten (nothing lost), else the fullest, the one used longest ago among equals.
 */
class RememberedBuckets {
  readonly #buckets = new Map<string, PledgeBudget>();
  readonly #make: () => PledgeBudget;

  constructor(make: () => PledgeBudget) {
    this.#make = make;
  }

  /** `name`'s bucket, made full the first time (used now: the last to go among equals). */
  of(name: string): PledgeBudget {
    let bucket = this.#buckets.get(name);
    if (bucket !== undefined) this.#buckets.delete(name);
    bucket ??= this.#make();
    this.#buckets.set(name, bucket);
    if (this.#buckets.size > MAX_REMEMBERED_GROUPS) this.#forgetOne(name);
    return bucket;
  }

  /** Forget a full bucket, else the fullest (the oldest first), never `keep`. */
  #forgetOne(keep: string): void {
    let fullest: string | undefined;
    let most = -1;
    for (const [name, bucket] of this.#buckets) {
      if (name === keep) continue;
      if (bucket.full) {
        fullest = name;
        break;
      }
      if (bucket.room > most) [fullest, most] = [name, bucket.room];
    }
    if (fullest !== undefined) this.#buckets.delete(fullest);
  }
}
