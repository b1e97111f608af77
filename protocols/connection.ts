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
 * Flow control is credit-based per stream: the requester grants `window` chunks up front and
 * more as its reader consumes them, and the responder pulls from the handler's stream only
 * while it holds credit. So a slow reader stalls only its own stream, its sender never has
 * more than `window` chunks in flight, and nothing buffers without bound. The read loop never
 * waits on a consumer or on a write, so it cannot deadlock against the peer's.
 *
 * Every inbound envelope is decoded, checked (shape, version, signature) and its body
 * validated against the registry before any handler sees it. A bad message gets a typed
 * `error` back and the connection goes on; only broken framing (a frame over
 * `maxFrameBytes`, a stream cut inside a frame) closes it, with a typed error.
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
import { VeriflowError } from "./errors.ts";
import { encodeEnvelope, type Envelope, PROTOCOL_VERSION } from "./envelope.ts";
import { assertEnvelopeSignature, signEnvelope } from "./envelope_signing.ts";
import type { Identity } from "./identity.ts";
import type { ByteDuplex } from "./memory_duplex.ts";
import type {
  AnyMessageDefinition,
  MessageDefinition,
  MessageRegistry,
} from "./message_registry.ts";
import {
  CancelMessage,
  CORE_MESSAGES,
  createCoreRegistry,
  CreditMessage,
  EndMessage,
  ErrorMessage,
  MAX_ERROR_MESSAGE_LENGTH,
  PingMessage,
  PongMessage,
} from "./messages.ts";
import {
  BadSignatureError,
  BusyError,
  ConnectionClosedError,
  FlowControlError,
  FrameTooLargeError,
  NoHandlerError,
  ProtocolError,
  RemoteError,
  RequestCancelledError,
  RequestTimeoutError,
  StreamCancelledError,
  UnexpectedMessageError,
  UnknownTypeError,
} from "./protocol_errors.ts";
import { DEFAULT_MAX_CBOR_DEPTH } from "./cbor_guard.ts";
import { type DecodedFrame, EnvelopeDecoderStream } from "../streams/cbor_stream.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  LengthPrefixedDecoderStream,
  LengthPrefixedEncoderStream,
} from "../streams/length_prefixed_stream.ts";

// ---------------------------------------------------------------------------------------------
// Types

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /** Message types this side understands (default: a fresh registry of the core messages). */
  registry?: MessageRegistry;
  /** Largest frame payload sent or accepted (default 1 MiB, see `DEFAULT_MAX_FRAME_BYTES`). */
  maxFrameBytes?: number;
  /** Deepest CBOR nesting accepted (default {@link DEFAULT_MAX_CBOR_DEPTH}). */
  maxDepth?: number;
  /**
   * Default timeout of {@link Connection.request} (default 30 s: long enough for a slow peer
   * under load, short enough that a lost reply frees its caller).
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
   * Bytes queued for the transport beyond which best-effort error replies are dropped
   * (default 4 MiB): a peer that sends garbage and never reads cannot grow our write queue.
   */
  maxQueuedBytes?: number;
  /**
   * After close(), how long to wait for the peer to end its side before cutting the read side
   * (default 2 s: a live peer answers in a round trip; a dead one must not hold us open).
   */
  closeGraceMs?: number;
  /** Sign every outbound envelope with this identity. */
  identity?: Identity;
  /** Refuse unsigned inbound envelopes with `bad_signature` (default false). */
  requireSignatures?: boolean;
  /** Require every inbound envelope to be signed by this public key (implies requireSignatures). */
  expectedPeer?: Uint8Array;
  /** Called for each inbound message this side refuses (for logs and metrics). */
  onProtocolError?: (error: ProtocolError) => void;
  /** Called for each `error` the peer reports that is not about one of our requests. */
  onRemoteError?: (error: RemoteError) => void;
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
  /** The verified signer, if the envelope was signed. */
  from?: Uint8Array;
  /** Aborted when the requester cancels, times out, or the connection closes. */
  signal: AbortSignal;
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
  /** Peer requests being handled (including streams we are sending). */
  inboundRequests: number;
  /** Bytes handed to the writer and not yet taken by the transport. */
  queuedBytes: number;
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
  /** Error replies dropped because the write queue was over `maxQueuedBytes`. */
  droppedErrorReplies: number;
}

