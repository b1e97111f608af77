/**
 * A node's ed25519 identity: the key that signs envelopes, receipts, verdicts and ledger
 * entries. The same 32-byte seed later serves as the node's Hyperswarm key pair.
 *
 * @module
 */
import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";

// @noble/ed25519 3.x needs a synchronous SHA-512 for its sync API.
ed.hashes.sha512 = sha512;

/** Length in bytes of an ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
/** Length in bytes of an ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** An ed25519 key pair that can sign. */
export class Identity {
  readonly #secretKey: Uint8Array;
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;

  private constructor(secretKey: Uint8Array) {
    if (secretKey.length !== 32) throw new RangeError("ed25519 secret key must be 32 bytes");
    this.#secretKey = secretKey;
    this.publicKey = ed.getPublicKey(secretKey);
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
    return ed.sign(message, this.#secretKey);
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
  try {
    // Strict RFC 8032 verification. noble's default (ZIP-215) accepts an all-zero signature
    // under a small-order key such as all zeros for *any* message, which would let anyone
    // "sign" receipts and verdicts as that key.
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
