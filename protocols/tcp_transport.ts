/**
 * TCP transport: byte duplexes over `Deno.connect` / `Deno.listen`, for static peers given by
 * address, tests and small fixed deployments.
 *
 * The one thing it does beyond moving bytes is closing politely. Deno's `conn.readable` and
 * `conn.writable` close the whole socket when either ends; closing a socket that still has
 * unread bytes from the peer makes the kernel send RST, and a RST makes the peer's kernel
 * throw away what it had received and not yet read — in our tests, the last `error` frame a
 * `Connection` sends before closing was lost in 80 of 80 tries. So here:
 *
 * - closing the writable half-closes (`closeWrite()`: FIN after the last byte we wrote);
 * - cancelling the readable does not close the socket: it keeps reading (and discarding)
 *   until the peer's EOF, up to `lingerMs`, so the socket is never closed with unread bytes;
 * - the socket is closed once both halves are done. `close()` cuts it at once.
 *
 * Data is not encrypted: run the session handshake over it (`Connection.open`) to know who
 * the peer is, and keep it to trusted networks (tests bind 127.0.0.1 only).
 *
 * @example
 * ```ts
 * import { connectTcp, listenTcp } from "./tcp_transport.ts";
 * const server = listenTcp({ hostname: "127.0.0.1", port: 0 }, (duplex) => {
 *   duplex.readable.pipeTo(duplex.writable); // echo
 * });
 * const client = await connectTcp({ hostname: "127.0.0.1", port: server.addr.port });
 * const writer = client.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * for await (const bytes of client.readable) console.log(new TextDecoder().decode(bytes)); // hi
 * await client.closed;
 * await server.close();
 * ```
 *
 * @module
 */
import type { ByteDuplex } from "./memory_duplex.ts";

/** A TCP endpoint. */
export interface TcpAddress {
  /** Host name or address (default `127.0.0.1`: nothing is exposed unless asked). */
  hostname?: string;
  /** Port; 0 on listen picks a free one (see {@link TcpListener.addr}). */
  port: number;
}

/** Options of a TCP duplex. */
export interface TcpDuplexOptions {
  /**
   * After our reader gave up, how long to keep draining the peer's bytes waiting for its EOF
   * before closing anyway (default 2 s, a connection's close grace: long enough for a live
   * peer to finish, short enough that a stuck one does not hold the socket).
   */
  lingerMs?: number;
}

/** A byte duplex over one TCP socket. */
export interface TcpDuplex extends ByteDuplex {
  /** Our end. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's end. */
  readonly remoteAddr: Deno.NetAddr;
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  /** Close the socket now, both ways (unsent and unread bytes are lost). */
  close(): void;
}

/** A listening socket. */
export interface TcpListener {
  /** The address it listens on (the actual port when 0 was asked). */
  readonly addr: Deno.NetAddr;
  /** Stop accepting; resolves when the accept loop ended. Open duplexes stay open. */
  close(): Promise<void>;
}

/** Bytes read from the socket per read: one socket buffer's worth. */
const READ_BUFFER_BYTES = 64 * 1024;
const DEFAULT_LINGER_MS = 2_000;
/**
 * Most bytes gathered into one socket write before a writer waits: 64 KiB, one socket
 * buffer's worth, so a batch goes out in one syscall and this buffer stays small beside the
 * connection's own budget.
 */
const MAX_COALESCED_BYTES = 64 * 1024;

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
const DEFAULT_HOSTNAME = "127.0.0.1";

/**
 * Wrap an open TCP connection as a {@link TcpDuplex} with half-close (see the module doc).
 * @param conn The socket; the duplex owns it from now on.
 * @param options Linger time.
 */
