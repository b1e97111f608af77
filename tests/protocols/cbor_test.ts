/**
 * CBOR on the wire and on disk (`protocols/cbor.ts`, `protocols/cbor_guard.ts`): canonical
 * encoding, a value written around a byte string or with headroom for a frame's head, and the
 * structure guard that every site decoding someone else's CBOR goes through, against frames that
 * stand for far more values than their bytes.
 */
import assert from "node:assert/strict";
import * as dagCbor from "@ipld/dag-cbor";
import {
  decodeCbor,
  encodeCanonical,
  encodeCbor,
  encodeCborAround,
  encodeCborWithHeadroom,
  IllFormedStringError,
} from "../../protocols/cbor.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import { joinBytes } from "../_helpers/bytes.ts";
import { encodeEnvelope, encodeEnvelopeWithHeadroom } from "../../protocols/envelope.ts";
import {
  checkCborStructure,
  DEFAULT_MAX_CBOR_DEPTH,
  DEFAULT_MAX_FRAME_VALUES,
} from "../../protocols/cbor_guard.ts";
import {
  MalformedCborError,
  NestingTooDeepError,
  TooManyRefusalsError,
} from "../../protocols/protocol_errors.ts";
import { connectionWithRawPeer } from "./_helpers.ts";
import { ChallengedReceipts } from "../../training/_challenged_receipts.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChallengeMessage, OpeningPartMessage } from "../../protocols/training_messages.ts";
import type { Connection } from "../../protocols/connection.ts";
import { InvalidManifestError } from "../../protocols/manifest.ts";
import { exportFileKeys, OwnerKey } from "../../storage/private_tier.ts";
import { verifyOpeningsPlaintext } from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
} from "../../training/training_receipt.ts";
import {
  TrainingChallengeRun,
  type TrainingChallengeRunOptions,
} from "../../training/_training_challenge_run.ts";
import type { ChallengeRequest } from "../../training/training_validator.ts";
import { TEST_ARCH, TEST_HYPER } from "../training/_fixtures.ts";

const utf8 = new TextEncoder();

/** The keys of the top-level map of `bytes`, in the order they were written. */
function wireKeyOrder(bytes: Uint8Array): string[] {
  const decoded = decodeCbor(bytes) as Record<string, unknown>;
  // The decoder builds a plain object, which reorders index-like keys: read them off the bytes
  // instead, by decoding each key from its offset (keys here are short text, values small ints).
  const keys: string[] = [];
  const count = bytes[0] & 0x1f;
  let at = 1;
  for (let i = 0; i < count; i++) {
    const length = bytes[at] & 0x1f;
    keys.push(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at + 1, at + 1 + length)),
    );
    at += 1 + length + 1;
  }
  assert.deepEqual(new Set(keys), new Set(Object.keys(decoded)));
  return keys;
}

Deno.test("encodeCanonical refuses a lone surrogate in a string or a map key with ill_formed_string", () => {
  for (
    const value of [
      "\uD800",
      "a\uDC00b",
      "tail \uD83D", // a high surrogate with no low one after it
      { prompt: "hello \uD800" },
      { params: { stop: ["ok", "\uDFFF"] } },
      { inputs: { "\uD800": 1 } },
      ["x".repeat(100) + "\uD800"], // long strings take cbor-x's other UTF-8 path
    ]
  ) {
    assert.throws(
      () => encodeCanonical(value),
      (error: unknown) =>
        error instanceof IllFormedStringError && error.code === "ill_formed_string",
      JSON.stringify(value),
    );
  }
});

Deno.test("canonical text strings are valid UTF-8 that decodes to the same string", () => {
  for (const text of ["é", "\uE000", "\uFFFF", "😀", "a😀b", "x".repeat(100) + "😀", "日本語"]) {
    const bytes = encodeCanonical(text);
    const decoded = decodeCbor(bytes);
    assert.equal(decoded, text, toHex(bytes));
    assert.equal(
      toHex(bytes.subarray(bytes.length - utf8.encode(text).length)),
      toHex(utf8.encode(text)),
    );
  }
});

