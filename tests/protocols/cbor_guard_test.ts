import assert from "node:assert/strict";
import { checkCborStructure, DEFAULT_MAX_CBOR_DEPTH } from "../../protocols/cbor_guard.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { MalformedCborError, NestingTooDeepError } from "../../protocols/protocol_errors.ts";

const code = (bytes: Uint8Array, maxDepth?: number): string => {
  try {
    checkCborStructure(bytes, maxDepth);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof MalformedCborError || e instanceof NestingTooDeepError, String(e));
    return (e as MalformedCborError).code;
  }
};

Deno.test("everything our encoder emits for envelopes passes the guard", () => {
  const values = [
    { v: 1, type: "ping", id: 1, body: { nonce: 1 } },
    { v: 1, type: "x", id: 2 ** 40, re: 3, body: { f: 1.5, neg: -7, big: 2 ** 60, s: "é✓" } },
    { v: 1, type: "x", id: 3, body: { bytes: new Uint8Array(70000), list: [null, true, false] } },
    { v: 1, type: "x", id: 4, body: new Float32Array([1, 2, 3]) }, // typed-array tag
    { v: 1, type: "x", id: 5, body: "y".repeat(70000) },
  ];
  for (const v of values) assert.equal(code(encodeCbor(v)), "ok", JSON.stringify(v).slice(0, 60));
});

Deno.test("deep nesting is refused iteratively, without recursing", () => {
  const deep = new Uint8Array(200_000).fill(0x81); // [[[[...
  assert.equal(code(deep), "nesting_too_deep");
  const okDepth = new Uint8Array(DEFAULT_MAX_CBOR_DEPTH + 1).fill(0x81);
  okDepth[DEFAULT_MAX_CBOR_DEPTH] = 0x00;
  assert.equal(code(okDepth), "ok");
  const tooDeep = new Uint8Array(DEFAULT_MAX_CBOR_DEPTH + 2).fill(0x81);
  tooDeep[DEFAULT_MAX_CBOR_DEPTH + 1] = 0x00;
  assert.equal(code(tooDeep), "nesting_too_deep");
});

Deno.test("declared lengths that run past the frame are refused", () => {
  assert.equal(code(new Uint8Array([0x9a, 0xff, 0xff, 0xff, 0xff])), "malformed_cbor"); // 4G items
  assert.equal(code(new Uint8Array([0x5a, 0x7f, 0xff, 0xff, 0xff, 1])), "malformed_cbor"); // 2 GB bytes
  assert.equal(
    code(new Uint8Array([0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
    "malformed_cbor",
  );
  assert.equal(code(new Uint8Array([0x19, 0x01])), "malformed_cbor"); // truncated header
  assert.equal(code(new Uint8Array([0x82, 0x01])), "malformed_cbor"); // array missing an item
});

Deno.test("tags other than typed arrays, indefinite lengths and reserved encodings are refused", () => {
  assert.equal(code(new Uint8Array([0xc1, 0x01])), "malformed_cbor"); // tag 1 (date)
  assert.equal(code(new Uint8Array([0xd8, 0x1c, 0x80])), "malformed_cbor"); // tag 28 (shared ref)
  assert.equal(code(new Uint8Array([0xd8, 0x40, 0x01])), "malformed_cbor"); // typed tag on a non-string
  assert.equal(code(new Uint8Array([0x9f, 0xff])), "malformed_cbor"); // indefinite array
  assert.equal(code(new Uint8Array([0x1c])), "malformed_cbor"); // reserved additional info
  assert.equal(code(new Uint8Array([0xff])), "malformed_cbor"); // lone break
});

Deno.test("trailing bytes and empty frames are refused", () => {
  assert.equal(code(new Uint8Array([0x01, 0x02])), "malformed_cbor");
  assert.equal(code(new Uint8Array([])), "malformed_cbor");
});