// ---------------------------------------------------------------------------------------------
// Internal exchange state

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_STREAM_WINDOW = 16;
const DEFAULT_MAX_INBOUND_REQUESTS = 1024;
const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
const DEFAULT_CLOSE_GRACE_MS = 2_000;

/** Our request awaiting one reply. */
interface PendingReply {
  kind: "reply";
  definition: MessageDefinition;
  resolve(body: unknown): void;
  fail(error: Error): void;
}

/** Our stream request: the receive side of a flow-controlled stream. */
interface PendingStream {
  kind: "stream";
  definition: MessageDefinition;
  /** Received chunks not yet read (at most `window`). */
  queue: unknown[];
  /** Credits granted so far, in total. */
  granted: number;
  /** Chunks received so far, in total. */
  received: number;
  /** Consumed chunks not yet re-granted. */
  ungranted: number;
  window: number;
  done: boolean;
  error: Error | null;
  /** Wakes a pull() waiting for a chunk, the end, or an error. */
  wake: (() => void) | null;
  /** The stream failed: the reader sees `error` after the chunks already queued. */
  fail(error: Error): void;
  /** The sender finished: the reader sees the end after the chunks already queued. */
  end(): void;
}

type Pending = PendingReply | PendingStream;

/** A peer request we are handling. */
interface InboundExchange {
  abort: AbortController;
  /** Credits the peer granted us and we have not used (streams only). */
  credits: number;
  /** Chunks sent and not yet re-credited, for stats. */
  inFlight: number;
  /** Wakes the stream pump waiting for credit. */
  wake: (() => void) | null;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.slice(0, MAX_ERROR_MESSAGE_LENGTH);
}

function errorCode(error: unknown): string {
  return error instanceof VeriflowError ? error.code : "handler_error";
}

// ---------------------------------------------------------------------------------------------

/** A multiplexed message connection over a byte duplex. See the module doc. */
export class Connection {
  readonly #registry: MessageRegistry;
  readonly #handlers = new Map<string, Handler<unknown, unknown, unknown>>();
  readonly #pending = new Map<number, Pending>();
  readonly #inbound = new Map<number, InboundExchange>();
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<DecodedFrame>;
  readonly #maxFrameBytes: number;
  readonly #requestTimeoutMs: number;
  readonly #streamWindow: number;
  readonly #maxInbound: number;
  readonly #maxQueuedBytes: number;
  readonly #closeGraceMs: number;
  readonly #identity?: Identity;
  readonly #requireSignatures: boolean;
  readonly #expectedPeer?: Uint8Array;
  readonly #onProtocolError?: (error: ProtocolError) => void;
  readonly #onRemoteError?: (error: RemoteError) => void;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;
  #closeReason: Error | null = null;
  #nextId = 1;
  #queuedBytes = 0;
  #framesSent = 0;
  #framesReceived = 0;
  #refused = 0;
  #droppedErrorReplies = 0;

