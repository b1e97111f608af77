/**
 * A `Connection` over a byte-stream transport, as a socket gives one (a `type: "bytes"`
 * readable, read with a BYOB reader into the connection's reused buffer), and on the other end a
 * hand-driven {@link RawPeer}: for red-team tests that must go through the read loop a real
 * socket goes through, on a fake clock; and {@link byteStreamOf}, any stream served as such a
 * transport.
 *
 * @module
 */
import { Connection, type ConnectionOptions } from "../../protocols/connection.ts";
import { type ByteDuplex, memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type RawPeer, rawPeer } from "./_helpers.ts";

/** Options of {@link connectionOverByteStream}. */
export interface ByteStreamPeerOptions {
  /** Most bytes one read of the transport brings (a socket read's size); default 64 KiB. */
  readBytes?: number;
  /** Unread bytes buffered per direction before the writer waits (default 64 KiB). */
  highWaterMarkBytes?: number;
}

/** A connection over a byte stream, and the raw peer on its other end. */
export interface ByteStreamPeer {
  /** The connection under test (liveness off unless its options turn it on). */
  connection: Connection;
  /** The hostile (or honest) peer, writing raw frames and bytes. */
  peer: RawPeer;
  /** Reads the transport served to the connection so far (each a BYOB read). */
  reads(): number;
}

/**
 * A {@link Connection} whose transport is a byte stream (see the module doc) and a raw peer.
 * @param options The connection's options (keepalive and idle timeout default to off).
 * @param transport The transport's read size and buffer.
 */
export function connectionOverByteStream(
  options?: ConnectionOptions,
  transport?: ByteStreamPeerOptions,
): ByteStreamPeer {
  const [a, b] = memoryDuplexPair({ highWaterMarkBytes: transport?.highWaterMarkBytes });
  const wrapped = byteStreamOf(a.readable, transport?.readBytes ?? 64 * 1024);
  const duplex: ByteDuplex = {
    readable: wrapped.readable,
    writable: a.writable,
    get bytesWritten() {
      return a.bytesWritten;
    },
  };
  const connection = new Connection(duplex, { keepaliveMs: 0, idleTimeoutMs: 0, ...options });
  return { connection, peer: rawPeer(b), reads: wrapped.byobReads };
}

/**
 * `source` as a byte stream whose reads bring at most `readBytes` each: a BYOB read gets them
 * copied into its own buffer, as a socket's read does; a default read gets a chunk of its own.
 */
export function byteStreamOf(
  source: ReadableStream<Uint8Array>,
  readBytes: number,
): { readable: ReadableStream<Uint8Array>; byobReads: () => number; offered: number[] } {
  const reader = source.getReader();
  let pending: Uint8Array = new Uint8Array(0);
  let byobReads = 0;
  /** The size of each buffer a BYOB read offered, in order. */
  const offered: number[] = [];
  const readable = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      if (controller.byobRequest) {
        byobReads++;
        offered.push(controller.byobRequest.view!.byteLength);
      }
      while (pending.byteLength === 0) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          controller.byobRequest?.respond(0);
          return;
        }
        pending = value;
      }
      const request = controller.byobRequest;
      if (request?.view) {
        const { buffer, byteOffset, byteLength } = request.view;
        const n = Math.min(readBytes, byteLength, pending.byteLength);
        new Uint8Array(buffer, byteOffset, n).set(pending.subarray(0, n));
        pending = pending.subarray(n);
        request.respond(n);
      } else {
        const n = Math.min(readBytes, pending.byteLength);
        controller.enqueue(pending.slice(0, n));
        pending = pending.subarray(n);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { readable, byobReads: () => byobReads, offered };
}
