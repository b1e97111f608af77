/**
 * Hashing on the storage hot path. Chunks are hashed with WebCrypto's SHA-256: native code, and
 * asynchronous, so a chunk's hash does not hold the event loop while a transfer runs. The
 * synchronous `sha256` of `protocols/hash.ts` is native too for inputs this long, but runs on
 * the calling thread. The resulting digests and CIDs are identical.
 *
 * @module
 */
import { cidDigest, cidFromDigest } from "../protocols/cid.ts";

/** SHA-256 of `bytes`, computed natively. */
export async function digestOf(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** CID of `bytes` (CIDv1 raw sha2-256), computed natively. */
export async function cidOfAsync(bytes: Uint8Array): Promise<string> {
  return cidFromDigest(await digestOf(bytes));
}

/** True when `bytes` hash to `cid`. Throws `InvalidCidError` when `cid` is not a CID. */
export async function verifyCid(cid: string, bytes: Uint8Array): Promise<boolean> {
  const expected = cidDigest(cid);
  return equalBytes(expected, await digestOf(bytes));
}

/** Constant-time comparison of two byte strings (length is not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
