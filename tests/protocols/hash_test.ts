/**
 * Hashing and byte helpers (`protocols/hash.ts`, `protocols/bytes_equal.ts`).
 */
import assert from "node:assert/strict";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import {
  fromHex,
  hmacSha256,
  NATIVE_HASH_FROM_BYTES,
  sha256,
  sha256Hex,
  toHex,
} from "../../protocols/hash.ts";
import { prng } from "../_prng.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";

const ascii = (text: string) => new TextEncoder().encode(text);

/** Seeded bytes (`tests/_prng.ts`), so a hash of the wrong window would not match. */
function pattern(length: number, seed = 1): Uint8Array {
  const next = prng(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}

Deno.test("sha256 gives the FIPS 180-2 digests on both sides of the native threshold", () => {
  assert.equal(
    sha256Hex(new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    sha256Hex(ascii("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // One million 'a': far above the threshold, so hashed natively.
  assert.equal(
    sha256Hex(new Uint8Array(1_000_000).fill(0x61)),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
});

Deno.test("sha256 equals the pure-JS hash for every length around the threshold", () => {
  for (
    const length of [
      0,
      1,
      55,
      56,
      64,
      NATIVE_HASH_FROM_BYTES - 1,
      NATIVE_HASH_FROM_BYTES,
      NATIVE_HASH_FROM_BYTES + 1,
      4096,
      (1 << 20) + 3,
    ]
  ) {
    const bytes = pattern(length, length + 1);
    assert.deepEqual(sha256(bytes), nobleSha256(bytes), `length ${length}`);
  }
});

Deno.test("sha256 hashes exactly a view's window, not the buffer around it", () => {
  const buffer = pattern(3 * NATIVE_HASH_FROM_BYTES);
  const view = buffer.subarray(7, 7 + 2 * NATIVE_HASH_FROM_BYTES);
  assert.deepEqual(sha256(view), nobleSha256(view.slice()));
  assert.notDeepEqual(sha256(view), sha256(buffer));
});

Deno.test("sha256 returns a plain 32-byte Uint8Array that owns its buffer", () => {
  for (const length of [10, NATIVE_HASH_FROM_BYTES * 2]) {
    const digest = sha256(pattern(length));
    assert.equal(Object.getPrototypeOf(digest), Uint8Array.prototype, `length ${length}`);
    assert.equal(digest.length, 32);
    assert.equal(digest.byteOffset, 0);
    assert.equal(digest.buffer.byteLength, 32);
  }
});

Deno.test("hmacSha256 gives the RFC 4231 values and equals the pure-JS HMAC for long messages", () => {
  // RFC 4231, test case 2.
  assert.equal(
    toHex(hmacSha256(ascii("Jefe"), ascii("what do ya want for nothing?"))),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  // RFC 4231, test case 6: a key longer than the block, hashed first.
  assert.equal(
    toHex(
      hmacSha256(
        new Uint8Array(131).fill(0xaa),
        ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
      ),
    ),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
  );
  const key = pattern(32, 9);
  for (const length of [NATIVE_HASH_FROM_BYTES - 1, NATIVE_HASH_FROM_BYTES, 100_000]) {
    const message = pattern(length, 3);
    assert.deepEqual(hmacSha256(key, message), hmac(nobleSha256, key, message), `length ${length}`);
  }
});

Deno.test("fromHex reverses toHex and refuses what is not hex", () => {
  const bytes = pattern(40);
  assert.deepEqual(fromHex(toHex(bytes)), bytes);
  assert.throws(() => fromHex("abc"), TypeError);
  assert.throws(() => fromHex("zz"), TypeError);
});

Deno.test("bytesEqual is true exactly when lengths and every byte agree", () => {
  assert.equal(bytesEqual(new Uint8Array(0), new Uint8Array(0)), true);
  assert.equal(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(bytesEqual(new Uint8Array([9, 2, 3]), new Uint8Array([1, 2, 3])), false);
  assert.equal(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
});

Deno.test("bytesEqual compares the viewed bytes of subarrays, not their whole buffers", () => {
  const buffer = new Uint8Array([0, 7, 8, 0]);
  assert.equal(bytesEqual(buffer.subarray(1, 3), new Uint8Array([7, 8])), true);
  assert.equal(bytesEqual(buffer.subarray(0, 2), new Uint8Array([7, 8])), false);
});
