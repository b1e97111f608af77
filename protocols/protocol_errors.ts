/**
 * Typed errors of the wire protocol.
 *
 * Every failure the protocol can name has its own class and a stable `code` (the table in
 * `docs/PROTOCOL.md`). The same code travels in `error` envelopes, so a requester that gets a
 * failure from its peer sees a {@link RemoteError} whose `code` is the one the peer raised, and
 * tests can assert on codes instead of messages.
 *
 * @module
 */
import { VeriflowError } from "./errors.ts";

/**
 * The codes of bytes that are not this protocol's frames or messages: what a peer that speaks
 * something else sends (an HTTP server's first bytes read as a frame of about 1 GB).
 */
export const FRAMING_ERROR_CODES = [
  "frame_too_large",
  "truncated_frame",
  "malformed_cbor",
  "nesting_too_deep",
  "invalid_envelope",
  "unknown_version",
  "unknown_type",
  "invalid_body",
] as const;

/**
 * The framing codes a connection closes with only for bytes its peer sent that no honest peer
 * sends (a frame past the limit, bytes that are not this protocol's): the peer's own doing. A
 * `truncated_frame` is not among them: a peer whose process died mid-frame ends its stream short.
 */
export const PEER_FRAMING_FAULT_CODES: ReadonlySet<string> = new Set(
  FRAMING_ERROR_CODES.filter((code) => code !== "truncated_frame"),
);

/** Stable error codes of the wire protocol. Never renamed once published. */
export const PROTOCOL_ERROR_CODES = [
  ...FRAMING_ERROR_CODES,
  "bad_signature",
  "no_handler",
  "unexpected_message",
  "flow_control_violation",
  "busy",
  "handler_error",
  "request_timeout",
  "request_cancelled",
  "stream_cancelled",
  "credit_timeout",
  "connection_closed",
  "peer_timeout",
  "too_many_refusals",
  "handshake_failed",
  "handshake_refused",
  "protocol_not_supported",
] as const;

/** One of {@link PROTOCOL_ERROR_CODES}. */
export type ProtocolErrorCode = typeof PROTOCOL_ERROR_CODES[number];

/** Where a protocol error is about: the id (and `re`) of the offending envelope, when known. */
export interface ProtocolErrorOptions extends ErrorOptions {
  /** `id` of the envelope the error is about, if it could be read. */
  envelopeId?: number;
  /** `re` of the envelope the error is about, if it had one. */
  envelopeRe?: number;
  /** `type` of the envelope the error is about, if it could be read. */
  envelopeType?: string;
}

/** Base class of every wire-protocol error. */
export class ProtocolError extends VeriflowError {
  /** `id` of the offending envelope, when it could be read (used to address the error reply). */
  readonly envelopeId?: number;
  /** `re` of the offending envelope, when it had one. */
  readonly envelopeRe?: number;
  /** `type` of the offending envelope, when it could be read. */
  readonly envelopeType?: string;

  /**
   * Creates the error.
   * @param code Stable code (see {@link PROTOCOL_ERROR_CODES}; remote errors may carry others).
   * @param message Human-readable explanation.
   * @param options Cause and the offending envelope's coordinates.
   */
  constructor(code: string, message: string, options?: ProtocolErrorOptions) {
    super(code, message, options);
    this.envelopeId = options?.envelopeId;
    this.envelopeRe = options?.envelopeRe;
    this.envelopeType = options?.envelopeType;
  }
}

/** A frame's length prefix exceeds `maxFrameBytes` (framing is broken: the connection closes). */
export class FrameTooLargeError extends ProtocolError {
  /**
   * Creates the error.
   * @param length Announced length.
   * @param max Allowed maximum.
   */
  constructor(length: number, max: number) {
    super("frame_too_large", `frame of ${length} bytes exceeds the maximum of ${max} bytes`);
  }
}

/** The byte stream ended in the middle of a frame (a lying or cut length prefix). */
export class TruncatedFrameError extends ProtocolError {
  /**
   * Creates the error.
   * @param missing Bytes still expected when the stream ended.
   */
  constructor(missing: number) {
    super("truncated_frame", `stream ended ${missing} bytes short of a complete frame`);
  }
}

