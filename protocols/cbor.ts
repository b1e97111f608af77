/**
 * CBOR encoding for everything Veriflow puts on the wire or hashes.
 *
 * One configured cbor-x codec for the whole project: plain maps (no cbor-x record
 * extension, so other CBOR implementations can read our bytes), `Uint8Array` as byte strings.
 * {@link encodeCanonical} sorts map keys first so that the same value always gives the same
 * bytes — job ids, receipts and manifests are hashes of canonical CBOR.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Decoder, Encoder } from "cbor-x";
import { VeriflowError } from "./errors.ts";

/** cbor-x's `useBuffer`, documented in its README ("Arena Allocation") but not in its types. */
type ArenaEncoder = Encoder & { useBuffer(buffer: Uint8Array): void };

const codec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Keep undefined out of the wire: it is not valid in our schemas and other decoders differ on it.
  encodeUndefinedAsNil: true,
}) as ArenaEncoder;
// Canonical bytes need the shortest map-length header (RFC 8949 §4.2.1), which costs cbor-x a
// little speed, so only the hashing path pays for it.
const canonicalCodec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  encodeUndefinedAsNil: true,
  variableMapSize: true,
});
// `copyBuffers` (cbor-x's option: byte strings come back as copies, not views of the input) is
// set per call: cbor-x reads it from the decoder at each byte string, and one decoder flipping
// it measured cheaper per small frame than two decoders taking turns (`decodeCborCopying`).
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true }) as Decoder & {
  copyBuffers: boolean;
};

/**
 * The most a result of {@link encodeCbor} or {@link encodeCanonical} may keep alive, as a
 * multiple of its own size. cbor-x writes every value into one buffer it shares between calls
 * and returns a view of it: a result under a quarter of that buffer is copied out, so a small
 * encoding that is kept (a router's assignment handoff, `network/_assigned_jobs.ts`) holds its
 * own bytes and not the buffer (review s81 vwire2, F1: a kept 73-byte result held 10.8 MB). A
 * larger one stays a view: it is most of what it holds, and a copy would cost it again.
 */
const MAX_PIN_RATIO = 4;
/**
 * Largest buffer cbor-x keeps writing into after an encode. A large value makes cbor-x grow its
 * buffer (to ~12× a long string's length: 10.8 MB for a 900 KB prompt), and cbor-x starts each
 * new one as large as the last, so one large encode kept that much allocated for as long as the
 * node ran. Past this size it is handed a fresh buffer of {@link SHARED_BUFFER_BYTES} instead,
 * and the grown one lives only as long as the result that may be its view. 64 KiB: what a
 * direct encode starts at (`DIRECT_ENCODE_MIN_BYTES`); smaller growth is cheap to keep.
 */
const MAX_SHARED_BUFFER_BYTES = 64 * 1024;

/**
 * A result of cbor-x's shared buffer fit to keep: a plain `Uint8Array`, a copy when it is under
 * 1 / {@link MAX_PIN_RATIO} of that buffer, else a view. cbor-x gets a fresh buffer if the
 * encode grew its own past {@link MAX_SHARED_BUFFER_BYTES}.
 */
function fromSharedBuffer(encoded: Uint8Array): Uint8Array {
  releaseGrownBuffer(encoded);
  const bytes = new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  return bytes.byteLength * MAX_PIN_RATIO < bytes.buffer.byteLength ? bytes.slice() : bytes;
}

/** Hand cbor-x a fresh small buffer if `encoded` (its latest result) is in one grown large. */
function releaseGrownBuffer(encoded: Uint8Array): void {
  if (encoded.buffer.byteLength > MAX_SHARED_BUFFER_BYTES) {
    codec.useBuffer(Buffer.alloc(SHARED_BUFFER_BYTES));
  }
}

/**
 * Encode a value as CBOR bytes. The result keeps at most {@link MAX_PIN_RATIO} times its own
 * size alive (a small one is a copy), so it may be kept for good.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return fromSharedBuffer(codec.encode(value));
}

/**
 * Values expected to take at least this many bytes are encoded straight into their own buffer
 * (see {@link encodeCborWithHeadroom}); smaller ones go through cbor-x's shared buffer and are
 * copied out, which is cheaper than a buffer of their own each.
 */
const DIRECT_ENCODE_MIN_BYTES = 64 * 1024;
/**
 * Room a direct encode leaves beyond the size hint, for what the hint does not count (an
 * envelope's fields, a chunk's CID). cbor-x gives up a buffer with less than 2 KiB free before
 * it starts, so this is also what keeps it writing into ours.
 */
