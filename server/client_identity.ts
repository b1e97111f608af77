/**
 * Who a request comes from, as far as the edge knows: an API key (named by a hash prefix, never
 * by the key), or a client without one. Per-key limits and the job log use it.
 *
 * @module
 */

/** Who sent a request. */
export interface ClientIdentity {
  /** For logs: `key 1a2b3c4d` (a SHA-256 prefix of the key), `loopback` or `anonymous`. */
  readonly label: string;
  /** The key's id (its SHA-256, hex) when the client sent a valid API key. */
  readonly keyId?: string;
  /**
   * For a client elsewhere without a key (`http.allowUnauthenticatedRemote`): its address as
   * `clientAddress` names it (an IPv6 one by its /64), which the per-key limits count it by.
   */
  readonly address?: string;
}

/** A client on this machine without a key (the default node's only clients). */
export const LOOPBACK_CLIENT: ClientIdentity = Object.freeze({ label: "loopback" });

/**
 * A client elsewhere without a key (only with `http.allowUnauthenticatedRemote`), from `address`
 * (`clientAddress`): limited per address as a key is (review s72: keyless clients had no share,
 * and one took every seat and queue place of the node).
 */
export function anonymousClient(address: string): ClientIdentity {
  return Object.freeze({ label: `anonymous ${address}`, address });
}
