/**
 * A structural pre-check of untrusted CBOR, run before cbor-x decodes a frame.
 *
 * cbor-x decodes recursively and trusts declared lengths, so a frame of nested array headers
 * overflows the stack and an array header announcing 2^32 items makes it allocate. This
 * scanner walks the items iteratively (no recursion), in one pass over the header bytes only
 * (string contents are skipped, not read), and rejects:
 * - nesting deeper than `maxDepth`,
 * - more than `maxValues` built values: maps, arrays and byte strings, each an object cbor-x
 *   allocates (~0.3–0.7 µs each, where a number or a short text string costs about what its
 *   bytes cost in any frame). One byte is enough for each, so a 1 MiB frame could otherwise
 *   stand for a million objects built before any schema looks; a peer's frame is bounded
 *   (`DEFAULT_MAX_FRAME_VALUES`), a stored block or file is not unless its reader says,
 * - lengths that run past the end of the frame (including item counts larger than the bytes
 *   left, since every item takes at least one byte),
 * - indefinite-length items and reserved encodings (Veriflow's encoder never emits them),
 * - tags other than the RFC 8746 typed-array tags (64..87), so no decoder extension (records,
 *   shared references, dates, sets, class instances) can be triggered from the wire,
 * - trailing bytes after the single top-level item.
 *
 * @module
 */
import { decodeCbor, decodeCborCopying } from "./cbor.ts";
import { MalformedCborError, NestingTooDeepError, ProtocolError } from "./protocol_errors.ts";

/**
 * Default nesting limit. Our envelopes nest 3-6 levels; 64 leaves room for any honest body
 * while keeping cbor-x's recursion far from the stack limit.
 */
export const DEFAULT_MAX_CBOR_DEPTH = 64;

/**
 * Default bound on the built values (maps, arrays, byte strings) of one peer frame
 * (`ConnectionOptions.maxFrameValues`): 65,536. The most an honest node sends in the default
 * 1 MiB frame, measured, is a fraud proof opening ~2,100 chunks of a long output: ~34,000 (see
 * docs/PROTOCOL.md for each message that carries arrays). Numbers and text strings are not
 * counted, so a training outcome's loss traces (up to ~200,000 numbers a frame) are not either.
 * A frame of 330,000 empty maps took cbor-x ~245 ms to build; the costliest frame this bound and
 * {@link frameValueBound} let through (65,536 empty byte strings) costs ~35–45 ms.
 */
export const DEFAULT_MAX_FRAME_VALUES = 65_536;

/**
 * A peer's frame holds at most one built value (map, array, byte string) per this many of its
 * bytes, beyond {@link FRAME_VALUES_FLOOR} (see {@link frameValueBound}). Honest frames hold one
 * per 21 bytes or more (a `ping` or `credit`: 2 in ~42 bytes; a fraud proof's chunk openings one
 * per ~31; a token event one per 27–40); 8 leaves them more than twice that. A frame packed
 * with empty maps or byte strings (one per 1–3 bytes) cost ~0.2–0.7 µs a byte to decode; one
 * per 8 bytes costs ~0.065, a few times a `ping`'s (~0.013–0.04, measured on a shared 2-core
 * machine).
 */
export const MIN_BYTES_PER_FRAME_VALUE = 8;

/** Built values any frame may hold whatever its size (an envelope and a small body need 2–20). */
export const FRAME_VALUES_FLOOR = 64;

/**
 * The most maps, arrays and byte strings a peer's frame of `byteLength` bytes may hold: one per
 * {@link MIN_BYTES_PER_FRAME_VALUE} bytes beyond {@link FRAME_VALUES_FLOOR}, and never more than
 * `maxValues` (default {@link DEFAULT_MAX_FRAME_VALUES}). A bound on the count alone leaves a
 * peer free to send frames just under it, each as dense as it likes: the density is what sets
 * the CPU a byte of its traffic costs.
 */