const DIRECT_ENCODE_SLACK_BYTES = 4096;
/** The buffer cbor-x is handed back after a direct encode: the size it starts with itself. */
const SHARED_BUFFER_BYTES = 8192;

/**
 * Encode a value as CBOR — the same bytes as {@link encodeCbor} — into a new buffer after
 * `headroom` free bytes (a frame's length prefix), so a frame costs no copy of its payload.
 *
 * A value of at least 64 KiB by `sizeHint` (its large byte strings: a storage chunk) is written
 * by cbor-x straight into the result: each byte is copied once, where going through cbor-x's
 * own buffer copies it twice and makes cbor-x grow that buffer (a fresh MiB every few chunks).
 * cbor-x's encoders share one buffer: it is handed a new one of its own afterwards, so nothing
 * encoded later lands in (and pins) the result. If the value outgrows the hint, cbor-x moves
 * to a buffer of its own mid-way and the result is copied from it: correct, only slower.
 * @param value The value.
 * @param headroom Free bytes before the CBOR (left zero).
 * @param sizeHint Bytes the value is expected to take, at least (0 if unknown).
 * @returns `headroom` bytes, then the CBOR.
 */
export function encodeCborWithHeadroom(
  value: unknown,
  headroom: number,
  sizeHint: number,
): Uint8Array {
  if (sizeHint >= DIRECT_ENCODE_MIN_BYTES) {
    const out = new ArrayBuffer(headroom + sizeHint + DIRECT_ENCODE_SLACK_BYTES);
    // A Buffer view, not a Uint8Array: cbor-x writes long strings with Buffer's utf8Write.
    codec.useBuffer(Buffer.from(out, headroom));
    let encoded: Uint8Array;
    try {
      encoded = codec.encode(value);
    } finally {
      codec.useBuffer(Buffer.alloc(SHARED_BUFFER_BYTES));
    }
    if (encoded.buffer === out && encoded.byteOffset === headroom) {
      return new Uint8Array(out, 0, headroom + encoded.byteLength);
    }
    return withHeadroom(encoded, headroom);
  }
  const encoded = codec.encode(value);
  // A value the hint undercounts (a long string: a 900 KB prompt) may have grown the buffer.
  releaseGrownBuffer(encoded);
  return withHeadroom(encoded, headroom);
}

/** Placeholders of {@link encodeCborAround}: an empty byte string (`0x40`) and a one-byte one. */
const HOLE_EMPTY = new Uint8Array(0);
const HOLE_ONE = new Uint8Array(1);

/**
 * The CBOR of a value with one byte string left out of it, so that string can be sent from its
 * own buffer without a copy: `head` (`headroom` free bytes, the CBOR before the byte string and
 * the byte string's header) then `bytes` then `tail` are the bytes `encodeCbor` gives the value.
 *
 * The value is encoded twice with a small placeholder where `bytes` goes (`encodeWith` builds it
 * around the placeholder and encodes it with {@link encodeCbor}): where the two encodings first
 * differ is where the byte string starts. Both are small, whatever the size of `bytes`.
 * @param encodeWith Encodes the value with its placeholder in place of `bytes` (exactly once).
 * @param bytes The byte string left out; returned as is, not copied.
 * @param headroom Free bytes before the CBOR in `head` (left zero).
 * @returns `[head, bytes, tail]`.
 * @throws {Error} `encodeWith` did not put its placeholder in exactly once.
 */
export function encodeCborAround(
  encodeWith: (placeholder: Uint8Array) => Uint8Array,
  bytes: Uint8Array,
  headroom: number,
): [Uint8Array, Uint8Array, Uint8Array] {
  const empty = encodeWith(HOLE_EMPTY);
  const one = encodeWith(HOLE_ONE);
  let at = 0;
  while (at < empty.byteLength && empty[at] === one[at]) at++;
  const tail = empty.subarray(at + 1);
  // `0x40` is an empty byte string, `0x41 0x00` a one-byte one; the same CBOR after both.
  if (
    empty[at] !== 0x40 || one[at] !== 0x41 || one.byteLength !== empty.byteLength + 1 ||
    one.subarray(at + 2).some((b, i) => b !== tail[i])
  ) {
    throw new Error("encodeCborAround: the placeholder is not in the value exactly once");
  }
  const header = byteStringHeader(bytes.byteLength);
  const head = new Uint8Array(headroom + at + header.byteLength);
  head.set(empty.subarray(0, at), headroom);
  head.set(header, headroom + at);
  return [head, bytes, tail.slice()];
}

