/**
 * What a bearer token grants at the edge: the operator token (`operator.token`) grants the
 * operator's access, a configured API key reading access; anything else nothing. Used by the
 * dashboard (`dashboard_routes.ts`) and the DNS-rebinding guard (`host_guard.ts`).
 *
 * @module
 */
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { sha256 } from "../protocols/hash.ts";
import type { ApiKeys } from "./api_keys.ts";

/** The token of an `Authorization: Bearer TOKEN` header's value, or undefined without one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
}

/** Constant-time comparison of two tokens through their hashes (`bytesEqual`). */
export function sameToken(given: string, expected: string): boolean {
  const utf8 = new TextEncoder();
  return bytesEqual(sha256(utf8.encode(given)), sha256(utf8.encode(expected)));
}

/**
 * The access `token` grants: `operator` for the operator token, `read` for an API key, else
 * undefined.
 */
export function grantOf(
  token: string,
  keys: ApiKeys,
  operatorToken: string | undefined,
): "read" | "operator" | undefined {
  if (operatorToken !== undefined && sameToken(token, operatorToken)) return "operator";
  if (keys.size === 0) return undefined;
  try {
    keys.identify(`Bearer ${token}`);
    return "read";
  } catch {
    return undefined;
  }
}
