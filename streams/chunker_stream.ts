/**
 * Re-chunks a byte stream into fixed-size pieces: every output chunk is exactly `chunkSize`
 * bytes except the last, which holds the remainder (and an empty input yields nothing). Storage
 * uses it so a file's chunk boundaries, and therefore its chunk CIDs, do not depend on how the
 * source happened to split its reads.
 *
 * Memory stays bounded by one chunk: input is copied into a single buffer that is handed off
 * when full, so a 10 GB stream never needs more than `chunkSize` bytes of buffering here.
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
        // Fast path: a piece that is exactly one chunk and nothing is buffered passes through
        // without a copy (common when the source already reads in chunk-sized blocks).
        if (filled === 0 && piece.length === chunkSize) {
          controller.enqueue(piece);
          return;
        }
        while (offset < piece.length) {
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
