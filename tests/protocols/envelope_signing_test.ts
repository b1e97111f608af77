import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  assertEnvelopeSignature,
  isWeakPublicKey,
  signEnvelope,
  verifyEnvelope,
} from "../../protocols/envelope_signing.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import { BadSignatureError } from "../../protocols/protocol_errors.ts";

const base: Envelope = { v: 1, type: "test.echo", id: 3, body: { text: "hi", n: 1 } };
const session = new Uint8Array(32).fill(5);

Deno.test("a signed envelope verifies after a trip over the wire, with from = the signer", () => {
  const me = Identity.generate();
  const signed = signEnvelope({ ...base, re: 2 }, me, session);
  assert.deepEqual(signed.from, me.publicKey);
  const received = decodeEnvelope(encodeEnvelope(signed));
  assert.ok(verifyEnvelope(received, session));
  assertEnvelopeSignature(received, session, me.publicKey);
});

Deno.test("undefined body fields do not break the signature on the wire", () => {
  const signed = signEnvelope(
    { ...base, body: { text: "x", gone: undefined, n: 2 } },
    Identity.generate(),
    session,
  );
  assert.ok(verifyEnvelope(decodeEnvelope(encodeEnvelope(signed)), session));
});

Deno.test("a tampered body, id, re or type does not verify", () => {
  const signed = signEnvelope({ ...base, re: 1 }, Identity.generate(), session);
  assert.ok(!verifyEnvelope({ ...signed, body: { text: "hj", n: 1 } }, session));
  assert.ok(!verifyEnvelope({ ...signed, id: 4 }, session));
  assert.ok(!verifyEnvelope({ ...signed, re: 2 }, session));
  assert.ok(!verifyEnvelope({ ...signed, type: "test.other" }, session));
  const flipped = new Uint8Array(signed.sig!);
  flipped[0] ^= 1;
  assert.ok(!verifyEnvelope({ ...signed, sig: flipped }, session));
});

Deno.test("an envelope signed for one session does not verify in another", () => {
  const signed = signEnvelope(base, Identity.generate(), session);
  const other = new Uint8Array(session);
  other[31] ^= 1;
  assert.ok(verifyEnvelope(signed, session));
  assert.ok(!verifyEnvelope(signed, other));
  assert.throws(() => assertEnvelopeSignature(signed, other), BadSignatureError);
});

Deno.test("a signature under another key, or a swapped from, is refused", () => {
  const alice = Identity.generate();
  const mallory = Identity.generate();
  const signed = signEnvelope(base, mallory, session);
  assert.throws(() => assertEnvelopeSignature(signed, session, alice.publicKey), BadSignatureError);
  assert.ok(!verifyEnvelope({ ...signed, from: alice.publicKey }, session));
  assert.throws(
    () => assertEnvelopeSignature(base, session),
    (e: unknown) => e instanceof BadSignatureError && e.code === "bad_signature",
  );
});

Deno.test("a small-order public key with an identity signature is refused (ZIP-215 forgery)", () => {
  // from = all zeros (a point of order 4), sig = R all zeros, S = 0: ZIP-215 accepts this for
  // any message under that key.
  const forged: Envelope = { ...base, from: new Uint8Array(32), sig: new Uint8Array(64) };
  assert.ok(isWeakPublicKey(forged.from!));
  assert.ok(!verifyEnvelope(forged, session));
  assert.ok(!isWeakPublicKey(Identity.generate().publicKey));
});
