/**
 * A multiplexed, flow-controlled message connection over any byte duplex.
 *
 * Many requests and streams share one pair of byte streams. Each side numbers the envelopes
 * it sends; everything that belongs to an exchange carries `re` = the id of the request that
 * opened it:
 *
 * ```
 * request   A→B  { type: T, id: n, body }
 * reply     B→A  { type: T.reply.type, re: n, body }            (request/response)
 * chunk     B→A  { type: T.chunk.type, re: n, body } ... end    (streamed reply)
 * credit    A→B  { type: "credit", re: n, body: { chunks } }    (A's reader made room)
 * cancel    A→B  { type: "cancel", re: n, body: { code, message } }
 * error     B→A  { type: "error", re: n, body: { code, message } }
 * ```
 *
 * The parts, one file each: the requester side (`_connection_requester.ts`: pending replies,
 * the receive side of streams, in-flight slots), the responder side
 * (`_connection_responder.ts`: admission, handlers, the credit-driven stream pump), the write
 * queue with its one byte budget (`_connection_write_queue.ts`), liveness
 * (`_connection_keepalive.ts`) and the one-way messages kept to be sent again if the peer refuses
 * them `busy` (`_connection_notices.ts`). This file wires them: the read loop, refusals, and
 * closing.
 *
 * {@link Connection.open} first runs the session handshake (`session_handshake.ts`): the peer
 * proves its key, both sides exchange their protocols (`connection_protocols.ts`), and the
 * connection then knows {@link Connection.peerKey} without any per-frame signature.
 *
 * The read loop never waits on a consumer or on a write, so it cannot deadlock against the
 * peer's. Every inbound envelope is decoded, checked and its body validated before any
 * handler sees it; a bad message gets a typed `error` back and the connection goes on, until
 * the peer has been refused `maxRefusals` times in a window. Broken framing, a silent peer
 * and too many refusals close it, with a typed error.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { Connection } from "./connection.ts";
 * import { defineMessage } from "./message_registry.ts";
 * import { memoryDuplexPair } from "./memory_duplex.ts";
 *
 * const Sum = defineMessage("example.sum", z.object({ total: z.number() }));
 * const Add = defineMessage("example.add", z.object({ a: z.number(), b: z.number() }), { reply: Sum });
 * const [left, right] = memoryDuplexPair();
 * const client = new Connection(left);
 * const server = new Connection(right).handle(Add, ({ a, b }) => ({ total: a + b }));
 * console.log(await client.request(Add, { a: 1, b: 2 })); // { total: 3 }
 * await client.close();
 * await server.closed;
 * ```
 *
 * @module
 */
import { type DecodeEnvelopeOptions, type Envelope, PROTOCOL_VERSION } from "./envelope.ts";
import type { ByteDuplex } from "./memory_duplex.ts";
import type {
  AnyMessageDefinition,
  MessageDefinition,
  MessageRegistry,
} from "./message_registry.ts";
import { CORE_MESSAGES, createCoreRegistry, ErrorMessage, PingMessage } from "./messages.ts";
import {
  ConnectionClosedError,
  PeerTimeoutError,
  ProtocolError,
  UnexpectedMessageError,
  UnknownTypeError,
} from "./protocol_errors.ts";
import { DEFAULT_MAX_CBOR_DEPTH, DEFAULT_MAX_FRAME_VALUES } from "./cbor_guard.ts";
import { type ConnectionTimers, MAX_TIMER_MS, SYSTEM_TIMERS } from "./connection_timers.ts";
import { NegotiatedProtocols, type Protocol, type ProtocolOffer } from "./connection_protocols.ts";
import type {
  ConnectionOptions,
  ConnectionStats,
  Handler,
  HandlerContext,
  OpenConnectionOptions,
  OpenStreamOptions,
  RequestOptions,
} from "./connection_options.ts";
import type { WireBudget } from "./wire_budget.ts";
import { authenticateTransport, type Session } from "./session_handshake.ts";
import type { ConnectionCore, ControlFrame } from "./_connection_common.ts";
import { Requester } from "./_connection_requester.ts";
import { type AnyHandler, Responder } from "./_connection_responder.ts";
import { frameBytes, WriteQueue } from "./_connection_write_queue.ts";
import { Notices } from "./_connection_notices.ts";
import {
  DEFAULT_MAX_IDLE_FRAMES,
  DEFAULT_MAX_REFUSALS,
  DEFAULT_REFUSAL_WINDOW_MS,
  InboundRouter,
} from "./_connection_inbound.ts";
import { Keepalive } from "./_connection_keepalive.ts";
import type { Identity } from "./identity.ts";
import { toHex } from "./hash.ts";
import { decodeFrame } from "../streams/cbor_stream.ts";
import { DEFAULT_MAX_FRAME_BYTES, FrameSplitter } from "../streams/length_prefixed_stream.ts";

