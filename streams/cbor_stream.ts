/**
 * CBOR codec streams: values or envelopes to frame payloads and back.
 *
 * Put them between your objects and the framing streams:
 * ```
 * envelopes → EnvelopeEncoderStream → LengthPrefixedEncoderStream → bytes
 * bytes → LengthPrefixedDecoderStream → EnvelopeDecoderStream → DecodedFrame
 * ```
 * The envelope decoder does not error on a bad frame: it emits `{ ok: false, error }` and
 * goes on, because one bad message must not take down a connection whose framing is intact.
 * The plain {@link CborDecoderStream} errors instead, for trusted or one-shot inputs.
 *
 * @example
 * ```ts
 * import { EnvelopeDecoderStream, EnvelopeEncoderStream } from "./cbor_stream.ts";
 * const out = ReadableStream.from([{ v: 1, type: "ping", id: 1, body: { nonce: 1 } }])
 *   .pipeThrough(new EnvelopeEncoderStream())
 *   .pipeThrough(new EnvelopeDecoderStream());
 * for await (const frame of out) console.log(frame.ok); // true
 * ```
 *
 * @module
 */
import { encodeCbor } from "../protocols/cbor.ts";
import { decodeCheckedCbor, DEFAULT_MAX_CBOR_DEPTH } from "../protocols/cbor_guard.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../protocols/envelope.ts";
import { MalformedCborError, ProtocolError } from "../protocols/protocol_errors.ts";

/** Options of the CBOR decoder streams. */
export interface CborDecoderStreamOptions {
  /** Maximum nesting depth of a decoded value (default {@link DEFAULT_MAX_CBOR_DEPTH}). */
  maxDepth?: number;
  /**
   * Most maps, arrays and byte strings one envelope's frame may hold, and at most one per 8 of
   * its bytes beyond 64 (`frameValueBound`; default `DEFAULT_MAX_FRAME_VALUES`, the envelope's).
   */
  maxValues?: number;
}

/** One decoded frame: the envelope, or the typed reason it was refused. */
export type DecodedFrame =
  | { ok: true; envelope: Envelope }
  | { ok: false; error: ProtocolError };

/**
 * Decode one frame's payload as an envelope: the envelope, or the typed reason it was refused
 * (never throws). What {@link EnvelopeDecoderStream} does per chunk.
 */
export function decodeFrame(payload: Uint8Array, options?: CborDecoderStreamOptions): DecodedFrame {
  try {
    return { ok: true, envelope: decodeEnvelope(payload, options) };
  } catch (error) {
    const typed = error instanceof ProtocolError
      ? error
      : new MalformedCborError("undecodable frame", { cause: error });
    return { ok: false, error: typed };
  }
}

/** Encodes any value as one CBOR payload per chunk. */
export class CborEncoderStream<T = unknown> extends TransformStream<T, Uint8Array> {
  /** Creates the stream. */
  constructor() {
    super({ transform: (value, controller) => controller.enqueue(encodeCbor(value)) });
  }
}

/**
 * Decodes one CBOR value per payload, with the structural guard; errors the stream with a
 * {@link ProtocolError} on the first bad payload.
 */
export class CborDecoderStream<T = unknown> extends TransformStream<Uint8Array, T> {
  /**
   * Creates the stream.
   * @param options Decoding limits.
   */
  constructor(options?: CborDecoderStreamOptions) {
    const maxDepth = options?.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH;
    super({
      transform(payload, controller) {
        controller.enqueue(decodeCheckedCbor(payload, maxDepth) as T);
      },
    });
  }
}

/** Encodes envelopes as CBOR payloads (absent optional fields left out). */
export class EnvelopeEncoderStream extends TransformStream<Envelope, Uint8Array> {
  /** Creates the stream. */
  constructor() {
    super({ transform: (envelope, controller) => controller.enqueue(encodeEnvelope(envelope)) });
  }
}

/**
 * Decodes payloads into envelopes (shape and version checked, body not yet validated).
 * Never errors on bad input: each refused payload becomes `{ ok: false, error }`.
 */
export class EnvelopeDecoderStream extends TransformStream<Uint8Array, DecodedFrame> {
  /**
   * Creates the stream.
   * @param options Decoding limits.
   */
  constructor(options?: CborDecoderStreamOptions) {
    const decodeOptions = { maxDepth: options?.maxDepth ?? DEFAULT_MAX_CBOR_DEPTH };
    super({
      transform: (payload, controller) => controller.enqueue(decodeFrame(payload, decodeOptions)),
    });
  }
}
