/**
 * What crosses the simulated wire, counted where a real network would see it: bytes on each
 * in-memory link (a {@link meteredDuplexPair}) and frames on each `Connection` (its own
 * `stats()`). A {@link TrafficMeter} sums both over every link of a simulation; two
 * {@link TrafficSnapshot}s taken around an event give that event's traffic.
 *
 * @example
 * ```ts
 * import { TrafficMeter } from "./traffic_meter.ts";
 * const meter = new TrafficMeter();
 * const [a, b] = meter.duplexPair();
 * const before = meter.snapshot();
 * await a.writable.getWriter().write(new Uint8Array(10));
 * meter.snapshot().bytes - before.bytes; // 10
 * ```
 *
 * @module
 */
import type { Connection } from "../../protocols/connection.ts";
import {
  type ByteDuplex,
  type MemoryDuplexOptions,
  memoryDuplexPair,
} from "../../protocols/memory_duplex.ts";

/** Totals over every link and connection a meter knows, at one moment. */
export interface TrafficSnapshot {
  /** Bytes written to links, both directions. */
  bytes: number;
  /** Frames connections sent (each frame is sent once and received once). */
  framesSent: number;
  /** Frames connections received. */
  framesReceived: number;
  /** Requests sent and not yet answered, over all connections. */
  pendingRequests: number;
  /** Requests received and being handled, over all connections. */
  inboundRequests: number;
}

/** The difference `after − before` of two snapshots (frames: those sent in between). */
export interface Traffic {
  /** Bytes on the wire. */
  bytes: number;
  /** Frames (messages: requests, replies, notifications, stream chunks). */
  frames: number;
}

/** Sums the traffic of every link and connection of a simulation. */
export class TrafficMeter {
  #bytes = 0;
  readonly #connections = new Set<Connection>();
  /** Frames of connections that closed (their stats are gone with them). */
  #closedSent = 0;
  #closedReceived = 0;

  /**
   * A connected pair of in-memory byte duplexes whose writes this meter counts.
   * @param options The pair's buffering (see `memoryDuplexPair`).
   */
  duplexPair(options?: MemoryDuplexOptions): [ByteDuplex, ByteDuplex] {
    const [a, b] = memoryDuplexPair(options);
    return [this.#metered(a), this.#metered(b)];
  }

  /** Count `connection`'s frames from now on (until it closes, and its totals after). */
  track(connection: Connection): void {
    this.#connections.add(connection);
    connection.closed.then(() => {
      if (!this.#connections.delete(connection)) return;
      const { framesSent, framesReceived } = connection.stats();
      this.#closedSent += framesSent;
      this.#closedReceived += framesReceived;
    });
  }

  /** The totals now. */
  snapshot(): TrafficSnapshot {
    const s: TrafficSnapshot = {
      bytes: this.#bytes,
      framesSent: this.#closedSent,
      framesReceived: this.#closedReceived,
      pendingRequests: 0,
      inboundRequests: 0,
    };
    for (const connection of this.#connections) {
      const stats = connection.stats();
      s.framesSent += stats.framesSent;
      s.framesReceived += stats.framesReceived;
      s.pendingRequests += stats.pendingRequests;
      s.inboundRequests += stats.inboundRequests;
    }
    return s;
  }

  /** Traffic between two snapshots. */
  static between(before: TrafficSnapshot, after: TrafficSnapshot): Traffic {
    return { bytes: after.bytes - before.bytes, frames: after.framesSent - before.framesSent };
  }

  #metered(end: ByteDuplex): ByteDuplex {
    const writer = end.writable.getWriter();
    // Writes pass straight to the pair's own writer: its backpressure is the link's (the
    // outer stream calls `write` again only once the previous write resolved).
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        this.#bytes += chunk.byteLength;
        return writer.write(chunk);
      },
      close: () => writer.close(),
      abort: (reason) => writer.abort(reason),
    }, { highWaterMark: 1 });
    return { readable: end.readable, writable };
  }
}

/**
 * Whether every frame sent has been received and every request answered: nothing is in flight
 * on the wire. (An actor may still hold a message that will cause more; see `settle`.)
 */
export function wireIdle(s: TrafficSnapshot): boolean {
  return s.framesSent === s.framesReceived && s.pendingRequests === 0 &&
    s.inboundRequests === 0;
}
