/**
 * TCP transport: byte duplexes over `Deno.connect` / `Deno.listen`, for static peers given by
 * address, tests and small fixed deployments.
 *
 * The duplex closes politely (`socket_duplex.ts`): closing the writable half-closes, cancelling
 * the readable drains the peer's bytes until its EOF (up to `lingerMs`) so the socket is never
 * closed with unread bytes (which would make the kernel send RST and the peer lose what it had
 * not read yet), and `close()` cuts it at once.
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
import {
  type ListenOptions,
  type SocketDuplex,
  socketDuplex,
  type SocketDuplexOptions,
} from "./socket_duplex.ts";
import { acceptEach } from "./_accept_loop.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "./connection_timers.ts";
import { PeerTimeoutError } from "./protocol_errors.ts";

// Public with the TCP transport (the package's entry point re-exports this module).
export type { ListenOptions, SocketDuplex, SocketDuplexOptions } from "./socket_duplex.ts";

/** A TCP endpoint. */
export interface TcpAddress {
  /** Host name or address (default `127.0.0.1`: nothing is exposed unless asked). */
  hostname?: string;
  /** Port; 0 on listen picks a free one (see {@link TcpListener.addr}). */
  port: number;
}

/** Options of a TCP duplex (linger time, read size: see {@link SocketDuplexOptions}). */
export type TcpDuplexOptions = SocketDuplexOptions;

/**
 * Default deadline of {@link connectTcp}: 10 s. A peer that is up answers a connect in a round
 * trip; one whose address drops the SYN (a host that is down, a firewall, a full accept queue)
 * would otherwise hold the connect for the system's SYN retries, about two minutes on Linux.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/** Options of {@link connectTcp}: the duplex's, and the connect's deadline. */
export interface TcpConnectOptions extends TcpDuplexOptions {
  /** Give up when the peer has not answered within this (default {@link CONNECT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Abort to give up at once (the connect rejects with the signal's reason). */
  signal?: AbortSignal;
  /** The clock of the deadline (default the real one; tests fake it). */
  timers?: ConnectionTimers;
}

/** A byte duplex over one TCP socket. */
export interface TcpDuplex extends SocketDuplex {
  /** Our end. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's end. */
  readonly remoteAddr: Deno.NetAddr;
}

/** A listening socket. */
export interface TcpListener {
  /** The address it listens on (the actual port when 0 was asked). */
  readonly addr: Deno.NetAddr;
  /** Stop accepting; resolves when the accept loop ended. Open duplexes stay open. */
  close(): Promise<void>;
}

const DEFAULT_HOSTNAME = "127.0.0.1";

/**
 * Wrap an open TCP connection as a {@link TcpDuplex} with half-close (see the module doc).
 * @param conn The socket; the duplex owns it from now on.
 * @param options Linger time, read size.
 * @returns The duplex, with the socket's addresses.
 */
export function tcpDuplex(conn: Deno.TcpConn, options?: TcpDuplexOptions): TcpDuplex {
  // Added to the socket duplex itself, not spread into a new object: a spread reads its
  // `bytesWritten` getter once, and a frozen 0 hid a slow peer's progress through a large
  // chunk from the connection's keepalive, which then cut that peer off as not reading.
  return Object.assign(socketDuplex(conn, options), {
    localAddr: conn.localAddr,
    remoteAddr: conn.remoteAddr,
  });
}

/**
 * Connect to a TCP peer.
 * @param address Where (hostname default `127.0.0.1`).
 * @param options Linger time and read size; the connect's deadline and signal.
 * @returns The duplex to the peer.
 * @throws {PeerTimeoutError} the peer did not answer within the deadline.
 */
export async function connectTcp(
  address: TcpAddress,
  options?: TcpConnectOptions,
): Promise<TcpDuplex> {
  const timers = options?.timers ?? SYSTEM_TIMERS;
  const timeoutMs = options?.timeoutMs ?? CONNECT_TIMEOUT_MS;
  // One signal for both ways to give up: Deno closes a socket whose connect it abandons.
  const giveUp = new AbortController();
  const onAbort = () => giveUp.abort(options?.signal?.reason);
  if (options?.signal?.aborted) onAbort();
  else options?.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = timers.setTimeout(
    () =>
      giveUp.abort(
        new PeerTimeoutError(
          `${address.hostname ?? DEFAULT_HOSTNAME}:${address.port} did not answer the connect ` +
            `within ${timeoutMs} ms`,
        ),
      ),
    timeoutMs,
  );
  try {
    giveUp.signal.throwIfAborted();
    const conn = await Deno.connect({
      hostname: address.hostname ?? DEFAULT_HOSTNAME,
      port: address.port,
      transport: "tcp",
      signal: giveUp.signal,
    });
    return tcpDuplex(conn, options);
  } finally {
    timers.clearTimeout(timer);
    options?.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Listen for TCP peers; `onDuplex` gets each accepted connection.
 * @param address Where (hostname default `127.0.0.1`; port 0 picks a free port).
 * @param onDuplex Called with each accepted duplex and the peer's address; if it throws,
 *   that socket is closed.
 * @param options Linger time and read size of accepted duplexes; the log of failed accepts.
 * @returns The listener, with its actual address.
 */
export function listenTcp(
  address: TcpAddress,
  onDuplex: (duplex: TcpDuplex, remoteAddr: Deno.NetAddr) => void,
  options?: ListenOptions,
): TcpListener {
  const listener = Deno.listen({
    hostname: address.hostname ?? DEFAULT_HOSTNAME,
    port: address.port,
    transport: "tcp",
  });
  let closed = false;
  const accepting = acceptEach(
    listener,
    (conn) => {
      const duplex = tcpDuplex(conn, options);
      try {
        onDuplex(duplex, duplex.remoteAddr);
      } catch {
        duplex.close();
      }
    },
    () => closed,
    { log: options?.log },
  );
  return {
    addr: listener.addr,
    async close() {
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
    },
  };
}
