import assert from "node:assert/strict";
import { decodeCbor, encodeCbor, encodeCborWithHeadroom } from "../../protocols/cbor.ts";
import { encodeEnvelope, encodeEnvelopeWithHeadroom } from "../../protocols/envelope.ts";

const CHUNK_BYTES = 256 * 1024;
const HEADROOM = 4;

function chunk(fill: number, bytes = CHUNK_BYTES): Uint8Array {
  return new Uint8Array(bytes).fill(fill);
}

/** `encoded` is `headroom` zero bytes, then exactly `expected`. */
function assertHeadroomThen(encoded: Uint8Array, headroom: number, expected: Uint8Array): void {
  assert.deepEqual(encoded.subarray(0, headroom), new Uint8Array(headroom));
  assert.deepEqual(encoded.subarray(headroom), expected);
}

Deno.test("encodeCborWithHeadroom gives encodeCbor's bytes after the headroom, small or bulk", () => {
  const small = { type: "ping", id: 7, body: { nonce: 1 } };
  assertHeadroomThen(encodeCborWithHeadroom(small, HEADROOM, 0), HEADROOM, encodeCbor(small));
  const bulk = { cid: "b".repeat(59), bytes: chunk(0x5a) };
  assertHeadroomThen(
    encodeCborWithHeadroom(bulk, HEADROOM, CHUNK_BYTES),
    HEADROOM,
    encodeCbor(bulk),
  );
});

Deno.test("encodeCborWithHeadroom writes a bulk value's long strings (cbor-x's Buffer path)", () => {
  // Strings of 64 characters and more are written with Buffer's utf8Write: a plain Uint8Array
  // handed to cbor-x would fail here.
  const value = { text: "ünïcödé ".repeat(100), bytes: chunk(1) };
  const encoded = encodeCborWithHeadroom(value, HEADROOM, CHUNK_BYTES);
  assertHeadroomThen(encoded, HEADROOM, encodeCbor(value));
  assert.deepEqual(decodeCbor(encoded.subarray(HEADROOM)), value);
});

Deno.test("encodeCborWithHeadroom is right when the value outgrows its size hint", () => {
  const value = { bytes: chunk(2), more: chunk(3, 3 * CHUNK_BYTES) };
  const encoded = encodeCborWithHeadroom(value, HEADROOM, CHUNK_BYTES);
  assertHeadroomThen(encoded, HEADROOM, encodeCbor(value));
});

Deno.test("encodeCborWithHeadroom's result is not shared with what is encoded after it", () => {
  const frame = encodeCborWithHeadroom({ bytes: chunk(4) }, HEADROOM, CHUNK_BYTES);
  const copy = frame.slice();
  const later = encodeCbor({ after: "x".repeat(100) });
  assert.notEqual(later.buffer, frame.buffer);
  // Many encodes later (cbor-x's own buffer filled and replaced), the frame is untouched.
  for (let i = 0; i < 1000; i++) encodeCbor({ i, pad: "y".repeat(200) });
  assert.deepEqual(frame, copy);
});

Deno.test("encodeCborWithHeadroom leaves cbor-x usable after an encode that throws", () => {
  const failing = {
    bytes: chunk(5),
    get boom(): never {
      throw new Error("boom");
    },
  };
  assert.throws(() => encodeCborWithHeadroom(failing, 0, CHUNK_BYTES), /boom/);
  const value = { after: "the failure", bytes: chunk(6, 10) };
  assert.deepEqual(decodeCbor(encodeCbor(value)), value);
});

Deno.test("encodeEnvelopeWithHeadroom gives encodeEnvelope's bytes after the headroom", () => {
  const envelope = {
    v: 1,
    type: "storage.put_chunk",
    id: 3,
    re: undefined,
    body: { cid: "c".repeat(59), bytes: chunk(7) },
  };
  assertHeadroomThen(
    encodeEnvelopeWithHeadroom(envelope, HEADROOM),
    HEADROOM,
    encodeEnvelope(envelope),
  );
});
