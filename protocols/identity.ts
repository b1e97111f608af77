/**
 * A node's ed25519 identity: the key that signs envelopes, receipts, verdicts and ledger
 * entries. The same 32-byte seed is the node's Hyperswarm key pair.
 *
 * Signing and verifying run on the runtime's native ed25519 (`node:crypto`), synchronously:
 * measured here about 20 µs to sign and 40 µs to verify, against 190 µs and 870 µs for the
 * pure-JS `@noble/ed25519` — which matters on the paths that verify per job (a relaying node
 * checks every receipt it forwards, a ledger signs every entry). Signatures are RFC 8032's, so
 * they are byte-for-byte what any ed25519 implementation gives for the same seed and message.
 * Noble still derives the public key from a seed and decodes points: a small-order public
 * key is refused before the native check, because with one an all-zero or identity
 * "signature" can verify for many messages (the ZIP-215 forgery family).
 *
 * @module
 */
import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nativeSign,
  verify as nativeVerify,
} from "node:crypto";
import { fromHex } from "./hash.ts";

// @noble/ed25519 3.x needs a synchronous SHA-512 for its sync API (public keys, points).
ed.hashes.sha512 = sha512;

/** Length in bytes of an ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
/** Length in bytes of an ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** DER prefixes that wrap a raw ed25519 key as SPKI (public) and PKCS#8 (private seed). */
const SPKI_PREFIX = fromHex("302a300506032b6570032100");
const PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");

/** Public keys seen recently, imported once (a node talks to few keys, again and again). */
const MAX_CACHED_KEYS = 1024;
const publicKeys = new Map<string, KeyObject | null>();

function withPrefix(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const der = new Uint8Array(prefix.length + key.length);
  der.set(prefix);
  der.set(key, prefix.length);
  return der;
}

/** The native key for `publicKey`, or null when it is not a usable key (or of small order). */
function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  const id = String.fromCharCode(...publicKey);
  const cached = publicKeys.get(id);
  if (cached !== undefined) return cached;
  let key: KeyObject | null = null;
  try {
    // Strict decoding (no ZIP-215 leniency), and no key of small order.
    if (!ed.Point.fromBytes(publicKey, false).isSmallOrder()) {
      key = createPublicKey({
        key: withPrefix(SPKI_PREFIX, publicKey) as Uint8Array<ArrayBuffer>,
        format: "der",
        type: "spki",
      });
    }
  } catch {
    key = null; // not a point on the curve
  }
  publicKeys.set(id, key);
  if (publicKeys.size > MAX_CACHED_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
  return key;
}

/** An ed25519 key pair that can sign. */
export class Identity {
  readonly #secretKey: Uint8Array;
  readonly #signingKey: KeyObject;
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;

  private constructor(secretKey: Uint8Array) {
    if (secretKey.length !== 32) throw new RangeError("ed25519 secret key must be 32 bytes");
    this.#secretKey = secretKey;
    this.publicKey = ed.getPublicKey(secretKey);
    this.#signingKey = createPrivateKey({
      key: withPrefix(PKCS8_PREFIX, secretKey) as Uint8Array<ArrayBuffer>,
      format: "der",
      type: "pkcs8",
    });
  }

  /** A fresh random identity. */
  static generate(): Identity {
    return new Identity(ed.utils.randomSecretKey());
  }

  /** The identity for a stored 32-byte secret key (seed). */
  static fromSecretKey(secretKey: Uint8Array): Identity {
    return new Identity(new Uint8Array(secretKey));
  }

  /** The 32-byte secret seed, for persisting the identity. Handle with care. */
  exportSecretKey(): Uint8Array {
    return new Uint8Array(this.#secretKey);
  }

  /** Sign a message; returns a 64-byte signature. */
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(nativeSign(null, message, this.#signingKey));
  }
}

/** Verify an ed25519 signature; returns false (never throws) on any malformed input. */
export function verifySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey?.length !== PUBLIC_KEY_BYTES || signature?.length !== SIGNATURE_BYTES) {
    return false;
  }
  const key = publicKeyObject(publicKey);
  if (key === null) return false;
  try {
    return nativeVerify(null, message, key, signature);
  } catch {
    return false;
  }
}
