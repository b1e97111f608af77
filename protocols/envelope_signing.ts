/**
 * Envelope signatures (ed25519).
 *
 * The signature covers the canonical CBOR (sorted keys) of the envelope without `sig`, with
 * `from` set to the signer's public key, so neither the body nor the addressing (`type`,
 * `id`, `re`) can be changed or replayed into another exchange without breaking it.
 * Verification runs on the body as decoded, before schema parsing, because parsing strips
 * unknown keys and would change the signed bytes.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signEnvelope, verifyEnvelope } from "./envelope_signing.ts";
 * const me = Identity.generate();
 * const signed = signEnvelope({ v: 1, type: "ping", id: 1, body: { nonce: 7 } }, me);
 * verifyEnvelope(signed); // true
 * ```
 *
 * @module
 */
import * as ed from "@noble/ed25519";
import { bytesEqual } from "./bytes_equal.ts";
import { encodeCanonical } from "./cbor.ts";
import type { Envelope } from "./envelope.ts";
import { type Identity, verifySignature } from "./identity.ts";
import { BadSignatureError } from "./protocol_errors.ts";

/**
 * Drop object fields whose value is `undefined`, deeply. The wire encoder turns them into
 * CBOR null while the canonical encoder drops them, so a body that kept them would be signed
 * over different bytes than the receiver re-encodes.
 */
function withoutUndefined(value: unknown): unknown {
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(withoutUndefined);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) out[k] = withoutUndefined(v);
  }
  return out;
}

/** The bytes a signature covers: canonical CBOR of the envelope minus `sig`. */
export function envelopeSigningBytes(envelope: Envelope): Uint8Array {
  const unsigned: Record<string, unknown> = {
    v: envelope.v,
    type: envelope.type,
    id: envelope.id,
    body: envelope.body,
  };
  if (envelope.from !== undefined) unsigned.from = envelope.from;
  if (envelope.re !== undefined) unsigned.re = envelope.re;
  return encodeCanonical(unsigned);
}

/**
 * Sign an envelope: returns a copy with `from` = the identity's public key and `sig` set.
 * `undefined` fields in the body are dropped so the signature survives the wire.
 */
export function signEnvelope<B>(envelope: Envelope<B>, identity: Identity): Envelope<B> {
  const signed: Envelope<B> = {
    v: envelope.v,
    type: envelope.type,
    id: envelope.id,
    from: identity.publicKey,
    body: withoutUndefined(envelope.body) as B,
  };
  if (envelope.re !== undefined) signed.re = envelope.re;
  signed.sig = identity.sign(envelopeSigningBytes(signed));
  return signed;
}

/**
 * Whether `publicKey` is a small-order (or undecodable) ed25519 point. Under ZIP-215 rules a
 * crafted signature verifies for such a key on *every* message; `verifySignature` uses strict
 * RFC 8032 checks and refuses those signatures, and envelopes refuse the keys themselves as a
 * second line, since a `from` of small order can never identify a signer.
 */
export function isWeakPublicKey(publicKey: Uint8Array): boolean {
  try {
    return ed.Point.fromBytes(publicKey).isSmallOrder();
  } catch {
    return true;
  }
}

/**
 * Whether `envelope` carries a valid signature by `from` (false if unsigned, tampered, or
 * `from` is a weak key).
 */
export function verifyEnvelope(envelope: Envelope): boolean {
  if (!envelope.from || !envelope.sig) return false;
  if (isWeakPublicKey(envelope.from)) return false;
  return verifySignature(envelope.from, envelopeSigningBytes(envelope), envelope.sig);
}

/**
 * Throw {@link BadSignatureError} unless `envelope` is validly signed (and, if given, by
 * `expectedSigner`).
 */
export function assertEnvelopeSignature(envelope: Envelope, expectedSigner?: Uint8Array): void {
  const where = { envelopeId: envelope.id, envelopeRe: envelope.re, envelopeType: envelope.type };
  if (!envelope.sig || !envelope.from) {
    throw new BadSignatureError("envelope is not signed", where);
  }
  if (expectedSigner && !bytesEqual(expectedSigner, envelope.from)) {
    throw new BadSignatureError("envelope signed by an unexpected key", where);
  }
  if (!verifyEnvelope(envelope)) throw new BadSignatureError("signature does not verify", where);
}
