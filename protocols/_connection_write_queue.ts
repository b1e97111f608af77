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
 * @module
 */
import { encodeEnvelopeWithHeadroom, type Envelope } from "./envelope.ts";
import type { ConnectionTimers } from "./connection_timers.ts";
import { ConnectionClosedError, FrameTooLargeError } from "./protocol_errors.ts";
import { LENGTH_PREFIX_BYTES } from "../streams/length_prefixed_stream.ts";

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
}

interface Waiter {
  payloads: Uint8Array[];
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

  /** Milliseconds the queue has held bytes without the transport taking any (0 when empty). */
  stalledFor(now: number): number {
    return this.#queuedBytes === 0 ? 0 : now - this.#lastProgress;
  }

  /**
   * Encode an envelope as one frame (length prefix and payload); throws
   * `FrameTooLargeError` (a local refusal: sending it would make the peer close the
   * whole connection).
   */
  encode(envelope: Envelope): Uint8Array {
    // Encoded behind room for the prefix, not framed after: a storage chunk is copied once.
    const frame = encodeEnvelopeWithHeadroom(envelope, LENGTH_PREFIX_BYTES);
    const payloadBytes = frame.byteLength - LENGTH_PREFIX_BYTES;
    if (payloadBytes > this.#maxFrameBytes) {
      throw new FrameTooLargeError(payloadBytes, this.#maxFrameBytes);
    }
    new DataView(frame.buffer, frame.byteOffset).setUint32(0, payloadBytes);
    return frame;
  }

  /**
   * Queue envelopes back to back, waiting for room first. Resolves when the transport took
   * them; rejects if one is too large (nothing is sent then) or the connection closes.
   */
  send(envelopes: readonly Envelope[]): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    let payloads: Uint8Array[];
    try {
      payloads = envelopes.map((e) => this.encode(e));
    } catch (error) {
      return Promise.reject(error);
    }
    const size = payloads.reduce((n, p) => n + p.byteLength, 0);
    if (this.#waiters.length === 0 && this.#fits(size)) return this.#write(payloads);
    return new Promise((resolve, reject) =>
      this.#waiters.push({ payloads, size, resolve, reject })
    );
  }

  /** Queue one envelope if it fits now; otherwise drop it. Returns whether it was queued. */
  offer(envelope: Envelope): boolean {
    if (this.#closed) return false;
    const payload = this.encode(envelope);
    if (this.#waiters.length > 0 || !this.#fits(payload.byteLength)) {
      this.dropped++;
      return false;
    }
    this.#write([payload]).catch(() => {
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

  #write(payloads: Uint8Array[]): Promise<void> {
    if (this.#queuedBytes === 0) this.#lastProgress = this.#timers.now();
    const writes = payloads.map((payload) => {
      const size = payload.byteLength;
      this.#queuedBytes += size;
      this.framesSent++;
      return this.#writer.write(payload).then(
        () => this.#taken(size),
        (error) => {
          this.#taken(size);
          throw new ConnectionClosedError("transport write failed", { cause: error });
        },
      );
    });
    this.#onWrite?.();
    return writes.length === 1 ? writes[0] : Promise.all(writes).then(() => {});
  }

  #taken(size: number): void {
    this.#queuedBytes -= size;
    this.#lastProgress = this.#timers.now();
    while (this.#waiters.length > 0 && !this.#closed && this.#fits(this.#waiters[0].size)) {
      const waiter = this.#waiters.shift()!;
      this.#write(waiter.payloads).then(waiter.resolve, waiter.reject);
    }
  }
}
