/**
 * Length-prefixed framing over a byte stream.
 *
 * Each frame is a 4-byte big-endian unsigned length followed by that many payload bytes.
 * The decoder reassembles frames from arbitrary chunk boundaries (a prefix split across
 * chunks, many frames in one chunk, a frame spread over many chunks) and refuses, before
 * buffering anything, a prefix that announces more than `maxFrameBytes`: a peer must not be
 * able to make us allocate memory by lying about a length.
 *
 * @example
 * ```ts
 * import { LengthPrefixedDecoderStream, LengthPrefixedEncoderStream } from "./length_prefixed_stream.ts";
 * const frames = ReadableStream.from([new Uint8Array([1, 2, 3])])
 *   .pipeThrough(new LengthPrefixedEncoderStream())
 *   .pipeThrough(new LengthPrefixedDecoderStream());
 * for await (const frame of frames) console.log(frame); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */
import { FrameTooLargeError, TruncatedFrameError } from "../protocols/protocol_errors.ts";

/** Bytes of the length prefix: a uint32, so a frame can never exceed 4 GiB - 1 by construction. */
export const LENGTH_PREFIX_BYTES = 4;

/**
 * Default maximum payload size of one frame: 1 MiB. Large enough for any control message, a
 * token chunk or a 256 KiB storage chunk with its envelope, small enough that a hostile or
 * buggy peer cannot make a node buffer much per connection. Bigger payloads are streamed as
 * several frames.
 */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 20;

/** Largest value a uint32 prefix can carry. */
const MAX_PREFIX_VALUE = 0xffff_ffff;

/** Options of the framing streams. */
export interface LengthPrefixedStreamOptions {
  /** Maximum payload bytes of one frame (default {@link DEFAULT_MAX_FRAME_BYTES}). */
  maxFrameBytes?: number;
}

function resolveMax(options?: LengthPrefixedStreamOptions): number {
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isInteger(max) || max < 0 || max > MAX_PREFIX_VALUE) {
    throw new RangeError(`maxFrameBytes must be an integer in [0, ${MAX_PREFIX_VALUE}]`);
  }
  return max;
}

/**
 * Prefixes each payload with its length. A payload over `maxFrameBytes` errors the stream
 * with {@link FrameTooLargeError} (the peer would refuse it anyway).
 */
export class LengthPrefixedEncoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates the stream.
   * @param options Framing limits.
   */
  constructor(options?: LengthPrefixedStreamOptions) {
    const max = resolveMax(options);
    super({
      transform(payload, controller) {
        if (payload.byteLength > max) throw new FrameTooLargeError(payload.byteLength, max);
        // One chunk per frame (a copy) rather than prefix + payload: half the chunks through
        // every downstream stage, and the caller may reuse its payload buffer afterwards.
        const frame = new Uint8Array(LENGTH_PREFIX_BYTES + payload.byteLength);
        new DataView(frame.buffer).setUint32(0, payload.byteLength);
        frame.set(payload, LENGTH_PREFIX_BYTES);
        controller.enqueue(frame);
      },
    });
  }
}

/**
 * Splits a byte stream into frame payloads. Errors with {@link FrameTooLargeError} as soon as
 * a prefix announces more than `maxFrameBytes`, and with {@link TruncatedFrameError} if the
 * input ends inside a frame. Payloads that arrive whole inside one input chunk are passed on
 * as views of that chunk (no copy).
 */
export class LengthPrefixedDecoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates the stream.
   * @param options Framing limits.
   */
  constructor(options?: LengthPrefixedStreamOptions) {
    const max = resolveMax(options);
    const header = new Uint8Array(LENGTH_PREFIX_BYTES);
    const headerView = new DataView(header.buffer);
    let headerFilled = 0;
    let body: Uint8Array | null = null;
    let bodyFilled = 0;

    super({
      transform(chunk, controller) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          if (body === null) {
            if (headerFilled === 0 && chunk.byteLength - offset >= LENGTH_PREFIX_BYTES) {
              // Fast path: the whole prefix is in this chunk.
              const length = new DataView(chunk.buffer, chunk.byteOffset + offset)
                .getUint32(0);
              offset += LENGTH_PREFIX_BYTES;
              if (length > max) throw new FrameTooLargeError(length, max);
              if (chunk.byteLength - offset >= length) {
                controller.enqueue(chunk.subarray(offset, offset + length));
                offset += length;
                continue;
              }
              body = new Uint8Array(length);
              bodyFilled = 0;
              continue;
            }
            const take = Math.min(LENGTH_PREFIX_BYTES - headerFilled, chunk.byteLength - offset);
            header.set(chunk.subarray(offset, offset + take), headerFilled);
            headerFilled += take;
            offset += take;
            if (headerFilled < LENGTH_PREFIX_BYTES) return;
            headerFilled = 0;
            const length = headerView.getUint32(0);
            if (length > max) throw new FrameTooLargeError(length, max);
            body = new Uint8Array(length);
            bodyFilled = 0;
            if (length === 0) {
              controller.enqueue(body);
              body = null;
            }
            continue;
          }
          const take = Math.min(body.byteLength - bodyFilled, chunk.byteLength - offset);
          body.set(chunk.subarray(offset, offset + take), bodyFilled);
          bodyFilled += take;
          offset += take;
          if (bodyFilled === body.byteLength) {
            controller.enqueue(body);
            body = null;
          }
        }
      },
      flush() {
        if (headerFilled > 0) throw new TruncatedFrameError(LENGTH_PREFIX_BYTES - headerFilled);
        if (body !== null) throw new TruncatedFrameError(body.byteLength - bodyFilled);
      },
    });
  }
}
