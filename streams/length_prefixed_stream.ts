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
 * One frame: the 4-byte length prefix and the payload, in one buffer (a copy: the caller may
 * reuse its payload). Throws {@link FrameTooLargeError} for a payload over `maxFrameBytes`.
 */
export function encodeFrame(payload: Uint8Array, maxFrameBytes: number): Uint8Array {
  if (payload.byteLength > maxFrameBytes) {
    throw new FrameTooLargeError(payload.byteLength, maxFrameBytes);
  }
  const frame = new Uint8Array(LENGTH_PREFIX_BYTES + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, LENGTH_PREFIX_BYTES);
  return frame;
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
      // One chunk per frame (a copy) rather than prefix + payload: half the chunks through
      // every downstream stage.
      transform: (payload, controller) => controller.enqueue(encodeFrame(payload, max)),
    });
  }
}

/**
 * Splits bytes into frame payloads, synchronously: the framing of
 * {@link LengthPrefixedDecoderStream} without a stream around it, for a read loop that takes
 * every frame of a chunk in one go. Throws {@link FrameTooLargeError} as soon as a prefix
 * announces more than `maxFrameBytes`; {@link FrameSplitter.end} throws
 * {@link TruncatedFrameError} if the input stopped inside a frame. Payloads that arrive whole
 * inside one chunk are views of that chunk (no copy).
 *
 * A partial frame holds only the bytes that actually arrived (the pieces, joined once the
 * frame is complete), never its declared length: a prefix is a claim, not a reason to
 * allocate. So a thousand connections that each announce 1 MiB and send ten bytes cost ten
 * bytes each, not a gigabyte.
 */
export class FrameSplitter {
  readonly #max: number;
  readonly #header = new Uint8Array(LENGTH_PREFIX_BYTES);
  readonly #headerView = new DataView(this.#header.buffer);
  #headerFilled = 0;
  /** Declared length of the frame being read; -1 while reading a prefix. */
  #length = -1;
  /** Pieces of the frame being read (views of input chunks) and their total size. */
  #pieces: Uint8Array[] = [];
  #filled = 0;

  /**
   * Creates a splitter.
   * @param options Framing limits.
   */
  constructor(options?: LengthPrefixedStreamOptions) {
    this.#max = resolveMax(options);
  }

  /** Feed a chunk; `onFrame` gets each payload completed by it, in order. */
  push(chunk: Uint8Array, onFrame: (payload: Uint8Array) => void): void {
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.#length < 0) {
        if (this.#headerFilled === 0 && chunk.byteLength - offset >= LENGTH_PREFIX_BYTES) {
          // Fast path: the whole prefix is in this chunk.
          this.#length = new DataView(chunk.buffer, chunk.byteOffset + offset).getUint32(0);
          offset += LENGTH_PREFIX_BYTES;
        } else {
          const take = Math.min(
            LENGTH_PREFIX_BYTES - this.#headerFilled,
            chunk.byteLength - offset,
          );
          this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
          this.#headerFilled += take;
          offset += take;
          if (this.#headerFilled < LENGTH_PREFIX_BYTES) return;
          this.#headerFilled = 0;
          this.#length = this.#headerView.getUint32(0);
        }
        if (this.#length > this.#max) throw new FrameTooLargeError(this.#length, this.#max);
        if (chunk.byteLength - offset >= this.#length) {
          // The whole payload is in this chunk: pass a view on.
          const payload = chunk.subarray(offset, offset + this.#length);
          offset += this.#length;
          this.#length = -1;
          onFrame(payload);
        }
        continue;
      }
      const take = Math.min(this.#length - this.#filled, chunk.byteLength - offset);
      this.#pieces.push(chunk.subarray(offset, offset + take));
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#length) {
        const payload = this.#join();
        this.#pieces = [];
        this.#filled = 0;
        this.#length = -1;
        onFrame(payload);
      }
    }
  }

  /** The input ended: throws {@link TruncatedFrameError} if it ended inside a frame. */
  end(): void {
    if (this.#headerFilled > 0) {
      throw new TruncatedFrameError(LENGTH_PREFIX_BYTES - this.#headerFilled);
    }
    if (this.#length >= 0) throw new TruncatedFrameError(this.#length - this.#filled);
  }

  #join(): Uint8Array {
    if (this.#pieces.length === 1) return this.#pieces[0];
    const out = new Uint8Array(this.#filled);
    let offset = 0;
    for (const piece of this.#pieces) {
      out.set(piece, offset);
      offset += piece.byteLength;
    }
    return out;
  }
}

/**
 * Splits a byte stream into frame payloads (see {@link FrameSplitter}): errors with
 * {@link FrameTooLargeError} as soon as a prefix announces more than `maxFrameBytes`, and
 * with {@link TruncatedFrameError} if the input ends inside a frame.
 */
export class LengthPrefixedDecoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates the stream.
   * @param options Framing limits.
   */
  constructor(options?: LengthPrefixedStreamOptions) {
    const splitter = new FrameSplitter(options);
    super({
      transform: (chunk, controller) => splitter.push(chunk, (p) => controller.enqueue(p)),
      flush: () => splitter.end(),
    });
  }
}