  /**
   * Start a connection over `duplex` (reading starts at once; register handlers right after
   * construction, before the peer can have sent anything that needs them).
   * @param duplex The byte streams to and from the peer.
   * @param options Limits, signing, hooks.
   */
  constructor(duplex: ByteDuplex, options?: ConnectionOptions) {
    this.#registry = options?.registry ?? createCoreRegistry();
    this.#registry.register(...CORE_MESSAGES);
    this.#maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#requestTimeoutMs = options?.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#streamWindow = options?.streamWindow ?? DEFAULT_STREAM_WINDOW;
    this.#maxInbound = options?.maxInboundRequests ?? DEFAULT_MAX_INBOUND_REQUESTS;
    this.#maxQueuedBytes = options?.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#closeGraceMs = options?.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    this.#identity = options?.identity;
    this.#expectedPeer = options?.expectedPeer;
    this.#requireSignatures = (options?.requireSignatures ?? false) || !!options?.expectedPeer;
    this.#onProtocolError = options?.onProtocolError;
    this.#onRemoteError = options?.onRemoteError;
    if (!(this.#streamWindow >= 1)) throw new RangeError("streamWindow must be >= 1");
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));

    const framing = { maxFrameBytes: this.#maxFrameBytes };
    const encoder = new LengthPrefixedEncoderStream(framing);
    this.#writer = encoder.writable.getWriter();
    encoder.readable.pipeTo(duplex.writable).catch((error) =>
      this.#shutdown(new ConnectionClosedError("transport write failed", { cause: error }))
    );
    this.#reader = duplex.readable
      .pipeThrough(new LengthPrefixedDecoderStream(framing))
      .pipeThrough(
        new EnvelopeDecoderStream({ maxDepth: options?.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH }),
      )
      .getReader();
    this.#readLoop();
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

  /** A snapshot of counters and gauges. */
  stats(): ConnectionStats {
    let bufferedChunks = 0;
    for (const p of this.#pending.values()) {
      if (p.kind === "stream") bufferedChunks += p.queue.length;
    }
    let inFlightChunks = 0;
    for (const ex of this.#inbound.values()) inFlightChunks += ex.inFlight;
    return {
      pendingRequests: this.#pending.size,
      inboundRequests: this.#inbound.size,
      queuedBytes: this.#queuedBytes,
      bufferedChunks,
      inFlightChunks,
      framesSent: this.#framesSent,
      framesReceived: this.#framesReceived,
      refused: this.#refused,
      droppedErrorReplies: this.#droppedErrorReplies,
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
    if (this.#handlers.has(definition.type)) {
      throw new TypeError(`a handler for ${definition.type} is already registered`);
    }
    this.#handlers.set(definition.type, handler as Handler<unknown, unknown, unknown>);
    return this;
  }

  /**
   * Send a request and await its reply (validated against the reply schema).
   * @throws {RequestTimeoutError} no reply within the timeout.
   * @throws {RequestCancelledError} the signal aborted.
   * @throws {RemoteError} the peer answered with an error (its `code`).
   * @throws {ConnectionClosedError} the connection closed first.
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
      definition = this.#definition(definitionOrType);
      if (!definition.reply) {
        throw new TypeError(`${definition.type} has no reply definition (use openStream/notify)`);
      }
      this.#assertOpen();
      options?.signal?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    const id = this.#nextId++;
    const timeoutMs = options?.timeoutMs ?? this.#requestTimeoutMs;
    const signal = options?.signal;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(id);
      };
      const giveUp = (error: ProtocolError) => {
        if (settled) return;
        finish();
        this.#sendCancel(id, error);
        reject(error);
      };
      const onAbort = () =>
        giveUp(new RequestCancelledError("request aborted", { cause: signal?.reason }));
      const timer = setTimeout(
        () => giveUp(new RequestTimeoutError(definition.type, timeoutMs)),
        timeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        kind: "reply",
        definition,
        resolve: (reply) => {
          if (settled) return;
          finish();
          resolve(reply);
        },
        fail: (error) => {
          if (settled) return;
          finish();
          reject(error);
        },
      });
      this.#send({ v: PROTOCOL_VERSION, type: definition.type, id, body }).catch((error) =>
        this.#pending.get(id)?.fail(error)
      );
    });
  }

  /**
   * Open a streamed request: returns the stream of chunk bodies (validated against the chunk
   * schema). Cancelling the stream cancels the peer's handler; a handler failure errors the
   * stream with a {@link RemoteError}.
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
    const signal = options?.signal;
    const id = this.#nextId++;
    // Re-grant in batches of half the window: far fewer credit frames than one per chunk,
    // while the sender still never runs dry as long as the reader keeps up.
    const grantBatch = Math.max(1, Math.floor(window / 2));
    const state: PendingStream = {
      kind: "stream",
      definition,
      queue: [],
      granted: window,
      received: 0,
      ungranted: 0,
      window,
      done: false,
      error: null,
      wake: null,
      fail: (error) => {
        if (state.done || state.error) return;
        state.error = error;
        this.#pending.delete(id);
        signal?.removeEventListener("abort", onAbort);
        state.wake?.();
      },
      end: () => {
        if (state.done || state.error) return;
        state.done = true;
        this.#pending.delete(id);
        signal?.removeEventListener("abort", onAbort);
        state.wake?.();
      },
    };
    const onAbort = () => {
      const error = new StreamCancelledError("stream aborted", { cause: signal?.reason });
      if (this.#pending.get(id) === state) this.#sendCancel(id, error);
      state.queue.length = 0; // an abort is immediate: queued chunks are not delivered
      state.fail(error);
    };
    const stream = new ReadableStream<unknown>({
      pull: async (controller) => {
        while (state.queue.length === 0 && !state.done && !state.error) {
          await new Promise<void>((resolve) => (state.wake = resolve));
          state.wake = null;
        }
        if (state.queue.length > 0) {
          controller.enqueue(state.queue.shift());
          if (state.done || state.error) return;
          if (++state.ungranted >= grantBatch) {
            const chunks = state.ungranted;
            state.ungranted = 0;
            state.granted += chunks;
            this.#sendControl({ type: CreditMessage.type, re: id, body: { chunks } });
          }
          return;
        }
        if (state.error) controller.error(state.error);
        else controller.close();
      },
      cancel: (reason) => {
        if (this.#pending.get(id) === state) {
          this.#sendCancel(id, new StreamCancelledError(`reader cancelled: ${errorText(reason)}`));
        }
        state.fail(new StreamCancelledError("reader cancelled"));
        state.queue.length = 0;
      },
    }, { highWaterMark: 0 });

    if (this.#closing) {
      state.fail(new ConnectionClosedError("connection is closed", { cause: this.#closeReason }));
      return stream;
    }
    if (signal?.aborted) {
      state.fail(new StreamCancelledError("stream aborted", { cause: signal.reason }));
      return stream;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#pending.set(id, state);
    // The request, then the initial window: the peer sees them in this order.
    this.#send({ v: PROTOCOL_VERSION, type: definition.type, id, body }).catch((error) =>
      state.fail(error)
    );
    this.#sendControl({ type: CreditMessage.type, re: id, body: { chunks: window } });
    return stream;
  }

  /** Send a one-way message (a type with neither reply nor chunk); resolves once written. */
  notify<B>(definition: MessageDefinition<B, unknown, unknown>, body: B): Promise<void>;
  /** Send a one-way message of a registered type, by name. */
  notify(type: string, body: unknown): Promise<void>;
  async notify(
    definitionOrType: AnyMessageDefinition | string,
    body: unknown,
  ): Promise<void> {
    const definition = this.#definition(definitionOrType);
    this.#assertOpen();
    await this.#send({ v: PROTOCOL_VERSION, type: definition.type, id: this.#nextId++, body });
  }

  /** Round-trip a `ping`; resolves with the round-trip time in milliseconds. */
  async ping(options?: RequestOptions): Promise<number> {
    const started = performance.now();
    const nonce = this.#nextId;
    const pong = await this.request(PingMessage, { nonce }, options);
    if (pong.nonce !== nonce) throw new UnexpectedMessageError("pong nonce mismatch");
    return performance.now() - started;
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

  // -------------------------------------------------------------------------------------------
  // Sending

  #closing = false;
  #readEnded = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  #assertOpen(): void {
    if (this.#closing) {
      throw new ConnectionClosedError("connection is closed", { cause: this.#closeReason });
    }
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

  /** Encode, sign, size-check and queue one envelope. Resolves when the transport took it. */
  #send(envelope: Envelope): Promise<void> {
    if (this.#closing) {
      return Promise.reject(
        new ConnectionClosedError("connection is closed", { cause: this.#closeReason }),
      );
    }
    let payload: Uint8Array;
    try {
      payload = encodeEnvelope(this.#identity ? signEnvelope(envelope, this.#identity) : envelope);
    } catch (error) {
      return Promise.reject(error);
    }
    if (payload.byteLength > this.#maxFrameBytes) {
      // Refused locally: sending it would make the peer close the whole connection.
      return Promise.reject(new FrameTooLargeError(payload.byteLength, this.#maxFrameBytes));
    }
    const size = payload.byteLength;
    this.#queuedBytes += size;
    this.#framesSent++;
    return this.#writer.write(payload).then(
      () => void (this.#queuedBytes -= size),
      (error) => {
        this.#queuedBytes -= size;
        throw new ConnectionClosedError("transport write failed", { cause: error });
      },
    );
  }

  /** Fire-and-forget send of a control message (never awaited by the read loop). */
  #sendControl(partial: Omit<Envelope, "v" | "id">): void {
    if (this.#closing) return;
    this.#send({ v: PROTOCOL_VERSION, id: this.#nextId++, ...partial } as Envelope).catch(() => {
      // A failed write closes the connection through the pipe; nothing else to do here.
    });
  }

  #sendCancel(id: number, error: ProtocolError): void {
    this.#sendControl({
      type: CancelMessage.type,
      re: id,
      body: { code: error.code, message: errorText(error) },
    });
  }

  /** Best-effort error reply; dropped when the peer is not reading what we already queued. */
  #sendError(code: string, message: string, coords: { re?: number; about?: number }): void {
    if (this.#queuedBytes > this.#maxQueuedBytes) {
      this.#droppedErrorReplies++;
      return;
    }
    const body: Record<string, unknown> = {
      code,
      message: message.slice(0, MAX_ERROR_MESSAGE_LENGTH),
    };
    if (coords.about !== undefined) body.about = coords.about;
    this.#sendControl({ type: ErrorMessage.type, re: coords.re, body });
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  async #readLoop(): Promise<void> {
    let failure: Error | null = null;
    try {
      for (;;) {
        const { done, value } = await this.#reader.read();
        if (done) break;
        // After close() we only drain until the peer ends its side: its last frames are moot.
        if (this.#closing) continue;
        this.#framesReceived++;
        if (value.ok) this.#dispatch(value.envelope);
        else this.#refuse(value.error);
      }
    } catch (error) {
      if (!this.#closing) {
        // Framing is broken (oversize or truncated frame): tell the peer why, then close.
        const typed = error instanceof ProtocolError
          ? error
          : new ConnectionClosedError("transport read failed", { cause: error });
        this.#onProtocolError?.(typed);
        this.#sendError(typed.code, errorText(typed), {});
        failure = typed;
      }
    }
    this.#readEnded = true;
    clearTimeout(this.#graceTimer);
    this.#shutdown(failure);
    this.#resolveClosed();
  }

  /** Report a refused inbound message to the peer, addressed as precisely as we can. */
  #refuse(error: ProtocolError): void {
    this.#refused++;
    this.#onProtocolError?.(error);
    const re = error.envelopeRe;
    const pending = re === undefined ? undefined : this.#pending.get(re);
    if (
      pending && error.envelopeType !== CreditMessage.type &&
      error.envelopeType !== CancelMessage.type
    ) {
      // A bad reply, chunk or error for one of our requests (ids are per sender, so only
      // response types can name one): that request fails here, and the peer is told to stop.
      pending.fail(error);
      this.#sendCancel(re!, error);
      return;
    }
    // Never answer an error with an error: two confused peers would ping-pong forever.
    if (error.envelopeType === ErrorMessage.type) return;
    const type = error.envelopeType;
    if (re !== undefined && (type === CreditMessage.type || type === CancelMessage.type)) {
      // A bad control message about a stream we serve: that exchange cannot be trusted.
      const exchange = this.#inbound.get(re);
      if (exchange && !exchange.abort.signal.aborted) {
        exchange.abort.abort(error);
        this.#sendError(error.code, errorText(error), { re });
      } else {
        this.#sendError(error.code, errorText(error), { about: error.envelopeId });
      }
      return;
    }
    if (re !== undefined) {
      this.#sendError(error.code, errorText(error), { about: error.envelopeId });
      return;
    }
    if (error.envelopeId !== undefined) {
      // Possibly a request: answering with re = its id fails it on the peer's side.
      this.#sendError(error.code, errorText(error), { re: error.envelopeId });
      return;
    }
    this.#sendError(error.code, errorText(error), {});
  }

  #dispatch(raw: Envelope): void {
    const where = { envelopeId: raw.id, envelopeRe: raw.re, envelopeType: raw.type };
    let body: unknown;
    try {
      if (raw.sig !== undefined || raw.from !== undefined || this.#requireSignatures) {
        assertEnvelopeSignature(raw, this.#expectedPeer);
      }
      body = this.#registry.parseBody(raw.type, raw.body, where);
    } catch (error) {
      this.#refuse(
        error instanceof ProtocolError
          ? error
          : new BadSignatureError("signature check failed", { ...where, cause: error }),
      );
      return;
    }
    const envelope: Envelope = { ...raw, body };
    if (raw.re === undefined) {
      this.#onRequest(envelope);
      return;
    }
    switch (raw.type) {
      case CreditMessage.type: {
        const exchange = this.#inbound.get(raw.re);
        if (!exchange) return; // the stream already ended: late credit, harmless
        const chunks = (body as { chunks: number }).chunks;
        exchange.credits += chunks;
        exchange.inFlight = Math.max(0, exchange.inFlight - chunks);
        exchange.wake?.();
        return;
      }
      case CancelMessage.type: {
        const exchange = this.#inbound.get(raw.re);
        if (!exchange) return; // already finished
        const { code, message } = body as { code: string; message: string };
        exchange.abort.abort(
          new StreamCancelledError(`cancelled by the requester (${code}): ${message}`),
        );
        return;
      }
    }
    this.#onResponse(envelope, raw.re);
  }

  /** A reply, chunk, end or error for one of our requests. */
  #onResponse(envelope: Envelope, re: number): void {
    const pending = this.#pending.get(re);
    const where = { envelopeId: envelope.id, envelopeRe: re, envelopeType: envelope.type };
    if (!pending) {
      // Ids we issued may get late answers (after a timeout or cancel): drop those quietly.
      if (re < this.#nextId || envelope.type === ErrorMessage.type) return;
      this.#refuse(new UnexpectedMessageError(`no request with id ${re}`, where));
      return;
    }
    if (envelope.type === ErrorMessage.type) {
      const { code, message } = envelope.body as { code: string; message: string };
      const remote = new RemoteError(code, message);
      if (pending.kind === "stream") {
        pending.fail(remote);
      } else pending.fail(remote);
      return;
    }
    if (pending.kind === "reply") {
      if (envelope.type === pending.definition.reply?.type) {
        pending.resolve(envelope.body);
        return;
      }
      this.#refuse(
        new UnexpectedMessageError(
          `${envelope.type} is not a reply to ${pending.definition.type}`,
          where,
        ),
      );
      return;
    }
    // Streamed reply.
    if (envelope.type === EndMessage.type) {
      pending.end();
      return;
    }
    if (envelope.type !== pending.definition.chunk?.type) {
      this.#refuse(
        new UnexpectedMessageError(
          `${envelope.type} is not a chunk of ${pending.definition.type}`,
          where,
        ),
      );
      return;
    }
    if (++pending.received > pending.granted) {
      this.#refuse(
        new FlowControlError(`chunk ${pending.received} exceeds ${pending.granted} credits`, where),
      );
      return;
    }
    pending.queue.push(envelope.body);
    pending.wake?.();
  }

  /** A request (or one-way message) from the peer. */
  #onRequest(envelope: Envelope): void {
    const where = { envelopeId: envelope.id, envelopeType: envelope.type };
    const type = envelope.type;
    if (type === PingMessage.type) {
      this.#sendControl({ type: PongMessage.type, re: envelope.id, body: envelope.body });
      return;
    }
    if (type === ErrorMessage.type) {
      const { code, message } = envelope.body as { code: string; message: string };
      this.#onRemoteError?.(new RemoteError(code, message));
      return;
    }
    const handler = this.#handlers.get(type);
    if (!handler) {
      this.#refuse(new NoHandlerError(type, where));
      return;
    }
    if (this.#inbound.has(envelope.id)) {
      this.#refuse(new UnexpectedMessageError(`id ${envelope.id} is already in use`, where));
      return;
    }
    if (this.#inbound.size >= this.#maxInbound) {
      this.#refuse(new BusyError(this.#maxInbound, where));
      return;
    }
    const exchange: InboundExchange = {
      abort: new AbortController(),
      credits: 0,
      inFlight: 0,
      wake: null,
    };
    this.#inbound.set(envelope.id, exchange);
    this.#runHandler(envelope, handler, exchange).finally(() => {
      this.#inbound.delete(envelope.id);
      exchange.wake?.();
    });
  }

  async #runHandler(
    envelope: Envelope,
    handler: Handler<unknown, unknown, unknown>,
    exchange: InboundExchange,
  ): Promise<void> {
    const definition = this.#registry.get(envelope.type)!;
    const signal = exchange.abort.signal;
    const oneWay = !definition.reply && !definition.chunk;
    const coords = oneWay ? { about: envelope.id } : { re: envelope.id };
    try {
      const result = await handler(envelope.body, {
        envelope,
        from: envelope.sig ? envelope.from : undefined,
        signal,
        connection: this,
      });
      if (signal.aborted) {
        if (result instanceof ReadableStream) await result.cancel(signal.reason).catch(() => {});
        return;
      }
      if (definition.chunk) {
        if (!(result instanceof ReadableStream)) {
          throw new TypeError(`handler for ${envelope.type} must return a ReadableStream`);
        }
        await this.#pump(envelope.id, definition.chunk.type, result, exchange);
        return;
      }
      if (definition.reply) {
        await this.#send({
          v: PROTOCOL_VERSION,
          type: definition.reply.type,
          id: this.#nextId++,
          re: envelope.id,
          body: result,
        });
      }
    } catch (error) {
      if (signal.aborted || this.#closing) return; // the requester is gone: nobody to tell
      this.#sendError(errorCode(error), errorText(error), coords);
    }
  }

  /** Send a handler's stream as chunks, only while the requester has granted credit. */
  async #pump(
    re: number,
    chunkType: string,
    source: ReadableStream<unknown>,
    exchange: InboundExchange,
  ): Promise<void> {
    const reader = source.getReader();
    const signal = exchange.abort.signal;
    const onAbort = () => {
      reader.cancel(signal.reason).catch(() => {});
      exchange.wake?.();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        while (exchange.credits === 0 && !signal.aborted) {
          await new Promise<void>((resolve) => (exchange.wake = resolve));
          exchange.wake = null;
        }
        if (signal.aborted) return;
        const { done, value } = await reader.read();
        if (signal.aborted) return;
        if (done) {
          await this.#send({
            v: PROTOCOL_VERSION,
            type: EndMessage.type,
            id: this.#nextId++,
            re,
            body: null,
          });
          return;
        }
        exchange.credits--;
        exchange.inFlight++;
        await this.#send({
          v: PROTOCOL_VERSION,
          type: chunkType,
          id: this.#nextId++,
          re,
          body: value,
        });
      }
    } catch (error) {
      if (!signal.aborted) reader.cancel(error).catch(() => {});
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      reader.releaseLock();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Closing

  #shutdown(reason: Error | null): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closeReason = reason;
    const closedError = new ConnectionClosedError(
      reason ? `connection closed: ${reason.message}` : "connection closed",
      { cause: reason ?? undefined },
    );
    for (const pending of [...this.#pending.values()]) pending.fail(closedError);
    this.#pending.clear();
    for (const exchange of this.#inbound.values()) exchange.abort.abort(closedError);
    // Flush what is queued (the error frame of a framing failure included) and end our side;
    // keep reading until the peer ends its side too, so neither end sees a torn transport,
    // but give up after the grace period: a peer that never closes must not hold us open.
    this.#writer.close().catch(() => {});
    if (!this.#readEnded) {
      this.#graceTimer = setTimeout(
        () => this.#reader.cancel(closedError).catch(() => {}),
        this.#closeGraceMs,
      );
    }
  }
}
