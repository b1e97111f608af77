import assert from "node:assert/strict";
import * as ed from "@noble/ed25519";
import { Identity, verifySignature } from "../../protocols/identity.ts";

const message = new TextEncoder().encode("receipt bytes");

Deno.test("a signature verifies under its signer's key and no other", () => {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const sig = alice.sign(message);
  assert.equal(verifySignature(alice.publicKey, message, sig), true);
  assert.equal(verifySignature(bob.publicKey, message, sig), false);
  const tampered = message.slice();
  tampered[0] ^= 1;
  assert.equal(verifySignature(alice.publicKey, tampered, sig), false);
});

Deno.test("an identity restored from its exported seed signs identically", () => {
  const original = Identity.generate();
  const restored = Identity.fromSecretKey(original.exportSecretKey());
  assert.deepEqual(restored.publicKey, original.publicKey);
  assert.deepEqual(restored.sign(message), original.sign(message));
});

Deno.test("small-order keys with trivial signatures are rejected (no ZIP-215 forgery)", () => {
  const allZeroKey = new Uint8Array(32);
  const allZeroSig = new Uint8Array(64);
  assert.equal(verifySignature(allZeroKey, message, allZeroSig), false);
  const identityPoint = new Uint8Array(32);
  identityPoint[0] = 1;
  const identitySig = new Uint8Array(64);
  identitySig[0] = 1;
  assert.equal(verifySignature(identityPoint, message, identitySig), false);
});

Deno.test("malformed keys and signatures give false, never throw", () => {
  const id = Identity.generate();
  assert.equal(verifySignature(new Uint8Array(31), message, id.sign(message)), false);
  assert.equal(verifySignature(id.publicKey, message, new Uint8Array(63)), false);
  assert.equal(verifySignature(new Uint8Array(32).fill(0xff), message, id.sign(message)), false);
  assert.throws(() => Identity.fromSecretKey(new Uint8Array(16)), RangeError);
});

Deno.test("signatures are RFC 8032's: the same bytes as an independent implementation, each verifying the other's", () => {
  const id = Identity.generate();
  const seed = id.exportSecretKey();
  const ours = id.sign(message);
  const theirs = ed.sign(message, seed);
  assert.deepEqual(ours, theirs, "ed25519 signing is deterministic");
  assert.equal(ed.verify(ours, message, id.publicKey, { zip215: false }), true);
  assert.equal(verifySignature(id.publicKey, message, theirs), true);
  // S + L (the same scalar, not reduced) is refused: no malleable second signature.
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(ours[32 + i]);
  const malleated = ours.slice();
  let t = s + L;
  for (let i = 0; i < 32; i++, t >>= 8n) malleated[32 + i] = Number(t & 0xffn);
  assert.equal(verifySignature(id.publicKey, message, malleated), false);
});
