/**
 * The link between a node and its swarm host (`swarm_host.ts`): the local listener the host
 * delivers each peer connection to. Every byte of every swarm peer crosses it twice per
 * transfer (into the sending node's host, out of the receiving one's), so its cost per byte is
 * most of what the host path adds over plain Hyperswarm.
 *
 * - `unix` (the default where the platform has Unix sockets): a socket file in a directory of
 *   its own, created with mode 0700 so only this user can reach the socket. Measured on the
 *   swarm bench's machine (2 cores, 512 MiB one way, both processes' CPU): 0.57–0.59 ms/MiB a
 *   hop against 0.80–0.84 over loopback TCP — no TCP stack on the way.
 * - `tcp`: loopback TCP on 127.0.0.1, a free port — the fallback where no socket file can be
 *   made (Windows, no write permission for the directory, a path too long for a socket).
 *
 * Either way, the host proves itself with the secret token it writes first on every
 * connection (the directory's permissions are defence in depth, not the check).
 *
 * @module
 */
import { join, resolve } from "node:path";
import type { ListenOptions, SocketDuplex } from "../protocols/socket_duplex.ts";
import { listenTcp } from "../protocols/tcp_transport.ts";
import {
  listenUnix,
  MAX_UNIX_SOCKET_PATH_BYTES,
  unixSocketsSupported,
} from "../protocols/unix_transport.ts";

/** The kinds of link. */
export type SwarmLinkKind = "unix" | "tcp";

/** Options of {@link openSwarmLink}. */
export interface SwarmLinkOptions {
  /** The kind wanted (default `unix` where supported); `unix` falls back to `tcp`. */
  kind?: SwarmLinkKind;
  /**
   * Where the private directory of the socket file is made (default the system's temporary
   * directory). A node whose permissions do not reach the temporary directory passes its data
   * directory.
   */
  socketDir?: string;
  /** Why a Unix link could not be made, when it falls back to TCP; accepts that fail. */
  log?: (line: string) => void;
}

/** Where the host connects, as its configuration says it. */
export type SwarmLinkAddress = { dataPath: string } | { dataPort: number };

/** An open link listener. */
export interface SwarmLink {
  /** The kind in use (after any fallback). */
  readonly kind: SwarmLinkKind;
  /** Where the host connects: the socket file, or the loopback port. */
  readonly address: SwarmLinkAddress;
  /** Stop accepting; remove the socket file and its directory. Open duplexes stay open. */
  close(): Promise<void>;
}

/**
 * Bytes taken from the link per read: 256 KiB. A Unix socket holds about 200 KiB and loopback
 * TCP more, so a bulk transfer finds more than 64 KiB waiting at each wake-up; reading it in
 * one go took the receiving node's CPU per MiB from 0.37 to 0.31 ms (Unix) and 0.66 to 0.49
 * ms (TCP). Each chunk handed on is copied out, so one buffer per peer connection is the cost.
 */
export const SWARM_LINK_READ_BYTES = 256 * 1024;
const SOCKET_FILE = "host.sock";
/** Private: only this user may enter the directory, so only this user reaches the socket. */
const PRIVATE_DIR_MODE = 0o700;
/** The private directory's name as `Deno.makeTempDir` makes it: prefix + 16 hex digits. */
const DIR_PREFIX = "veriflow-swarm-";
const TEMP_NAME_CHARS = 16;

/**
 * Open the node's end of the link; each accepted connection goes to `onDuplex` (unchecked:
 * the caller reads the token).
 * @param onDuplex Each connection from the host.
 * @param options Kind, socket directory, log.
 * @returns The open link.
 */
export async function openSwarmLink(
  onDuplex: (duplex: SocketDuplex) => void,
  options: SwarmLinkOptions = {},
): Promise<SwarmLink> {
  const duplexOptions = {
    readBufferBytes: SWARM_LINK_READ_BYTES,
    log: options.log && ((line: string) => options.log!(`swarm link: ${line}`)),
  };
  if ((options.kind ?? "unix") === "unix") {
    try {
      return await openUnix(onDuplex, duplexOptions, options.socketDir);
    } catch (error) {
      options.log?.(
        `swarm link: no Unix socket (${(error as Error).message}); using loopback TCP`,
      );
    }
  }
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, onDuplex, duplexOptions);
  return {
    kind: "tcp",
    address: { dataPort: listener.addr.port },
    close: () => listener.close(),
  };
}

async function openUnix(
  onDuplex: (duplex: SocketDuplex) => void,
  duplexOptions: ListenOptions,
  socketDir: string | undefined,
): Promise<SwarmLink> {
  if (!unixSocketsSupported()) throw new Error(`not on ${Deno.build.os}`);
  if (socketDir !== undefined) {
    // Checked before anything is made: a socket path over the limit fails only at bind.
    const length = new TextEncoder().encode(
      join(socketDir, `${DIR_PREFIX}${"x".repeat(TEMP_NAME_CHARS)}`, SOCKET_FILE),
    ).length;
    if (length > MAX_UNIX_SOCKET_PATH_BYTES) {
      throw new Error(`a socket path in ${socketDir} would be ${length} bytes, too long`);
    }
  }
  // Absolute: the host resolves it from its own working directory otherwise.
  const dir = resolve(await Deno.makeTempDir({ dir: socketDir, prefix: DIR_PREFIX }));
  try {
    await Deno.chmod(dir, PRIVATE_DIR_MODE);
    const path = join(dir, SOCKET_FILE);
    if (new TextEncoder().encode(path).length > MAX_UNIX_SOCKET_PATH_BYTES) {
      throw new Error(`the socket path ${path} is too long`);
    }
    const listener = listenUnix(path, onDuplex, duplexOptions);
    return {
      kind: "unix",
      address: { dataPath: path },
      async close() {
        await listener.close();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
