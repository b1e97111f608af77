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

const codec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Keep undefined out of the wire: it is not valid in our schemas and other decoders differ on it.
  encodeUndefinedAsNil: true,
});
// Canonical bytes need the shortest map-length header (RFC 8949 §4.2.1), which costs cbor-x a
// little speed, so only the hashing path pays for it.
const canonicalCodec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
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
 * Encode a value as canonical CBOR: map keys sorted (by length, then bytewise, as RFC 8949
 * §4.2.3 "length-first" ordering), `undefined` fields dropped. Use for anything that is hashed
 * or signed.
 */
export function encodeCanonical(value: unknown): Uint8Array {
  return plain(canonicalCodec.encode(canonicalize(value)));
}

function canonicalize(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(canonicalize);
  if (ArrayBuffer.isView(value)) return value;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) out[k] = canonicalize(v);
  return out;
}