/** A frame is not well-formed CBOR in Veriflow's profile (no tags but typed arrays, no indefinite lengths). */
export class MalformedCborError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What was wrong.
   * @param options Cause.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("malformed_cbor", message, options);
  }
}

/** A frame nests arrays/maps deeper than allowed (guards the recursive CBOR decoder). */
export class NestingTooDeepError extends ProtocolError {
  /**
   * Creates the error.
   * @param max Allowed depth.
   */
  constructor(max: number) {
    super("nesting_too_deep", `CBOR nesting deeper than ${max} levels`);
  }
}

/** The decoded value is not an envelope `{ v, type, id, from?, re?, body, sig? }`. */
export class InvalidEnvelopeError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What was wrong.
   * @param options The envelope's coordinates.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("invalid_envelope", message, options);
  }
}

/** The envelope's `v` is not a protocol version this node speaks. */
export class UnknownVersionError extends ProtocolError {
  /**
   * Creates the error.
   * @param version The version received.
   * @param options The envelope's coordinates.
   */
  constructor(version: unknown, options?: ProtocolErrorOptions) {
    super("unknown_version", `unknown protocol version ${String(version)}`, options);
  }
}

/** The envelope's `type` is not in the message registry. */
export class UnknownTypeError extends ProtocolError {
  /**
   * Creates the error.
   * @param type The type received.
   * @param options The envelope's coordinates.
   */
  constructor(type: string, options?: ProtocolErrorOptions) {
    super("unknown_type", `unknown message type ${JSON.stringify(type)}`, options);
  }
}

/** The envelope's body fails its message schema. */
export class InvalidBodyError extends ProtocolError {
  /**
   * Creates the error.
   * @param type The message type.
   * @param detail Schema failure summary.
   * @param options Coordinates and cause.
   */
  constructor(type: string, detail: string, options?: ProtocolErrorOptions) {
    super("invalid_body", `invalid body for ${JSON.stringify(type)}: ${detail}`, options);
  }
}

/** A signature is missing where required, malformed, or does not verify. */
export class BadSignatureError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What was wrong.
   * @param options The envelope's coordinates.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("bad_signature", message, options);
  }
}

/** The message type is known but this side has no handler for it. */
export class NoHandlerError extends ProtocolError {
  /**
   * Creates the error.
   * @param type The message type.
   * @param options The envelope's coordinates.
   */
  constructor(type: string, options?: ProtocolErrorOptions) {
    super("no_handler", `no handler for ${JSON.stringify(type)}`, options);
  }
}

/** A message arrived that does not fit the exchange it claims to belong to. */
export class UnexpectedMessageError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What was wrong.
   * @param options The envelope's coordinates.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("unexpected_message", message, options);
  }
}

/** A stream sender sent more chunks than it was granted credits for. */
export class FlowControlError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What was wrong.
   * @param options The envelope's coordinates.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("flow_control_violation", message, options);
  }
}

/** The peer has too many requests in progress on this connection, or is not reading replies. */
export class BusyError extends ProtocolError {
  /**
   * Creates the error.
   * @param reason The concurrency limit that was hit, or a sentence saying what is full.
   * @param options The envelope's coordinates.
   */
  constructor(reason: number | string, options?: ProtocolErrorOptions) {
    super(
      "busy",
      typeof reason === "number" ? `more than ${reason} concurrent inbound requests` : reason,
      options,
    );
  }
}

/** A request got no reply within its timeout. */
export class RequestTimeoutError extends ProtocolError {
  /**
   * Creates the error.
   * @param type The request type.
   * @param timeoutMs The timeout that expired.
   */
  constructor(type: string, timeoutMs: number) {
    super("request_timeout", `${JSON.stringify(type)} got no reply within ${timeoutMs} ms`);
  }
}

