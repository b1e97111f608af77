/**
 * The outbound side of a `Connection`: one FIFO of frames with one byte budget.
 *
 * Every frame the connection sends — requests, replies, stream chunks, credits, pongs, errors
 * — is counted in `queuedBytes` from the moment it is handed to the framing writer until the
 * transport has taken it. Two ways in:
 *
 * - {@link WriteQueue.send} waits (in FIFO order) until the frames fit in the budget. Replies,
 *   chunks, requests and stream control use it; the caller is never the read loop, or does
 *   not await it, so the read loop never blocks on the writer.
 * - {@link WriteQueue.offer} queues a frame only if it fits now and nobody is waiting, else
 *   drops it and counts the drop: pongs, keepalive pings and error replies are best effort,
 *   so a peer that sends and never reads cannot grow our memory by asking for answers.
 *
 * So `queuedBytes` never exceeds the budget, except by one frame when a frame larger than the
 * whole budget goes out alone. The queue also remembers when it last made progress, so the
 * keepalive can cut off a peer that stopped reading.
 *
 * A frame goes to the writer as one chunk, or, when its body carries a bulk byte string (a
 * storage chunk, {@link ZERO_COPY_MIN_BYTES} or more at the top of the body), as three chunks
 * back to back: the prefix and the CBOR up to the byte string, the caller's own buffer, and the
 * rest of the CBOR. The bulk bytes are not copied on the way (a socket write reads them
 * straight from the caller's buffer), so the caller lends that buffer: it must not change until
 * the send has resolved (a request: until it settled; after a timeout or cancel its frame may
 * still be on the way out, so a caller that reuses its buffer passes a copy).
 *
 * @module
 */
import { encodeCborAround } from "./cbor.ts";
import { encodeEnvelope, encodeEnvelopeWithHeadroom, type Envelope } from "./envelope.ts";
import type { ConnectionTimers } from "./connection_timers.ts";
import { ConnectionClosedError, FrameTooLargeError } from "./protocol_errors.ts";
import { LENGTH_PREFIX_BYTES } from "../streams/length_prefixed_stream.ts";

/**
 * A body's byte string this large or larger is sent from the caller's buffer, not copied into
 * the frame: a copy of 256 KiB (with a fresh, zeroed buffer for it) costs far more than the two
 * extra small writes that send the frame around it; below 64 KiB the copy is the cheaper.
 */
export const ZERO_COPY_MIN_BYTES = 64 * 1024;

/** Options of a {@link WriteQueue}. */
export interface WriteQueueOptions {
  /** The byte budget (frames queued for the transport). */
  maxQueuedBytes: number;
  /** Largest payload of one frame. */
  maxFrameBytes: number;
  /** The clock for progress tracking. */
  timers: ConnectionTimers;
  /** Called whenever a frame is handed to the writer (for keepalive). */
  onWrite?: () => void;
  /**
   * Bytes the transport has taken so far, counted within chunks (`ByteDuplex.bytesWritten`):
   * growth by {@link MIN_PARTIAL_PROGRESS_BYTES} or more counts as progress, so a slow link
   * taking a large chunk piece by piece is not taken for a peer that stopped reading.
   */
  transportBytes?: () => number | undefined;
  /**
   * Called with every change of the queued bytes (+ when a frame is handed to the writer, −
   * when the transport takes it): the node's budget counts them (`wire_budget.ts`).
   */
  onQueued?: (delta: number) => void;
}

/**
 * Bytes the transport must take within a chunk, since progress was last seen, for that to count
 * as progress: any growth counted, a peer reading a few bytes per ping interval held a large
 * write (and its connection) open for good. 4 KiB per idle timeout (5 s by default) is under
 * 1 KB/s: a slow link keeps up, a trickle is cut off.
 */
export const MIN_PARTIAL_PROGRESS_BYTES = 4096;