export function tcpDuplex(conn: Deno.TcpConn, options?: TcpDuplexOptions): TcpDuplex {
  const lingerMs = options?.lingerMs ?? DEFAULT_LINGER_MS;
  const scratch = new Uint8Array(READ_BUFFER_BYTES);
  const closed = Promise.withResolvers<void>();
  let readDone = false;
  let writeDone = false;
  let socketClosed = false;
  let cancelled = false;
  let reading: Promise<number | null> | null = null;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;

  const finish = () => {
    if (!readDone || !writeDone || socketClosed) return;
    socketClosed = true;
    clearTimeout(lingerTimer);
    try {
      conn.close();
    } catch {
      // already closed
    }
    closed.resolve();
  };
  const cut = () => {
    readDone = writeDone = true;
    finish();
  };
  /** One read at a time, shared by the reader and the drain. */
  const read = (): Promise<number | null> => {
    reading ??= conn.read(scratch).finally(() => (reading = null));
    return reading;
  };
  const drain = async () => {
    lingerTimer = setTimeout(cut, lingerMs);
    try {
      while (!socketClosed && (await read()) !== null) {
        // discard: nobody reads any more, but the peer's bytes must not be left unread
      }
    } catch {
      // reset by the peer: nothing left to drain
    }
    readDone = true;
    finish();
  };

  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let n: number | null;
      try {
        n = await read();
      } catch (error) {
        readDone = true;
        finish();
        throw error;
      }
      if (cancelled) return; // cancelled while the read was pending; the drain took over
      if (n === null) {
        readDone = true;
        controller.close();
        finish();
        return;
      }
      controller.enqueue(scratch.slice(0, n));
    },
    cancel() {
      cancelled = true;
      if (readDone) return;
      drain();
    },
  }, { highWaterMark: 0 });

  // Writes coalesce: while one socket write is in flight, later frames gather behind it and go
  // out together in the next (group commit, not a timer), so a busy connection pays one
  // syscall per batch instead of one per frame and an idle one still sends a frame at once.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let flushing: Promise<void> | null = null;
  let writeFailure: unknown = null;
  const flushLoop = async () => {
    while (pending.length > 0) {
      const batch = pending.length === 1 ? pending[0] : concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      for (let offset = 0; offset < batch.byteLength;) {
        offset += await conn.write(batch.subarray(offset));
      }
    }
  };
  const flush = (): Promise<void> => {
    flushing ??= flushLoop().catch((error) => {
      writeFailure = error;
      cut();
    }).finally(() => {
      flushing = null;
      // A frame queued between the loop's last check and this turn must not wait for the
      // next write (which may be a keepalive seconds away).
      if (pending.length > 0 && writeFailure === null) flush();
    });
    return flushing;
  };
  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      // An abort must not wait for a write the peer will never take (it stopped reading):
      // the stream calls `abort` only after the write in flight, so cut on the signal.
      controller.signal.addEventListener("abort", () => {
        pending = [];
        cut();
      }, { once: true });
    },
    async write(chunk) {
      if (writeFailure !== null) throw writeFailure;
      pending.push(chunk);
      pendingBytes += chunk.byteLength;
      const done = flush();
      // Beyond one batch, wait: the connection's budget, not this buffer, is what may grow.
      if (pendingBytes >= MAX_COALESCED_BYTES) await done;
      if (writeFailure !== null) throw writeFailure;
    },
    async close() {
      await flush();
      if (writeFailure !== null) throw writeFailure;
      try {
        await conn.closeWrite(); // FIN after our last byte; the peer may still send
      } catch {
        // the peer already reset the connection
      }
      writeDone = true;
      finish();
    },
    abort() {
      pending = [];
      cut();
    },
  });

  try {
    conn.setNoDelay(true); // frames are small and latency-bound: no Nagle delay
  } catch {
    // not fatal
  }
  return {
    readable,
    writable,
    localAddr: conn.localAddr,
    remoteAddr: conn.remoteAddr,
    closed: closed.promise,
    close: cut,
  };
}

/**
 * Connect to a TCP peer.
 * @param address Where (hostname default `127.0.0.1`).
 * @param options Linger time.
 * @returns The duplex to the peer.
 */
export async function connectTcp(
  address: TcpAddress,
  options?: TcpDuplexOptions,
): Promise<TcpDuplex> {
  const conn = await Deno.connect({
    hostname: address.hostname ?? DEFAULT_HOSTNAME,
    port: address.port,
    transport: "tcp",
  });
  return tcpDuplex(conn, options);
}

/**
 * Listen for TCP peers; `onDuplex` gets each accepted connection.
 * @param address Where (hostname default `127.0.0.1`; port 0 picks a free port).
 * @param onDuplex Called with each accepted duplex and the peer's address; if it throws,
 *   that socket is closed.
 * @param options Linger time of accepted duplexes.
 * @returns The listener, with its actual address.
 */
export function listenTcp(
  address: TcpAddress,
  onDuplex: (duplex: TcpDuplex, remoteAddr: Deno.NetAddr) => void,
  options?: TcpDuplexOptions,
): TcpListener {
  const listener = Deno.listen({
    hostname: address.hostname ?? DEFAULT_HOSTNAME,
    port: address.port,
    transport: "tcp",
  });
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      const duplex = tcpDuplex(conn, options);
      try {
        onDuplex(duplex, duplex.remoteAddr);
      } catch {
        duplex.close();
      }
    }
  })();
  return {
    addr: listener.addr,
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
    },
  };
}
