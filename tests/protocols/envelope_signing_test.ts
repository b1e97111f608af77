import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  assertEnvelopeSignature,
  isWeakPublicKey,
  signEnvelope,
  verifyEnvelope,
} from "../../protocols/envelope_signing.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import { BadSignatureError, RemoteError } from "../../protocols/protocol_errors.ts";
import { connectedPair, Echo } from "./_helpers.ts";

const base: Envelope = { v: 1, type: "test.echo", id: 3, body: { text: "hi", n: 1 } };

Deno.test("a signed envelope verifies after a trip over the wire, with from = the signer", () => {
  const me = Identity.generate();
  const signed = signEnvelope({ ...base, re: 2 }, me);
  assert.deepEqual(signed.from, me.publicKey);
  const received = decodeEnvelope(encodeEnvelope(signed));
  assert.ok(verifyEnvelope(received));
  assertEnvelopeSignature(received, me.publicKey);
});

Deno.test("undefined body fields do not break the signature on the wire", () => {
  const signed = signEnvelope(
    { ...base, body: { text: "x", gone: undefined, n: 2 } },
    Identity.generate(),
  );
  assert.ok(verifyEnvelope(decodeEnvelope(encodeEnvelope(signed))));
});

Deno.test("a tampered body, id, re or type does not verify", () => {
  const signed = signEnvelope({ ...base, re: 1 }, Identity.generate());
  assert.ok(!verifyEnvelope({ ...signed, body: { text: "hj", n: 1 } }));
  assert.ok(!verifyEnvelope({ ...signed, id: 4 }));
  assert.ok(!verifyEnvelope({ ...signed, re: 2 }));
  assert.ok(!verifyEnvelope({ ...signed, type: "test.other" }));
  const flipped = new Uint8Array(signed.sig!);
  flipped[0] ^= 1;
  assert.ok(!verifyEnvelope({ ...signed, sig: flipped }));
});

Deno.test("a signature under another key, or a swapped from, is refused", () => {
  const alice = Identity.generate();
  const mallory = Identity.generate();
  const signed = signEnvelope(base, mallory);
  assert.throws(() => assertEnvelopeSignature(signed, alice.publicKey), BadSignatureError);
  assert.ok(!verifyEnvelope({ ...signed, from: alice.publicKey }));
  assert.throws(
    () => assertEnvelopeSignature(base),
    (e: unknown) => e instanceof BadSignatureError && e.code === "bad_signature",
  );
});

Deno.test("a connection signs everything and its peer verifies, refusing the wrong signer", async () => {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const refused: string[] = [];
  const good = connectedPair(
    { identity: alice, expectedPeer: bob.publicKey },
    { identity: bob, expectedPeer: alice.publicKey, onProtocolError: (e) => refused.push(e.code) },
  );
  good.server.handle(Echo, (b, ctx) => {
    assert.deepEqual(ctx.from, alice.publicKey);
    return { text: b.text, n: b.n };
  });
  assert.deepEqual(await good.client.request(Echo, { text: "a", n: 1 }), { text: "a", n: 1 });
  await good.close();

  const mallory = Identity.generate();
  const bad = connectedPair(
    { identity: mallory },
    { expectedPeer: alice.publicKey, onProtocolError: (e) => refused.push(e.code) },
  );
  bad.server.handle(Echo, (b) => b);
  await assert.rejects(
    bad.client.request(Echo, { text: "a", n: 1 }),
    (e: unknown) => e instanceof RemoteError && e.code === "bad_signature",
  );
  const unsigned = connectedPair({}, { requireSignatures: true });
  unsigned.server.handle(Echo, (b) => b);
  await assert.rejects(unsigned.client.request(Echo, { text: "a", n: 1 }), {
    code: "bad_signature",
  });
  assert.deepEqual(refused, ["bad_signature"]);
  await bad.close();
  await unsigned.close();
});

Deno.test("a small-order public key with an identity signature is refused (ZIP-215 forgery)", () => {
  // from = all zeros (a point of order 4), sig = R all zeros, S = 0: ZIP-215 accepts this for
  // any message under that key.
  const forged: Envelope = { ...base, from: new Uint8Array(32), sig: new Uint8Array(64) };
  assert.ok(isWeakPublicKey(forged.from!));
  assert.ok(!verifyEnvelope(forged));
  assert.ok(!isWeakPublicKey(Identity.generate().publicKey));
});
