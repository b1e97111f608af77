/**
 * Envelope signatures (ed25519), bound to a session.
 *
 * The signature covers the canonical CBOR (sorted keys) of the envelope without `sig`, with
 * `from` set to the signer's public key, plus a domain string and a *session id* that is not
 * on the wire: the id of the authenticated session the envelope travels in (see
 * `session_handshake.ts`), or any receiver-chosen nonce. So neither the body nor the
 * addressing (`type`, `id`, `re`) can be changed or replayed into another exchange, and an
 * envelope captured in one session is refused in any other — on another connection, by
 * another node, or as a stale reply after a reconnect. Verification runs on the body as
 * decoded, before schema parsing, because parsing strips unknown keys and would change the
 * signed bytes.
 *
 * Frames between two nodes need no signature at all: the session handshake already proved
 * who the peer is. Sign envelopes only when a third party must check them later.
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signEnvelope, verifyEnvelope } from "./envelope_signing.ts";
 * const me = Identity.generate();
 * const session = crypto.getRandomValues(new Uint8Array(32));
 * const signed = signEnvelope({ v: 1, type: "ping", id: 1, body: { nonce: 7 } }, me, session);
 * verifyEnvelope(signed, session); // true
 * verifyEnvelope(signed, new Uint8Array(32)); // false: another session
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

/** Separates envelope signatures from every other thing an identity signs. */
const ENVELOPE_SIGNING_DOMAIN = "veriflow/envelope/v1";

/**
 * The bytes a signature covers: canonical CBOR of the envelope minus `sig`, with the domain
 * and the session id it is bound to.
 */
export function envelopeSigningBytes(envelope: Envelope, sessionId: Uint8Array): Uint8Array {
  const unsigned: Record<string, unknown> = {
    domain: ENVELOPE_SIGNING_DOMAIN,
    session: sessionId,
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
 * Sign an envelope for one session: returns a copy with `from` = the identity's public key
 * and `sig` set. `undefined` fields in the body are dropped so the signature survives the wire.
 * @param envelope What to sign.
 * @param identity The signer.
 * @param sessionId The session it is for (`Connection.sessionId`, or a receiver's nonce).
 */
export function signEnvelope<B>(
  envelope: Envelope<B>,
  identity: Identity,
  sessionId: Uint8Array,
): Envelope<B> {
  const signed: Envelope<B> = {
    v: envelope.v,
    type: envelope.type,
    id: envelope.id,
    from: identity.publicKey,
    body: withoutUndefined(envelope.body) as B,
  };
  if (envelope.re !== undefined) signed.re = envelope.re;
  signed.sig = identity.sign(envelopeSigningBytes(signed, sessionId));
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
 * Whether `envelope` carries a valid signature by `from` for session `sessionId` (false if
 * unsigned, tampered, signed for another session, or `from` is a weak key).
 */
export function verifyEnvelope(envelope: Envelope, sessionId: Uint8Array): boolean {
  if (!envelope.from || !envelope.sig) return false;
  if (isWeakPublicKey(envelope.from)) return false;
  return verifySignature(envelope.from, envelopeSigningBytes(envelope, sessionId), envelope.sig);
}

/**
 * Throw {@link BadSignatureError} unless `envelope` is validly signed for `sessionId` (and, if
 * given, by `expectedSigner`).
 */
export function assertEnvelopeSignature(
  envelope: Envelope,
  sessionId: Uint8Array,
  expectedSigner?: Uint8Array,
): void {
  const where = { envelopeId: envelope.id, envelopeRe: envelope.re, envelopeType: envelope.type };
  if (!envelope.sig || !envelope.from) {
    throw new BadSignatureError("envelope is not signed", where);
  }
  if (expectedSigner && !bytesEqual(expectedSigner, envelope.from)) {
    throw new BadSignatureError("envelope signed by an unexpected key", where);
  }
  if (!verifyEnvelope(envelope, sessionId)) {
    throw new BadSignatureError("signature does not verify", where);
  }
}