export function frameValueBound(
  byteLength: number,
  maxValues: number = DEFAULT_MAX_FRAME_VALUES,
): number {
  return Math.min(
    maxValues,
    FRAME_VALUES_FLOOR + Math.floor(byteLength / MIN_BYTES_PER_FRAME_VALUE),
  );
}

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
 * deeper than `maxDepth`, of at most `maxValues` maps, arrays and byte strings (default: no
 * bound but the bytes'; a peer's frame passes {@link DEFAULT_MAX_FRAME_VALUES} or its
 * connection's bound). Throws {@link MalformedCborError} or {@link NestingTooDeepError}.
 * @returns The length of its longest byte string (0 if it holds none).
 */
export function checkCborStructure(
  bytes: Uint8Array,
  maxDepth: number = DEFAULT_MAX_CBOR_DEPTH,
  maxValues: number = Number.POSITIVE_INFINITY,
): number {
  const end = bytes.byteLength;
  if (end === 0) throw new MalformedCborError("empty frame");
  let longestBytes = 0;
  // Maps, arrays and byte strings read so far: refused at the first one too many.
  let values = 0;
  // remaining[i] = items still expected in the i-th open container.
  const remaining: number[] = [];
  // Set when the item just read is a tag: its content must be a byte string.
  let pendingTag = false;
  let pos = 0;
  for (;;) {
    if (pos >= end) throw new MalformedCborError("frame ends inside a CBOR item");
    const initial = bytes[pos++];
    const major = initial >> 5;
    if (
      (major === MAJOR_BYTES || major === MAJOR_ARRAY || major === MAJOR_MAP) &&
      ++values > maxValues
    ) {
      throw new MalformedCborError(
        `frame holds more than ${maxValues} maps, arrays and byte strings`,
      );
    }
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
        if (major === MAJOR_BYTES && arg > longestBytes) longestBytes = arg;
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
  return longestBytes;
}

/**
 * Decode CBOR that someone else wrote (a peer's frame, a stored block or file its author
 * made): {@link checkCborStructure} first, then cbor-x. Without the check, cbor-x's tag
 * extensions (packed-value tables, records, shared references, dates, sets) decode too: a few
 * hundred bytes can then stand for an array of millions of items. `maxValues` bounds its maps,
 * arrays and byte strings (default none: a stored block is as large as its author made it;
 * frames pass their bound). Throws {@link MalformedCborError} or {@link NestingTooDeepError}.
 *
 * What it returns never keeps `bytes` alive for more than twice its own size: a byte string
 * (or typed array) is a view of `bytes` only if it takes at least half of them (a storage
 * chunk, a tensor: bulk content, not copied again), and every other one is a copy with a buffer
 * of its own. Otherwise a 64-byte signature a node keeps for good (a pledge's, a hello's, a
 * receipt's) would keep alive the whole frame it came in, padded by its sender to 1 MiB with a
 * field the schema drops.
 */
export function decodeCheckedCbor(
  bytes: Uint8Array,
  maxDepth: number = DEFAULT_MAX_CBOR_DEPTH,
  maxValues: number = Number.POSITIVE_INFINITY,
): unknown {
  const longestBytes = checkCborStructure(bytes, maxDepth, maxValues);
  try {
    if (longestBytes * 2 < bytes.byteLength) return decodeCborCopying(bytes);
    // A bulk byte string: decoded as a view, the rest copied (the structural check bounded how
    // many values there are to walk).
    return ownSmallViews(decodeCbor(bytes), bytes.byteLength / 2);
  } catch (cause) {
    // The structural check passed, so this is a value cbor-x itself refuses.
    if (cause instanceof ProtocolError) throw cause;
    throw new MalformedCborError("CBOR decoder refused the bytes", { cause });
  }
}

/**
 * Replace each byte string or typed array in `value` shorter than `bulk` bytes by a copy with
 * a buffer of its own (in place; arrays and maps are the decoder's own, never shared).
 */
function ownSmallViews(value: unknown, bulk: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (ArrayBuffer.isView(value)) {
    return value.byteLength < bulk ? (value as Uint8Array).slice() : value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = ownSmallViews(value[i], bulk);
    return value;
  }
  const map = value as Record<string, unknown>;
  for (const key of Object.keys(map)) map[key] = ownSmallViews(map[key], bulk);
  return value;
}
