/**
 * A strict, allocation-light reader of a dag-pb node (the IPLD dag-pb spec's canonical form): one
 * walk of the protobuf gives each link's hash, name and size as views into the block, and its
 * `Data`. No CID object and no CID string is made for a link until one is asked for
 * ({@link cidV1String}).
 *
 * Why not `@ipld/dag-pb`'s `decode`: it builds a `CID` object for every link (varints read
 * again, a `Digest`, the CID's bytes encoded anew into a fresh array), and its callers then turned
 * each into a string through `multiformats`' cached base32 (a `WeakMap` entry per CID). For a
 * 16,000-entry directory that was ~16,000 × (CID object + string), hundreds of milliseconds on the
 * thread that serves HTTP, to find one name (review s74, finding 1). The walk here checks the same
 * rules `@ipld/dag-pb`'s decoder checks (field numbers, wire types, order, no duplicate, a
 * well-formed CID in every link) and costs one pass over the bytes.
 *
 * A link's CID is held to `multiformats`' `CID.decode` rules, which `@ipld/dag-pb` applies: each
 * varint minimal and at most 9 bytes, a CIDv0 any bare sha2-256 multihash. A CID written with a
 * padded varint (`81 00 …` for version 1) names the same block as the canonical one but has
 * another string, which no CID parser reads back: taken, it broke every GC and CAR export of a
 * store pinning its directory (review s74 verify2, finding 1). `tests/storage/
 * dag_pb_reader_fuzz_test.ts` compares this reader with `@ipld/dag-pb`'s `decode`. It differs
 * on purpose in two places only, both refusals of what `@ipld/dag-pb` takes:
 * - a CID with an explicit version 0 (`00 70 …`): the CID spec's binary CIDv0 is the bare
 *   multihash, go-cid refuses this form, and `multiformats` takes it with any multihash code;
 * - a protobuf key past 32 bits: `@ipld/dag-pb` reads `key >> 3`, so key 2^32+10 is its field 1;
 *   here the true field number is read, and refused.
 *
 * @module
 */
import { InvalidManifestError } from "./errors.ts";

/** One link of a dag-pb node, as views into its block. */
export interface DagPbLinkView {
  /** The link's CID bytes (CIDv0 or CIDv1), checked well-formed. */
  hash: Uint8Array;
  /** The name's bytes, when the link has a `Name` field. */
  name?: Uint8Array;
  /** The link's `Tsize`, when present. */
  tsize?: number;
}

/** A dag-pb node: its links in order and its `Data`, when present. */
export interface DagPbView {
  /** The links, in the order the node holds them. */
  links: DagPbLinkView[];
  /** The `Data` field's bytes, when present. */
  data?: Uint8Array;
}

/** Protobuf wire types used by dag-pb: a varint (`Tsize`) and length-delimited bytes. */
const WIRE_VARINT = 0;
const WIRE_BYTES = 2;
/** dag-pb field numbers: `PBNode.Data`, `PBNode.Links`; `PBLink.Hash`, `Name`, `Tsize`. */
const NODE_DATA = 1;
const NODE_LINKS = 2;
const LINK_HASH = 1;
const LINK_NAME = 2;
const LINK_TSIZE = 3;
/**
 * Longest varint a protobuf field may use: 10 bytes hold 64 bits, `@ipld/dag-pb`'s limit (a
 * go-merkledag `Tsize` is a uint64, which needs all 10 past 2^63). A value past 2^53 is read as
 * `@ipld/dag-pb` reads it, to the nearest double: only a `Tsize` can be that large and still
 * decode, and it is a size hint.
 */
const MAX_VARINT_BYTES = 10;
/** Longest varint inside a CID: `multiformats`' `CID.decode` refuses more than 9 bytes (63 bits). */
const MAX_CID_VARINT_BYTES = 9;
/** A CIDv0 is a bare sha2-256 multihash: its first byte is the code 0x12 (multiformats CID spec). */
const SHA2_256 = 0x12;
/** dag-pb's multicodec: the codec a CIDv0 names, written out in its CIDv1 form. */
const DAG_PB = 0x70;

/**
 * Read dag-pb node `bytes`.
 *
 * @example
 * ```ts
 * import { readDagPbNode } from "./dag_pb_reader.ts";
 * const node = readDagPbNode(new Uint8Array([0x0a, 0x02, 0x08, 0x01])); // Data only
 * node.links.length; // 0
 * ```
 *
 * @throws {InvalidManifestError} the bytes are not a dag-pb node in its canonical form.
 */
