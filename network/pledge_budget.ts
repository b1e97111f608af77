/**
 * The per-peer-key budget of stake pledges, both ways (the numbers and why:
 * `protocols/stake_pledge.ts`).
 *
 * A pledge is valid from any fresh key, and every ledger records it for good, passes it on and
 * keeps it in memory: without a bound, one peer could make every ledger of the network grow as
 * fast as it can sign. So each peer key has a token bucket of pledges, across its connections:
 *
 * - receiving ({@link PledgeGate}): a pledge past the budget is refused with
 *   `pledge_budget_exceeded` before it reaches the ledger, and a peer that goes on past the
 *   connection's refusal limit (`DEFAULT_MAX_REFUSALS` in `DEFAULT_REFUSAL_WINDOW_MS`, as for
 *   any other refused message) is disconnected with `too_many_refusals`;
 * - sending ({@link PledgeBudget} held per peer key by the NetworkActor, across the key's
 *   connections, {@link PledgeBudgets}): what a node pushes on
 *   connect, passes on and sends on need takes room from a bucket half the receiver's size, so
 *   an honest node never meets the receiver's limit; a pledge passed on past it is queued for the
 *   peer and sent as the bucket refills (`MAX_QUEUED_PLEDGES`, `pledge_sync.ts`; past that bound
 *   it is dropped, and the peer gets it with the evidence that needs it).
 *
 * A key is free, so a bound per key alone holds nobody who makes one per connection: the pledges
 * of keys a ledger has never seen are also budgeted per address group and for the node
 * ({@link NEW_PLEDGES_PER_GROUP_BURST}, {@link NEW_PLEDGES_PER_NODE_BURST}; the buckets are
 * `address_budget.ts`'s, drawn on by the validator, which alone knows a key is new:
 * `peer_services.ts`).
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { DEFAULT_MAX_REFUSALS, DEFAULT_REFUSAL_WINDOW_MS } from "../protocols/connection.ts";
import { TooManyRefusalsError } from "../protocols/protocol_errors.ts";
import {
  PLEDGE_RECEIVE_BURST,
  PLEDGE_RECEIVE_REFILL_MS,
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_REFILL_MS,
} from "../protocols/stake_pledge.ts";

/** Options of {@link PledgeBudget}. */
export interface PledgeBudgetOptions {
  /** Pledges a full bucket holds (default {@link PLEDGE_SEND_BURST}). */
  burst?: number;
  /** One pledge of room comes back per this many ms (default {@link PLEDGE_SEND_REFILL_MS}). */
  refillMs?: number;
  /** Clock in ms (default `Date.now`; tests pass a fake one). */
  now?: () => number;
}

/**
 * A token bucket of pledges: full at first, one pledge of room back per `refillMs`.
 *
 * @example
 * ```ts
 * import { PledgeBudget } from "./pledge_budget.ts";
 * const budget = new PledgeBudget({ burst: 2, refillMs: 1_000, now: () => 0 });
 * console.log(budget.take(), budget.take(), budget.take()); // true true false
 * ```
 */
export class PledgeBudget {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #now: () => number;
  #room: number;
  #at: number;

  /**
   * A full bucket.
   * @param options See {@link PledgeBudgetOptions}.
   */
  constructor(options?: PledgeBudgetOptions) {
    this.#burst = options?.burst ?? PLEDGE_SEND_BURST;
    this.#refillMs = options?.refillMs ?? PLEDGE_SEND_REFILL_MS;
    this.#now = options?.now ?? Date.now;
    this.#room = this.#burst;
    this.#at = this.#now();
  }

