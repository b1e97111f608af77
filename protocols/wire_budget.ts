/**
 * One budget for all of a node's connections. A `Connection`'s own bounds (`maxInboundRequests`,
 * `maxQueuedBytes`) are per connection, and a node holds hundreds (`network/connection_limits.ts`):
 * without a shared bound, N peers each within their own limits made the node run N × 1024 handlers
 * and queue N × 4 MiB (review s65). So every connection of a node that is given the same
 * {@link WireBudget} (the `budget` connection option) also asks it, at admission, for:
 *
 * - a handler slot: at most {@link WireBudget.maxHandlers} peer requests and one-way messages
 *   running on all connections together, {@link WireBudget.maxHandlersPerPeer} for one peer key
 *   (all its connections together), so one flooding peer leaves room for the others;
 * - for a streamed request, a stream slot too: at most {@link WireBudget.maxStreams} streams
 *   served, {@link WireBudget.maxStreamsPerPeer} to one peer key (a served stream holds a source
 *   that may hold a job, and buffers);
 * - room in the node's write bytes: while the bytes queued on all connections and not yet taken
 *   by their transports reach {@link WireBudget.maxQueuedBytes}, peer requests that would be
 *   answered are refused (one-way messages are not, as for a connection's own byte budget).
 *
 * A request refused for any of these is answered `busy` (a `BusyError` naming the bound), as one
 * refused for the connection's own bounds is: the peer asks again, or another worker, and the
 * refusal is not counted toward `maxRefusals` (it is our load, not the peer's fault). Each refusal
 * is also reported to the listeners of {@link WireBudget.onRefusal} (the NetworkActor logs it, a
 * few per kind per window).
 *
 * A connection without a handshake (no peer key) counts as its own peer.
 *
 * The budget is also where the node's wire limits are counted for an operator
 * ({@link WireBudget.report}, `/metrics` `veriflow_wire_*`): its own refusals by bound, and, from
 * every connection given it, the refusals of the connection's own bounds, the streams a limit
 * ended (`credit_timeout`, `busy`) and the connections one closed (`frame_timeout`, …).
 *
 * @example
 * ```ts
 * import { WireBudget } from "./wire_budget.ts";
 * const budget = new WireBudget({ maxHandlers: 2, maxHandlersPerPeer: 1 });
 * console.log(budget.admit("a", false)); // undefined: admitted
 * console.log(budget.admit("a", false)); // "1 peer requests running for this peer (at most 1)"
 * console.log(budget.admit("b", false)); // undefined
 * budget.release("a", false);
 * console.log(budget.stats()); // { handlers: 1, streams: 0, queuedBytes: 0, refused: 1 }
 * ```
 *
 * @module
 */

/**
 * Default most peer requests running on all of a node's connections: four connections' worth of
 * `maxInboundRequests` (1024). Honest peers keep a few dozen running each (jobs, reads, pledges).
 */
export const DEFAULT_NODE_MAX_HANDLERS = 4096;
/** Default most of those for one peer key: a quarter, so one flooding key leaves three to others. */
export const DEFAULT_NODE_MAX_HANDLERS_PER_PEER = 1024;
/**
 * Default most streams served on all connections: each holds a source (an inference job, a file
 * read) and up to a window of chunks in flight.
 */
export const DEFAULT_NODE_MAX_STREAMS = 1024;
/** Default most of those to one peer key (a quarter, as for handlers). */
export const DEFAULT_NODE_MAX_STREAMS_PER_PEER = 256;
/**
 * Default most bytes queued for the transports of all connections together before requests are
 * refused `busy`: 64 connections' worth of the per-connection budget (4 MiB); without it 256
 * stalled peers could make a node hold 1 GiB of writes, twice that with the replies waiting.
 */
export const DEFAULT_NODE_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

/** Options of {@link WireBudget} (each bound a positive integer). */
export interface WireBudgetOptions {
  /** Most peer requests running on all connections (default {@link DEFAULT_NODE_MAX_HANDLERS}). */
  maxHandlers?: number;
  /** Most of those for one peer key (default {@link DEFAULT_NODE_MAX_HANDLERS_PER_PEER}). */
  maxHandlersPerPeer?: number;
  /** Most streams served on all connections (default {@link DEFAULT_NODE_MAX_STREAMS}). */
  maxStreams?: number;
  /** Most of those to one peer key (default {@link DEFAULT_NODE_MAX_STREAMS_PER_PEER}). */
  maxStreamsPerPeer?: number;
  /** Most bytes queued on all connections (default {@link DEFAULT_NODE_MAX_QUEUED_BYTES}). */
  maxQueuedBytes?: number;
}

/**
 * The bound that refused a peer message `busy`, as `/metrics` labels it
 * (`veriflow_wire_refused_total{limit}`): one of the node's own (this budget's) or, for a
 * connection given this budget, one of that connection's (`connection_requests`: its
 * `maxInboundRequests`; `connection_queued_bytes`: its `maxQueuedBytes`, the peer not reading).
 */
