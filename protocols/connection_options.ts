/**
 * The types of a `Connection`'s API: its options, the options of its calls, what a handler
 * gets, and its stats. Declared here, before the code that moves the messages, so the whole
 * surface reads in one screen; `connection.ts` re-exports all of it.
 *
 * @module
 */
import type { Envelope } from "./envelope.ts";
import type { ConnectionTimers } from "./connection_timers.ts";
import type { Connection } from "./connection.ts";
import type { Identity } from "./identity.ts";
import type { MessageRegistry } from "./message_registry.ts";
import type { Protocol } from "./connection_protocols.ts";
import type { ProtocolError, RemoteError } from "./protocol_errors.ts";
import type { WireBudget } from "./wire_budget.ts";

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /** Message types this side understands (default: a fresh registry of the core messages). */
  registry?: MessageRegistry;
  /** Largest frame payload sent or accepted (default 1 MiB, see `DEFAULT_MAX_FRAME_BYTES`). */
  maxFrameBytes?: number;
  /** Deepest CBOR nesting accepted (default `DEFAULT_MAX_CBOR_DEPTH`). */
  maxDepth?: number;
  /**
   * Most maps, arrays and byte strings (the values cbor-x builds an object for) one inbound
   * frame may hold (default `DEFAULT_MAX_FRAME_VALUES`, 65,536: about twice the most an honest
   * node sends, see docs/PROTOCOL.md), and never more than one per 8 of its bytes beyond 64
   * (`frameValueBound`). Counted by the structural check before cbor-x builds any; a frame over
   * it is refused `malformed_cbor` and counted toward {@link maxRefusals} like any refusal.
   */
  maxFrameValues?: number;
  /**
   * Default timeout of {@link Connection.request} (default 30 s: long enough for a slow peer
   * under load, short enough that a lost reply frees its caller). Time spent waiting for a
   * slot or for room in the byte budget counts.
   */
  requestTimeoutMs?: number;
  /**
   * Credit window of streams this side reads, in chunks (default 16): the most chunks a
   * sender may have in flight per stream, hence the receive buffer per stream
   * (window × maxFrameBytes at worst). 16 keeps a token stream flowing across a round trip
   * without letting a stalled reader pin much memory.
   */
  streamWindow?: number;
  /**
   * Most peer requests handled at once (default 1024). Beyond it, requests are refused with
   * `busy` rather than queued, so a flood costs the peer, not our memory; refusing instead of
   * pausing the read loop also avoids deadlock when handlers wait on the peer.
   */
  maxInboundRequests?: number;
  /**
   * Most of our own requests and streams in flight at once (default 1024, the peer's default
   * `maxInboundRequests`, so a default client is not answered `busy` by a default server);
   * more wait for a slot, in order, under their own timeout and signal.
   */
  maxPendingRequests?: number;
  /**
   * The connection's one write budget, in bytes (default 4 MiB): every frame we queue for the
   * transport counts until the transport takes it. Replies, chunks and requests wait for room;
   * pongs, pings and error replies that do not fit are dropped (and counted), except a `busy`
   * refusal, which the peer acts on: it waits for room like a reply (at most
   * `maxInboundRequests` of them at once). Peer requests are refused with `busy` while it is
   * full (one-way messages are not: they write nothing back). 4 MiB is four maximal frames:
   * enough to keep a fast link busy, small enough that a thousand stalled peers cost 4 GiB at
   * most.
   */
  maxQueuedBytes?: number;
  /**
   * Send a `ping` after this much silence either way (default 1.5 s, under a third of the
   * default idle timeout so two pings can be lost before the peer gives up; 0 = never).
   */
  keepaliveMs?: number;
  /**
   * Close with `peer_timeout` when nothing arrived for this long, or when bytes we queued were
   * not taken by the transport for this long (default 5 s: several keepalive periods; a dead
   * or non-reading peer fails its pending requests and streams promptly; 0 = never).
   */
  idleTimeoutMs?: number;
  /**
   * Close the connection with `too_many_refusals` when this many peer messages are refused
   * (`busy` excepted) within `refusalWindowMs` (default 100; see `DEFAULT_MAX_REFUSALS`).
   */
  maxRefusals?: number;
  /** The window of {@link maxRefusals} (default 10 s). */
  refusalWindowMs?: number;
  /**
   * Frames that do nothing (a `ping`, a credit or cancel naming no running stream, a late
   * answer) tolerated within `refusalWindowMs` before each further one is dropped and counted as
   * a refusal (default 10,000; see `DEFAULT_MAX_IDLE_FRAMES`).
   */
  maxIdleFrames?: number;
  /**
   * After close(), how long to wait for the peer to end its side before cutting the read side
   * (default 2 s: a live peer answers in a round trip; a dead one must not hold us open).
   */
  closeGraceMs?: number;
  /**
   * The node's budget shared by all its connections (`wire_budget.ts`; default none: this
   * connection's own bounds only). Peer requests are also refused `busy` when it is spent.
   */
  budget?: WireBudget;
  /**
   * End a stream we serve with `credit_timeout` (its handler aborted, its source cancelled) when
   * the requester granted no credit for this long (default 120 s, `DEFAULT_STREAM_CREDIT_TIMEOUT_MS`;
   * 0 = never). A requester that never reads held the handler, and whatever its source holds,
   * for as long as it kept the connection alive with pings. Above the inference worker's own
   * 60 s reader stall (`inference/serve_inference.ts`), which ends a job with a better reason.
   */
  streamCreditTimeoutMs?: number;
  /**
   * Close with `peer_timeout` when a frame whose first bytes arrived is not whole this long
   * after (default 60 s, `DEFAULT_FRAME_TIMEOUT_MS`; 0 = never): a peer that announces a large
   * frame and sends a byte per keepalive period kept the connection, and its read buffer, for
   * ever, since every byte counted as life. A maximal frame (1 MiB) in 60 s is 140 kbit/s.
   */
  frameTimeoutMs?: number;
  /** The clock of every timeout, keepalive and deadline (default the real one; tests fake it). */
  timers?: ConnectionTimers;
  /** Called for each inbound message this side refuses (for logs and metrics). */
  onProtocolError?: (error: ProtocolError) => void;
  /** Called for each `error` the peer reports that is not about one of our requests. */
  onRemoteError?: (error: RemoteError) => void;
}

