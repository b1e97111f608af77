/**
 * Peer addresses as operators write them (`--peer 127.0.0.1:7700`, `--peer [::1]:7700`).
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** A TCP address. */
export interface PeerAddress {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port (0 when listening: the system picks one). */
  port: number;
}

/** A peer address that does not parse. */
export class InvalidPeerAddressError extends VeriflowError {
  /**
   * Name the address that does not parse.
   * @param text The address as given.
   */
  constructor(text: string) {
    super("invalid_peer_address", `"${text}" is not HOST:PORT (IPv6: [ADDR]:PORT)`);
  }
}

const BRACKETED = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/;
const PLAIN = /^([^:\s\[\]]+):(\d{1,5})$/;
const MAX_PORT = 65535;

/** Parse `HOST:PORT` or `[IPV6]:PORT`; throws {@link InvalidPeerAddressError}. */
export function parsePeerAddress(text: string): PeerAddress {
  const match = BRACKETED.exec(text) ?? PLAIN.exec(text);
  if (match === null) throw new InvalidPeerAddressError(text);
  const port = Number(match[2]);
  if (port > MAX_PORT) throw new InvalidPeerAddressError(text);
  return { hostname: match[1], port };
}

/** `host:port`, bracketing IPv6 hosts. */
export function formatPeerAddress(address: PeerAddress): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}
