/**
 * Unix domain socket transport: byte duplexes between two processes on the same machine, over
 * a socket file instead of loopback TCP. Used for the link between a node and its swarm host
 * (`network/swarm_host.ts`), where every byte of every swarm peer crosses it: a Unix socket
 * moves a chunk without the TCP stack (no segments, checksums, acknowledgements or congestion
 * window on the way), for less CPU per byte and fewer wake-ups.
 *
 * The duplex closes as the TCP one does (`socket_duplex.ts`: half-close, drain before close).
 * Who may connect is decided by the socket file's permissions (its directory's, really: put it
 * in a directory only this user can enter) — not a substitute for authenticating the peer.
 * Not on Windows (`unixSocketsSupported()`).
 *
 * @example
 * ```ts
 * import { connectUnix, listenUnix } from "./unix_transport.ts";
 * const dir = await Deno.makeTempDir(); // mode 0700
 * const server = listenUnix(`${dir}/echo.sock`, (duplex) => {
 *   duplex.readable.pipeTo(duplex.writable); // echo
 * });
 * const client = await connectUnix(`${dir}/echo.sock`);
 * const writer = client.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * for await (const bytes of client.readable) console.log(new TextDecoder().decode(bytes)); // hi
 * await client.closed;
 * await server.close();
 * await Deno.remove(dir, { recursive: true });
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

/** A listening Unix socket. */
export interface UnixListener {
  /** The socket file's path. */
  readonly path: string;
  /** Stop accepting and remove the socket file; open duplexes stay open. */
  close(): Promise<void>;
}

/**
 * The longest socket path the platforms take (`sun_path` is 108 bytes on Linux, 104 on macOS
 * and the BSDs, the terminating NUL included): a longer one fails to bind.
 */
export const MAX_UNIX_SOCKET_PATH_BYTES = 103;

/** Whether this platform has Unix domain sockets as Deno exposes them (not on Windows). */
export function unixSocketsSupported(): boolean {
  return Deno.build.os !== "windows";
}

/**
 * Connect to a Unix socket.
 * @param path The socket file.
 * @param options Linger time, read size.
 * @returns The duplex to the listener.
 */
export async function connectUnix(
  path: string,
  options?: SocketDuplexOptions,
): Promise<SocketDuplex> {
  return socketDuplex(await Deno.connect({ path, transport: "unix" }), options);
}

/**
 * Listen on a Unix socket file; `onDuplex` gets each accepted connection.
 * @param path Where the socket file is created (its directory must exist; no file there yet).
 * @param onDuplex Called with each accepted duplex; if it throws, that socket is closed.
 * @param options Linger time and read size of accepted duplexes; the log of failed accepts.
 * @returns The listener.
 * @throws {Deno.errors.PermissionDenied} without read and write permission on the path.
 */
export function listenUnix(
  path: string,
  onDuplex: (duplex: SocketDuplex) => void,
  options?: ListenOptions,
): UnixListener {
  const listener = Deno.listen({ path, transport: "unix" });
  let closed = false;
  const accepting = acceptEach(
    listener,
    (conn) => {
      const duplex = socketDuplex(conn, options);
      try {
        onDuplex(duplex);
      } catch {
        duplex.close();
      }
    },
    () => closed,
    { log: options?.log },
  );
  return {
    path,
    async close() {
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      await Deno.remove(path).catch(() => {});
    },
  };
}
