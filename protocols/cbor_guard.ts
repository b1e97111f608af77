/**
 * A structural pre-check of untrusted CBOR, run before cbor-x decodes a frame.
 *
 * cbor-x decodes recursively and trusts declared lengths, so a frame of nested array headers
 * overflows the stack and an array header announcing 2^32 items makes it allocate. This
 * scanner walks the items iteratively (no recursion), in one pass over the header bytes only
 * (string contents are skipped, not read), and rejects:
 * - nesting deeper than `maxDepth`,
 * - lengths that run past the end of the frame (including item counts larger than the bytes
 *   left, since every item takes at least one byte),
 * - indefinite-length items and reserved encodings (Veriflow's encoder never emits them),
 * - tags other than the RFC 8746 typed-array tags (64..87), so no decoder extension (records,
 *   shared references, dates, sets, class instances) can be triggered from the wire,
 * - trailing bytes after the single top-level item.
 *
 * @module
 */
import { decodeCbor } from "./cbor.ts";
import { MalformedCborError, NestingTooDeepError, ProtocolError } from "./protocol_errors.ts";

/**
 * Default nesting limit. Our envelopes nest 3-6 levels; 64 leaves room for any honest body
 * while keeping cbor-x's recursion far from the stack limit.
 */
export const DEFAULT_MAX_CBOR_DEPTH = 64;

/** RFC 8746 typed-array tags (uint8..float128 arrays): the only tags our profile allows. */
const TYPED_ARRAY_TAG_MIN = 64;
const TYPED_ARRAY_TAG_MAX = 87;

const MAJOR_UNSIGNED = 0;
const MAJOR_NEGATIVE = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;
const MAJOR_SIMPLE = 7;

/** Additional-info values: 24..27 mean 1, 2, 4, 8 argument bytes; 28..30 reserved; 31 indefinite. */
const AI_ONE_BYTE = 24;
const AI_TWO_BYTES = 25;
const AI_FOUR_BYTES = 26;
const AI_EIGHT_BYTES = 27;

/**
 * Check that `bytes` is exactly one well-formed CBOR item in Veriflow's profile, nested no
 * deeper than `maxDepth`. Throws {@link MalformedCborError} or {@link NestingTooDeepError}.
 */
export function checkCborStructure(
  bytes: Uint8Array,
  maxDepth: number = DEFAULT_MAX_CBOR_DEPTH,
): void {
  const end = bytes.byteLength;
  if (end === 0) throw new MalformedCborError("empty frame");
  // remaining[i] = items still expected in the i-th open container.
  const remaining: number[] = [];
  // Set when the item just read is a tag: its content must be a byte string.
  let pendingTag = false;
  let pos = 0;
  for (;;) {
    if (pos >= end) throw new MalformedCborError("frame ends inside a CBOR item");
    const initial = bytes[pos++];
    const major = initial >> 5;
    const ai = initial & 0x1f;
    let arg: number;
    if (ai < AI_ONE_BYTE) {
      arg = ai;
    } else if (ai === AI_ONE_BYTE) {
      if (pos + 1 > end) throw new MalformedCborError("truncated CBOR header");
      arg = bytes[pos];
      pos += 1;
    } else if (ai === AI_TWO_BYTES) {
      if (pos + 2 > end) throw new MalformedCborError("truncated CBOR header");
      arg = (bytes[pos] << 8) | bytes[pos + 1];
      pos += 2;
    } else if (ai === AI_FOUR_BYTES) {
      if (pos + 4 > end) throw new MalformedCborError("truncated CBOR header");
      arg = ((bytes[pos] << 24) >>> 0) + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) |
        bytes[pos + 3]);
      pos += 4;
    } else if (ai === AI_EIGHT_BYTES) {
      if (pos + 8 > end) throw new MalformedCborError("truncated CBOR header");
      // Lengths beyond 2^53 cannot fit in the frame anyway; the bound checks below catch them.
      arg = (((bytes[pos] << 24) >>> 0) + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) |
            bytes[pos + 3])) * 2 ** 32 +
        (((bytes[pos + 4] << 24) >>> 0) + ((bytes[pos + 5] << 16) | (bytes[pos + 6] << 8) |
          bytes[pos + 7]));
      pos += 8;
    } else {
      throw new MalformedCborError(
        ai === 31 ? "indefinite-length CBOR items are not allowed" : "reserved CBOR encoding",
      );
    }
    if (pendingTag && major !== MAJOR_BYTES) {
      throw new MalformedCborError("typed-array tag must wrap a byte string");
    }
    pendingTag = false;

    switch (major) {
      case MAJOR_UNSIGNED:
      case MAJOR_NEGATIVE:
        break;
      case MAJOR_BYTES:
      case MAJOR_TEXT:
        if (arg > end - pos) throw new MalformedCborError("CBOR string runs past the frame");
        pos += arg;
        break;
      case MAJOR_ARRAY:
      case MAJOR_MAP: {
        const items = major === MAJOR_MAP ? arg * 2 : arg;
        if (items > end - pos) throw new MalformedCborError("CBOR container runs past the frame");
        if (items > 0) {
          if (remaining.length >= maxDepth) throw new NestingTooDeepError(maxDepth);
          remaining.push(items);
          continue; // the container itself completes when its last item does
        }
        break;
      }
      case MAJOR_TAG:
        if (arg < TYPED_ARRAY_TAG_MIN || arg > TYPED_ARRAY_TAG_MAX) {
          throw new MalformedCborError(`CBOR tag ${arg} is not allowed`);
        }
        pendingTag = true;
        continue; // the tag's content is the next item
      case MAJOR_SIMPLE:
        // Simple values and floats: the argument bytes were already skipped above.
        break;
    }
    // One item completed: close every container it completes.
    while (remaining.length > 0 && --remaining[remaining.length - 1] === 0) remaining.pop();
    if (remaining.length === 0) break;
  }
  if (pos !== end) throw new MalformedCborError("trailing bytes after the CBOR item");
}

/**
 * Decode CBOR that someone else wrote (a peer's frame, a stored block or file its author
 * made): {@link checkCborStructure} first, then cbor-x. Without the check, cbor-x's tag
 * extensions (packed-value tables, records, shared references, dates, sets) decode too: a few
 * hundred bytes can then stand for an array of millions of items. Throws
 * {@link MalformedCborError} or {@link NestingTooDeepError}.
 */
export function decodeCheckedCbor(
  bytes: Uint8Array,
  maxDepth: number = DEFAULT_MAX_CBOR_DEPTH,
): unknown {
  checkCborStructure(bytes, maxDepth);
  try {
    return decodeCbor(bytes);
  } catch (cause) {
    // The structural check passed, so this is a value cbor-x itself refuses.
    if (cause instanceof ProtocolError) throw cause;
    throw new MalformedCborError("CBOR decoder refused the bytes", { cause });
  }
}
