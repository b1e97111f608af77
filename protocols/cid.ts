/**
 * Content identifiers: CIDv1, raw codec (0x55), sha2-256 multihash, base32 string form
 * ("bafkrei…") — the same ids IPFS gives the same bytes, so they mean something outside
 * Veriflow. Models, chunks, manifests and inputs are all named this way.
 *
 * @module
 */
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { bytesEqual } from "./bytes_equal.ts";
import { sha256 } from "./hash.ts";
import { VeriflowError } from "./errors.ts";

/** Multicodec code of the raw codec. */
export const RAW_CODEC = 0x55;
/** Multihash code of sha2-256. */
export const SHA2_256_CODE = 0x12;

/** A string that is not a CIDv1 raw sha2-256 id. */
export class InvalidCidError extends VeriflowError {
  /**
   * Create the error.
   * @param input The rejected string.
   * @param reason Why it was rejected.
   */
  constructor(input: string, reason: string) {
    super("invalid_cid", `not a valid Veriflow CID (${reason}): ${input.slice(0, 80)}`);
  }
}

/** The CID string of a sha2-256 digest. */
export function cidFromDigest(digest: Uint8Array): string {
  return CID.createV1(RAW_CODEC, Digest.create(SHA2_256_CODE, digest)).toString();
}

/** The CID string of `bytes`. */
export function cidOf(bytes: Uint8Array): string {
  return cidFromDigest(sha256(bytes));
}

/** Parse a CID string; returns its 32-byte sha2-256 digest or throws {@link InvalidCidError}. */
export function cidDigest(cid: string): Uint8Array {
  // Values from the edge may be anything; one object has exactly one accepted name.
  if (typeof cid !== "string") throw new InvalidCidError(`(a ${typeof cid})`, "not a string");
  let parsed: CID;
  try {
    parsed = CID.parse(cid);
  } catch (cause) {
    throw new InvalidCidError(cid, (cause as Error).message);
  }
  if (parsed.version !== 1) throw new InvalidCidError(cid, "not CIDv1");
  if (parsed.code !== RAW_CODEC) throw new InvalidCidError(cid, "not the raw codec");
  if (parsed.multihash.code !== SHA2_256_CODE) throw new InvalidCidError(cid, "not sha2-256");
  if (parsed.multihash.digest.length !== 32) throw new InvalidCidError(cid, "not a 32-byte digest");
  if (parsed.toString() !== cid) throw new InvalidCidError(cid, "not lower-case base32");
  return parsed.multihash.digest;
}

/**
 * True when `value` is a CID string {@link cidDigest} accepts (CIDv1, sha2-256); never throws,
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

/** True when `bytes` hash to `cid`. */
export function matchesCid(cid: string, bytes: Uint8Array): boolean {
  return bytesEqual(cidDigest(cid), sha256(bytes));
}
