/**
 * How a peer connection arrives from the swarm host over the link: the header the host writes
 * first on each one (the 32-byte secret token, the peer's public key as its Noise handshake
 * authenticated it, whether this side dialled, and the IP address the peer's UDP stream comes
 * from, length-prefixed, empty where the host does not know it or the stream is relayed:
 * `swarm/host.mjs`'s `remoteHostOf`), read and checked before the connection is handed on as a
 * {@link SwarmPeer}; and the bound on link connections whose header is still awaited. The token
 * is made here, once per `SwarmHost`, and sent to each host it starts.
 *
 * Owned and used by `swarm_host.ts` (`SwarmHost`) only. Not part of the public API.
 *
 * @module
 */
import type { SocketDuplex } from "../protocols/socket_duplex.ts";
// A value import from the module that imports this one: `SwarmHostError` is used only inside
// `accept`, long after both modules have been evaluated.
import { SwarmHostError, type SwarmPeer } from "./swarm_host.ts";

/** The header's fixed part: token, key, initiator, the address's length. */
const HEADER_BYTES = 66;
const TOKEN_BYTES = 32;
const KEY_BYTES = 32;
/** Where the header says whether this side dialled. */
const INITIATOR_AT = TOKEN_BYTES + KEY_BYTES;
/** Where the header gives the address's length (its bytes follow the fixed part). */
const ADDRESS_LENGTH_AT = INITIATOR_AT + 1;
/**
 * The longest address the host sends: an IPv6 address written with an IPv4 tail is 45
 * characters. One longer is no address the host sends: the link is refused.
 */
const MAX_ADDRESS_BYTES = 45;
/** What an IP address is written with (IPv4 dotted, IPv6 hex groups). */
const IP_TEXT = /^[0-9a-f.:]+$/i;
/** A peer connection must deliver its header this fast, or it is dropped. */
const HEADER_TIMEOUT_MS = 5_000;
/**
 * Link connections whose header is still awaited, at most; past it, the oldest is cut. The host
 * writes its header as it connects, so only a connection another local process made waits
 * long: over loopback TCP any local user could hold one of the node's file descriptors per
 * connection for HEADER_TIMEOUT_MS, thousands at once (a review at stop 45). Room enough for
 * a burst of the host's own connections arriving together, each of which waits microseconds.
 */
const MAX_PENDING_HEADERS = 256;

/** Options of {@link SwarmPeerAcceptor}. */
export interface SwarmPeerAcceptorOptions {
  /** Each authenticated peer connection (`SwarmHostOptions.onPeer`). */
  onPeer: (peer: SwarmPeer) => void;
  /** Whether the host is closed (or closing): its connections are cut, not handed on. */
  closing: () => boolean;
}

/** The link connections of one `SwarmHost`: their headers read, checked, handed on. */
export class SwarmPeerAcceptor {
  readonly #options: SwarmPeerAcceptorOptions;
  /** The secret the host writes first on every connection (sent to it in its configuration). */
  readonly token: Uint8Array = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  /** Link connections whose header is still being read: cut when the host is closed. */
  readonly #accepting = new Set<SocketDuplex>();

  /** @param options Where peers go, and whether the host is closed. */
  constructor(options: SwarmPeerAcceptorOptions) {
    this.#options = options;
  }

  /**
   * A connection from the host: check its token, read the peer's key, hand it on. The header is
   * read with a reader of its own size, so the peer's first bytes, even when they came in the
   * same write, stay in the socket: the peer's readable is the socket's own byte stream, which a
   * `Connection` reads straight into its buffers. (Read with a default reader, the header's read
   * could take the peer's first bytes too, and handing them on first needed a stream layer
   * without BYOB reads: the connection then copied each 256 KiB storage chunk twice more, for
   * its whole life, whenever the peer spoke first.)
   */
  async accept(duplex: SocketDuplex): Promise<void> {
    if (this.#options.closing()) return duplex.close();
    const reader = duplex.readable.getReader({ mode: "byob" });
    const timer = setTimeout(() => duplex.close(), HEADER_TIMEOUT_MS);
    if (this.#accepting.size >= MAX_PENDING_HEADERS) {
      const oldest = this.#accepting.values().next().value!;
      this.#accepting.delete(oldest);
      oldest.close(); // its read ends, and its accept with it
    }
    this.#accepting.add(duplex);
    let header: Uint8Array;
    let remoteHost: string | undefined;
    try {
      header = await readExactly(reader, HEADER_BYTES);
      // The token first: nothing more is read from a connection that is not our host's.
      if (!constantTimeEqual(header.subarray(0, TOKEN_BYTES), this.token)) {
        duplex.close();
        return;
      }
      const length = header[ADDRESS_LENGTH_AT];
      if (length > MAX_ADDRESS_BYTES) {
        duplex.close(); // no address the host sends: a broken or foreign header
        return;
      }
      if (length > 0) {
        remoteHost = new TextDecoder().decode(await readExactly(reader, length));
        if (!IP_TEXT.test(remoteHost)) {
          duplex.close();
          return;
        }
      }
    } finally {
      clearTimeout(timer);
      this.#accepting.delete(duplex);
      reader.releaseLock();
    }
    if (this.#options.closing()) {
      duplex.close(); // this host is closed
      return;
    }
    this.#options.onPeer({
      duplex: {
        readable: duplex.readable,
        writable: duplex.writable,
        // What the link to the host took, within chunks: a slow peer drains it slowly, and a
        // Connection counts that as reading (`ByteDuplex.bytesWritten`).
        get bytesWritten() {
          return duplex.bytesWritten;
        },
      },
      remoteKey: header.slice(TOKEN_BYTES, TOKEN_BYTES + KEY_BYTES),
      initiator: header[INITIATOR_AT] === 1,
      ...(remoteHost === undefined ? {} : { remoteHost }),
      close: () => duplex.close(),
    });
  }

  /** Cut the link connections still sending their header (the host is being closed). */
  cutPending(): void {
    // A link connection still sending its header would otherwise reach `onPeer` after this
    // close (the listener's close leaves accepted sockets open), or keep its timer running.
    for (const duplex of this.#accepting) duplex.close();
    this.#accepting.clear();
  }
}

/**
 * Read exactly `length` bytes with a BYOB `reader`: no more, so what follows stays in the socket.
 * @throws {SwarmHostError} when the connection ends first.
 */
async function readExactly(
  reader: ReadableStreamBYOBReader,
  length: number,
): Promise<Uint8Array> {
  let bytes = new Uint8Array(length);
  for (let filled = 0; filled < length;) {
    const { value, done } = await reader.read(
      new Uint8Array(bytes.buffer, filled, length - filled),
    );
    if (done || value === undefined) {
      throw new SwarmHostError("connection ended before its header");
    }
    // A BYOB read hands the buffer back under a new owner: the same bytes.
    bytes = new Uint8Array(value.buffer);
    filled += value.byteLength;
  }
  return bytes;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
