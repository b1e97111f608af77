/**
 * A dashboard socket's credential given in its WebSocket handshake, so a page or tool with a key
 * reads at once and takes none of the places of sockets still to send their `auth`, which anyone
 * can keep full (review s75 verify F2). A tool sends `Authorization: Bearer <token>`; a browser,
 * which cannot set headers on a WebSocket, offers the subprotocols {@link DASHBOARD_PROTOCOL} and
 * {@link BEARER_PROTOCOL_PREFIX}`<token as base64url>` (as Kubernetes carries a bearer token in
 * `base64url.bearer.authorization.k8s.io.*`). The node answers with {@link DASHBOARD_PROTOCOL}
 * alone, never echoing the token, and never logs it.
 *
 * @module
 */
import { bearerToken } from "./credentials.ts";
import { EdgeError } from "./http_errors.ts";

/** The subprotocol the node answers with when offered (a browser needs one of its own answered). */
export const DASHBOARD_PROTOCOL = "veriflow.dashboard";

/**
 * The prefix of the subprotocol that carries a token, base64url-encoded without padding: a
 * subprotocol name is an RFC 7230 token, which allows no `=` and no spaces.
 */
export const BEARER_PROTOCOL_PREFIX = "base64url.bearer.veriflow.";

/** What the handshake says. */
export interface DashboardHandshake {
  /** The token given, from `Authorization` or a subprotocol; not checked yet. */
  token?: string;
  /** The subprotocol to answer with: {@link DASHBOARD_PROTOCOL} when the client offered it. */
  protocol?: string;
}

/**
 * Read `request`'s handshake credential.
 *
 * @throws {EdgeError} `bad_subprotocol` (400): the token's subprotocol was offered without
 * {@link DASHBOARD_PROTOCOL}. The node could answer such a handshake with no subprotocol only,
 * which a browser fails as a bare 1006 after the node has already taken the socket's place; a
 * refusal that names the fix comes before any place is taken.
 *
 * @example
 * ```ts
 * import {
 *   BEARER_PROTOCOL_PREFIX,
 *   DASHBOARD_PROTOCOL,
 *   readDashboardHandshake,
 * } from "./dashboard_handshake.ts";
 * const request = new Request("http://127.0.0.1/dashboard/live", {
 *   headers: { "sec-websocket-protocol": `${DASHBOARD_PROTOCOL}, ${BEARER_PROTOCOL_PREFIX}a2V5` },
 * });
 * console.log(readDashboardHandshake(request)); // { token: "key", protocol: "veriflow.dashboard" }
 * ```
 */
export function readDashboardHandshake(request: Request): DashboardHandshake {
  const offered = (request.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((name) => name.trim()).filter((name) => name !== "");
  const protocol = offered.includes(DASHBOARD_PROTOCOL) ? DASHBOARD_PROTOCOL : undefined;
  const carried = offered.find((name) => name.startsWith(BEARER_PROTOCOL_PREFIX));
  if (carried !== undefined && protocol === undefined) {
    throw new EdgeError(
      "bad_subprotocol",
      `offer the subprotocol ${DASHBOARD_PROTOCOL} with ${BEARER_PROTOCOL_PREFIX}<token>: the ` +
        "node answers with it, and a browser fails a handshake answered with none",
    );
  }
  const header = bearerToken(request.headers.get("authorization") ?? undefined);
  if (header !== undefined) return { token: header, protocol };
  if (carried === undefined) return { protocol };
  try {
    const bytes = fromBase64Url(carried.slice(BEARER_PROTOCOL_PREFIX.length));
    return { token: new TextDecoder("utf-8", { fatal: true }).decode(bytes), protocol };
  } catch {
    return { token: "", protocol }; // not base64url or not UTF-8: a token no grant accepts
  }
}

/** Bytes of base64url text (padding optional); throws on anything else. */
function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError("not base64url");
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