Deno.test("encodeCanonical writes the bytes every stored signature was made over: non-ASCII and index-like keys in their established order", () => {
  // Ledger entries and signatures are verified by encoding again: an order other than the one
  // they were signed in (the RFC's UTF-8 order, or "ok" before "100") made ledgers holding such a
  // verdict fail to open after an upgrade. These bytes are what the previous version wrote.
  assert.equal(toHex(encodeCanonical({ ok: true, "100": 2 })), "a26331303002626f6bf5");
  assert.equal(toHex(encodeCanonical({ "é": 1, ab: 2, c: 3 })), "a361630362c3a90162616202");
});

Deno.test("encodeCanonical agrees with @ipld/dag-cbor on ASCII keys that are not all digits (every key the protocol defines)", () => {
  const tensor = { type: "float32", dims: [1, 2], data: new Uint8Array([1, 2, 3, 4]) };
  for (
    const value of [
      { inputs: { x: tensor, ab: tensor, input_ids: tensor } },
      { details: { reason: "ok", position: 3, kind: "k" }, v: 1, sig: new Uint8Array(2) },
    ]
  ) {
    assert.equal(
      toHex(encodeCanonical(value)),
      toHex(dagCbor.encode(value)),
      JSON.stringify(value),
    );
  }
});

Deno.test("encodeCanonical drops undefined fields and keeps ASCII length-first order", () => {
  const bytes = encodeCanonical({ zz: 1, a: undefined, b: 2, aaa: 3, c: { y: 1, x: undefined } });
  assert.deepEqual(decodeCbor(bytes), { b: 2, zz: 1, aaa: 3, c: { y: 1 } });
  assert.deepEqual(wireKeyOrder(encodeCanonical({ zz: 1, b: 2, aaa: 3, c: 4 })), [
    "b",
    "c",
    "zz",
    "aaa",
  ]);
});

// `encodeCborAround`: the CBOR of a value with one byte string left out, so that string can be
// written from its own buffer. What must hold: head, the string and tail joined are exactly
// `encodeCbor`'s bytes, at every length where the string's header changes form and wherever the
// string sits; the string is the caller's buffer itself; a misplaced placeholder is refused.

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

const CHUNK_BYTES = 256 * 1024;

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

// A frame that stands for hundreds of thousands of values.
//
// The CBOR guard bounds a frame's nesting and checks that every declared length fits the frame,
// but not how many values the frame holds: at one byte a value, a 1 MiB frame holds a million.
// cbor-x builds every one of them before any schema sees the body. Measured here (2-core
// machine shared with other work, after warm-up): a 990 KB `ping` whose body holds 330,000
// empty maps took ~245 ms to decode (~250 ns a byte), 500,000 empty arrays ~130 ns a byte, while
// a flood of ordinary 35-byte pings costs ~13 ns a byte and a 1 KB string ~4. A body schema then
// strips the field it does not know (`z.object` drops unknown keys), so such a `ping` is valid:
// answered with a `pong`, never refused, never counted against `maxRefusals`. A peer resending
// one precomputed frame pays only bandwidth, and each byte of it costs the receiver ~20 times
// the CPU of any ordinary frame's: at 4 MB/s it holds the receiver's event loop, and every
// other peer's traffic with it.

/** A `ping` envelope whose body carries `pad` beside its nonce. */
function paddedPing(id: number, pad: unknown): Uint8Array {
  return encodeCbor({ v: 1, type: "ping", id, body: { nonce: 1, pad } });
}