export type * from "./connection_options.ts";
export { defineProtocol, type Protocol, type ProtocolOffer } from "./connection_protocols.ts";
export { type ConnectionTimers, SYSTEM_TIMERS } from "./connection_timers.ts";
export {
  DEFAULT_NODE_MAX_HANDLERS,
  DEFAULT_NODE_MAX_HANDLERS_PER_PEER,
  DEFAULT_NODE_MAX_QUEUED_BYTES,
  DEFAULT_NODE_MAX_STREAMS,
  DEFAULT_NODE_MAX_STREAMS_PER_PEER,
  type StreamEndReason,
  WIRE_LIMITS,
  WireBudget,
  type WireBudgetCounts,
  type WireBudgetOptions,
  type WireBudgetReport,
  type WireBudgetStats,
  type WireLimit,
} from "./wire_budget.ts";
export { DEFAULT_MAX_REFUSALS, DEFAULT_REFUSAL_WINDOW_MS } from "./_connection_inbound.ts";
export {
  BUSY_RETRY_BACKOFF_MS,
  MAX_BUSY_RETRIES,
  MAX_KEPT_NOTICES,
} from "./_connection_notices.ts";

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_STREAM_WINDOW = 16;
const DEFAULT_MAX_INBOUND_REQUESTS = 1024;
const DEFAULT_MAX_PENDING_REQUESTS = 1024;
const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
const DEFAULT_CLOSE_GRACE_MS = 2_000;
/** See {@link ConnectionOptions.keepaliveMs}. */
export const DEFAULT_KEEPALIVE_MS = 1_500;
/** See {@link ConnectionOptions.idleTimeoutMs}. */
export const DEFAULT_IDLE_TIMEOUT_MS = 5_000;
/** See {@link ConnectionOptions.streamCreditTimeoutMs}. */
export const DEFAULT_STREAM_CREDIT_TIMEOUT_MS = 120_000;
/** See {@link ConnectionOptions.frameTimeoutMs}. */
export const DEFAULT_FRAME_TIMEOUT_MS = 60_000;
/** Private constructor flag of {@link Connection.open}. */
const START_AFTER_MACROTASK = Symbol("startAfterMacrotask");
/** Private constructor option of {@link Connection.open}: bytes read before the transport's. */
const LEFTOVER = Symbol("leftover");
/**
 * Bytes the read loop offers a byte-stream transport (a socket) per read at first: one TCP
 * socket buffer's worth, what a socket duplex reads by default.
 */
const MIN_READ_BYTES = 64 * 1024;
/**
 * Most bytes it offers per read: a read that fills its buffer doubles it up to this, so a
 * bulk transfer (a file's 256 KiB storage chunks) is read in fewer, larger reads, as the swarm
 * link reads (`SWARM_LINK_READ_BYTES`). A connection that never moved bulk keeps 64 KiB; one that
 * did shrinks back to it after {@link SHRINK_AFTER_SMALL_READS} small reads in a row.
 */
const MAX_READ_BYTES = 256 * 1024;
/**
 * Reads in a row that each fill at most a quarter of a grown read buffer before it goes back to
 * {@link MIN_READ_BYTES}: the bulk is over (requests, tokens, pings), and a node with hundreds
 * of peers should not keep 256 KiB for each that once moved a file. A pause inside a transfer
 * (a few small reads) keeps it.
 */
const SHRINK_AFTER_SMALL_READS = 64;
/** Connections made so far: a connection without a peer key counts as its own peer in a budget. */
let connectionsMade = 0;

/**
 * A multiplexed message connection over a byte duplex. See the module doc. `await using`
 * closes it at the end of the block.
 */
