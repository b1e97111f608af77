/**
 * Length-prefixed framing over a byte stream.
 *
 * Each frame is a 4-byte big-endian unsigned length followed by that many payload bytes.
 * The decoder reassembles frames from arbitrary chunk boundaries (a prefix split across
 * chunks, many frames in one chunk, a frame spread over many chunks) and refuses, before
 * buffering anything, a prefix that announces more than `maxFrameBytes`; below that limit it
 * holds at most twice the bytes that arrived: a peer must not be able to make us allocate
 * memory by lying about a length, nor by cutting a frame into tiny pieces.
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

/** Smallest buffer a frame cut in many pieces is gathered in (it doubles from there). */
const MIN_FRAME_BUFFER_BYTES = 4096;
/** Pieces of a frame kept as views of the input before they are gathered in one buffer. */
const MAX_FRAME_PIECES = 64;
/**
 * A piece is kept as a view only while its backing buffer is at most this many times the piece:
 * a view pins its whole buffer, and a socket read is a view of a fresh 64 KiB buffer however
 * few bytes came, so one-byte reads kept as views held 64 KiB each. Two matches the documented
 * bound (a partial frame holds at most twice what arrived); a smaller piece is copied out.
 */
const MAX_PIECE_BACKING_RATIO = 2;
/**
 * Backing buffers up to this size are kept as views whatever the ratio: pinning them costs no
 * more than the view object itself (~200 bytes), so a copy would save nothing.
 */
const PIECE_VIEW_SLACK_BYTES = 256;

/**
 * `piece` itself when keeping it pins little more than its own bytes, else a copy of it (see
 * {@link MAX_PIECE_BACKING_RATIO}). A whole read kept as is costs no copy: the common case of a
 * frame spread over large reads.
 */
function keepable(piece: Uint8Array): Uint8Array {
  const backing = piece.buffer.byteLength;
  if (backing <= PIECE_VIEW_SLACK_BYTES || backing <= MAX_PIECE_BACKING_RATIO * piece.byteLength) {
    return piece;
  }
  return piece.slice();
}

/**
 * Splits bytes into frame payloads, synchronously: the framing of
 * {@link LengthPrefixedDecoderStream} without a stream around it, for a read loop that takes
 * every frame of a chunk in one go. Throws {@link FrameTooLargeError} as soon as a prefix
 * announces more than `maxFrameBytes`; {@link FrameSplitter.end} throws
 * {@link TruncatedFrameError} if the input stopped inside a frame. Payloads that arrive whole
 * inside one chunk are views of that chunk (no copy).
 *
 * A partial frame holds at most twice the bytes that actually arrived (up to 64 pieces, each a
 * view pinning at most twice its bytes or 256, else a copy; then a buffer that doubles from
 * 4 KiB, capped at the declared length; through {@link FrameSplitter.pushLent}, twice the
 * read that brought the frame's start when that read filled its buffer), never its declared
 * length: a prefix is a claim, not a reason to allocate. A piece much smaller than the buffer it is a view of is copied, since a
 * view keeps its whole buffer alive. So a thousand connections
 * that each announce 1 MiB and send ten bytes cost a few small pieces each, not a gigabyte, and
 * a frame sent a byte at a time costs its bytes, whatever size of buffer each byte came in.
 */
export class FrameSplitter {
  readonly #max: number;
  readonly #header = new Uint8Array(LENGTH_PREFIX_BYTES);
  readonly #headerView = new DataView(this.#header.buffer);
  #headerFilled = 0;
  /** Declared length of the frame being read; -1 while reading a prefix. */
  #length = -1;
  /**
   * The frame being read, `#filled` bytes so far: views of the input chunks (copies of those
   * that would pin a much larger buffer, see {@link keepable}) while there are at most
   * {@link MAX_FRAME_PIECES} of them (a frame in a few reads is copied once, when it is whole),
   * then gathered in `#buffer`, which doubles as bytes come (capped at the declared
   * length). Views alone cost ~200 bytes of objects per piece: a peer sending a 1 MiB frame a
   * byte at a time made one connection hold ~200 MB (a review measured it at stop 33); gathered
   * from the start, a frame in 64 KiB reads was copied about twice over as the buffer grew.
   */
  #pieces: Uint8Array[] = [];
  #buffer = new Uint8Array(0);
  #filled = 0;

  /**
   * Creates a splitter.
   * @param options Framing limits.
   */
  constructor(options?: LengthPrefixedStreamOptions) {
    this.#max = resolveMax(options);
  }

