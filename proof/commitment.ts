/**
 * The commitment to a text job's tokens and fingerprints, and the proof data behind it.
 *
 * Positions are grouped into chunks of {@link DEFAULT_COMMITMENT_CHUNK_SIZE}; chunk c is one Merkle leaf
 * `H(0x00 ‖ u32 c ‖ H(tokens of c) ‖ H(fingerprints of c))`. Hashing the two halves separately
 * lets a fraud proof include a chunk's tokens (needed to rebuild the prefix) while replacing
 * its fingerprints by their hash when none of them is cited. The commitment root signed in the
 * receipt is `H(0x02 ‖ u32 tokenCount ‖ u8 chunkSize ‖ u8 tokenBytes ‖ merkleRoot)`, so the
 * shape of the data is bound as well as its content.
 *
 * Proof data is kept by the worker and served on challenge; its size is what
 * "proof bytes per token" measures: 4 bytes of fingerprint plus 2 bytes of token id (for
 * vocabularies up to 65 536) per position, plus a constant header.
 *
 * @module
 */
import { z } from "zod";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { fromHex, sha256, toHex } from "../protocols/hash.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { FINGERPRINT_BYTES, FINGERPRINT_SCHEME } from "./fingerprint.ts";
import type { ReceiptCommitment } from "../protocols/receipt.ts";
import { merkleRoot, MerkleTree, rootFromPath } from "./merkle.ts";

/**
 * Positions per Merkle leaf. 32 balances fraud-proof size (a cited position drags in its
 * chunk: 32 × 6 bytes) against path length (one 32-byte hash per doubling of chunks).
 */
export const DEFAULT_COMMITMENT_CHUNK_SIZE = 32;
/**
 * The fewest positions per chunk a ledger records a text receipt with (`Ledger.recordReceipt`);
 * the receipt format allows 1–255. A fraud proof carries a Merkle path for every chunk up to
 * its citation, all of them for an `output` or `truncated` proof: with one position per chunk a
 * 4,096-token receipt's proof is 2 MB, over the 1 MiB frame that carries it to the other nodes,
 * so only the accuser's own ledger would slash the worker and the rest would pay it. At 4 it is
 * at most 1,024 openings, about 0.45 MB. The node's prover uses 32.
 */
export const MIN_COMMITMENT_CHUNK_SIZE = 4;
const LEAF_DOMAIN = 0x00;
const ROOT_DOMAIN = 0x02;
/** Largest vocabulary whose token ids fit the 2-byte encoding. */
const U16_VOCAB_LIMIT = 0x10000;

/** The data a worker keeps for each text receipt and serves when challenged. */
export interface ProofData {
  /** Fingerprint scheme (`FINGERPRINT_SCHEME`: `vf-fp2`). */
  scheme: string;
  /** Positions per Merkle leaf. */
  chunkSize: number;
  /** Bytes per token id in `tokens` (2 or 4, big-endian). */
  tokenBytes: number;
  /** Output token ids, packed. */
  tokens: Uint8Array;
  /** Quantized fingerprints, packed ({@link FINGERPRINT_BYTES} per position). */
  fingerprints: Uint8Array;
  /**
   * The bytes of the job's `input` (`protocols/job_input.ts`), for a job that names one: a
   * validator re-runs the job on them and checks them against the CID, so it need not find the
   * file itself. Not part of the commitment (the job's id commits to the input's CID).
   */
  input?: Uint8Array;
}

/** Zod schema of proof data on the wire (a worker's answer to a challenge). */
export const ProofDataSchema: z.ZodType<ProofData> = z.object({
  scheme: z.string().max(32),
  chunkSize: z.number().int().min(1).max(255),
  tokenBytes: z.union([z.literal(2), z.literal(4)]),
  tokens: z.instanceof(Uint8Array),
  fingerprints: z.instanceof(Uint8Array),
  input: z.instanceof(Uint8Array).optional(),
}) as unknown as z.ZodType<ProofData>;

/** Proof data does not match the commitment it claims to open. */
export class CommitmentMismatchError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("commitment_mismatch", message);
  }
}

/**
 * Whether `tokenBytes` is a width proof data packs token ids at (2 or 4, {@link ProofDataSchema}).
 * A receipt may sign any of 0–4, but a commitment of another width is one no proof data opens
 * and no opening of it can be read: `Ledger.recordReceipt` refuses such a text receipt.
 */
export function isTokenWidth(tokenBytes: number): boolean {
  return tokenBytes === 2 || tokenBytes === 4;
}

