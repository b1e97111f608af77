/**
 * The project's one hash function: SHA-256, synchronous, with hex helpers, and its keyed form
 * HMAC-SHA256. CIDs, job ids, commitments and the ledger chain all use it.
 *
 * Two implementations of the same function, chosen by input length: below
 * {@link NATIVE_HASH_FROM_BYTES} the pure-JS hash of `@noble/hashes` (no call into the runtime,
 * which is most of a short input's cost), from there `node:crypto`, which runs in native code
 * with the CPU's SHA instructions. Measured by `deno task bench codec` (section 4) in Deno 2.9.6
 * on the 2-core VM: 32 bytes 3.0 µs (JS) against 3.7 (native); 4 KiB 22 µs against 4.6; from
 * 1 MiB on 200 MB/s against 1,700 MB/s — so a model's CID (77 MB for `small`, hashed when a node
 * starts) takes 45 ms instead of 380. The digests are the same bit for bit
 * (`tests/protocols/hash_test.ts`).
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";

/**
 * Inputs of at least this many bytes are hashed natively (`node:crypto`), shorter ones in
 * JavaScript: the two cost the same somewhere between 256 and 512 bytes here.
 */
export const NATIVE_HASH_FROM_BYTES = 512;

/** SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array): Uint8Array {
  if (bytes.length < NATIVE_HASH_FROM_BYTES) return nobleSha256(bytes);
  return plainBytes(createHash("sha256").update(bytes).digest());
}

/** HMAC-SHA256 of `message` under `key` (a commitment only the key's holders can check). */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  if (message.length < NATIVE_HASH_FROM_BYTES) return hmac(nobleSha256, key, message);
  return plainBytes(createHmac("sha256", key).update(message).digest());
}

/** A `Buffer`'s bytes as a plain `Uint8Array` (what every caller of this module gets). */
function plainBytes(digest: Uint8Array): Uint8Array {
  return new Uint8Array(digest);
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += bytes[i].toString(16).padStart(2, "0");
  return out;
}

/** Bytes of a hex string; throws `TypeError` on odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError("not a hex string");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return toHex(sha256(bytes));
}