  /**
   * Bytes held for the frame being read (at most twice what arrived of it): the gathered buffer
   * and, for each piece, the whole buffer it is a view of, since that is what it keeps alive.
   */
  get heldBytes(): number {
    return this.#buffer.byteLength + this.#pieces.reduce((n, p) => n + p.buffer.byteLength, 0);
  }

  /**
   * Whether a frame has begun and is not whole yet (some of its prefix or payload arrived): a
   * connection gives such a frame a deadline (`frameTimeoutMs`).
   */
  get midFrame(): boolean {
    return this.#length >= 0 || this.#headerFilled > 0;
  }

  /** Feed a chunk; `onFrame` gets each payload completed by it, in order. */
  push(chunk: Uint8Array, onFrame: (payload: Uint8Array) => void): void {
    this.#push(chunk, onFrame, false);
  }

  /**
   * Feed a chunk that is only lent for this call (a read buffer the caller reuses): nothing of
   * it is kept, a frame it leaves unfinished is gathered into the splitter's own buffer, and a
   * payload that `onFrame` gets whole from it is a view of it, valid only during that call
   * (copy what must outlive it). A frame completed from gathered bytes is the splitter's own.
   */
  pushLent(chunk: Uint8Array, onFrame: (payload: Uint8Array) => void): void {
    this.#push(chunk, onFrame, true);
  }

  #push(chunk: Uint8Array, onFrame: (payload: Uint8Array) => void, lent: boolean): void {
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
      const piece = chunk.subarray(offset, offset + take);
      if (!lent && this.#buffer.byteLength === 0 && this.#pieces.length < MAX_FRAME_PIECES) {
        // The piece that completes the frame is joined into the payload below, before this
        // returns: only a piece that waits for more input can pin its buffer.
        const completes = this.#filled + take === this.#length;
        this.#pieces.push(completes ? piece : keepable(piece));
      } else {
        // A lent read that filled its whole buffer: the peer is sending in bulk, and that many
        // bytes did arrive, so the frame's buffer may start at twice that (see #gather).
        const fullRead = lent && chunk.byteLength === chunk.buffer.byteLength;
        this.#gather(piece, fullRead ? 2 * chunk.byteLength : 0);
      }
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#length) {
        const payload = this.#payload();
        this.#pieces = [];
        this.#buffer = new Uint8Array(0);
        this.#filled = 0;
        this.#length = -1;
        onFrame(payload);
      }
    }
  }

  /**
   * Append `piece` to the gathered bytes (the views so far first), growing the buffer.
   * `floorBytes` is twice what the read that brought the piece delivered when it filled its
   * whole (lent) buffer, else 0: the buffer may start that large, as that many bytes did
   * arrive, so a frame a little larger than one read (a 256 KiB storage chunk through a
   * 256 KiB read buffer) gets its one buffer at once wherever it starts in the read, instead
   * of twice its first piece and then a copy into a larger one.
   */
  #gather(piece: Uint8Array, floorBytes: number): void {
    let at = this.#filled - this.#pieces.reduce((n, p) => n + p.byteLength, 0); // gathered
    const held = this.#filled + piece.byteLength;
    if (held > this.#buffer.byteLength) {
      // Twice what arrived, so the buffer doubles as bytes come; a frame whose first read
      // brought half of it or more gets its whole length at once (one buffer, one copy each).
      const room = Math.min(this.#length, Math.max(2 * held, MIN_FRAME_BUFFER_BYTES, floorBytes));
      const grown = new Uint8Array(room);
      grown.set(this.#buffer.subarray(0, at));
      this.#buffer = grown;
    }
    for (const view of this.#pieces) {
      this.#buffer.set(view, at);
      at += view.byteLength;
    }
    this.#pieces = [];
    this.#buffer.set(piece, at);
  }

  /** The whole frame: the one view, the views joined, or the gathered bytes. */
  #payload(): Uint8Array {
    if (this.#buffer.byteLength > 0) return this.#buffer.subarray(0, this.#filled);
    if (this.#pieces.length === 1) return this.#pieces[0];
    const out = new Uint8Array(this.#filled);
    let at = 0;
    for (const view of this.#pieces) {
      out.set(view, at);
      at += view.byteLength;
    }
    return out;
  }

  /** The input ended: throws {@link TruncatedFrameError} if it ended inside a frame. */
  end(): void {
    if (this.#headerFilled > 0) {
      throw new TruncatedFrameError(LENGTH_PREFIX_BYTES - this.#headerFilled);
    }
    if (this.#length >= 0) throw new TruncatedFrameError(this.#length - this.#filled);
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