export type WireLimit =
  | "handlers"
  | "handlers_per_peer"
  | "streams"
  | "streams_per_peer"
  | "queued_bytes"
  | "connection_requests"
  | "connection_queued_bytes";

/** Every {@link WireLimit}, in the order `/metrics` lists them. */
export const WIRE_LIMITS: readonly WireLimit[] = [
  "handlers",
  "handlers_per_peer",
  "streams",
  "streams_per_peer",
  "queued_bytes",
  "connection_requests",
  "connection_queued_bytes",
];

/**
 * Why a stream served on a connection given this budget ended early: its requester granted no
 * credit for `streamCreditTimeoutMs` (`credit_timeout`), or did not read what it was sent, past
 * twice the connection's byte budget (`busy`).
 */
export type StreamEndReason = "credit_timeout" | "busy";

/**
 * What a budget has counted since it was made (for `/metrics`): refusals by the bound that made
 * them, streams ended and connections closed by the limit that cut them.
 */
export interface WireBudgetCounts {
  /** Peer messages answered `busy` at admission (or a reply dropped for bytes), by bound. */
  refusedBy: Record<WireLimit, number>;
  /** Streams served that ended early, by reason. */
  streamsEnded: Record<StreamEndReason, number>;
  /**
   * Connections closed for a limit or a peer's fault, by reason (see
   * {@link WireBudget.connectionClosed}).
   */
  connectionsClosed: Record<string, number>;
}

/** What an operator reads of a budget: what it holds, its bounds, and its counts. */
export interface WireBudgetReport extends WireBudgetStats, WireBudgetCounts {
  /** The bounds it was made with. */
  limits: Required<WireBudgetOptions>;
}

/** What a {@link WireBudget} holds now. */
export interface WireBudgetStats {
  /** Peer requests running, on all connections. */
  handlers: number;
  /** Streams being served, on all connections. */
  streams: number;
  /** Bytes queued for the transports of all connections. */
  queuedBytes: number;
  /** Requests refused by this budget, in total. */
  refused: number;
}

/** See the module doc. */
export class WireBudget {
  /** Most peer requests running on all connections. */
  readonly maxHandlers: number;
  /** Most of those for one peer. */
  readonly maxHandlersPerPeer: number;
  /** Most streams served on all connections. */
  readonly maxStreams: number;
  /** Most of those to one peer. */
  readonly maxStreamsPerPeer: number;
  /** Most bytes queued on all connections before requests are refused. */
  readonly maxQueuedBytes: number;
  readonly #listeners = new Set<(peer: string, reason: string) => void>();
  readonly #handlersOf = new Map<string, number>();
  readonly #streamsOf = new Map<string, number>();
  #handlers = 0;
  #streams = 0;
  #queuedBytes = 0;
  #refused = 0;
  readonly #refusedBy = Object.fromEntries(WIRE_LIMITS.map((l) => [l, 0])) as Record<
    WireLimit,
    number
  >;
  readonly #streamsEnded: Record<StreamEndReason, number> = { credit_timeout: 0, busy: 0 };
  readonly #connectionsClosed: Record<string, number> = {};

  /**
   * Creates an empty budget.
   * @param options The bounds.
   * @throws {RangeError} for a bound that is not a positive integer.
   */
  constructor(options: WireBudgetOptions = {}) {
    this.maxHandlers = positive("maxHandlers", options.maxHandlers, DEFAULT_NODE_MAX_HANDLERS);
    this.maxHandlersPerPeer = positive(
      "maxHandlersPerPeer",
      options.maxHandlersPerPeer,
      DEFAULT_NODE_MAX_HANDLERS_PER_PEER,
    );
    this.maxStreams = positive("maxStreams", options.maxStreams, DEFAULT_NODE_MAX_STREAMS);
    this.maxStreamsPerPeer = positive(
      "maxStreamsPerPeer",
      options.maxStreamsPerPeer,
      DEFAULT_NODE_MAX_STREAMS_PER_PEER,
    );
    this.maxQueuedBytes = positive(
      "maxQueuedBytes",
      options.maxQueuedBytes,
      DEFAULT_NODE_MAX_QUEUED_BYTES,
    );
  }

