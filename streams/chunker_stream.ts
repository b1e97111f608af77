/**
 * Re-chunks a byte stream into fixed-size pieces: every output chunk is exactly `chunkSize`
 * bytes except the last, which holds the remainder (and an empty input yields nothing). Storage
 * uses it so a file's chunk boundaries, and therefore its chunk CIDs, do not depend on how the
 * source happened to split its reads.
 *
 * Memory stays bounded by one chunk: a chunk that straddles pieces is copied into a single
 * buffer that is handed off when full, and a chunk whole inside a piece is passed on as a view
 * of it, so a 10 GB stream never needs more than `chunkSize` bytes of buffering here, however
 * large its pieces.
 *
 * @module
 */

/** Options of {@link ChunkerStream}. */
export interface ChunkerStreamOptions {
  /** Output chunk size in bytes. Default {@link DEFAULT_CHUNK_SIZE} (256 KiB). */
  chunkSize?: number;
}

/**
 * Default chunk size, 256 KiB: large enough that per-chunk costs (a file, an fsync, a CID in the
 * manifest) are small against the bytes, small enough that a chunk is a cheap unit to
 * replicate, audit and retry.
 */
export const DEFAULT_CHUNK_SIZE = 256 * 1024;

/**
 * A `TransformStream` that turns arbitrary `Uint8Array` pieces into fixed-size chunks.
 *
 * @example
 * ```ts
 * import { ChunkerStream } from "./chunker_stream.ts";
 * const out = ReadableStream.from([new Uint8Array(5), new Uint8Array(4)])
 *   .pipeThrough(new ChunkerStream({ chunkSize: 4 }));
 * const sizes = (await Array.fromAsync(out)).map((c) => c.length); // [4, 4, 1]
 * ```
 */
export class ChunkerStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * A chunker emitting `options.chunkSize`-byte chunks.
   * @param options Chunk size.
   */
  constructor(options?: ChunkerStreamOptions) {
    const chunkSize = options?.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
      throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
    }
    let buffer: Uint8Array | null = null;
    let filled = 0;
    super({
      transform(piece, controller) {
        let offset = 0;
        while (offset < piece.length) {
          if (filled === 0 && piece.length - offset >= chunkSize) {
            // A whole chunk inside the piece passes on as a view of it, without a copy (a
            // source that reads in chunk-sized blocks costs nothing here): all the chunks of
            // one piece are queued at once, whatever the reader has asked for, so copying them
            // held a second copy of the piece (a 1 GB model put at once held 2 GB).
            controller.enqueue(piece.subarray(offset, offset + chunkSize));
            offset += chunkSize;
            continue;
          }
          buffer ??= new Uint8Array(chunkSize);
          const n = Math.min(chunkSize - filled, piece.length - offset);
          buffer.set(piece.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === chunkSize) {
            controller.enqueue(buffer);
            buffer = null;
            filled = 0;
          }
        }
      },
      flush(controller) {
        if (buffer && filled > 0) controller.enqueue(buffer.subarray(0, filled));
        buffer = null;
        filled = 0;
      },
    });
  }
}