export function readDagPbNode(bytes: Uint8Array): DagPbView {
  const reader = new Reader(bytes);
  const links: DagPbLinkView[] = [];
  let data: Uint8Array | undefined;
  let linksBeforeData = false;
  while (!reader.done) {
    const [field, wire] = reader.key();
    if (wire !== WIRE_BYTES) fail(`(PBNode) wire type ${wire}, expected ${WIRE_BYTES}`);
    if (field === NODE_DATA) {
      if (data !== undefined) fail("(PBNode) duplicate Data section");
      data = reader.bytes();
      linksBeforeData = links.length > 0;
    } else if (field === NODE_LINKS) {
      // Links split around Data are refused; Data before all the links is read, as `@ipld/dag-pb`
      // reads it (only its encoder insists on links first), so what it read still reads.
      if (linksBeforeData) fail("(PBNode) Links on both sides of Data");
      links.push(readLink(reader.bytes()));
    } else {
      fail(`(PBNode) field ${field}, expected 1 or 2`);
    }
  }
  return data === undefined ? { links } : { links, data };
}

function readLink(bytes: Uint8Array): DagPbLinkView {
  const reader = new Reader(bytes);
  let hash: Uint8Array | undefined;
  let name: Uint8Array | undefined;
  let tsize: number | undefined;
  while (!reader.done) {
    const [field, wire] = reader.key();
    const expected = field === LINK_TSIZE ? WIRE_VARINT : WIRE_BYTES;
    if (field < LINK_HASH || field > LINK_TSIZE) fail(`(PBLink) field ${field}, expected 1-3`);
    if (wire !== expected) fail(`(PBLink) wire type ${wire} for field ${field}`);
    if (field === LINK_HASH) {
      if (hash !== undefined || name !== undefined || tsize !== undefined) {
        fail("(PBLink) Hash duplicated or out of order");
      }
      hash = reader.bytes();
    } else if (field === LINK_NAME) {
      if (name !== undefined || tsize !== undefined) {
        fail("(PBLink) Name duplicated or out of order");
      }
      name = reader.bytes();
    } else {
      if (tsize !== undefined) fail("(PBLink) duplicate Tsize");
      tsize = reader.varint();
    }
  }
  if (hash === undefined) fail("(PBLink) no Hash");
  checkCid(hash);
  const link: DagPbLinkView = { hash };
  if (name !== undefined) link.name = name;
  if (tsize !== undefined) link.tsize = tsize;
  return link;
}

/** Throws unless `bytes` are one whole CIDv0 or CIDv1 (what `CID.decode` accepts, but see the module doc). */
function checkCid(bytes: Uint8Array): void {
  const reader = new Reader(bytes);
  const version = reader.cidVarint();
  // A first byte of 0x12 (sha2-256's code, never a CID version) makes the whole a CIDv0, as
  // `CID.decode` reads it: a bare multihash, digest of any length.
  if (version !== SHA2_256) {
    if (version !== 1) fail(`a link's CID has version ${version}`);
    reader.cidVarint(); // codec: any
    reader.cidVarint(); // multihash code: any
  }
  const length = reader.cidVarint();
  if (reader.remaining !== length) fail("a link's CID has a digest of the wrong length");
}

/**
 * The CIDv1 string (base32, `b…`) of a link's CID bytes from {@link readDagPbNode}: a CIDv0
 * (`Qm…`, as `ipfs add` writes by default) names the same dag-pb block as CIDv1. The same string
 * `CID.decode(hash).toV1().toString()` gives, without a CID object.
 *
 * @example
 * ```ts
 * import { cidV1String } from "./dag_pb_reader.ts";
 * cidV1String(new Uint8Array([0x01, 0x55, 0x00, 0x01, 0x61])); // "bafkqaalb" (inline "a")
 * ```
 */
export function cidV1String(hash: Uint8Array): string {
  const v1 = hash[0] === SHA2_256 ? concatPrefix(hash) : hash;
  return `b${base32(v1)}`;
}

/**
 * {@link cidV1String} of many links' CID bytes at once: their text is written into one buffer and
 * decoded in one call, and each CID is a slice of it: 65,536 leaves' CIDs made and looked up in a
 * map took 26-35 ms so, 41-67 ms one at a time (`tmp/s77/carperf/micro.ts`), the range check's
 * per-leaf CPU (stop 77).
 *
 * @example
 * ```ts
 * import { cidV1Strings } from "./dag_pb_reader.ts";
 * cidV1Strings([new Uint8Array([0x01, 0x55, 0x00, 0x01, 0x61])]); // ["bafkqaalb"]
 * ```
 */
export function cidV1Strings(hashes: readonly Uint8Array[]): string[] {
  let chars = 0;
  for (const hash of hashes) chars += cidV1Chars(hash);
  const text = new Uint8Array(chars);
  const ends = new Array<number>(hashes.length);
  let at = 0;
  for (let i = 0; i < hashes.length; i++) {
    const hash = hashes[i];
    text[at++] = MULTIBASE_BASE32;
    // A CIDv0 (rare: `ipfs add` without --cid-version 1) is the CIDv1 of the same dag-pb block.
    at = base32Into(hash[0] === SHA2_256 ? concatPrefix(hash) : hash, text, at);
    ends[i] = at;
  }
  const all = LATIN1.decode(text);
  const out = new Array<string>(hashes.length);
  for (let i = 0, from = 0; i < hashes.length; from = ends[i++]) out[i] = all.slice(from, ends[i]);
  return out;
}