  /**
   * Call `listener` with the peer and the reason of each refusal from now on (for a log line).
   * @returns A function that stops it.
   */
  onRefusal(listener: (peer: string, reason: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether the node's queued bytes leave room for more replies. */
  get hasRoom(): boolean {
    return this.#queuedBytes < this.maxQueuedBytes;
  }

  /** A snapshot of what the budget holds. */
  stats(): WireBudgetStats {
    return {
      handlers: this.#handlers,
      streams: this.#streams,
      queuedBytes: this.#queuedBytes,
      refused: this.#refused,
    };
  }

  /** What the budget holds, its bounds and its counts, as plain data (an actor's answer). */
  report(): WireBudgetReport {
    return {
      ...this.stats(),
      limits: {
        maxHandlers: this.maxHandlers,
        maxHandlersPerPeer: this.maxHandlersPerPeer,
        maxStreams: this.maxStreams,
        maxStreamsPerPeer: this.maxStreamsPerPeer,
        maxQueuedBytes: this.maxQueuedBytes,
      },
      refusedBy: { ...this.#refusedBy },
      streamsEnded: { ...this.#streamsEnded },
      connectionsClosed: { ...this.#connectionsClosed },
    };
  }

  /**
   * Count a peer message a connection given this budget refused `busy` for one of its own bounds
   * (not counted in `stats().refused`, nor told to {@link onRefusal}: the connection's load).
   */
  connectionRefused(limit: "connection_requests" | "connection_queued_bytes"): void {
    this.#refusedBy[limit]++;
  }

  /** Count a stream served on a connection given this budget that ended for `reason`. */
  streamEnded(reason: StreamEndReason): void {
    this.#streamsEnded[reason]++;
  }

  /**
   * Count a connection given this budget closed for a limit or a fault of its peer: `reason` is a
   * frame not whole `frameTimeoutMs` after its first bytes (`frame_timeout`), a silent or
   * non-reading peer (`peer_timeout`), too many refusals in a window (`too_many_refusals`), or
   * broken framing (the framing error's code: `frame_too_large`, `truncated_frame`). A close asked
   * for locally, or a transport that failed, is not counted.
   */
  connectionClosed(reason: string): void {
    this.#connectionsClosed[reason] = (this.#connectionsClosed[reason] ?? 0) + 1;
  }

  /**
   * Take a handler slot (and a stream slot for a streamed request) for `peer`; the caller gives
   * them back with {@link release} once the handler (and its stream) is done.
   * @param peer Who asks: a hex peer key, or a connection's own label.
   * @param stream Whether the request is streamed.
   * @returns Why it is refused, or undefined: the slots are taken.
   */
  admit(peer: string, stream: boolean): string | undefined {
    const refusal = this.#refusal(peer, stream);
    if (refusal !== undefined) {
      this.#refuse(peer, refusal);
      return refusal.reason;
    }
    this.#handlers++;
    this.#handlersOf.set(peer, (this.#handlersOf.get(peer) ?? 0) + 1);
    if (stream) {
      this.#streams++;
      this.#streamsOf.set(peer, (this.#streamsOf.get(peer) ?? 0) + 1);
    }
    return undefined;
  }

  /** Give back the slots {@link admit} took for `peer`. */
  release(peer: string, stream: boolean): void {
    this.#handlers = Math.max(0, this.#handlers - 1);
    decrement(this.#handlersOf, peer);
    if (stream) {
      this.#streams = Math.max(0, this.#streams - 1);
      decrement(this.#streamsOf, peer);
    }
  }

  /** Count `delta` bytes queued (positive) or taken by a transport (negative). */
  queued(delta: number): void {
    this.#queuedBytes = Math.max(0, this.#queuedBytes + delta);
  }

  #refusal(peer: string, stream: boolean): Refusal | undefined {
    if (this.#handlers >= this.maxHandlers) {
      return {
        limit: "handlers",
        reason:
          `node busy: ${this.#handlers} peer requests running on all connections (at most ${this.maxHandlers})`,
      };
    }
    const ofPeer = this.#handlersOf.get(peer) ?? 0;
    if (ofPeer >= this.maxHandlersPerPeer) {
      return {
        limit: "handlers_per_peer",
        reason:
          `${ofPeer} peer requests running for this peer (at most ${this.maxHandlersPerPeer})`,
      };
    }
    if (stream) {
      if (this.#streams >= this.maxStreams) {
        return {
          limit: "streams",
          reason:
            `node busy: ${this.#streams} streams served on all connections (at most ${this.maxStreams})`,
        };
      }
      const streamsOf = this.#streamsOf.get(peer) ?? 0;
      if (streamsOf >= this.maxStreamsPerPeer) {
        return {
          limit: "streams_per_peer",
          reason: `${streamsOf} streams served to this peer (at most ${this.maxStreamsPerPeer})`,
        };
      }
    }
    return undefined;
  }

  /**
   * Why a request that would be answered is refused for the node's queued bytes, or undefined.
   * Not counted per peer: bytes wait on a slow reader, not on who asked.
   * @param peer Who asks (for the refusal hook).
   */
  byteRefusal(peer: string): string | undefined {
    if (this.hasRoom) return undefined;
    const reason =
      `node busy: ${this.#queuedBytes} bytes queued on all connections (at most ${this.maxQueuedBytes})`;
    this.#refuse(peer, { limit: "queued_bytes", reason });
    return reason;
  }

  #refuse(peer: string, { limit, reason }: Refusal): void {
    this.#refused++;
    this.#refusedBy[limit]++;
    for (const listener of this.#listeners) listener(peer, reason);
  }
}

/** A refusal by one of the budget's own bounds: which, and the text the peer is answered. */
interface Refusal {
  limit: WireLimit;
  reason: string;
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
  return n;
}
