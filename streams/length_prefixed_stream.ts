/**
 * Length-prefixed framing over a byte stream.
 *
 * Each frame is a 4-byte big-endian unsigned length followed by that many payload bytes.
 * The decoder reassembles frames from arbitrary chunk boundaries (a prefix split across
 * chunks, many frames in one chunk, a frame spread over many chunks) and refuses, before
 * buffering anything, a prefix that announces more than `maxFrameBytes`; below that limit it
 * still holds only the bytes that arrived: a peer must not be able to make us allocate memory
 * by lying about a length.
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
 *
 * A partial frame holds only the bytes that actually arrived (the pieces, joined once the
 * frame is complete), never its declared length: a prefix is a claim, not a reason to
 * allocate. So a thousand connections that each announce 1 MiB and send ten bytes cost ten
 * bytes each, not a gigabyte.
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
    /** Declared length of the frame being read; -1 while reading a prefix. */
    let length = -1;
    /** Pieces of the frame being read (views of input chunks) and their total size. */
    let pieces: Uint8Array[] = [];
    let filled = 0;

    const join = (): Uint8Array => {
      if (pieces.length === 1) return pieces[0];
      const out = new Uint8Array(filled);
      let offset = 0;
      for (const piece of pieces) {
        out.set(piece, offset);
        offset += piece.byteLength;
      }
      return out;
    };

    super({
      transform(chunk, controller) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          if (length < 0) {
            if (headerFilled === 0 && chunk.byteLength - offset >= LENGTH_PREFIX_BYTES) {
              // Fast path: the whole prefix is in this chunk.
              length = new DataView(chunk.buffer, chunk.byteOffset + offset).getUint32(0);
              offset += LENGTH_PREFIX_BYTES;
            } else {
              const take = Math.min(LENGTH_PREFIX_BYTES - headerFilled, chunk.byteLength - offset);
              header.set(chunk.subarray(offset, offset + take), headerFilled);
              headerFilled += take;
              offset += take;
              if (headerFilled < LENGTH_PREFIX_BYTES) return;
              headerFilled = 0;
              length = headerView.getUint32(0);
            }
            if (length > max) throw new FrameTooLargeError(length, max);
            if (chunk.byteLength - offset >= length) {
              // The whole payload is in this chunk: pass a view on.
              controller.enqueue(chunk.subarray(offset, offset + length));
              offset += length;
              length = -1;
            }
            continue;
          }
          const take = Math.min(length - filled, chunk.byteLength - offset);
          pieces.push(chunk.subarray(offset, offset + take));
          filled += take;
          offset += take;
          if (filled === length) {
            controller.enqueue(join());
            pieces = [];
            filled = 0;
            length = -1;
          }
        }
      },
      flush() {
        if (headerFilled > 0) throw new TruncatedFrameError(LENGTH_PREFIX_BYTES - headerFilled);
        if (length >= 0) throw new TruncatedFrameError(length - filled);
      },
    });
  }
}