/** Multibase prefix of base32 (`b`), as a character code. */
const MULTIBASE_BASE32 = 0x62;
/** Bytes a CIDv0's multihash gains as a CIDv1 ({@link concatPrefix}: version, codec). */
const V0_PREFIX_BYTES = 2;
/** Base32 characters are ASCII: one byte each, decoded as such. */
const LATIN1 = new TextDecoder("latin1");

/** Characters of {@link cidV1String} of `hash`. */
function cidV1Chars(hash: Uint8Array): number {
  const bytes = hash.length + (hash[0] === SHA2_256 ? V0_PREFIX_BYTES : 0);
  return 1 + Math.ceil((bytes * 8) / BASE32_BITS);
}

/** Writes base32 of `bytes` into `text` from `at` ({@link base32}'s); returns where it stopped. */
function base32Into(bytes: Uint8Array, text: Uint8Array, at: number): number {
  let bits = 0;
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    value = ((value << 8) | bytes[i]) & 0xfff; // at most 12 bits are pending: 4 left + 8 new
    bits += 8;
    while (bits >= BASE32_BITS) {
      bits -= BASE32_BITS;
      text[at++] = BASE32[(value >> bits) & 31];
    }
  }
  if (bits > 0) text[at++] = BASE32[(value << (BASE32_BITS - bits)) & 31];
  return at;
}

function concatPrefix(multihash: Uint8Array): Uint8Array {
  const out = new Uint8Array(multihash.length + 2);
  out[0] = 1;
  out[1] = DAG_PB;
  out.set(multihash, 2);
  return out;
}

/** RFC 4648 base32, lower case, no padding: multibase `b`. Character codes, for one `fromCharCode`. */
const BASE32 = Array.from("abcdefghijklmnopqrstuvwxyz234567", (char) => char.charCodeAt(0));
/** Bits per base32 character. */
const BASE32_BITS = 5;

function base32(bytes: Uint8Array): string {
  // Built as character codes and turned into text once: a string grown a character at a time made
  // listing a 16,000-entry directory's CIDs cost ~4 µs each.
  const text = new Uint8Array(Math.ceil((bytes.length * 8) / BASE32_BITS));
  base32Into(bytes, text, 0);
  // `fromCharCode` over a CID's ~60 codes is quicker than a decoder's call; a longer text (a
  // hostile link's digest may be a block long) goes in slices, as spread arguments overflow.
  let out = "";
  for (let i = 0; i < text.length; i += MAX_CHAR_CODES_PER_CALL) {
    const codes = text.subarray(i, i + MAX_CHAR_CODES_PER_CALL) as unknown as number[];
    out += String.fromCharCode.apply(null, codes); // not spread: a typed array's iterator is slow
  }
  return out;
}

/**
 * Character codes passed to one `fromCharCode`: a real CID is ~60, but a hostile link may carry
 * a digest of up to a block's size, and spreading a million arguments overflows the stack.
 */
const MAX_CHAR_CODES_PER_CALL = 4096;

function fail(why: string): never {
  throw new InvalidManifestError(`not a dag-pb node: ${why}`);
}

/** A cursor over protobuf bytes. */
class Reader {
  #bytes: Uint8Array;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get done(): boolean {
    return this.#at >= this.#bytes.length;
  }

  get remaining(): number {
    return this.#bytes.length - this.#at;
  }

  varint(): number {
    let value = 0;
    for (let i = 0, scale = 1; i < MAX_VARINT_BYTES; i++, scale *= 128) {
      if (this.#at >= this.#bytes.length) fail("a varint runs past the end");
      const byte = this.#bytes[this.#at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
    return fail("a varint is too long");
  }

  /** A varint inside a CID: minimal and at most 9 bytes, as `multiformats` insists. */
  cidVarint(): number {
    const start = this.#at;
    const value = this.varint();
    const length = this.#at - start;
    if (length > MAX_CID_VARINT_BYTES) fail("a link's CID has a varint over 9 bytes");
    // A last byte of 0 after the first adds nothing: the same number fits in fewer bytes.
    if (length > 1 && this.#bytes[this.#at - 1] === 0) {
      fail("a link's CID has a varint not minimally encoded");
    }
    return value;
  }

  /** A field's number and wire type. */
  key(): [number, number] {
    const key = this.varint();
    return [Math.floor(key / 8), key % 8];
  }

  bytes(): Uint8Array {
    const length = this.varint();
    const end = this.#at + length;
    if (end > this.#bytes.length) fail("a field runs past the end");
    const out = this.#bytes.subarray(this.#at, end);
    this.#at = end;
    return out;
  }
}
