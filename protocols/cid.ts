/**
 * Content identifiers: CIDv1, sha2-256 multihash, base32 string form — the same ids IPFS gives
 * the same bytes, so they mean something outside Veriflow. Three codecs are accepted:
 * - raw (0x55, "bafkrei…"): chunks, UnixFS leaves, model files (a tensor model's id), inputs;
 * - dag-pb (0x70, "bafybei…"): the UnixFS nodes of public files and directories;
 * - dag-cbor (0x71, "bafyrei…"): the manifests of private files, and text models' ids
 *   (`inference/model_identity.ts`: the block they name lists the model's file CIDs).
 *
 * A store holds bytes by their sha2-256 digest; the codec only says how to read them. So one
 * object has one storage key whatever codec a CID names it by: {@link storageKey} (the raw
 * form), and every codec's CID of the same bytes verifies against them.
 *
 * @module
 */
import { base32, base32upper } from "multiformats/bases/base32";
import { base36, base36upper } from "multiformats/bases/base36";
import { base58btc } from "multiformats/bases/base58";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { bytesEqual } from "./bytes_equal.ts";
import { sha256 } from "./hash.ts";
import { VeriflowError } from "./errors.ts";

/** Multicodec code of the raw codec. */
export const RAW_CODEC = 0x55;
/** Multicodec code of dag-pb (UnixFS nodes). */
export const DAG_PB_CODEC = 0x70;
/** Multicodec code of dag-cbor (private manifests). */
export const DAG_CBOR_CODEC = 0x71;
/** The codecs a Veriflow CID may carry. */
export type CidCodec = typeof RAW_CODEC | typeof DAG_PB_CODEC | typeof DAG_CBOR_CODEC;
const CODECS: ReadonlySet<number> = new Set([RAW_CODEC, DAG_PB_CODEC, DAG_CBOR_CODEC]);
/** Multihash code of sha2-256. */
export const SHA2_256_CODE = 0x12;
/** Multihash code of identity: the "digest" is the block's bytes themselves. */
export const IDENTITY_CODE = 0x00;
/**
 * Longest CID string {@link canonicalCid} decodes: a sha2-256 CIDv0 is 46 characters, but an
 * identity CID carries its bytes inline; this bounds the work a request can ask of a decoder.
 */
const MAX_CID_CHARS = 1024;
/** Every multibase IPFS tools print CIDs in: base32 and base36 of either case, base58btc. */
const ANY_BASE = base32.decoder.or(base32upper.decoder).or(base36.decoder)
  .or(base36upper.decoder).or(base58btc.decoder);

/** A string that is not a CIDv1 sha2-256 id with an accepted codec. */
export class InvalidCidError extends VeriflowError {
  /**
   * Create the error.
   * @param input The rejected string.
   * @param reason Why it was rejected, in this project's words.
   * @param options `cause`: the parser's own error, when it refused the string.
   */
  constructor(input: string, reason: string, options?: ErrorOptions) {
    super("invalid_cid", `not a valid Veriflow CID (${reason}): ${input.slice(0, 80)}`, options);
  }
}

/** The CID string of a sha2-256 digest (raw codec unless `codec` says otherwise). */
export function cidFromDigest(digest: Uint8Array, codec: CidCodec = RAW_CODEC): string {
  return CID.createV1(codec, Digest.create(SHA2_256_CODE, digest)).toString();
}

/** The CID string of `bytes` (raw codec unless `codec` says otherwise). */
export function cidOf(bytes: Uint8Array, codec: CidCodec = RAW_CODEC): string {
  return cidFromDigest(sha256(bytes), codec);
}

/** The codec of a CID string; throws {@link InvalidCidError} when it is not one. */
export function cidCodec(cid: string): CidCodec {
  cidDigest(cid);
  return CID.parse(cid).code as CidCodec;
}

/**
 * The key an object is stored under: the raw-codec CID of the same digest. A chunk store, a
 * replica and an audit name an object by it, whichever codec the reader's CID carries.
 *
 * @example
 * ```ts
 * import { cidOf, DAG_PB_CODEC, storageKey } from "./cid.ts";
 * const bytes = new Uint8Array([1]);
 * storageKey(cidOf(bytes, DAG_PB_CODEC)) === cidOf(bytes); // true
 * ```
 */
export function storageKey(cid: string): string {
  const digest = cidDigest(cid);
  return cid.startsWith(RAW_PREFIX) ? cid : cidFromDigest(digest);
}

