/**
 * `encodeCborAround`: the CBOR of a value with one byte string left out, so that string can be
 * written from its own buffer. What must hold: head, the string and tail joined are exactly
 * `encodeCbor`'s bytes, at every length where the string's header changes form and wherever the
 * string sits; the string is the caller's buffer itself; a misplaced placeholder is refused.
 */
import assert from "node:assert/strict";
import { encodeCbor, encodeCborAround } from "../../protocols/cbor.ts";
import { joinBytes } from "../_helpers/bytes.ts";

const HEADROOM = 4;

function bytesOf(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);
}

Deno.test("encodeCborAround joins to encodeCbor's bytes at every byte-string header form and place", () => {
  // 23/24, 255/256, 65535/65536: where CBOR's byte-string header grows a byte.
  for (const length of [0, 1, 23, 24, 255, 256, 65_535, 65_536, 256 * 1024]) {
    const bytes = bytesOf(length);
    const shapes: ((b: Uint8Array) => unknown)[] = [
      (b) => ({ v: 1, type: "x", id: 9, body: { cid: "c".repeat(59), bytes: b } }),
      (b) => ({ v: 1, type: "x", id: 9, body: { bytes: b, cid: "c", repair: null } }),
      (b) => ({ body: { bytes: b }, sig: new Uint8Array(64).fill(3), tail: "after" }),
      (b) => b,
    ];
    for (const shape of shapes) {
      const [head, middle, tail] = encodeCborAround((p) => encodeCbor(shape(p)), bytes, HEADROOM);
      assert.deepEqual(head.subarray(0, HEADROOM), new Uint8Array(HEADROOM));
      assert.deepEqual(
        joinBytes([head.subarray(HEADROOM), middle, tail]),
        encodeCbor(shape(bytes)),
        `length ${length}, shape ${shape}`,
      );
    }
  }
});

Deno.test("encodeCborAround returns the byte string itself, and head and tail share nothing with it", () => {
  const bytes = bytesOf(100_000);
  const [head, middle, tail] = encodeCborAround(
    (p) => encodeCbor({ body: { bytes: p, more: 1 } }),
    bytes,
    HEADROOM,
  );
  assert.equal(middle, bytes);
  assert.notEqual(head.buffer, bytes.buffer);
  assert.notEqual(tail.buffer, bytes.buffer);
  // Later encodes (cbor-x reuses its buffer) leave head and tail as they were.
  const before = joinBytes([head, tail]);
  for (let i = 0; i < 100; i++) encodeCbor({ filler: "z".repeat(500), i });
  assert.deepEqual(joinBytes([head, tail]), before);
});

Deno.test("encodeCborAround refuses a value that holds its placeholder twice or not at all", () => {
  const bytes = bytesOf(10);
  assert.throws(
    () => encodeCborAround((p) => encodeCbor({ a: p, b: p }), bytes, 0),
    /exactly once/,
  );
  assert.throws(() => encodeCborAround(() => encodeCbor({ a: 1 }), bytes, 0), /exactly once/);
});
