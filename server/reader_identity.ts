/**
 * Who a read of stored bytes comes from (`GET /ipfs/…`, `/share/…`, `GET /v1/files/{cid}`), for
 * the read limits of `read_slots.ts`. The gateway needs no key, so it refuses nobody here; it
 * names the client as the rest of the edge does: under `/v1` the client `client_access.ts`
 * identified; elsewhere a valid API key (`Authorization: Bearer KEY`, by its id), else this
 * machine (`fromThisMachine`, its tools together), else the client's address as
 * `client_address.ts` groups it (an IPv6 one by its /64; behind a trusted proxy, the client the
 * proxy names). A key that does not check out counts as no key: the read is served by address.
 *
 * @module
 */
import type { Context } from "hono";
import type { ApiKeys } from "./api_keys.ts";
import { type EdgeEnv, fromThisMachine } from "./client_access.ts";
import { clientAddress } from "./client_address.ts";
import { anonymousClient, type ClientIdentity, LOOPBACK_CLIENT } from "./client_identity.ts";
import { NO_TRUSTED_PROXIES, type TrustedProxies } from "./trusted_proxies.ts";

/** What {@link readerOf} knows of the node's access rules (`http` in its configuration). */
export interface ReaderAccess {
  /** The node's API keys; none by default (every reader is then named by its address). */
  keys?: ApiKeys;
  /** Reverse proxies whose forwarding header names the client (`http.trustedProxies`). */
  trustedProxies?: TrustedProxies;
}

/** The client a read comes from: see the module's text. */
export function readerOf(c: Context<EdgeEnv>, access: ReaderAccess): ClientIdentity {
  const known = c.get("client");
  if (known !== undefined) return known;
  const authorization = c.req.header("authorization");
  if (authorization !== undefined && access.keys !== undefined && access.keys.size > 0) {
    try {
      return access.keys.identify(authorization);
    } catch {
      // No key of this node (none given as a bearer token, or an unknown one): the gateway
      // serves it all the same, counted by its address.
    }
  }
  const trusted = access.trustedProxies ?? NO_TRUSTED_PROXIES;
  const peer = c.env?.remoteAddr;
  if (fromThisMachine(peer, c.req.raw, trusted)) return LOOPBACK_CLIENT;
  return anonymousClient(clientAddress(peer, c.req.raw, trusted));
}