interface Waiter {
  frames: Uint8Array[][];
  size: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** See the module doc. */
export class WriteQueue {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #maxQueuedBytes: number;
  readonly #maxFrameBytes: number;
  readonly #timers: ConnectionTimers;
  readonly #onWrite?: () => void;
  readonly #transportBytes?: () => number | undefined;
  readonly #onQueued?: (delta: number) => void;
  /** `transportBytes` when progress was last stamped. */
  #lastTransportBytes: number | undefined;
  #waiters: Waiter[] = [];
  #queuedBytes = 0;
  #lastProgress = 0;
  #closed: Error | null = null;
  /** Frames handed to the writer. */
  framesSent = 0;
  /** Best-effort frames dropped for lack of room. */
  dropped = 0;

  /**
   * @param writer The transport's writer (one frame per chunk).
   * @param options Budget, frame limit, clock.
   */
  constructor(writer: WritableStreamDefaultWriter<Uint8Array>, options: WriteQueueOptions) {
    this.#writer = writer;
    this.#maxQueuedBytes = options.maxQueuedBytes;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#timers = options.timers;
    this.#onWrite = options.onWrite;
    this.#transportBytes = options.transportBytes;
    this.#onQueued = options.onQueued;
    this.#lastTransportBytes = this.#transportBytes?.();
  }

  /** Bytes handed to the writer and not yet taken by the transport. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Sends waiting for room. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Whether a reply may still wait for room: less than a budget's worth of sends waits. */
  get hasRoomForReply(): boolean {
    return this.hasRoom || this.waitingBytes < this.#maxQueuedBytes;
  }

  /** Bytes of the sends waiting for room (encoded, outside the budget until they go). */
  get waitingBytes(): number {
    return this.#waiters.reduce((n, w) => n + w.size, 0);
  }

  /** Whether a new frame of modest size would go out now (nobody waiting, budget not full). */
  get hasRoom(): boolean {
    return this.#waiters.length === 0 && this.#queuedBytes < this.#maxQueuedBytes;
  }

