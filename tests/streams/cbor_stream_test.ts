import assert from "node:assert/strict";
import {
  CborDecoderStream,
  CborEncoderStream,
  EnvelopeDecoderStream,
  EnvelopeEncoderStream,
} from "../../streams/cbor_stream.ts";
import type { Envelope } from "../../protocols/envelope.ts";
import { encodeCbor } from "../../protocols/cbor.ts";

Deno.test("envelopes round-trip through the envelope codec streams", async () => {
  const envelopes: Envelope[] = [
    { v: 1, type: "ping", id: 1, body: { nonce: 5 } },
    { v: 1, type: "test.data", id: 2, re: 1, body: { bytes: new Uint8Array([1, 2, 3]) } },
  ];
  const out = await Array.fromAsync(
    ReadableStream.from(envelopes)
      .pipeThrough(new EnvelopeEncoderStream())
      .pipeThrough(new EnvelopeDecoderStream()),
  );
  assert.deepEqual(out.map((f) => f.ok && f.envelope), envelopes);
});

Deno.test("absent optional envelope fields are left out of the encoding, not sent as null", async () => {
  const [payload] = await Array.fromAsync(
    ReadableStream.from([{ v: 1, type: "ping", id: 1, re: undefined, body: null } as Envelope])
      .pipeThrough(new EnvelopeEncoderStream()),
  );
  assert.equal(
    payload.byteLength,
    encodeCbor({ v: 1, type: "ping", id: 1, body: null }).byteLength,
  );
});

Deno.test("the envelope decoder reports a bad frame as a typed result and keeps going", async () => {
  const good = encodeCbor({ v: 1, type: "ping", id: 1, body: { nonce: 1 } });
  const out = await Array.fromAsync(
    ReadableStream.from([
      new Uint8Array([0xff]),
      encodeCbor({ v: 9, type: "x", id: 2, body: 0 }),
      good,
    ])
      .pipeThrough(new EnvelopeDecoderStream()),
  );
  assert.equal(out.length, 3);
  assert.deepEqual(out.map((f) => f.ok ? "ok" : f.error.code), [
    "malformed_cbor",
    "unknown_version",
    "ok",
  ]);
});

Deno.test("the plain CBOR decoder round-trips values and errors on a bad payload", async () => {
  const values = [1, "two", { three: [3] }, new Uint8Array([4])];
  const out = await Array.fromAsync(
    ReadableStream.from(values).pipeThrough(new CborEncoderStream())
      .pipeThrough(new CborDecoderStream()),
  );
  assert.deepEqual(out, values);
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([new Uint8Array([0x9f])]).pipeThrough(new CborDecoderStream()),
    ),
    (e: unknown) => (e as { code?: string }).code === "malformed_cbor",
  );
});
