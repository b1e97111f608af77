/**
 * How many deep walks the HTTP gateway's reads may start (`GET /ipfs/…`, `/share/…`). A block read
 * asks the chunk's r holders and `READ_PEERS_PAST_HOLDERS` more, then, where none of them served
 * it, goes on through the whole ranking of storage peers (`storage/_replica_reads.ts`): a copy
 * handed on past full peers, or placed under an older, smaller membership, may rank anywhere, and
 * a read that stopped short made such chunks `chunk_not_found` on every node but their writer
 * (review s80 vgw F1, F2). That walk past the first peers is a deep walk; for a CID nobody holds it
 * asks every storage peer (40 with 40 peers, review s80 F1), so the edge bounds it:
 *
 * - each client (`queueClient`: an API key's id, else its address as the edge groups it) has a
 *   bucket of {@link DEEP_WALK_BURST} tokens, refilled at {@link DEEP_WALKS_PER_S} a second; a deep
 *   walk takes one while it runs and gives it back if it found the block, so only misses spend
 *   the budget: the amplification it bounds is reads of CIDs nobody holds. Before (RR2), every
 *   deep walk spent one, and a file placed under a smaller membership (many blocks deep) was cut
 *   after 32 blocks: 0 of a 200-chunk file's bytes, a 500 MiB file at 1 block a second;
 * - the node has {@link MAX_DEEP_WALKS} places for the gateway's requests walking deep; one
 *   request's walks in flight together hold one place (a file read walks up to its read-ahead,
 *   `DEFAULT_FILE_CONCURRENCY` blocks, at once: review s80 vdeep, where one `GET` took all 16; so
 *   up to 16 × 16 walks run on the node, each client's no more than its tokens), and the requests
 *   of clients without a key together hold at most {@link ANONYMOUS_DEEP_WALKS_SHARE} of them,
 *   the rest kept for API keys and this machine's tools, and one client's at most
 *   {@link MAX_DEEP_WALK_PLACES_PER_CLIENT}, as the read slots keep theirs.
 *
 * Past either, the read is refused: 429 `too_many_deep_reads` with `Retry-After`, never a 404 for a
 * block that may exist further down (a file's or a CAR's later block refused after its `200` went
 * out ends the body in error). Reads that end within the first peers spend nothing. This machine's
 * own tools (`THIS_MACHINE_CLIENT`) spend no client budget, but take the node's places in flight;
 * the node's own reads (repair, `/v1` file reads, a job's input) are not bounded here.
 *
 * @module
 */
import type { DeepWalkGate } from "../storage/block_store.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { EdgeError } from "./http_errors.ts";
import { queueClient, THIS_MACHINE_CLIENT } from "./inference_gateway.ts";
import { ANONYMOUS_READS_SHARE } from "./read_slots.ts";

/**
 * Deep walks one client may have running or missed back to back (its bucket's size): a file read
 * runs up to `DEFAULT_FILE_CONCURRENCY` (16) at once, so two such reads fit.
 */
export const DEEP_WALK_BURST = 32;
/** Tokens a second one client's bucket gets back (a walk that found its block gives its own back). */
export const DEEP_WALKS_PER_S = 1;
/** The gateway's requests walking deep at once on the node, all clients together. */
export const MAX_DEEP_WALKS = 16;
/**
 * Share of {@link MAX_DEEP_WALKS} the requests of clients without a key may hold together: the
 * read slots' ({@link ANONYMOUS_READS_SHARE}, 12 of 16), so keyless clients from any number of
 * addresses cannot refuse this machine's tools or a key holder a deep walk.
 */
export const ANONYMOUS_DEEP_WALKS_SHARE: number = ANONYMOUS_READS_SHARE;
/**
 * The node's places one client's requests may hold at once (this machine's tools excepted): a
 * quarter of them, as a client's reads are of the read slots, so one address whose misses each
 * wait out a peer that does not answer (10 s) cannot hold every keyless place (review s80 vdeep
 * F3: 16 GETs of CIDs nobody holds, within one address's burst, refused every other client).
 */
export const MAX_DEEP_WALK_PLACES_PER_CLIENT = 4;
/** Clients whose buckets are kept; past it the fullest are forgotten (a full bucket is no debt). */
const MAX_BUCKETS = 4096;

/** {@link DeepReads}' limits, and its clock (tests). */
export interface DeepReadsOptions {
  /** {@link DEEP_WALK_BURST} by default. */
  burst?: number;
  /** {@link DEEP_WALKS_PER_S} by default. */
  perSecond?: number;
  /** {@link MAX_DEEP_WALKS} by default. */
  maxInFlight?: number;
  /** Milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** One client's bucket: its tokens when last counted, and when. */
interface Bucket {
  tokens: number;
  at: number;
}

/** The gateway's deep-walk budget: see the module's text. One per node. */
export class DeepReads {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #maxInFlight: number;
  readonly #maxAnonymous: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  /** Places held per client, while it holds any. */
  readonly #places = new Map<string, number>();
  #inFlight = 0;
  #anonymousInFlight = 0;