export class Connection implements AsyncDisposable {
  readonly #registry: MessageRegistry;
  readonly #timers: ConnectionTimers;
  readonly #queue: WriteQueue;
  readonly #requester: Requester;
  readonly #responder: Responder;
  readonly #keepalive: Keepalive;
  readonly #notices: Notices;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  /** Bytes read before the transport's (from the handshake), fed to the framing first. */
  readonly #leftover: Uint8Array;
  readonly #splitter: FrameSplitter;
  /** The depth and value bounds of each inbound frame. */
  readonly #decodeLimits: DecodeEnvelopeOptions;
  readonly #requestTimeoutMs: number;
  readonly #streamWindow: number;
  readonly #closeGraceMs: number;
  readonly #budget: WireBudget | undefined;
  readonly #router: InboundRouter;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;
  #closeReason: Error | null = null;
  #closing = false;
  #readEnded = false;
  #graceTimer: unknown;
  #session: Session | undefined;
  /** This side's key pair, proven in the handshake (undefined without {@link open}). */
  #identity: Identity | undefined;
  #protocols: NegotiatedProtocols | undefined;
  #nextId = 1;
  /** Who the peer is in the node's budget: its hex key once the handshake proved it. */
  #peerLabel = `connection ${++connectionsMade}`;
  /** Bytes this connection counts in the node's budget now; given back whole at the end. */
  #budgetBytes = 0;
  #budgetReleased = false;
  readonly #frameTimeoutMs: number;
  /** Armed while a frame has begun and is not whole (`frameTimeoutMs`). */
  #frameTimer: unknown;
  #framesReceived = 0;
  #droppedErrorReplies = 0;