/** Options of {@link Connection.open}: a connection options plus the session handshake's. */
export interface OpenConnectionOptions extends ConnectionOptions {
  /** This side's key pair, proven to the peer in the handshake. */
  identity: Identity;
  /**
   * Protocols this side offers (default none). Their messages are registered; requests of
   * other types fail with `protocol_not_supported` on this connection, both ways.
   */
  protocols?: readonly Protocol[];
  /**
   * Give up on the handshake after this long (default: `idleTimeoutMs`, else 5 s). A positive
   * number of milliseconds up to 2³¹ − 1, else `Connection.open` throws a `RangeError`: unlike
   * `idleTimeoutMs` and `keepaliveMs`, 0 does not mean "never" (a peer that never proves its key
   * would hold the socket for ever).
   */
  handshakeTimeoutMs?: number;
}

/** Options of {@link Connection.request}. */
export interface RequestOptions {
  /** Overrides {@link ConnectionOptions.requestTimeoutMs}. */
  timeoutMs?: number;
  /** Abort to give up on the request (the peer is told with `cancel`). */
  signal?: AbortSignal;
}

/** Options of {@link Connection.openStream}. */
export interface OpenStreamOptions {
  /** Abort to cancel the stream (the peer's handler is cancelled). */
  signal?: AbortSignal;
  /** Overrides {@link ConnectionOptions.streamWindow} for this stream. */
  window?: number;
}

/** What a handler gets besides the body. */
export interface HandlerContext {
  /** The validated envelope (body already parsed). */
  envelope: Envelope;
  /**
   * The signer of a signed envelope, verified against this connection's session (signed
   * envelopes are optional; stream frames need none).
   */
  from?: Uint8Array;
  /** The peer's public key, authenticated by the session handshake (`Connection.open`). */
  peer?: Uint8Array;
  /** Aborted when the requester cancels, times out, or the connection closes. */
  signal: AbortSignal;
  /**
   * Chunks of this request's stream the requester has given credit back for (its grants past
   * its first, the window): chunks it read, as a reader grants again only for those. Readable
   * after the stream ended; absent where the context was not made by a connection.
   */
  credited?: () => number;
  /** The connection the request came in on. */
  connection: Connection;
}

/**
 * A request handler: returns the reply body (request/response types) or a `ReadableStream`
 * of chunk bodies (streamed types), or a promise of either. Throwing a `VeriflowError` sends
 * its `code` back; any other throw is sent as `handler_error`.
 */
export type Handler<B, R, C> = (
  body: B,
  ctx: HandlerContext,
) => R | ReadableStream<C> | Promise<R | ReadableStream<C>>;

/** Counters and gauges of a connection, for tests, metrics and the dashboard. */
export interface ConnectionStats {
  /** Our requests awaiting a reply or still streaming. */
  pendingRequests: number;
  /** Our requests and streams waiting for a slot (`maxPendingRequests`). */
  waitingRequests: number;
  /** Peer requests being handled (including streams we are sending). */
  inboundRequests: number;
  /** Bytes handed to the writer and not yet taken by the transport (≤ `maxQueuedBytes`). */
  queuedBytes: number;
  /** Sends (replies, chunks, requests, control) waiting for room in the byte budget. */
  waitingSends: number;
  /** Their encoded bytes. */
  waitingBytes: number;
  /** Chunks received on our streams and not yet read by their consumers. */
  bufferedChunks: number;
  /** Chunks we sent on peer streams and that the peer has not yet re-credited. */
  inFlightChunks: number;
  /** Frames sent. */
  framesSent: number;
  /** Frames received (including refused ones). */
  framesReceived: number;
  /** Inbound messages refused with a protocol error. */
  refused: number;
  /** Error replies dropped because the byte budget was full. */
  droppedErrorReplies: number;
  /** Best-effort frames (pongs, pings, error replies) dropped because the budget was full. */
  droppedFrames: number;
  /**
   * One-way messages kept until the peer reads past them, or waiting to be sent again after a
   * `busy` refusal (`_connection_notices.ts`; at most `MAX_KEPT_NOTICES`).
   */
  keptOneWay: number;
  /** One-way messages sent again after a `busy` refusal, in total. */
  resentOneWay: number;
}