/** The requester gave up on a request (its signal aborted). */
export class RequestCancelledError extends ProtocolError {
  /**
   * Creates the error.
   * @param message Why.
   * @param options Cause (the abort reason).
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("request_cancelled", message, options);
  }
}

/** A stream was cancelled by the other side (or by the local reader). */
export class StreamCancelledError extends ProtocolError {
  /**
   * Creates the error.
   * @param message Why.
   * @param options Cause.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("stream_cancelled", message, options);
  }
}

/**
 * A stream we serve ended because its requester granted no credit for `streamCreditTimeoutMs`:
 * it stopped reading, and holding the handler (and what its source holds) for it would let any
 * peer pin them for as long as it answers pings. The connection stays open.
 */
export class CreditTimeoutError extends ProtocolError {
  /**
   * Creates the error.
   * @param timeoutMs How long the stream waited for credit.
   * @param options The stream's coordinates.
   */
  constructor(timeoutMs: number, options?: ProtocolErrorOptions) {
    super(
      "credit_timeout",
      `no credit for ${timeoutMs} ms: the requester stopped reading`,
      options,
    );
  }
}

/** The connection is closed (locally, by the peer, or because its framing broke). */
export class ConnectionClosedError extends ProtocolError {
  /**
   * Creates the error.
   * @param message Why.
   * @param options Cause (for example the framing error).
   * @param code For subclasses that name why the connection closed (default `connection_closed`).
   */
  constructor(message: string, options?: ProtocolErrorOptions, code = "connection_closed") {
    super(code, message, options);
  }
}

/**
 * The peer went silent: nothing arrived for `idleTimeoutMs`, or it stopped reading what we
 * queued for that long. The connection closes and everything pending on it fails with this
 * error (it is a {@link ConnectionClosedError}, so code that retries on closure still does).
 */
export class PeerTimeoutError extends ConnectionClosedError {
  /**
   * Creates the error.
   * @param message What went silent (receiving, reading, the handshake).
   */
  constructor(message: string) {
    super(message, undefined, "peer_timeout");
  }
}

/**
 * The peer sent too many messages this side had to refuse within a short window; the
 * connection is closed rather than made to answer garbage forever.
 */
export class TooManyRefusalsError extends ConnectionClosedError {
  /**
   * Creates the error.
   * @param count Refusals counted in the window.
   * @param windowMs The window.
   */
  constructor(count: number, windowMs: number) {
    super(
      `peer sent ${count} refused messages within ${windowMs} ms`,
      undefined,
      "too_many_refusals",
    );
  }
}

/**
 * The session handshake failed: the peer's hello was malformed, its proof of key did not
 * verify, or it refused ours. The connection is closed.
 */
export class HandshakeError extends ProtocolError {
  /**
   * Creates the error.
   * @param message What failed.
   * @param options Cause.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("handshake_failed", message, options);
  }
}

/**
 * The peer's hello claimed this node's own key. On a dial that reached this node's own listener
 * (a `--peer` list copied to every node names each node's own address) it is this node, not a
 * peer that failed: the dialler stops dialling that address (`network/_peer_transports.ts`). The
 * same `handshake_failed` code on the wire: the peer is told what it always was.
 */
export class OwnKeyHandshakeError extends HandshakeError {
  /** Creates the error. */
  constructor() {
    super("the peer claims our own key");
  }
}

/**
 * The peer refused the connection before its handshake (its connection limits: too many
 * handshakes in progress from this address), saying so with an `error` frame in place of its
 * hello. Nothing is wrong with either side's keys or bytes: a dial later may be admitted.
 */
export class HandshakeRefusedError extends ProtocolError {
  /**
   * Creates the error.
   * @param message Why the peer refused, as it said it.
   */
  constructor(message: string) {
    super("handshake_refused", message);
  }
}

/**
 * A message belongs to a protocol the two sides did not both offer in the handshake (or to no
 * protocol at all on a connection that negotiated protocols).
 */
export class UnsupportedProtocolError extends ProtocolError {
  /**
   * Creates the error.
   * @param message Which type and protocol.
   * @param options The envelope's coordinates.
   */
  constructor(message: string, options?: ProtocolErrorOptions) {
    super("protocol_not_supported", message, options);
  }
}

/**
 * A failure reported by the peer in an `error` envelope. `code` is the peer's code (one of
 * {@link PROTOCOL_ERROR_CODES} for protocol failures, or the code of the handler's own
 * {@link VeriflowError}, or `handler_error`).
 */
export class RemoteError extends ProtocolError {
  /**
   * Creates the error.
   * @param code The peer's code.
   * @param message The peer's message.
   * @param options Which envelope of ours it refuses, when known (a one-way message's `about`):
   * its `envelopeId` and `envelopeType`, so a hook can tell what was refused.
   */
  constructor(code: string, message: string, options?: ProtocolErrorOptions) {
    super(code, message, options);
  }
}
