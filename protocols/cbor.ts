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
import { Decoder, Encoder } from "cbor-x";
import { VeriflowError } from "./errors.ts";

const codec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Keep undefined out of the wire: it is not valid in our schemas and other decoders differ on it.
  encodeUndefinedAsNil: true,
});
// Canonical bytes need the shortest map-length header (RFC 8949 §4.2.1), which costs cbor-x a
// little speed, so only the hashing path pays for it. This codec only encodes:
// `mapsAsObjects: false` makes it write a `Map` (how canonicalize hands over some sorted maps)
// as a plain CBOR map rather than under tag 259.
const canonicalCodec = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  encodeUndefinedAsNil: true,
  variableMapSize: true,
});
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** A plain `Uint8Array` view of cbor-x's Buffer result (no copy). */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encode a value as CBOR bytes. */
export function encodeCbor(value: unknown): Uint8Array {
  return plain(codec.encode(value));
}

/** Decode CBOR bytes (throws on malformed input). */
export function decodeCbor(bytes: Uint8Array): unknown {
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
 * Encode a value as canonical CBOR: map keys in RFC 8949 §4.2.3 "length-first" order (the
 * shorter UTF-8 encoding first, then bytewise; the order DAG-CBOR requires), shortest length
 * headers, `undefined` fields dropped. Use for anything that is hashed or signed. Throws
 * {@link IllFormedStringError} for a string or map key that is not well-formed Unicode.
 *
 * @example
 * ```ts
 * import { encodeCanonical } from "./cbor.ts";
 * // "é" is one UTF-16 unit but two UTF-8 bytes (c3 a9), as long as "ab" (61 62), and sorts after it.
 * encodeCanonical({ "é": 1, "ab": 2, "c": 3 }); // keys in the order c, ab, é
 * ```
 */
export function encodeCanonical(value: unknown): Uint8Array {
  return plain(canonicalCodec.encode(canonicalize(value)));
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
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  let kept = 0;
  let ascii = true;
  let indexKey = false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (record[key] === undefined) continue;
    // Hashing is a hot path and keys are almost always ASCII, which is well-formed and whose
    // UTF-16 units are its UTF-8 bytes: only other keys pay for the check and the UTF-8 order.
    if (!isAscii(key)) {
      if (!key.isWellFormed()) throw new IllFormedStringError("a map key");
      ascii = false;
    }
    indexKey ||= mayBeArrayIndex(key);
    keys[kept++] = key;
  }
  keys.length = kept;
  keys.sort(ascii ? compareAsciiKeys : compareKeys);
  // A plain object lists keys that look like array indices ("0", "17") first, whatever order
  // they were added in, so an object cannot carry length-first order when it holds one (`"a"`
  // before `"10"`); a Map keeps insertion order. Other maps stay plain objects, as before.
  if (indexKey) {
    const map = new Map<string, unknown>();
    for (let i = 0; i < kept; i++) map.set(keys[i], canonicalize(record[keys[i]]));
    return map;
  }
  const out: Record<string, unknown> = {};
  for (let i = 0; i < kept; i++) out[keys[i]] = canonicalize(record[keys[i]]);
  return out;
}

const ASCII_END = 0x80;
const DIGIT_ZERO = 0x30;
const DIGIT_NINE = 0x39;
/** Digits of the largest array index, 2^32 − 2: a longer key is never one. */
const MAX_INDEX_DIGITS = 10;

/**
 * True when `key` is all digits and short enough to be an array index: a superset of the keys a
 * plain object reorders (a hex key that starts with a digit is not among them, so ledger maps
 * keyed by 64-hex-digit keys stay plain objects).
 */
function mayBeArrayIndex(key: string): boolean {
  if (key.length === 0 || key.length > MAX_INDEX_DIGITS) return false;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < DIGIT_ZERO || code > DIGIT_NINE) return false;
  }
  return true;
}

function isAscii(key: string): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) >= ASCII_END) return false;
  return true;
}

/** Bytes of the UTF-8 encoding of `key`, a well-formed string. */
function utf8Length(key: string): number {
  let size = key.length;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit < ASCII_END) continue;
    // Two bytes below U+0800; a surrogate pair is 2 units for 4 bytes, so +1 per unit; the
    // rest of the BMP is 3 bytes for one unit.
    size += unit < 0x800 || isSurrogate(unit) ? 1 : 2;
  }
  return size;
}

function isSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdfff;
}

/** Length-first order of two distinct ASCII keys: each unit is one UTF-8 byte. */
function compareAsciiKeys(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : 1);
}

/**
 * RFC 8949 §4.2.3 length-first order of two distinct keys: the shorter UTF-8 encoding first
 * (the CBOR header grows with the length, so this is also the shorter encoded key), then the
 * UTF-8 bytes compared bytewise, which is the order of their code points.
 */
function compareKeys(a: string, b: string): number {
  return utf8Length(a) - utf8Length(b) || compareCodePoints(a, b);
}

/**
 * Code-point order of two well-formed strings. UTF-16 unit order differs from it only where a
 * surrogate (a code point above U+FFFF) meets a unit in U+E000..U+FFFF: shift those two ranges
 * past each other before comparing.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const SURROGATE_SHIFT = 0x2000; // U+D800..U+DFFF move above U+FFFF's units
const HIGH_BMP_SHIFT = 0x800; // U+E000..U+FFFF move down into the room they leave

function codePointRank(unit: number): number {
  if (isSurrogate(unit)) return unit + SURROGATE_SHIFT;
  if (unit >= 0xe000) return unit - HIGH_BMP_SHIFT;
  return unit;
}
