/**
 * Opening the node's peer port. {@link listenForPeers} binds it for the NetworkActor;
 * {@link checkPeerAddress} tries it at start-up, before the node writes anything or loads its
 * model. Both fail with {@link PeerListenError}, which says whether the port is taken or the host
 * is not one of this machine's addresses, and what to do about it.
 *
 * @module
 */
import { listenTcp, type TcpListener } from "../protocols/tcp_transport.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { formatPeerAddress, type PeerAddress } from "./peer_address.ts";

/** Not accepting peers at all, as a flag and as the configuration key. */
const NO_LISTEN = "--no-listen (network.listening: false)";

/** The peer port cannot be opened (taken, or not ours to bind). */
export class PeerListenError extends VeriflowError {
  /**
   * Create it.
   * @param address Where we tried to listen.
   * @param cause The system's error.
   */
  constructor(address: PeerAddress, cause: unknown) {
    // An address this machine does not have is the host's fault; only a taken port the port's.
    // Each hint names the flag and the configuration key, as HttpListenError does: a program
    // that starts a node from `mod.ts` has no flags (review s73).
    const hint = cause instanceof Deno.errors.AddrNotAvailable
      ? `${address.hostname} is not an address of this machine: give one of its own with ` +
        `--p2p-host ADDR (network.listen.hostname in the configuration), or ${NO_LISTEN}`
      : cause instanceof Deno.errors.AddrInUse
      ? `another node on this port? choose one with --p2p-port N (network.listen.port in the ` +
        `configuration; 0 picks a free one), or ${NO_LISTEN}`
      : `check --p2p-host and --p2p-port (network.listen.hostname and network.listen.port in ` +
        `the configuration), or ${NO_LISTEN}`;
    super(
      "peer_listen_failed",
      `cannot accept peers on ${formatPeerAddress(address)}: ${(cause as Error).message} ` +
        `(${hint})`,
      { cause },
    );
  }
}

/**
 * Listen for peers on `address`; throws {@link PeerListenError} when it cannot be bound.
 * `log` hears accepts that fail and are retried (out of file descriptors), prefixed with the
 * listener's name.
 */
export function listenForPeers(
  address: PeerAddress,
  onDuplex: Parameters<typeof listenTcp>[1],
  log?: (line: string) => void,
): TcpListener {
  try {
    return listenTcp(address, onDuplex, {
      log: log && ((line) => log(`peer listener: ${line}`)),
    });
  } catch (cause) {
    throw new PeerListenError(address, cause);
  }
}

/**
 * Throw {@link PeerListenError} if `address` cannot be bound now (the port taken, or the host
 * not this machine's), so a node that could not accept peers says so before it writes anything
 * or loads its model. Port 0 (any free port) is tried too: it tells whether the host is one of
 * this machine's addresses.
 */
export function checkPeerAddress(address: PeerAddress): void {
  try {
    Deno.listen({ hostname: address.hostname, port: address.port, transport: "tcp" }).close();
  } catch (cause) {
    throw new PeerListenError(address, cause);
  }
}
