/** A deterministic large file as a stream, generated chunk by chunk (never all in memory). */
import { pseudoRandomBytes } from "./_helpers.ts";

const PIECE = 256 * 1024;

/** `size` bytes; piece i is pseudoRandomBytes(PIECE, i + 1). */
export function generatedFile(size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  let index = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= size) return controller.close();
      const n = Math.min(PIECE, size - offset);
      controller.enqueue(pseudoRandomBytes(n, ++index));
      offset += n;
    },
  }, { highWaterMark: 0 });
}