  /** A budget with `options`' limits. */
  constructor(options: DeepReadsOptions = {}) {
    this.#burst = Math.max(1, options.burst ?? DEEP_WALK_BURST);
    this.#perMs = Math.max(1e-6, options.perSecond ?? DEEP_WALKS_PER_S) / 1000;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? MAX_DEEP_WALKS);
    this.#maxAnonymous = Math.max(1, Math.floor(this.#maxInFlight * ANONYMOUS_DEEP_WALKS_SHARE));
    this.#now = options.now ?? Date.now;
  }

  /** The node's places held now: the gateway's requests with a deep walk in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * The gate for one request of `client` (`BlockStoreCallOptions.deepWalk`): each deep walk takes
   * one of the client's tokens, given back when it ends having found its block; the request's
   * walks in flight hold one of the node's places together, given back when the last ends. With
   * no token or place, it throws 429 `too_many_deep_reads` with `Retry-After`.
   */
  gate(client: ClientIdentity): DeepWalkGate {
    const id = queueClient(client);
    const anonymous = client.keyId === undefined && client.address !== undefined;
    const budgeted = id !== THIS_MACHINE_CLIENT;
    /** This request's deep walks in flight: one place while there is any. */
    let walking = 0;
    return () => {
      if (walking === 0) this.#checkPlace(id, anonymous, budgeted);
      if (budgeted) this.#spend(id);
      if (walking++ === 0) this.#hold(id, anonymous, 1);
      let ended = false;
      return (found) => {
        if (ended) return;
        ended = true;
        if (found && budgeted) this.#giveBack(id);
        if (--walking === 0) this.#hold(id, anonymous, -1);
      };
    };
  }

  /**
   * Throw the refusal when no place is free for a request of client `id` (`anonymous`: keyless;
   * `capped`: held to {@link MAX_DEEP_WALK_PLACES_PER_CLIENT}, all but this machine).
   */
  #checkPlace(id: string, anonymous: boolean, capped: boolean): void {
    if (capped && (this.#places.get(id) ?? 0) >= MAX_DEEP_WALK_PLACES_PER_CLIENT) {
      throw refusal(
        `this client has ${MAX_DEEP_WALK_PLACES_PER_CLIENT} reads walking past a block's first ` +
          "storage peers already; retry after the Retry-After seconds",
        1,
      );
    }
    if (this.#inFlight >= this.#maxInFlight) {
      throw refusal(
        `the node has ${this.#maxInFlight} reads walking past a block's first storage peers ` +
          "already; retry after the Retry-After seconds",
        1,
      );
    }
    if (anonymous && this.#anonymousInFlight >= this.#maxAnonymous) {
      throw refusal(
        `clients without an API key have ${this.#maxAnonymous} reads walking past a block's ` +
          "first storage peers already; retry after the Retry-After seconds",
        1,
      );
    }
  }

  /** Take (`1`) or give back (`-1`) a place for a request of client `id`. */
  #hold(id: string, anonymous: boolean, delta: 1 | -1): void {
    this.#inFlight += delta;
    if (anonymous) this.#anonymousInFlight += delta;
    const held = (this.#places.get(id) ?? 0) + delta;
    if (held > 0) this.#places.set(id, held);
    else this.#places.delete(id);
  }

  /** Give client `id` back the token of a walk that found its block. */
  #giveBack(id: string): void {
    const bucket = this.#buckets.get(id);
    if (bucket === undefined) return; // forgotten: full again
    bucket.tokens = Math.min(this.#burst, bucket.tokens + 1);
  }

  /** Take a token of client `id`'s bucket, or throw the refusal naming when one is back. */
  #spend(id: string): void {
    const now = this.#now();
    const bucket = this.#buckets.get(id);
    const tokens = bucket === undefined
      ? this.#burst
      : Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    if (tokens < 1) {
      const waitS = Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000));
      throw refusal(
        `this client read ${this.#burst} blocks that no first storage peer held, more than ` +
          `${this.#perMs * 1000} a second; retry after the Retry-After seconds`,
        waitS,
      );
    }
    this.#buckets.delete(id); // kept in the order last used
    this.#buckets.set(id, { tokens: tokens - 1, at: now });
    if (this.#buckets.size > MAX_BUCKETS) this.#forget(now);
  }

  /** Drop the buckets that are full again, else the least recently used. */
  #forget(now: number): void {
    for (const [id, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) * this.#perMs >= this.#burst) this.#buckets.delete(id);
    }
    for (const id of this.#buckets.keys()) {
      if (this.#buckets.size <= MAX_BUCKETS) break;
      this.#buckets.delete(id);
    }
  }
}

/** A 429 `too_many_deep_reads` saying `message`. */
function refusal(message: string, retryAfterS: number): EdgeError {
  return new EdgeError("too_many_deep_reads", message, { retryAfterS });
}