/** Bytes per token id for a vocabulary of `vocabSize` tokens. */
export function tokenBytesFor(vocabSize: number): number {
  return vocabSize <= U16_VOCAB_LIMIT ? 2 : 4;
}

/** Pack token ids big-endian at `tokenBytes` each. */
export function packTokens(tokens: readonly number[], tokenBytes: number): Uint8Array {
  const out = new Uint8Array(tokens.length * tokenBytes);
  const view = new DataView(out.buffer);
  for (let i = 0; i < tokens.length; i++) {
    if (tokenBytes === 2) view.setUint16(i * 2, tokens[i]);
    else view.setUint32(i * 4, tokens[i]);
  }
  return out;
}

/** Unpack token ids packed by {@link packTokens}. */
export function unpackTokens(bytes: Uint8Array, tokenBytes: number): number[] {
  if (!isTokenWidth(tokenBytes)) throw new RangeError("tokenBytes must be 2 or 4");
  if (bytes.length % tokenBytes !== 0) throw new RangeError("token bytes not a whole number");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = new Array(bytes.length / tokenBytes);
  for (let i = 0; i < out.length; i++) {
    out[i] = tokenBytes === 2 ? view.getUint16(i * 2) : view.getUint32(i * 4);
  }
  return out;
}

/** Number of positions of proof data. */
export function positionCount(data: ProofData): number {
  return data.tokens.length / data.tokenBytes;
}

/** The leaf hash of chunk `index` given the hashes of its token and fingerprint bytes. */
export function chunkLeaf(
  index: number,
  tokensHash: Uint8Array,
  fingerprintsHash: Uint8Array,
): Uint8Array {
  const buf = new Uint8Array(1 + 4 + 64);
  buf[0] = LEAF_DOMAIN;
  new DataView(buf.buffer).setUint32(1, index);
  buf.set(tokensHash, 5);
  buf.set(fingerprintsHash, 37);
  return sha256(buf);
}

/** The token and fingerprint byte ranges of chunk `c`. */
export function chunkSlices(
  data: ProofData,
  c: number,
): { tokens: Uint8Array; fingerprints: Uint8Array } {
  const n = positionCount(data);
  const start = c * data.chunkSize;
  const end = Math.min(n, start + data.chunkSize);
  return {
    tokens: data.tokens.subarray(start * data.tokenBytes, end * data.tokenBytes),
    fingerprints: data.fingerprints.subarray(start * FINGERPRINT_BYTES, end * FINGERPRINT_BYTES),
  };
}

/** Number of chunks (leaves) for `n` positions. */
export function chunkCount(n: number, chunkSize: number): number {
  return Math.ceil(n / chunkSize);
}

/** All leaf hashes of the proof data. */
export function chunkLeaves(data: ProofData): Uint8Array[] {
  const leaves: Uint8Array[] = [];
  const chunks = chunkCount(positionCount(data), data.chunkSize);
  for (let c = 0; c < chunks; c++) {
    const s = chunkSlices(data, c);
    leaves.push(chunkLeaf(c, sha256(s.tokens), sha256(s.fingerprints)));
  }
  return leaves;
}

/** The commitment root from a Merkle root and the shape parameters. */
export function commitmentRootFrom(
  tokenCount: number,
  chunkSize: number,
  tokenBytes: number,
  tree: Uint8Array,
): Uint8Array {
  const buf = new Uint8Array(1 + 4 + 1 + 1 + 32);
  buf[0] = ROOT_DOMAIN;
  new DataView(buf.buffer).setUint32(1, tokenCount);
  buf[5] = chunkSize;
  buf[6] = tokenBytes;
  buf.set(tree, 7);
  return sha256(buf);
}

/** The commitment root (hex) of proof data. */
export function commitmentRoot(data: ProofData): string {
  return toHex(
    commitmentRootFrom(
      positionCount(data),
      data.chunkSize,
      data.tokenBytes,
      merkleRoot(chunkLeaves(data)),
    ),
  );
}

/**
 * Throw {@link CommitmentMismatchError} unless `data` is well-formed and is what `commitment`
 * (a receipt's) signs: its root, and the scheme, chunk size and token width the receipt
 * declares. The root commits to the data's own chunk size and token width, so data could open
 * the root while the receipt names other values; a fraud proof's openings are checked with the
 * receipt's, so such a receipt would make every proof against it fail (and its accuser pay).
 */
