import assert from "node:assert/strict";
import { bytesEqual } from "../../protocols/bytes_equal.ts";

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
