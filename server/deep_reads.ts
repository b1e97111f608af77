/**
 * How many deep walks the HTTP gateway's reads may start (`GET /ipfs/…`, `/share/…`). A block read
 * asks the chunk's r holders and `READ_PEERS_PAST_HOLDERS` more, then, where none of them served
 * it, goes on through the whole ranking of storage peers (`storage/_replica_reads.ts`): a copy
 * handed on past full peers, or placed under an older, smaller membership, may rank anywhere, and
 * a read that stopped short made such chunks `chunk_not_found` on every node but their writer
 * (review s80 vgw F1, F2). That walk past the first peers is a deep walk; for a CID nobody holds it
 * asks every storage peer (40 with 40 peers, review s80 F1), so the edge bounds it:
 *
 * - each client (`queueClient`: an API key's id, else its address as the edge groups it) spends a
 *   token per deep walk from a bucket of {@link DEEP_WALK_BURST}, refilled at
 *   {@link DEEP_WALKS_PER_S} a second;
 * - the node has at most {@link MAX_DEEP_WALKS} deep walks of the gateway's in flight.
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

/** Deep walks one client may start back to back (its bucket's size). */
export const DEEP_WALK_BURST = 32;
/** Deep walks a second one client's bucket gets back. */
export const DEEP_WALKS_PER_S = 1;
/** The gateway's deep walks in flight on the node, all clients together. */
export const MAX_DEEP_WALKS = 16;
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
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #inFlight = 0;

  /** A budget with `options`' limits. */
  constructor(options: DeepReadsOptions = {}) {
    this.#burst = Math.max(1, options.burst ?? DEEP_WALK_BURST);
    this.#perMs = Math.max(1e-6, options.perSecond ?? DEEP_WALKS_PER_S) / 1000;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? MAX_DEEP_WALKS);
    this.#now = options.now ?? Date.now;
  }

  /** The gateway's deep walks in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * The gate for one request of `client` (`BlockStoreCallOptions.deepWalk`): each deep walk takes
   * one of the client's tokens and one of the node's places, given back when the walk ends; with
   * none, it throws 429 `too_many_deep_reads` with `Retry-After`.
   */
  gate(client: ClientIdentity): DeepWalkGate {
    const id = queueClient(client);
    return () => this.#start(id);
  }

  #start(id: string): () => void {
    if (this.#inFlight >= this.#maxInFlight) {
      throw refusal(
        `the node has ${this.#maxInFlight} reads walking past a block's first storage peers ` +
          "already; retry after the Retry-After seconds",
        1,
      );
    }
    if (id !== THIS_MACHINE_CLIENT) this.#spend(id);
    this.#inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#inFlight--;
    };
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
