/**
 * What a decoded frame keeps alive (review s81 wire, F1): a small byte string (a key, a
 * signature) decoded from a peer's frame has a buffer of its own, so a node that keeps it for
 * good (a ledger's pledge, receipt or verdict, a peer's hello) keeps its own bytes, not the whole
 * frame its sender padded to 1 MiB with a field the schema drops. Before, every byte string was
 * a view of the frame. A bulk byte string (half the frame or more: a storage chunk) is still a
 * view: it is most of the frame anyway, and a second copy of each chunk would cost the transfer.
 */
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope } from "../../protocols/envelope.ts";
import { decodeCheckedCbor } from "../../protocols/cbor_guard.ts";
import { encodeCbor } from "../../protocols/cbor.ts";

const PAD = "x".repeat(900_000);

Deno.test("a signature in a padded frame is decoded with a buffer of its own, not a view of the frame", () => {
  const sig = crypto.getRandomValues(new Uint8Array(64));
  const key = crypto.getRandomValues(new Uint8Array(32));
  const frame = encodeEnvelope({
    v: 1,
    type: "validation.stake",
    id: 1,
    body: { pledge: { key, amount: 100, seq: 1, sig }, pad: PAD },
  });
  assert.ok(frame.byteLength > 900_000);
  const body = decodeEnvelope(frame).body as { pledge: { key: Uint8Array; sig: Uint8Array } };
  assert.deepEqual(body.pledge.sig, sig);
  assert.deepEqual(body.pledge.key, key);
  // Failed before the fix: 900,1xx bytes (the frame) behind each.
  assert.equal(body.pledge.sig.buffer.byteLength, 64, "the kept signature pins the frame");
  assert.equal(body.pledge.key.buffer.byteLength, 32, "the kept key pins the frame");
  // Also padded with bytes rather than text, and in an array: the same.
  const bytesPadded = encodeCbor({ sigs: [sig, sig], pad: new Uint8Array(400_000) });
  const both = decodeCheckedCbor(bytesPadded) as { sigs: Uint8Array[]; pad: Uint8Array };
  assert.ok(both.sigs.every((s) => s.buffer.byteLength === 64));
});

Deno.test("a bulk byte string (half the frame or more) stays a view of the frame; the small ones beside it are copies", () => {
  const data = new Uint8Array(256 * 1024).map((_, i) => i * 7);
  const cid = crypto.getRandomValues(new Uint8Array(36));
  const frame = encodeCbor({ cid, data });
  const got = decodeCheckedCbor(frame) as { cid: Uint8Array; data: Uint8Array };
  assert.deepEqual(got.data, data);
  assert.deepEqual(got.cid, cid);
  assert.equal(got.data.buffer, frame.buffer, "a chunk was copied again");
  assert.equal(got.cid.buffer.byteLength, 36, "the chunk's CID pins its frame");
  // Two halves: each at most twice its own size behind it.
  const halves = decodeCheckedCbor(encodeCbor([new Uint8Array(1000), new Uint8Array(1000)]));
  for (const h of halves as Uint8Array[]) assert.ok(h.buffer.byteLength <= 2 * h.byteLength + 16);
});

Deno.test("a typed array (an RFC 8746 tag) in a frame is its own copy too", () => {
  const floats = new Float32Array([1, 2, 3, 4]);
  const frame = encodeCbor({ t: floats, pad: PAD.slice(0, 10_000) });
  const got = decodeCheckedCbor(frame) as { t: Float32Array };
  assert.deepEqual(Array.from(got.t), [1, 2, 3, 4]);
  assert.ok(got.t.buffer.byteLength <= 64, `the typed array pins ${got.t.buffer.byteLength} bytes`);
});
