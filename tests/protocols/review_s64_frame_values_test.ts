/**
 * Review s64 (red team of the wire): a frame that stands for hundreds of thousands of values.
 *
 * The CBOR guard bounds a frame's nesting and checks that every declared length fits the frame,
 * but not how many values the frame holds: at one byte a value, a 1 MiB frame holds a million.
 * cbor-x builds every one of them before any schema sees the body. Measured here (2-core
 * machine shared with other work, after warm-up): a 990 KB `ping` whose body holds 330,000
 * empty maps took ~245 ms to decode (~250 ns a byte), 500,000 empty arrays ~130 ns a byte, while
 * a flood of ordinary 35-byte pings costs ~13 ns a byte and a 1 KB string ~4. A body schema then
 * strips the field it does not know (`z.object` drops unknown keys), so such a `ping` is valid:
 * answered with a `pong`, never refused, never counted against `maxRefusals`. A peer resending
 * one precomputed frame pays only bandwidth, and each byte of it costs the receiver ~20 times
 * the CPU of any ordinary frame's: at 4 MB/s it holds the receiver's event loop, and every
 * other peer's traffic with it.
 */
import assert from "node:assert/strict";
import { encodeCbor } from "../../protocols/cbor.ts";
import {
  checkCborStructure,
  DEFAULT_MAX_CBOR_DEPTH,
  DEFAULT_MAX_FRAME_VALUES,
} from "../../protocols/cbor_guard.ts";
import { TooManyRefusalsError } from "../../protocols/protocol_errors.ts";
import { connectionWithRawPeer } from "./_helpers.ts";

/** A `ping` envelope whose body carries `pad` beside its nonce. */
function paddedPing(id: number, pad: unknown): Uint8Array {
  return encodeCbor({ v: 1, type: "ping", id, body: { nonce: 1, pad } });
}

Deno.test({
  name:
    "review s64: a ping padded with 100,000 empty maps in a field its schema does not know is refused, not decoded whole and answered",
  // Failed before the fix ("the padded ping was not refused", 0 !== 1): the frame passed the
  // guard, cbor-x decoded all 100,000 maps, the ping schema stripped `pad`, and the connection
  // answered it with a `pong`. Refusing it only by its schema would not be enough: 100 refusals
  // in 10 s, each ~160 ms of decoding at 330,000 maps, is more CPU than the window has.
  async fn() {
    const { connection, peer } = connectionWithRawPeer();
    await peer.send(paddedPing(1, Array.from({ length: 100_000 }, () => ({}))));
    const answer = await peer.next();
    assert.equal(connection.stats().refused, 1, "the padded ping was not refused");
    assert.equal(answer.type, "error");
    await connection.close();
  },
});

Deno.test({
  name:
    "review s64: the CBOR guard refuses a 1 MiB frame of 330,000 empty maps before cbor-x builds them (it bounds depth and lengths, not the count)",
  // Failed before the fix (`Missing expected exception`): checkCborStructure had no bound on
  // values but the frame's own size (one byte each), so a 1 MiB frame of 330,000 empty maps
  // passed it. The guard also reads stored blocks and files, so the bound is a parameter: a
  // connection passes its `maxFrameValues` (default DEFAULT_MAX_FRAME_VALUES).
  fn() {
    const frame = paddedPing(1, Array.from({ length: 330_000 }, () => ({})));
    assert.ok(frame.byteLength <= 1 << 20, "within the default frame limit");
    assert.throws(
      () => checkCborStructure(frame, DEFAULT_MAX_CBOR_DEPTH, DEFAULT_MAX_FRAME_VALUES),
      /more than 65536 maps, arrays and byte strings/,
    );
    // A stored block or file is as large as its author made it: no bound unless one is passed.
    checkCborStructure(frame);
  },
});

Deno.test("review s64: the guard's value bound counts maps, arrays and byte strings, not numbers or text", () => {
  const built = [[], {}, new Uint8Array(1)]; // 4: the outer array and its three
  checkCborStructure(encodeCbor(built), DEFAULT_MAX_CBOR_DEPTH, 4);
  assert.throws(
    () => checkCborStructure(encodeCbor(built), DEFAULT_MAX_CBOR_DEPTH, 3),
    /more than 3 maps, arrays and byte strings/,
  );
  // 1: numbers, text and map keys cost cbor-x about what their bytes cost in any frame.
  checkCborStructure(encodeCbor(Array.from({ length: 1000 }, (_, i) => [i, "x"][i % 2])), 64, 1);
  checkCborStructure(encodeCbor({ a: 1, b: "x", c: 2.5 }), DEFAULT_MAX_CBOR_DEPTH, 1);
});

Deno.test("review s64: a frame denser than one map, array or byte string per 8 bytes is refused under maxFrameValues; an honest one is answered", async () => {
  const { connection, peer } = connectionWithRawPeer();
  // 3,000 empty maps in ~9 KB: far under 65,536, but one per 3 bytes.
  await peer.send(paddedPing(1, Array.from({ length: 3_000 }, () => ({}))));
  const refusal = await peer.next();
  assert.deepEqual([refusal.type, (refusal.body as { code: string }).code], [
    "error",
    "malformed_cbor",
  ]);
  // Chunk openings shaped as a fraud proof's (a path of one digest): 20,000 values, one per
  // ~15 bytes (an honest proof's, with longer paths, are one per ~31).
  const opening = { index: 1, tokens: new Uint8Array(4), path: [new Uint8Array(32)] };
  await peer.send(paddedPing(2, Array.from({ length: 5_000 }, () => opening)));
  const pong = await peer.next();
  assert.deepEqual([pong.type, pong.re], ["pong", 2]);
  // A small frame may be dense: 40 empty maps in a ping.
  await peer.send(paddedPing(3, Array.from({ length: 40 }, () => ({}))));
  assert.deepEqual((await peer.next()).type, "pong");
  assert.equal(connection.stats().refused, 1);
  await connection.close();
});

Deno.test("review s64: frames over the connection's maxFrameValues are refused malformed_cbor and counted toward maxRefusals; smaller ones are answered", async () => {
  const { connection, peer } = connectionWithRawPeer({ maxFrameValues: 40, maxRefusals: 2 });
  // The envelope and its body are 2 maps; 20 empty maps and their array 21 more.
  await peer.send(paddedPing(1, Array.from({ length: 20 }, () => ({}))));
  const pong = await peer.next();
  assert.deepEqual([pong.type, pong.re], ["pong", 1]);
  for (let id = 2; id <= 3; id++) {
    await peer.send(paddedPing(id, Array.from({ length: 40 }, () => ({}))));
    const refusal = await peer.next();
    assert.equal(refusal.type, "error");
    assert.equal((refusal.body as { code: string }).code, "malformed_cbor");
  }
  assert.equal(connection.stats().refused, 2);
  assert.equal(connection.isClosed, false);
  await peer.send(paddedPing(4, Array.from({ length: 40 }, () => ({}))));
  await connection.closed;
  assert.ok(connection.closeReason instanceof TooManyRefusalsError, String(connection.closeReason));
  await peer.close().catch(() => {});
});
