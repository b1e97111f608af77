import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope, PROTOCOL_VERSION } from "../../protocols/envelope.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { ProtocolError } from "../../protocols/protocol_errors.ts";

function refusal(bytes: Uint8Array): ProtocolError {
  try {
    decodeEnvelope(bytes);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `untyped error ${e}`);
    return e;
  }
  assert.fail("decoded a bad envelope");
}

Deno.test("an envelope round-trips with bytes, re, from and sig", () => {
  const envelope = {
    v: PROTOCOL_VERSION,
    type: "test.x",
    id: 7,
    re: 3,
    from: new Uint8Array(32).fill(1),
    body: { data: new Uint8Array([1, 2]), n: 1.25 },
    sig: new Uint8Array(64).fill(2),
  };
  assert.deepEqual(decodeEnvelope(encodeEnvelope(envelope)), envelope);
});

Deno.test("a wrong version is unknown_version and keeps the id for the error reply", () => {
  const e = refusal(encodeCbor({ v: 2, type: "ping", id: 11, body: {} }));
  assert.equal(e.code, "unknown_version");
  assert.equal(e.envelopeId, 11);
});

Deno.test("shapes that are not envelopes are invalid_envelope", () => {
  const cases = [
    [1, 2, 3],
    "text",
    { v: 1, type: "ping", body: {} }, // no id
    { v: 1, type: "", id: 1, body: {} },
    { v: 1, type: "ping", id: -1, body: {} },
    { v: 1, type: "ping", id: 1.5, body: {} },
    { v: 1, type: "ping", id: 1, body: {}, extra: true },
    { v: 1, type: "ping", id: 1, body: {}, from: new Uint8Array(31) },
    { v: 1, type: "ping", id: 1, body: {}, sig: "no" },
    { v: 1, type: "t".repeat(200), id: 1, body: {} },
  ];
  for (const c of cases) {
    assert.equal(refusal(encodeCbor(c)).code, "invalid_envelope", JSON.stringify(c).slice(0, 60));
  }
  assert.equal(refusal(encodeCbor({ v: 1, type: 5, id: 9, re: 2, body: 0 })).envelopeId, 9);
  assert.equal(refusal(encodeCbor({ v: 1, type: 5, id: 9, re: 2, body: 0 })).envelopeRe, 2);
});

Deno.test("malformed and too-deep CBOR get their own codes", () => {
  assert.equal(refusal(new Uint8Array([0xa1, 0x61])).code, "malformed_cbor");
  assert.equal(refusal(new Uint8Array(1000).fill(0x81)).code, "nesting_too_deep");
});