  /** Pledges that fit now. */
  get room(): number {
    const now = this.#now();
    const back = Math.floor((now - this.#at) / this.#refillMs);
    if (back > 0) {
      this.#room = Math.min(this.#burst, this.#room + back);
      this.#at = this.#room === this.#burst ? now : this.#at + back * this.#refillMs;
    }
    return this.#room;
  }

  /** Whether the bucket is full: nothing taken for `burst` refill periods (forgetting it loses nothing). */
  get full(): boolean {
    return this.room >= this.#burst;
  }

  /** Milliseconds until one more pledge of room comes back (0: there is room now). */
  get nextInMs(): number {
    return this.inMs(0);
  }

  /** Milliseconds until {@link take} with `reserve` fits (0: it fits now). */
  inMs(reserve: number): number {
    const room = this.room;
    if (room > reserve) return 0;
    return Math.max(0, this.#at + (reserve - room + 1) * this.#refillMs - this.#now());
  }

  /**
   * Take room for one pledge, leaving at least `reserve` for later.
   * @returns whether it fitted (false: send or record nothing).
   */
  take(reserve = 0): boolean {
    if (this.room <= reserve) return false;
    this.#room--;
    return true;
  }
}

/** A peer sent more pledges than its connection's budget: this one was not recorded. */
export class PledgeBudgetExceededError extends VeriflowError {
  /**
   * Create it.
   * @param burst The budget's burst.
   * @param refillMs Its refill period.
   */
  constructor(burst: number, refillMs: number) {
    super(
      "pledge_budget_exceeded",
      `more than ${burst} stake pledges on this connection, or more than one per ${refillMs} ms ` +
        `after them: this one is not recorded`,
    );
  }
}

/** What {@link PledgeGate} closes. */
export interface ClosableConnection {
  /** Close with a reason. */
  close(reason?: Error): Promise<void>;
}

/** Options of {@link PledgeGate}. */
export interface PledgeGateOptions {
  /** Pledges at once (default {@link PLEDGE_RECEIVE_BURST}). */
  burst?: number;
  /** One more per this many ms (default {@link PLEDGE_RECEIVE_REFILL_MS}). */
  refillMs?: number;
  /** Refused pledges tolerated per window (default `DEFAULT_MAX_REFUSALS`). */
  maxRefusals?: number;
  /** The window of `maxRefusals`, ms (default `DEFAULT_REFUSAL_WINDOW_MS`). */
  refusalWindowMs?: number;
  /** Clock in ms (default `Date.now`). */
  now?: () => number;
  /**
   * The bucket to draw from, shared by every connection of one peer key
   * ({@link PledgeBudgets}); default one of the connection's own.
   */
  budget?: PledgeBudget;
}

/**
 * Pledges of keys a ledger has never seen that the connections from one address group may bring
 * it at once (`peer_services.ts`, `address_budget.ts`), whatever their peer keys: four honest nodes
 * on one host, each sending its whole {@link PLEDGE_SEND_BURST} of new keys at once, never meet
 * it. A per-key bound alone held nobody: one host with a fresh key per connection had 20,480
 * pledges recorded in 40 s (review s71). A pledge of a key the ledger holds a pledge of (a repeat,
 * or a second one that convicts the key of equivocation) takes none of it.
 */
export const NEW_PLEDGES_PER_GROUP_BURST = 4 * PLEDGE_SEND_BURST;
/**
 * Then one more per this many ms per address group (20 a minute, four honest senders' rate):
 * about 28,800 new keys, 11 MB of ledger, a day for one host that paces itself at the limit.
 */
export const NEW_PLEDGES_PER_GROUP_REFILL_MS = PLEDGE_SEND_REFILL_MS / 4;
/**
 * Pledges of keys a ledger has never seen that all its peers together may bring it at once: the
 * bound on many addresses together. Sixteen honest peers' whole sending burst of new keys.
 */
export const NEW_PLEDGES_PER_NODE_BURST = 16 * PLEDGE_SEND_BURST;
/** Then one more per this many ms for the node (80 a minute: 115,200 new keys, 44 MB a day). */
export const NEW_PLEDGES_PER_NODE_REFILL_MS = PLEDGE_SEND_REFILL_MS / 16;
/**
 * Pledges of keys a ledger has never seen that the connections with no address (in-memory, a TCP
 * dial, a swarm peer relayed or of unknown address) may bring it at once, together: one address group's. They cannot be told apart by
 * address, and drew on the node's bucket alone, so one swarm peer took every refill of it (review
 * s71 verify F3: 1,824 in ten minutes, an honest newcomer's 600 tries none); now they take at most
 * a quarter of the node's rate, and the rest is left to addressed peers.
 */
export const NEW_PLEDGES_UNADDRESSED_BURST: number = NEW_PLEDGES_PER_GROUP_BURST;
/** Then one more per this many ms for all of them (an address group's rate: 20 a minute). */
export const NEW_PLEDGES_UNADDRESSED_REFILL_MS: number = NEW_PLEDGES_PER_GROUP_REFILL_MS;
/**
 * Room of the node's (and the unaddressed) bucket that only a first take may use (an address
 * block's first new key in {@link NEW_PLEDGES_FIRST_REFILL_MS}, or an unaddressed connection's
 * first: `address_budget.ts`): an honest newcomer's own pledge, the first it sends, is recorded
 * while others take every other refill. One sender's burst.
 */
export const NEW_PLEDGES_RESERVE: number = PLEDGE_SEND_BURST;
/**
 * An address block (an IPv4 address, an IPv6 /48) has one first take of the reserve per this
 * many ms (10 minutes): to keep the reserve empty, its refill of 80 a minute, takes 800 blocks
 * taking a turn each ten minutes, or over the swarm a fresh connection (a handshake) per take,
 * within the unaddressed bucket's 20 a minute.
 */
export const NEW_PLEDGES_FIRST_REFILL_MS = 600_000;

/** Peer keys whose receiving budgets are remembered after their connections close. */
export const MAX_REMEMBERED_PLEDGE_BUDGETS = 4_096;

/**
 * The budgets of peer keys, kept across their connections. Receiving: a budget of the
 * connection's own started full at every handshake, so one key that connected, sent its 128
 * pledges of fresh keys, hung up and did it again put any number of pledges in every ledger for
 * good (a review measured 5,120 in 9.5 s). Sending (the NetworkActor's, with the sending burst
 * and refill): the receiver's budget being the key's, a sender's of each connection's own pushed
 * a peer it was connected to more than once (or reconnected to) past it. Bounded: past
 * {@link MAX_REMEMBERED_PLEDGE_BUDGETS} keys, the one used longest ago is forgotten.
 */
export class PledgeBudgets {
  readonly #budgets = new Map<string, PledgeBudget>();
  readonly #options: { burst: number; refillMs: number; now?: () => number };

  /** @param options The bucket of each key (default the receiving burst and refill). */
  constructor(options: { burst?: number; refillMs?: number; now?: () => number } = {}) {
    this.#options = {
      burst: options.burst ?? PLEDGE_RECEIVE_BURST,
      refillMs: options.refillMs ?? PLEDGE_RECEIVE_REFILL_MS,
      now: options.now,
    };
  }

  /** The bucket of peer `key` (hex), made full the first time. */
  of(key: string): PledgeBudget {
    let budget = this.#budgets.get(key);
    if (budget !== undefined) this.#budgets.delete(key); // to the back: used now
    budget ??= new PledgeBudget(this.#options);
    this.#budgets.set(key, budget);
    while (this.#budgets.size > MAX_REMEMBERED_PLEDGE_BUDGETS) {
      this.#budgets.delete(this.#budgets.keys().next().value!);
    }
    return budget;
  }
}

/**
 * The receiving side of one connection's pledge budget. Its refusals are counted like the
 * connection's own (a handler's error does not reach that counter, so this one mirrors it, with
 * the same limit and window), and the peer is cut off with the same error.
 */
export class PledgeGate {
  readonly #connection: ClosableConnection;
  readonly #budget: PledgeBudget;
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #maxRefusals: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #windowStart: number;
  #refusals = 0;

  /**
   * A gate with a full budget.
   * @param connection Closed when the peer keeps on past the budget.
   * @param options See {@link PledgeGateOptions}.
   */
  constructor(connection: ClosableConnection, options?: PledgeGateOptions) {
    this.#connection = connection;
    this.#burst = options?.burst ?? PLEDGE_RECEIVE_BURST;
    this.#refillMs = options?.refillMs ?? PLEDGE_RECEIVE_REFILL_MS;
    this.#maxRefusals = options?.maxRefusals ?? DEFAULT_MAX_REFUSALS;
    this.#windowMs = options?.refusalWindowMs ?? DEFAULT_REFUSAL_WINDOW_MS;
    this.#now = options?.now ?? Date.now;
    this.#budget = options?.budget ?? new PledgeBudget({
      burst: this.#burst,
      refillMs: this.#refillMs,
      now: this.#now,
    });
    this.#windowStart = this.#now();
  }

  /**
   * Admit one pledge from the peer.
   * @throws {PledgeBudgetExceededError} past the budget (the peer is told its code); past the
   *   refusal limit as well, the connection is closed with `too_many_refusals`.
   */
  admit(): void {
    if (this.#budget.take()) return;
    const now = this.#now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#refusals = 0;
    }
    if (++this.#refusals > this.#maxRefusals) {
      this.#connection.close(new TooManyRefusalsError(this.#refusals, this.#windowMs))
        .catch(() => {});
    }
    throw new PledgeBudgetExceededError(this.#burst, this.#refillMs);
  }
}