/** {@link cidDigest}'s reason for a string the CID parser cannot read at all. */
const UNREADABLE_CIDV1 = "not a CID: expected a base32 CIDv1 such as bafkrei… or bafybei…";
/** {@link canonicalCid}'s, which reads the other forms IPFS tools print too. */
const UNREADABLE_CID = "not a CID: expected one such as bafkrei…, bafybei…, Qm…, k… or z…";

/** Every raw-codec sha2-256 CIDv1 string starts so ("b" base32, v1, 0x55, 0x12, 32 bytes). */
const RAW_PREFIX = "bafkrei";

/**
 * Parse a CID string; returns its 32-byte sha2-256 digest or throws {@link InvalidCidError}.
 * Accepts CIDv1 in lower-case base32 with the raw, dag-pb or dag-cbor codec.
 */
export function cidDigest(cid: string): Uint8Array {
  // Values from the edge may be anything; one object has exactly one accepted name.
  if (typeof cid !== "string") throw new InvalidCidError(`(a ${typeof cid})`, "not a string");
  let parsed: CID;
  try {
    parsed = CID.parse(cid);
  } catch (cause) {
    // The parser's wording ("multibase decoder must be provided") speaks of its own options,
    // not of what the caller should give: that is said here, the parser's reason kept as cause.
    throw new InvalidCidError(cid, UNREADABLE_CIDV1, { cause });
  }
  if (parsed.version !== 1) throw new InvalidCidError(cid, "not CIDv1");
  if (!CODECS.has(parsed.code)) {
    throw new InvalidCidError(cid, "not the raw, dag-pb or dag-cbor codec");
  }
  if (parsed.multihash.code !== SHA2_256_CODE) throw new InvalidCidError(cid, "not sha2-256");
  if (parsed.multihash.digest.length !== 32) throw new InvalidCidError(cid, "not a 32-byte digest");
  if (parsed.toString() !== cid) throw new InvalidCidError(cid, "not lower-case base32");
  return parsed.multihash.digest;
}

/**
 * True when `value` is a CID string {@link cidDigest} accepts (CIDv1, sha2-256, raw, dag-pb or
 * dag-cbor); never throws,
 * for schemas and other checks that only need a yes or no.
 *
 * @example
 * ```ts
 * import { cidOf, isCid } from "./cid.ts";
 * isCid(cidOf(new Uint8Array([1, 2, 3]))); // true
 * isCid("not a cid"); // false
 * ```
 */
export function isCid(value: string): boolean {
  try {
    cidDigest(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The canonical name (CIDv1, lower-case base32) of a CID in any form IPFS tools print: CIDv0
 * (`Qm…`), base32 of either case (`b…`, `B…`), base36 (`k…`, `K…`), base58btc (`z…`). The
 * result is a string {@link cidDigest} accepts, or an identity CID (see {@link identityBlock})
 * with an accepted codec. What the HTTP edge applies to a CID from a URL before any lookup.
 *
 * @throws {InvalidCidError} not a CID, or not one with an accepted codec and hash.
 * @example
 * ```ts
 * import { canonicalCid } from "./cid.ts";
 * canonicalCid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
 * // "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"
 * ```
 */
export function canonicalCid(input: string): string {
  if (typeof input !== "string" || input.length > MAX_CID_CHARS) {
    throw new InvalidCidError(String(input), `not a string of at most ${MAX_CID_CHARS} chars`);
  }
  let parsed: CID;
  try {
    parsed = CID.parse(input, ANY_BASE).toV1();
  } catch (cause) {
    throw new InvalidCidError(input, UNREADABLE_CID, { cause });
  }
  if (!CODECS.has(parsed.code)) {
    throw new InvalidCidError(input, "not the raw, dag-pb or dag-cbor codec");
  }
  if (parsed.multihash.code === IDENTITY_CODE) return parsed.toString();
  const cid = parsed.toString();
  cidDigest(cid); // sha2-256, 32 bytes
  return cid;
}

/**
 * The one block an identity CID names (its bytes are in the CID: nothing to store or fetch),
 * with its codec; `undefined` for any other CID.
 */
export function identityBlock(
  cid: string,
): { codec: CidCodec; bytes: Uint8Array } | undefined {
  let parsed: CID;
  try {
    parsed = CID.parse(cid);
  } catch {
    return undefined;
  }
  if (parsed.multihash.code !== IDENTITY_CODE || !CODECS.has(parsed.code)) return undefined;
  return { codec: parsed.code as CidCodec, bytes: parsed.multihash.digest };
}

/** True when `bytes` hash to `cid`. */
export function matchesCid(cid: string, bytes: Uint8Array): boolean {
  return bytesEqual(cidDigest(cid), sha256(bytes));
}
