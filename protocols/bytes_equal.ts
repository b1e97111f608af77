/**
 * Equality of two byte strings, the one comparison behind digests, roots and keys (CID
 * checks, Merkle openings, receipt and envelope signers).
 *
 * @module
 */

/**
 * True when `a` and `b` hold the same bytes. Lengths are compared first (a length is never
 * secret here); the contents are then compared without an early exit, so the time taken does
 * not tell how long a matching prefix a forged digest had.
 *
 * @example
 * ```ts
 * import { bytesEqual } from "./bytes_equal.ts";
 * bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])); // false
 * ```
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
