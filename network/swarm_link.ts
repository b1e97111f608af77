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
 * A node that is killed (SIGKILL, a crash, the machine's OOM killer) cannot remove its socket's
 * directory, and one was left per crash (review s71, finding 8). So the directory's name carries
 * the pid of the process that made it (`veriflow-swarm-PID-…`), and opening a link first removes
 * the directories beside it that a gone process left: only where its pid runs no process (Linux's
 * `/proc`: elsewhere none is removed), its socket accepts no connection (a live node in another
 * pid namespace sharing the directory keeps its own), and it holds nothing but the socket.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import type { ListenOptions, SocketDuplex } from "../protocols/socket_duplex.ts";
import { listenTcp } from "../protocols/tcp_transport.ts";
import { OWNER_DIR_MODE } from "../protocols/owner_only.ts";
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
/**
 * The private directory's name as `Deno.makeTempDir` makes it: prefix, the pid of the process
 * that made it and `-` (so a directory a killed process left can be told from a live one's), then
 * 16 hex digits.
 */
const DIR_PREFIX = "veriflow-swarm-";
const TEMP_NAME_CHARS = 16;
/** The longest pid Linux gives (`pid_max` is at most 2^22): the socket path's length bound. */
const MAX_PID_CHARS = 7;
/** A link directory's name, its maker's pid captured (see {@link DIR_PREFIX}). */
const LINK_DIR_NAME = /^veriflow-swarm-(\d+)-.+$/;

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
    const longest = `${DIR_PREFIX}${"9".repeat(MAX_PID_CHARS)}-${"x".repeat(TEMP_NAME_CHARS)}`;
    const length = new TextEncoder().encode(join(socketDir, longest, SOCKET_FILE)).length;
    if (length > MAX_UNIX_SOCKET_PATH_BYTES) {
      throw new Error(`a socket path in ${socketDir} would be ${length} bytes, too long`);
    }
  }
  // Absolute: the host resolves it from its own working directory otherwise.
  const dir = resolve(
    await Deno.makeTempDir({ dir: socketDir, prefix: `${DIR_PREFIX}${Deno.pid}-` }),
  );
  // Beside it, where Deno made it (this process's own is never a gone one's).
  await removeLeftDirs(dirname(dir));
  try {
    // Private: only this user may enter the directory, so only this user reaches the socket.
    await Deno.chmod(dir, OWNER_DIR_MODE);
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

/**
 * Remove the link directories in `parent` that a gone process left (see the module doc); what
 * cannot be read or removed is left as it is.
 */
async function removeLeftDirs(parent: string): Promise<void> {
  const candidates: { dir: string; pid: number }[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      const pid = entry.isDirectory ? LINK_DIR_NAME.exec(entry.name)?.[1] : undefined;
      if (pid !== undefined) candidates.push({ dir: join(parent, entry.name), pid: Number(pid) });
    }
  } catch {
    return; // not readable: nothing of ours can be told apart there
  }
  for (const { dir, pid } of candidates) {
    if (!processGone(pid)) continue;
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(dir)) names.push(entry.name);
      if (names.some((name) => name !== SOCKET_FILE)) continue; // not only the link's
      if (names.length > 0 && await accepts(join(dir, SOCKET_FILE))) continue;
      await Deno.remove(dir, { recursive: true });
    } catch {
      // gone meanwhile, or not ours to read or remove
    }
  }
}

/**
 * Whether no process has pid `pid`: true only when Linux's `/proc` says so. Elsewhere, or when
 * `/proc` cannot be read, it is taken as running: a directory is never removed on a guess.
 */
function processGone(pid: number): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    Deno.statSync(`/proc/${pid}`);
    return false; // running (or a zombie not reaped yet)
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

/** Whether something listens on the Unix socket `path` (any answer but "refused" or "none"). */
async function accepts(path: string): Promise<boolean> {
  try {
    const connection = await Deno.connect({ transport: "unix", path });
    connection.close();
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.ConnectionRefused ||
      error instanceof Deno.errors.NotFound);
  }
}