export function assertOpens(
  data: ProofData,
  commitment: Pick<ReceiptCommitment, "scheme" | "root" | "chunkSize" | "tokenBytes">,
  tokenCount: number,
): void {
  if (data.scheme !== FINGERPRINT_SCHEME) {
    throw new CommitmentMismatchError(`unknown fingerprint scheme ${String(data.scheme)}`);
  }
  for (const key of ["scheme", "chunkSize", "tokenBytes"] as const) {
    if (data[key] !== commitment[key]) {
      throw new CommitmentMismatchError(
        `proof data has ${key} ${String(data[key])}, the receipt signs ${String(commitment[key])}`,
      );
    }
  }
  if (data.tokenBytes !== 2 && data.tokenBytes !== 4) {
    throw new CommitmentMismatchError("tokenBytes must be 2 or 4");
  }
  if (!Number.isInteger(data.chunkSize) || data.chunkSize < 1 || data.chunkSize > 255) {
    throw new CommitmentMismatchError("chunkSize out of range");
  }
  const n = data.tokens.length / data.tokenBytes;
  if (n !== tokenCount || data.fingerprints.length !== n * FINGERPRINT_BYTES) {
    throw new CommitmentMismatchError(
      `proof data covers ${n} positions, receipt says ${tokenCount}`,
    );
  }
  if (commitmentRoot(data) !== commitment.root) {
    throw new CommitmentMismatchError("proof data does not hash to the signed commitment root");
  }
}

/**
 * One chunk as carried in a fraud proof: its tokens, and either its fingerprints (when a cited
 * position lies in it) or only their hash, plus its Merkle path.
 */
export interface ChunkOpening {
  /** Chunk index. */
  index: number;
  /** Packed token ids of the chunk. */
  tokens: Uint8Array;
  /** Packed fingerprints of the chunk, present when cited. */
  fingerprints?: Uint8Array;
  /** SHA-256 of the fingerprints, present when `fingerprints` is not. */
  fingerprintsHash?: Uint8Array;
  /** Merkle path of the chunk's leaf. */
  path: Uint8Array[];
}

/**
 * Open chunks `0..lastChunk` (inclusive), with fingerprints only for `cited` chunks. The tree
 * is hashed once and every path read off it: linear in the chunks, where a tree rebuilt per
 * chunk was quadratic (a worker picks the chunk size, down to one position per chunk).
 */
export function openChunks(
  data: ProofData,
  lastChunk: number,
  cited: ReadonlySet<number>,
): ChunkOpening[] {
  const tree = new MerkleTree(chunkLeaves(data));
  const out: ChunkOpening[] = [];
  for (let c = 0; c <= lastChunk; c++) {
    const s = chunkSlices(data, c);
    out.push({
      index: c,
      tokens: s.tokens.slice(),
      ...(cited.has(c)
        ? { fingerprints: s.fingerprints.slice() }
        : { fingerprintsHash: sha256(s.fingerprints) }),
      path: tree.path(c),
    });
  }
  return out;
}

/**
 * Check chunk openings against a signed commitment: each chunk's path must lead to the root
 * and each must be full-sized except possibly the very last chunk of the output.
 */
export function verifyOpenings(
  openings: readonly ChunkOpening[],
  root: string,
  tokenCount: number,
  chunkSize: number,
  tokenBytes: number,
): boolean {
  // Tokens of another width cannot be read: such openings open nothing a checker can judge.
  if (!isTokenWidth(tokenBytes)) return false;
  const leafCount = chunkCount(tokenCount, chunkSize);
  const expectRoot = root;
  for (const o of openings) {
    if (!Number.isInteger(o.index) || o.index < 0 || o.index >= leafCount) return false;
    const start = o.index * chunkSize;
    const len = Math.min(tokenCount, start + chunkSize) - start;
    if (!(o.tokens instanceof Uint8Array) || o.tokens.length !== len * tokenBytes) return false;
    let fpHash: Uint8Array;
    if (o.fingerprints instanceof Uint8Array) {
      if (o.fingerprints.length !== len * FINGERPRINT_BYTES) return false;
      fpHash = sha256(o.fingerprints);
    } else if (o.fingerprintsHash instanceof Uint8Array && o.fingerprintsHash.length === 32) {
      fpHash = o.fingerprintsHash;
    } else return false;
    const leaf = chunkLeaf(o.index, sha256(o.tokens), fpHash);
    const tree = rootFromPath(leaf, o.index, leafCount, o.path);
    if (!tree) return false;
    const r = commitmentRootFrom(tokenCount, chunkSize, tokenBytes, tree);
    if (!bytesEqual(r, hexBytes(expectRoot))) return false;
  }
  return true;
}

function hexBytes(hex: string): Uint8Array {
  try {
    return fromHex(hex);
  } catch {
    return new Uint8Array(0);
  }
}
