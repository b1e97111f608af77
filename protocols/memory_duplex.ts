/**
 * In-memory byte duplex pairs, for tests and single-process simulations of many nodes.
 *
 * What one end writes, the other reads, through a bounded queue: when `highWaterMarkBytes`
 * are waiting unread, the writer's `ready` stays pending (backpressure), exactly as a socket
 * whose peer stops reading. Closing one end's writable ends the other end's readable;
 * aborting it errors the other end's readable.
 *
 * Chunks are passed by reference (no copy): a writer must not modify a buffer after writing
 * it. `Connection` and the framing streams never do.
 *
 * @example
 * ```ts
 * import { memoryDuplexPair } from "./memory_duplex.ts";
 * const [a, b] = memoryDuplexPair();
 * const writer = a.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2, 3]));
 * const { value } = await b.readable.getReader().read(); // Uint8Array [1, 2, 3]
 * ```
 *
 * @module
 */

/** A bidirectional byte stream: what a transport (TCP, WebSocket, swarm socket) gives you. */
export interface ByteDuplex {
  /** Bytes from the peer. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  writable: WritableStream<Uint8Array>;
  /**
   * Bytes the transport has taken so far, if it counts them (a socket does, per socket write).
   * A write of a large chunk resolves only once all of it is taken, which on a slow link can
   * outlast the idle timeout; a `Connection` counts growth of this number (a few KiB at a time)
   * as the peer reading.
   */
  readonly bytesWritten?: number;
}

/** Options of {@link memoryDuplexPair}. */
export interface MemoryDuplexOptions {
  /**
   * Unread bytes buffered per direction before writers see backpressure (default 64 KiB, the
   * order of a socket buffer: enough to keep small messages flowing, small enough that a
   * stalled reader is felt quickly).
   */
  highWaterMarkBytes?: number;
}

/** Default per-direction buffer, see {@link MemoryDuplexOptions.highWaterMarkBytes}. */
export const DEFAULT_MEMORY_DUPLEX_HIGH_WATER_MARK = 64 * 1024;

function pipe(highWaterMark: number): TransformStream<Uint8Array, Uint8Array> {
  const size = (chunk: Uint8Array) => chunk.byteLength;
  // Split the budget between the two queues of the TransformStream so the total unread bytes
  // per direction stays at about highWaterMark.
  const half = Math.max(1, Math.floor(highWaterMark / 2));
  return new TransformStream<Uint8Array, Uint8Array>(
    {},
    { highWaterMark: half, size },
    { highWaterMark: half, size },
  );
}

/**
 * Two connected byte duplexes: bytes written to `a.writable` come out of `b.readable` and
 * vice versa.
 */
export function memoryDuplexPair(options?: MemoryDuplexOptions): [ByteDuplex, ByteDuplex] {
  const highWaterMark = options?.highWaterMarkBytes ?? DEFAULT_MEMORY_DUPLEX_HIGH_WATER_MARK;
  if (!(highWaterMark > 0)) throw new RangeError("highWaterMarkBytes must be positive");
  const aToB = pipe(highWaterMark);
  const bToA = pipe(highWaterMark);
  return [
    { readable: bToA.readable, writable: aToB.writable },
    { readable: aToB.readable, writable: bToA.writable },
  ];
}