Deno.test({
  name:
    "a ping padded with 100,000 empty maps in a field its schema does not know is refused, not decoded whole and answered",
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
    "the CBOR guard refuses a 1 MiB frame of 330,000 empty maps before cbor-x builds them (it bounds depth and lengths, not the count)",
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

Deno.test("the guard's value bound counts maps, arrays and byte strings, not numbers or text", () => {
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

Deno.test("a frame denser than one map, array or byte string per 8 bytes is refused under maxFrameValues; an honest one is answered", async () => {
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

Deno.test("frames over the connection's maxFrameValues are refused malformed_cbor and counted toward maxRefusals; smaller ones are answered", async () => {
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

// CBOR that someone else wrote goes through the structure guard (`decodeCheckedCbor`) at every site
// that decodes it, not only on the wire: a trainer's answer to a challenge, the plaintext of that
// answer, and a private file's sealed metadata (which a share link's holder can write). Without it,
// cbor-x's tag extensions decode too, and a few hundred bytes stand for an array of a million
// items.

/** Levels of doubling: the amplified array has 2^20 items. */
const LEVELS = 20;

/**
 * A CBOR map of `fields` and one more key, `pad`, whose value is an array of 2^levels items, in
 * well under a kilobyte: cbor-x's packed-value tables (tag 51) nest, and a prefix tag (225) on
 * a packed reference (tag 6) concatenates two arrays, so each table doubles the array.
 */
function amplifiedMap(fields: Record<string, unknown>, levels = LEVELS): Uint8Array {
  const out: number[] = [];
  const table = (value: number[]) => {
    out.push(0xd8, 0x33, 0x84); // tag 51, [values, prefixes, suffixes, rump]
    out.push(0x91, ...new Array(16).fill(0xf6), ...value); // 16 nulls, then packed value 16
    out.push(0x82, 0xf6, 0xc6, 0x00); // prefixes: [null, ref(value 16)]
    out.push(0x80); // suffixes: []
  };
  table([0x81, 0x00]); // [0]
  for (let k = 0; k < levels; k++) table([0xd8, 0xe1, 0xc6, 0x00]); // prefix 1 ++ ref(value 16)
  const entries = Object.entries(fields);
  out.push(0xa0 + entries.length + 1);
  for (const [k, v] of entries) out.push(...encodeCbor(k), ...encodeCbor(v));
  out.push(...encodeCbor("pad"), 0xc6, 0x00); // pad: ref(value 16)
  return new Uint8Array(out);
}

function receiptOf(trainer: Identity): TrainingReceipt {
  const steps = 3;
  return signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: 0,
    startModel: "dd".repeat(32),
    steps,
    dataSeed: 1,
    hyper: { ...TEST_HYPER, lr: 1e-3 } as unknown as TrainingReceipt["hyper"],
    samplesRoot: "aa".repeat(32),
    sampleCount: steps * TEST_HYPER.batchSize,
    checkpointsRoot: "bb".repeat(32),
    shardRoot: "cc".repeat(32),
    shardSize: 100,
    losses: [3, 3, 3],
    deltaHash: "ee".repeat(32),
    deltaBytes: 1,
  }, trainer);
}

Deno.test("the amplifier is what it says: a few hundred bytes that cbor-x alone takes for a million items", async () => {
  const { decodeCbor } = await import("../../protocols/cbor.ts");
  const bytes = amplifiedMap({ a: 1 });
  assert.ok(bytes.length < 1024, `${bytes.length} bytes`);
  const value = decodeCbor(bytes) as { pad: unknown[] };
  assert.equal(value.pad.length, 2 ** LEVELS);
});

Deno.test("a trainer's answer of a few hundred bytes standing for a million items is refused before it is decoded", async () => {
  const validator = Identity.generate();
  const trainer = Identity.generate();
  const receipt = receiptOf(trainer);
  const answer = amplifiedMap({ v: 1, receiptId: "00".repeat(32) });
  const connection = {
    peerKey: trainer.publicKey,
    closed: new Promise<void>(() => {}),
    request: (definition: unknown) => {
      if (definition === ChallengeMessage) {
        return Promise.resolve({ size: answer.length, parts: 1, sha256: sha256Hex(answer) });
      }
      if (definition === OpeningPartMessage) return Promise.resolve({ bytes: answer });
      return Promise.reject(new Error("not asked in this test"));
    },
  } as unknown as Connection;
  const stop = new AbortController();
  const lines: string[] = [];
  const checked: unknown[] = [];
  const run = new TrainingChallengeRun({
    identity: validator,
    models: { get: () => Promise.resolve({ weights: new Map() }) },
    challengeProbability: 1,
    random: () => 0,
    openingDeadlineMs: 60_000,
    check: (_receipt: unknown, _challenge: unknown, sealed: unknown) => {
      checked.push(sealed);
      return Promise.resolve({ ok: false, reason: "opening_unsigned" });
    },
    endings: { hold() {}, holds: () => false, end: () => Promise.resolve() },
    challenged: new ChallengedReceipts(undefined, () => 0),
    now: () => 0,
    ask: () => Promise.reject(new Error("no ledger")),
    hasLedger: () => false,
    connectionTo: () => Promise.resolve(undefined),
    reach: () => Promise.resolve(undefined),
    log: (line: string) => {
      lines.push(line);
      stop.abort(); // the run now waits for the deadline: the test has seen what it needs
    },
  } as unknown as TrainingChallengeRunOptions);
  const request = {
    type: "challenge",
    report: { receipt, delta: new Uint8Array(1) },
    connection,
    terms: { round: 0, startModel: receipt.startModel, steps: receipt.steps },
    arch: TEST_ARCH,
    shardSize: receipt.shardSize,
    shardRoot: receipt.shardRoot,
  } as unknown as ChallengeRequest;
  const ctx = { signal: stop.signal, self: { tell() {} } };
  await run.challenge(request, ctx as never).catch(() => {});
  // Past the (aborted) wait the check runs once more with no answer: that one is not decoded.
  const decoded = checked.filter((s) => s !== undefined);
  const sizes = decoded.map((s) => (s as { pad?: unknown[] }).pad?.length);
  assert.deepEqual(sizes, [], `decoded and checked: arrays of ${sizes.join(", ")} items`);
  assert.match(lines[0], /did not open its steps \(malformed_cbor\)/);
});

Deno.test("an answer's plaintext standing for a million items is not CBOR to the step check", () => {
  const validator = Identity.generate();
  const receipt = receiptOf(Identity.generate());
  const challenge = drawTrainingChallenge(receipt, validator, { deadlineMs: 60_000 });
  const plaintext = amplifiedMap({ v: 1 });
  const r = verifyOpeningsPlaintext(receipt, challenge, plaintext, TEST_ARCH);
  assert.deepEqual(r, { ok: false, why: "not CBOR" });
});

/** `plaintext` sealed as a private file's metadata, as a share link's holder can. */
async function sealRaw(keys: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", keys.slice(32), "AES-GCM", false, [
    "encrypt",
  ]);
  const out = await crypto.subtle.encrypt(
    {
      name: "AES-GCM",
      iv: new Uint8Array(12),
      additionalData: new TextEncoder().encode("veriflow/storage/v1/manifest"),
    },
    key,
    new Uint8Array(plaintext),
  );
  return new Uint8Array(out);
}

Deno.test("a private file's sealed metadata standing for a million items is refused as a malformed manifest", async () => {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const salt = new Uint8Array(32).fill(1);
  // A share link's holder has the file's keys: it can seal metadata the owner then opens.
  const keys = await exportFileKeys(owner, salt);
  const cipher = await owner.file(salt);
  const amplified = await sealRaw(keys, amplifiedMap({ size: 0, chunkSize: 1 }));
  await assert.rejects(cipher.openInfo(amplified), InvalidManifestError);
  // Bytes that are no CBOR at all are a malformed manifest too, not a decoder's bare Error.
  const junk = await sealRaw(keys, new Uint8Array([0x1c]));
  await assert.rejects(cipher.openInfo(junk), InvalidManifestError);
});