  /**
   * Start a connection over `duplex`, without a handshake (reading starts at once: register
   * handlers right after construction, before the peer can have sent anything that needs them).
   * @param duplex The byte streams to and from the peer.
   * @param options Limits, timers, hooks.
   */
  constructor(duplex: ByteDuplex, options?: ConnectionOptions) {
    this.#registry = options?.registry ?? createCoreRegistry();
    this.#registry.register(...CORE_MESSAGES);
    this.#timers = options?.timers ?? SYSTEM_TIMERS;
    const maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#requestTimeoutMs = options?.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#streamWindow = options?.streamWindow ?? DEFAULT_STREAM_WINDOW;
    this.#closeGraceMs = options?.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (!(this.#streamWindow >= 1)) throw new RangeError("streamWindow must be >= 1");
    this.#frameTimeoutMs = options?.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS;
    const budget = options?.budget;
    this.#budget = budget;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));

    // Framing runs inline on both sides, not as TransformStreams: a stream stage costs more
    // per frame than the framing itself, and token streams are many small frames.
    this.#writer = duplex.writable.getWriter();
    this.#writer.closed.catch((error) =>
      this.#shutdown(new ConnectionClosedError("transport write failed", { cause: error }))
    );
    this.#queue = new WriteQueue(this.#writer, {
      maxQueuedBytes: options?.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      maxFrameBytes,
      timers: this.#timers,
      onWrite: () => this.#keepalive?.sent(),
      transportBytes: () => duplex.bytesWritten,
      onQueued: budget === undefined ? undefined : (delta) => {
        if (this.#budgetReleased) return;
        this.#budgetBytes += delta;
        budget.queued(delta);
      },
    });
    const core = this.#core();
    this.#notices = new Notices({
      timers: this.#timers,
      maxBytes: options?.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      resend: (definition, body, tries) => {
        if (this.#closing) return;
        this.#sendOneWay(definition, body, tries).catch(() => {
          // Fails only when the connection closes: nobody waits on a retry.
        });
      },
    });
    this.#requester = new Requester(core, {
      maxPendingRequests: options?.maxPendingRequests ?? DEFAULT_MAX_PENDING_REQUESTS,
    });
    this.#responder = new Responder(
      core,
      options?.maxInboundRequests ?? DEFAULT_MAX_INBOUND_REQUESTS,
      (base): HandlerContext => ({ ...base, connection: this }),
      {
        budget,
        peer: () => this.#peerLabel,
        creditTimeoutMs: options?.streamCreditTimeoutMs ?? DEFAULT_STREAM_CREDIT_TIMEOUT_MS,
      },
    );
    this.#router = new InboundRouter({
      core,
      requester: this.#requester,
      responder: this.#responder,
      session: () => this.#session,
      protocols: () => this.#protocols,
      issuedBelow: () => this.#nextId,
      close: (error) => this.#shutdown(error, errorCodeOf(error)),
      maxRefusals: options?.maxRefusals ?? DEFAULT_MAX_REFUSALS,
      refusalWindowMs: options?.refusalWindowMs ?? DEFAULT_REFUSAL_WINDOW_MS,
      maxIdleFrames: options?.maxIdleFrames ?? DEFAULT_MAX_IDLE_FRAMES,
      onProtocolError: options?.onProtocolError,
      onRemoteError: options?.onRemoteError,
      readPast: (re) => this.#notices.readPast(re),
      refusedOneWay: (about, code) => this.#notices.refusedOneWay(about, code),
    });
    this.#keepalive = new Keepalive({
      timers: this.#timers,
      keepaliveMs: options?.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
      idleTimeoutMs: options?.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      stalledFor: (now) => this.#queue.stalledFor(now),
      ping: () => this.#offer({ type: PingMessage.type, body: { nonce: this.#nextId } }),
      onTimeout: (error) => this.#shutdown(error, error.code),
    });
    this.#splitter = new FrameSplitter({ maxFrameBytes });
    this.#decodeLimits = {
      maxDepth: options?.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH,
      maxValues: options?.maxFrameValues ?? DEFAULT_MAX_FRAME_VALUES,
    };
    this.#leftover = (options as { [LEFTOVER]?: Uint8Array })?.[LEFTOVER] ?? new Uint8Array(0);
    this.#reader = readerOf(duplex.readable);
    if ((options as { [START_AFTER_MACROTASK]?: boolean })?.[START_AFTER_MACROTASK]) {
      // From open(): the peer may have sent requests right behind its proof; reading a
      // macrotask later lets handlers registered right after `await Connection.open` see them.
      setTimeout(() => this.#readLoop(), 0);
    } else {
      this.#readLoop();
    }
  }

  /**
   * Run the session handshake on `duplex` (the peer proves its key, both sides exchange the
   * protocols they offer), then start a connection on it.
   * @param duplex A fresh transport to the peer (nothing sent on it yet).
   * @param options This side's identity and protocols, and the connection's options.
   * @returns The connection, with {@link peerKey}, {@link sessionId} and
   *   {@link peerProtocols} set.
   * @throws {HandshakeError} the peer failed its proof, or refused ours (code `handshake_failed`).
   * @throws {PeerTimeoutError} the peer did not finish the handshake in time.
   */
  static async open(duplex: ByteDuplex, options: OpenConnectionOptions): Promise<Connection> {
    const handshakeMs = options.handshakeTimeoutMs;
    if (handshakeMs !== undefined && !(handshakeMs > 0 && handshakeMs <= MAX_TIMER_MS)) {
      // Before any I/O. 0 is not "never" here, as for idleTimeoutMs: a peer that never proves
      // its key would hold the socket for ever; taken as a deadline already due, it failed every
      // handshake over a real transport.
      throw new RangeError(
        `handshakeTimeoutMs must be a positive number of milliseconds up to ${MAX_TIMER_MS}, ` +
          `got ${handshakeMs}`,
      );
    }
    const protocols = options.protocols ?? [];
    new NegotiatedProtocols(protocols, []); // throws on overlapping protocols, before any I/O
    const { session, duplex: transport, leftover } = await authenticateTransport(duplex, {
      identity: options.identity,
      protocols,
      timeoutMs: options.handshakeTimeoutMs ?? (options.idleTimeoutMs || undefined),
      timers: options.timers,
    });
    const startLater = { ...options, [START_AFTER_MACROTASK]: true, [LEFTOVER]: leftover };
    const connection = new Connection(transport, startLater);
    connection.#adopt(session, protocols);
    connection.#identity = options.identity;
    return connection;
  }

  #adopt(session: Session, protocols: readonly Protocol[]): void {
    this.#session = session;
    this.#peerLabel = toHex(session.peerKey);
    this.#protocols = new NegotiatedProtocols(protocols, session.peerProtocols);
    for (const p of protocols) this.#registry.register(...p.messages);
  }

  /**
   * Resolves once the connection is closed and the peer ended its side (or the close grace
   * period ran out). Never rejects; see {@link closeReason}.
   */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Why the connection closed (null while open, or after a clean local/peer close). */
  get closeReason(): Error | null {
    return this.#closeReason;
  }

  /** Whether the connection is closed. */
  get isClosed(): boolean {
    return this.#closing;
  }

  /** The registry this connection validates against (register your types here). */
  get registry(): MessageRegistry {
    return this.#registry;
  }

  /** The peer's public key, proven in the handshake (undefined without {@link open}). */
  get peerKey(): Uint8Array | undefined {
    return this.#session?.peerKey;
  }

  /**
   * This side's key pair, the one it proved in the handshake (undefined without {@link open}):
   * what it signs for the peer to hold against it, as a job's stream (`stream_commitment.ts`).
   */
  get identity(): Identity | undefined {
    return this.#identity;
  }

  /** The session id of the handshake (undefined without {@link open}). */
  get sessionId(): Uint8Array | undefined {
    return this.#session?.sessionId;
  }

  /** The protocols the peer offered in the handshake (empty without {@link open}). */
  get peerProtocols(): readonly ProtocolOffer[] {
    return this.#protocols?.peerProtocols ?? [];
  }

  /** Whether both sides offered protocol `name` at the same version in the handshake. */
  supports(name: string): boolean {
    return this.#protocols?.supports(name) ?? false;
  }

  /**
   * Our requests and streams of message `definition` awaiting a reply or still streaming on this
   * connection (`stats().pendingRequests` counts those of every message).
   */
  pendingRequestsOf(definition: MessageDefinition): number {
    return this.#requester.sizeOf(definition);
  }

  /** A snapshot of counters and gauges. */
  stats(): ConnectionStats {
    return {
      pendingRequests: this.#requester.size,
      waitingRequests: this.#requester.waiting,
      inboundRequests: this.#responder.size,
      queuedBytes: this.#queue.queuedBytes,
      waitingSends: this.#queue.waiting,
      waitingBytes: this.#queue.waitingBytes,
      bufferedChunks: this.#requester.bufferedChunks(),
      inFlightChunks: this.#responder.inFlightChunks(),
      framesSent: this.#queue.framesSent,
      framesReceived: this.#framesReceived,
      refused: this.#router.refused,
      droppedErrorReplies: this.#droppedErrorReplies,
      droppedFrames: this.#queue.dropped,
      keptOneWay: this.#notices.size,
      resentOneWay: this.#notices.resent,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /**
   * Handle inbound requests of a type. The body is validated before the handler runs.
   * @returns this connection, for chaining.
   */
  handle<B, R, C>(definition: MessageDefinition<B, R, C>, handler: Handler<B, R, C>): this;
  /** Handle a type already in the registry, by name (bodies typed `unknown`). */
  handle(type: string, handler: Handler<unknown, unknown, unknown>): this;
  handle(
    definitionOrType: AnyMessageDefinition | string,
    handler: Handler<never, unknown, unknown>,
  ): this {
    const definition = this.#definition(definitionOrType);
    if (CORE_MESSAGES.includes(definition)) {
      throw new TypeError(`${definition.type} is a core message handled by the connection`);
    }
    this.#responder.handle(definition.type, handler as AnyHandler);
    return this;
  }

  /**
   * Send a request and await its reply (validated against the reply schema). Waits for a
   * slot when `maxPendingRequests` are in flight, and for room in the byte budget.
   * @throws {RequestTimeoutError} no reply within the timeout (waiting included).
   * @throws {RequestCancelledError} the signal aborted.
   * @throws {RemoteError} the peer answered with an error (its `code`).
   * @throws {UnsupportedProtocolError} the type's protocol was not negotiated.
   * @throws {ConnectionClosedError} the connection closed first (`peer_timeout` if the peer
   *   went silent).
   */
  request<B, R>(
    definition: MessageDefinition<B, R, unknown>,
    body: B,
    options?: RequestOptions,
  ): Promise<R>;
  /** Send a request of a registered type, by name (reply typed `unknown`). */
  request(type: string, body: unknown, options?: RequestOptions): Promise<unknown>;
  request(
    definitionOrType: AnyMessageDefinition | string,
    body: unknown,
    options?: RequestOptions,
  ): Promise<unknown> {
    let definition: MessageDefinition;
    try {
      definition = this.#outbound(definitionOrType);
      if (!definition.reply) {
        throw new TypeError(`${definition.type} has no reply definition (use openStream/notify)`);
      }
      options?.signal?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = options?.timeoutMs ?? this.#requestTimeoutMs;
    return this.#requester.request(definition, body, timeoutMs, options?.signal);
  }

  /**
   * Open a streamed request: returns the stream of chunk bodies (validated against the chunk
   * schema). Cancelling the stream cancels the peer's handler; a handler failure errors the
   * stream with a {@link RemoteError}. The request waits for a slot and for room like
   * {@link request}.
   */
  openStream<B, C>(
    definition: MessageDefinition<B, unknown, C>,
    body: B,
    options?: OpenStreamOptions,
  ): ReadableStream<C>;
  /** Open a stream of a registered type, by name (chunks typed `unknown`). */
  openStream(type: string, body: unknown, options?: OpenStreamOptions): ReadableStream<unknown>;
  openStream(
    definitionOrType: AnyMessageDefinition | string,
    body: unknown,
    options?: OpenStreamOptions,
  ): ReadableStream<unknown> {
    const definition = this.#definition(definitionOrType);
    if (!definition.chunk) {
      throw new TypeError(`${definition.type} has no chunk definition (use request)`);
    }
    const window = options?.window ?? this.#streamWindow;
    if (!(Number.isInteger(window) && window >= 1)) throw new RangeError("window must be >= 1");
    const unsupported = this.#unsupported(definition);
    if (unsupported) {
      return new ReadableStream({ start: (controller) => controller.error(unsupported) });
    }
    return this.#requester.openStream(definition, body, window, options?.signal);
  }

  /**
   * Send a one-way message (a type with neither reply nor chunk); resolves once written. Nothing
   * answers it, but a peer too busy to take it says so (`busy`, its `maxInboundRequests` in use):
   * it is then sent again after a backoff, a few times at most (`MAX_BUSY_RETRIES`,
   * `_connection_notices.ts`), in the background. Any other refusal is final.
   */
  notify<B>(definition: MessageDefinition<B, unknown, unknown>, body: B): Promise<void>;
  /** Send a one-way message of a registered type, by name. */
  notify(type: string, body: unknown): Promise<void>;
  async notify(
    definitionOrType: AnyMessageDefinition | string,
    body: unknown,
  ): Promise<void> {
    const definition = this.#outbound(definitionOrType);
    await this.#sendOneWay(definition, body, 0);
  }

  /** Round-trip a `ping`; resolves with the round-trip time in milliseconds. */
  async ping(options?: RequestOptions): Promise<number> {
    const started = this.#timers.now();
    const nonce = this.#nextId;
    const pong = await this.request(PingMessage, { nonce }, options);
    if (pong.nonce !== nonce) throw new UnexpectedMessageError("pong nonce mismatch");
    return this.#timers.now() - started;
  }

  /**
   * Refuse a peer message that passed this connection's checks but its receiver turned down
   * later (a hello sent faster than the hello interval: `network/_peer_hellos.ts`). Counted
   * toward {@link ConnectionOptions.maxRefusals} like a frame refused here, so a peer that keeps
   * on is closed with `too_many_refusals`, and the peer is told `error`'s code.
   * @param error Why (its `code` goes to the peer).
   */
  refuse(error: ProtocolError): void {
    if (!this.#closing) this.#router.refuse(error);
  }

  /**
   * Close the connection: pending requests fail with `connection_closed`, running handlers
   * are aborted, queued writes are flushed and the transport is closed.
   * @param reason Recorded as {@link closeReason} and as the cause of the failures.
   */
  close(reason?: Error): Promise<void> {
    this.#shutdown(reason ?? null);
    return this.#closed;
  }

  /**
   * {@link close} with no reason, so that `await using conn = await Connection.open(…)` closes
   * it when the block ends, however it ends.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  #core(): ConnectionCore {
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      get registry() {
        return self.#registry;
      },
      get timers() {
        return self.#timers;
      },
      get isClosing() {
        return self.#closing;
      },
      get hasRoom() {
        return self.#queue.hasRoom;
      },
      get hasRoomForReply() {
        return self.#queue.hasRoomForReply;
      },
      nextId: () => this.#nextId++,
      send: (envelopes) => this.#send(envelopes),
      post: (frame) => this.#post(frame),
      offer: (frame) => this.#offer(frame),
      closedError: () => this.#closedError(),
      refuse: (error, send) => this.#router.refuse(error, send),
    };
  }

  #closedError(): ConnectionClosedError {
    return new ConnectionClosedError("connection is closed", { cause: this.#closeReason });
  }

  #definition(definitionOrType: AnyMessageDefinition | string): MessageDefinition {
    if (typeof definitionOrType !== "string") {
      this.#registry.register(definitionOrType);
      return definitionOrType as MessageDefinition;
    }
    const definition = this.#registry.get(definitionOrType);
    if (!definition) throw new UnknownTypeError(definitionOrType);
    return definition;
  }

  /** A definition we may send a request of now; throws why not. */
  #outbound(definitionOrType: AnyMessageDefinition | string): MessageDefinition {
    const definition = this.#definition(definitionOrType);
    if (this.#closing) throw this.#closedError();
    const unsupported = this.#unsupported(definition);
    if (unsupported) throw unsupported;
    return definition;
  }

  #unsupported(definition: MessageDefinition): ProtocolError | undefined {
    if (!this.#protocols || CORE_MESSAGES.includes(definition)) return undefined;
    try {
      this.#protocols.check(definition.type);
    } catch (error) {
      return error as ProtocolError;
    }
  }

  #send(envelopes: readonly Envelope[]): Promise<void> {
    return this.#queue.send(envelopes);
  }

  /** Send a one-way message as a new envelope, kept until the peer reads past it. */
  #sendOneWay(definition: MessageDefinition, body: unknown, tries: number): Promise<void> {
    const id = this.#nextId++;
    let frame: Uint8Array[];
    try {
      frame = this.#queue.encode({ v: PROTOCOL_VERSION, type: definition.type, id, body });
    } catch (error) {
      return Promise.reject(error); // too large: refused here, nothing sent
    }
    this.#notices.sent(id, definition, body, frameBytes(frame), tries);
    return this.#queue.sendFrames([frame]);
  }

  /** A control frame that must arrive (credit, cancel): waits for room in the background. */
  #post(frame: ControlFrame): void {
    if (this.#closing) return;
    this.#send([{ v: PROTOCOL_VERSION, id: this.#nextId++, ...frame } as Envelope]).catch(() => {
      // Fails only when the connection closes; nothing left to tell.
    });
  }

  /** A best-effort frame (pong, ping, error reply): dropped when the budget is full. */
  #offer(frame: ControlFrame): void {
    if (this.#closing) return;
    const queued = this.#queue.offer({ v: PROTOCOL_VERSION, id: this.#nextId++, ...frame });
    if (!queued && frame.type === ErrorMessage.type) this.#droppedErrorReplies++;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  async #readLoop(): Promise<void> {
    let failure: Error | null = null;
    let fault: string | undefined;
    const decode = this.#decodeLimits;
    /** The read buffer the splitter is lent now: reused by the next read. */
    let lent: ArrayBufferLike | null = null;
    const onFrame = (payload: Uint8Array) => {
      // After close() we only drain until the peer ends its side: its last frames are moot.
      if (this.#closing) return;
      this.#framesReceived++;
      // A payload that shares its buffer with other frames (one socket read holds many) is
      // copied first: a bulk byte string (half the frame or more: a chunk) is decoded as a view
      // of it, and must not pin the whole read buffer. One in our read buffer is always
      // copied: the next read reuses that buffer. Smaller byte strings (a key, a signature a
      // handler keeps) are copies of their own (`decodeCheckedCbor`), so they pin no frame.
      const own = payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength &&
        payload.buffer !== lent;
      const frame = decodeFrame(own ? payload : payload.slice(), decode);
      if (frame.ok) this.#router.dispatch(frame.envelope);
      else this.#router.refuse(frame.error);
    };
    try {
      if (this.#leftover.byteLength > 0) {
        this.#splitter.push(this.#leftover, onFrame);
        this.#frameDeadline();
      }
      if (this.#reader instanceof ReadableStreamBYOBReader) {
        // A byte stream (a socket): each read lands in one buffer of ours, reused, that the
        // splitter only borrows (it gathers unfinished frames into their own buffer, and a
        // frame whole in one read is copied above): a frame costs one allocation of its
        // size, not one per read plus one to join them.
        let buffer = new Uint8Array(MIN_READ_BYTES);
        let smallReads = 0;
        for (;;) {
          const { done, value } = await this.#reader.read(buffer);
          if (done) {
            this.#splitter.end();
            break;
          }
          // The read took the buffer (a BYOB read transfers it): the same memory, a new owner.
          const size = value.buffer.byteLength;
          const small = size > MIN_READ_BYTES && value.byteLength <= size / 4;
          smallReads = small ? smallReads + 1 : 0;
          if (value.byteLength === size && size < MAX_READ_BYTES) {
            buffer = new Uint8Array(2 * size);
          } else if (smallReads >= SHRINK_AFTER_SMALL_READS) {
            buffer = new Uint8Array(MIN_READ_BYTES);
            smallReads = 0;
          } else buffer = new Uint8Array(value.buffer);
          this.#keepalive.received();
          lent = value.buffer;
          this.#splitter.pushLent(value, onFrame);
          lent = null;
          this.#frameDeadline();
        }
      } else {
        for (;;) {
          const { done, value } = await this.#reader.read();
          if (done) {
            this.#splitter.end();
            break;
          }
          this.#keepalive.received();
          this.#splitter.push(value, onFrame);
          this.#frameDeadline();
        }
      }
    } catch (error) {
      if (!this.#closing) {
        // Framing is broken (oversize or truncated frame): tell the peer why, then close.
        const typed = error instanceof ProtocolError
          ? error
          : new ConnectionClosedError("transport read failed", { cause: error });
        this.#router.reportFatal(typed);
        failure = typed;
        // Broken framing is the peer's fault (counted); a failed transport read is not.
        if (error instanceof ProtocolError) fault = error.code;
      }
    }
    this.#readEnded = true;
    this.#timers.clearTimeout(this.#graceTimer);
    this.#timers.clearTimeout(this.#frameTimer);
    this.#shutdown(failure, fault);
    this.#releaseBudgetBytes(this.#budget);
    this.#resolveClosed();
  }

  /**
   * Arm the frame deadline when a read left a frame unfinished, clear it when none is: a frame
   * must be whole within `frameTimeoutMs` of its first bytes, however many trickle in.
   */
  #frameDeadline(): void {
    if (!this.#splitter.midFrame) {
      if (this.#frameTimer !== undefined) this.#timers.clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
      return;
    }
    if (this.#frameTimer !== undefined || this.#frameTimeoutMs <= 0) return;
    const ms = this.#frameTimeoutMs;
    this.#frameTimer = this.#timers.setTimeout(() => {
      this.#frameTimer = undefined;
      this.#shutdown(
        new PeerTimeoutError(`a frame begun ${ms} ms ago is not whole yet`),
        "frame_timeout",
      );
    }, ms);
  }

  /** The bytes still queued leave the node's count: the connection is done with its transport. */
  #releaseBudgetBytes(budget: WireBudget | undefined): void {
    if (this.#budgetReleased) return;
    this.#budgetReleased = true;
    budget?.queued(-this.#budgetBytes);
    this.#budgetBytes = 0;
  }

  // -------------------------------------------------------------------------------------------
  // Closing

  /**
   * @param reason Why (null: a clean close).
   * @param limit The limit or peer fault that closed it, counted in the node's budget; none for
   *   a close asked for locally or a transport that failed.
   */
  #shutdown(reason: Error | null, limit?: string): void {
    if (this.#closing) return;
    this.#closing = true;
    if (limit !== undefined) this.#budget?.connectionClosed(limit);
    this.#closeReason = reason;
    this.#keepalive.stop();
    // A peer timeout or refusal limit is itself a ConnectionClosedError with its own code:
    // everything pending fails with it, so callers see why (`peer_timeout`), not just that.
    const closedError = reason instanceof ConnectionClosedError
      ? reason
      : new ConnectionClosedError(
        reason ? `connection closed: ${reason.message}` : "connection closed",
        { cause: reason ?? undefined },
      );
    this.#queue.close(closedError);
    this.#notices.close();
    this.#requester.failAll(closedError);
    this.#responder.abortAll(closedError);
    // Flush what is queued (the error frame of a framing failure included) and end our side;
    // keep reading until the peer ends its side too, so neither end sees a torn transport,
    // but give up after the grace period: a peer that never closes must not hold us open.
    // Our writes get the same grace: a peer that stopped reading (even one that ended its
    // side, so the read loop is done) must not hold the transport open behind a stuck write.
    let flushed = false;
    const writesGrace = this.#timers.setTimeout(() => {
      if (!flushed) this.#writer.abort(closedError).catch(() => {});
    }, this.#closeGraceMs);
    this.#writer.close().catch(() => {}).finally(() => {
      flushed = true;
      this.#timers.clearTimeout(writesGrace);
    });
    if (!this.#readEnded) {
      this.#graceTimer = this.#timers.setTimeout(
        () => this.#reader.cancel(closedError).catch(() => {}),
        this.#closeGraceMs,
      );
    }
  }
}

/** The code of a typed error (`too_many_refusals`), or undefined. */
function errorCodeOf(error: Error): string | undefined {
  return error instanceof ProtocolError ? error.code : undefined;
}

/** A BYOB reader where the transport is a byte stream (a socket), else a default one. */
function readerOf(
  readable: ReadableStream<Uint8Array>,
): ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader {
  try {
    return readable.getReader({ mode: "byob" });
  } catch {
    return readable.getReader(); // not a byte stream
  }
}