/** The CBOR header of a byte string of `length` bytes (major type 2, shortest form). */
function byteStringHeader(length: number): Uint8Array {
  if (length < 24) return Uint8Array.of(0x40 + length);
  if (length < 0x100) return Uint8Array.of(0x58, length);
  if (length < 0x1_0000) return Uint8Array.of(0x59, length >> 8, length & 0xff);
  if (length > 0xffff_ffff) throw new RangeError("byte strings of 4 GiB and over are not sent");
  const header = new Uint8Array(5);
  header[0] = 0x5a;
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

function withHeadroom(encoded: Uint8Array, headroom: number): Uint8Array {
  const out = new Uint8Array(headroom + encoded.byteLength);
  out.set(encoded, headroom);
  return out;
}

/**
 * Decode CBOR bytes (throws on malformed input). Byte strings (and typed arrays) in the result
 * are views of `bytes`: keeping one keeps all of `bytes` alive.
 */
export function decodeCbor(bytes: Uint8Array): unknown {
  decoder.copyBuffers = false;
  return decoder.decode(bytes);
}

/**
 * Decode CBOR bytes like {@link decodeCbor}, but each byte string (and typed array) in the
 * result is a copy with a buffer of its own, so keeping one (a key, a signature) keeps only its
 * own bytes alive, not `bytes`.
 */
export function decodeCborCopying(bytes: Uint8Array): unknown {
  decoder.copyBuffers = true;
  return decoder.decode(bytes);
}

/**
 * A string that is not well-formed Unicode (a lone UTF-16 surrogate) reached
 * {@link encodeCanonical}. It has no UTF-8 encoding, so it has no canonical bytes: cbor-x would
 * write an invalid text string that a receiver decodes as U+FFFD, and whatever was hashed or
 * signed over it would change in transit. Refuse such strings where they enter (`well_formed.ts`).
 */
export class IllFormedStringError extends VeriflowError {
  /**
   * Create the error.
   *
   * @param what `"a map key"` or `"a string"`: where in the value it was found.
   */
  constructor(what: string) {
    super(
      "ill_formed_string",
      `${what} is not well-formed Unicode (it holds a lone UTF-16 surrogate) and has no canonical CBOR encoding`,
    );
  }
}

/**
 * Encode a value as canonical CBOR: the same value always gives the same bytes. Use for anything
 * that is hashed or signed. Map keys are sorted shorter first, then by UTF-16 code units, and
 * written in the order a JavaScript object then lists them — which puts keys that look like
 * array indices (`"0"` … `"4294967294"`) first, in numeric order; headers are the shortest;
 * `undefined` fields are dropped. Throws {@link IllFormedStringError} for a string or map key
 * that is not well-formed Unicode. Like {@link encodeCbor}'s, the result keeps at most a few
 * times its own size alive.
 *
 * For keys of ASCII letters, digits and punctuation that are not all digits — every key of every
 * message the protocol defines — this is RFC 8949 §4.2.3 "length-first" order, which DAG-CBOR
 * requires. Free-form keys (a verdict's `details`, a tensor job's input names) may hold non-ASCII
 * or all-digit keys, and there it differs from the RFC (which compares UTF-8 bytes and does not
 * hoist index-like keys). It stays as it is: every ledger entry and signature made so far was
 * made over these bytes and is verified by encoding again, so another order would make stored
 * ledgers fail to open and old and new nodes disagree on ids. Moving to the RFC order needs a
 * protocol version and a ledger migration (`docs/PROTOCOL.md`, "Canonical CBOR").
 *
 * @example
 * ```ts
 * import { encodeCanonical } from "./cbor.ts";
 * encodeCanonical({ bb: 2, a: 1 }); // keys in the order a, bb
 * ```
 */
export function encodeCanonical(value: unknown): Uint8Array {
  // The same shared buffer as `codec`'s (cbor-x has one for all its encoders).
  return fromSharedBuffer(canonicalCodec.encode(canonicalize(value)));
}

function canonicalize(value: unknown): unknown {
  if (typeof value === "string") {
    if (!value.isWellFormed()) throw new IllFormedStringError("a string");
    return value;
  }
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(canonicalize);
  if (ArrayBuffer.isView(value)) return value;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    if (!k.isWellFormed()) throw new IllFormedStringError("a map key");
    out[k] = canonicalize(v);
  }
  return out;
}