  /**
   * Milliseconds the queue has held bytes without the transport taking any (0 when empty).
   * Bytes taken within a chunk (`transportBytes`, {@link MIN_PARTIAL_PROGRESS_BYTES} or more
   * since last seen) are seen when this is asked (the keepalive asks at least once per ping
   * interval), so they count as progress from then.
   */
  stalledFor(now: number): number {
    if (this.#queuedBytes === 0) return 0;
    const taken = this.#transportBytes?.();
    if (
      taken !== undefined &&
      taken - (this.#lastTransportBytes ?? taken) >= MIN_PARTIAL_PROGRESS_BYTES
    ) {
      this.#lastTransportBytes = taken;
      this.#lastProgress = now;
    }
    return now - this.#lastProgress;
  }

  /**
   * Encode an envelope as one frame (length prefix and payload), in the chunks it is written
   * as (see the module doc); throws `FrameTooLargeError` (a local refusal: sending it would
   * make the peer close the whole connection).
   */
  encode(envelope: Envelope): Uint8Array[] {
    const bulk = bulkField(envelope.body);
    // Encoded behind room for the prefix, not framed after: a storage chunk is copied once, or
    // not at all when it goes out from its own buffer.
    const parts = bulk === undefined
      ? [encodeEnvelopeWithHeadroom(envelope, LENGTH_PREFIX_BYTES)]
      : encodeCborAround(
        (placeholder) =>
          encodeEnvelope({ ...envelope, body: { ...bulk.body, [bulk.key]: placeholder } }),
        bulk.bytes,
        LENGTH_PREFIX_BYTES,
      );
    const head = parts[0];
    let payloadBytes = -LENGTH_PREFIX_BYTES;
    for (const part of parts) payloadBytes += part.byteLength;
    if (payloadBytes > this.#maxFrameBytes) {
      throw new FrameTooLargeError(payloadBytes, this.#maxFrameBytes);
    }
    new DataView(head.buffer, head.byteOffset).setUint32(0, payloadBytes);
    return parts[2]?.byteLength === 0 ? parts.slice(0, 2) : parts;
  }

  /**
   * Queue envelopes back to back, waiting for room first. Resolves when the transport took
   * them; rejects if one is too large (nothing is sent then) or the connection closes.
   */
  send(envelopes: readonly Envelope[]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    let frames: Uint8Array[][];
    try {
      frames = envelopes.map((e) => this.encode(e));
    } catch (error) {
      return Promise.reject(error);
    }
    return this.sendFrames(frames);
  }

  /**
   * {@link send} for frames already encoded ({@link encode}): a caller that needs a frame's size
   * before it goes (a one-way message kept to be sent again, `_connection_notices.ts`).
   */
  sendFrames(frames: Uint8Array[][]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    const size = frames.reduce((n, f) => n + frameBytes(f), 0);
    if (this.#waiters.length === 0 && this.#fits(size)) return this.#write(frames);
    return new Promise((resolve, reject) => this.#waiters.push({ frames, size, resolve, reject }));
  }

  /** Queue one envelope if it fits now; otherwise drop it. Returns whether it was queued. */
  offer(envelope: Envelope): boolean {
    if (this.#closed) return false;
    const frame = this.encode(envelope);
    if (this.#waiters.length > 0 || !this.#fits(frameBytes(frame))) {
      this.dropped++;
      return false;
    }
    this.#write([frame]).catch(() => {
      // A failed write closes the connection through the pipe; nothing else to do here.
    });
    return true;
  }

  /** Refuse everything waiting and every later send with `error` (queued frames still flush). */
  close(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters = [];
  }

  #fits(size: number): boolean {
    // An empty queue takes any frame, so one larger than the whole budget is not stuck forever.
    return this.#queuedBytes === 0 || this.#queuedBytes + size <= this.#maxQueuedBytes;
  }

  #write(frames: Uint8Array[][]): Promise<void> {
    if (this.#queuedBytes === 0) this.#lastProgress = this.#timers.now();
    // Every chunk of every frame is handed over in this one turn, so no other frame's chunks
    // can come between them.
    const writes: Promise<void>[] = [];
    for (const frame of frames) {
      this.framesSent++;
      for (const part of frame) {
        const size = part.byteLength;
        this.#queuedBytes += size;
        this.#onQueued?.(size);
        writes.push(
          this.#writer.write(part).then(
            () => this.#taken(size),
            (error) => {
              this.#taken(size);
              throw new ConnectionClosedError("transport write failed", { cause: error });
            },
          ),
        );
      }
    }
    this.#onWrite?.();
    return writes.length === 1 ? writes[0] : Promise.all(writes).then(() => {});
  }

  #taken(size: number): void {
    this.#queuedBytes -= size;
    this.#onQueued?.(-size);
    this.#lastProgress = this.#timers.now();
    this.#lastTransportBytes = this.#transportBytes?.();
    while (this.#waiters.length > 0 && !this.#closed && this.#fits(this.#waiters[0].size)) {
      const waiter = this.#waiters.shift()!;
      this.#write(waiter.frames).then(waiter.resolve, waiter.reject);
    }
  }
}

/** The bytes of one encoded frame (its chunks, prefix included). */
export function frameBytes(frame: Uint8Array[]): number {
  let bytes = 0;
  for (const part of frame) bytes += part.byteLength;
  return bytes;
}

/**
 * The first byte string of {@link ZERO_COPY_MIN_BYTES} or more among the own fields of a plain
 * object body, if any (a class instance is left whole: cbor-x may encode it its own way).
 */
function bulkField(
  body: unknown,
): { body: Record<string, unknown>; key: string; bytes: Uint8Array } | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const proto = Object.getPrototypeOf(body);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const field = fields[key];
    if (field instanceof Uint8Array && field.byteLength >= ZERO_COPY_MIN_BYTES) {
      return { body: fields, key, bytes: field };
    }
  }
  return undefined;
}
