/**
 * File manifests: the CBOR object that lists a file's chunk CIDs. A private file's id is the
 * dag-cbor CID ("bafyrei…") of its manifest's canonical CBOR bytes, so the id commits to every
 * byte of the file. (Public files are UnixFS DAGs now, see `storage/unixfs.ts`; public
 * manifests, and private ones labelled with the raw codec, were written before and stay
 * readable under their old ids.)
 *
 * Two tiers share one envelope:
 * - **public**: size, chunk size, chunk CIDs, optional name and MIME type, all in the clear.
 * - **private**: only the ciphertext chunk CIDs and a random per-file salt are in the clear
 *   (storage nodes need the CIDs to replicate, audit and garbage-collect without the key);
 *   size, chunk size, name and MIME type are sealed with the owner's per-file key
 *   (see `storage/private_tier.ts`).
 *
 * The `type` tag lets a reader tell a manifest from an arbitrary stored blob.
 *
 * A private file whose chunk list would make its manifest too large for one block (the wire
 * carries 512 KiB: ~8,600 chunks, ~2.1 GiB at 256 KiB) keeps its manifest as a **tree**: the
 * root lists `branches` instead of `chunks`, each a {@link ManifestBranch} (a node's CID and how
 * many chunks it holds), and each node (type {@link MANIFEST_NODE_TYPE}, dag-cbor) lists either
 * chunks or branches again. The chunk counts let a range read descend only the branches it
 * needs (a chunk's byte offset is its index times the sealed chunk size). A file small enough
 * for one manifest keeps the flat v1 format, so its id is what it always was.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { decodeCheckedCbor } from "./cbor_guard.ts";
import { cidCodec, cidOf, DAG_CBOR_CODEC, isCid, RAW_CODEC } from "./cid.ts";
import { VeriflowError } from "./errors.ts";

/** The `type` tag every manifest carries. */
export const MANIFEST_TYPE = "veriflow/manifest";
/** The manifest format version this code writes and reads. */
export const MANIFEST_VERSION = 1;

/** The `type` tag of an inner node of a private file's manifest tree. */
export const MANIFEST_NODE_TYPE = "veriflow/manifest-node";
/**
 * Largest manifest node a reader takes: 2 MiB, the bound of every DAG node (`storage/errors.ts`'s
 * `MAX_DAG_BLOCK_BYTES`). Writers keep nodes far smaller (to one wire block); this only bounds
 * what a hostile tree can make a reader decode.
 */
export const MAX_MANIFEST_NODE_BYTES = 2 * 1024 * 1024;
/**
 * Most levels of nodes below a manifest tree's root. One level holds ~8,600 × 6,500 chunks of
 * 256 KiB (over 14 TB) at the default limits; the bound stops a hostile tree from making a
 * reader descend without end.
 */
export const MAX_MANIFEST_DEPTH = 8;

/** Bytes that should be a manifest are not a valid one. */
export class InvalidManifestError extends VeriflowError {
  /**
   * Build the error.
   *
   * @param reason Why the bytes were rejected.
   * @param cause The underlying decode error, if any.
   */
  constructor(reason: string, cause?: unknown) {
    super("invalid_manifest", `not a valid Veriflow manifest: ${reason}`, { cause });
  }
}

/** Which tier a file is stored in. */
export type StorageTier = "public" | "private";

/** Manifest of a public file. */
export interface PublicManifest {
  /** Always {@link MANIFEST_TYPE}. */
  type: typeof MANIFEST_TYPE;
  /** Format version, {@link MANIFEST_VERSION}. */
  v: 1;
  /** Tier. */
  tier: "public";
  /** File size in bytes. */
  size: number;
  /** Size of every chunk but the last. */
  chunkSize: number;
  /** Chunk CIDs in file order. */
  chunks: string[];
  /** Optional file name. */
  name?: string;
  /** Optional MIME type. */
  mime?: string;
}

/** One subtree of a private file's manifest tree: its node and how many chunks it holds. */
export interface ManifestBranch {
  /** The node's CID (dag-cbor), a {@link ManifestNode}. */
  cid: string;
  /** Chunks under it, in all (at least one). */
  chunks: number;
}

/**
 * An inner node of a private file's manifest tree: exactly one of `chunks` (the bottom level)
 * or `branches` (nodes again). It carries no salt and no sealed data: it is part of a file, not
 * a file.
 */
export interface ManifestNode {
  /** Always {@link MANIFEST_NODE_TYPE}. */
  type: typeof MANIFEST_NODE_TYPE;
  /** Format version, {@link MANIFEST_VERSION}. */
  v: 1;
  /** CIDs of the ciphertext chunks, in file order. */
  chunks?: string[];
  /** The subtrees, in file order. */
  branches?: ManifestBranch[];
}

/** Manifest of a private file: everything but the ciphertext chunk list is sealed. */
export interface PrivateManifest {
  /** Always {@link MANIFEST_TYPE}. */
  type: typeof MANIFEST_TYPE;
  /** Format version, {@link MANIFEST_VERSION}. */
  v: 1;
  /** Tier. */
  tier: "private";
  /** CIDs of the ciphertext chunks, in file order; empty when `branches` lists them. */
  chunks: string[];
  /**
   * The manifest tree's subtrees, in file order, when one manifest would be too large. Absent
   * in a flat manifest (every file written before trees, and every file that fits).
   */
  branches?: ManifestBranch[];
  /** Random per-file salt from which the file's keys are derived. */
  salt: Uint8Array;
  /** The sealed {@link SealedFileInfo}: nonce ‖ ciphertext ‖ tag. */
  sealed: Uint8Array;
}

/** Any manifest. */
export type Manifest = PublicManifest | PrivateManifest;

/** What a private manifest seals: the file's plaintext metadata. */
export interface SealedFileInfo {
  /** Plaintext size in bytes. */
  size: number;
  /** Plaintext chunk size. */
  chunkSize: number;
  /** Optional file name. */
  name?: string;
  /** Optional MIME type. */
  mime?: string;
}

const cidString = z.string().refine(isCid, "not a CIDv1 sha2-256");
const byteString = z.instanceof(Uint8Array);
const count = z.number().int().nonnegative();

const publicSchema = z.object({
  type: z.literal(MANIFEST_TYPE),
  v: z.literal(MANIFEST_VERSION),
  tier: z.literal("public"),
  size: count,
  chunkSize: count.positive(),
  chunks: z.array(cidString),
  name: z.string().optional(),
  mime: z.string().optional(),
}).strict();

const branchSchema = z.object({
  cid: cidString.refine((c) => cidCodec(c) === DAG_CBOR_CODEC, "a branch is not a dag-cbor node"),
  chunks: count.positive().refine(Number.isSafeInteger, "chunk count past 2^53"),
}).strict();

const privateSchema = z.object({
  type: z.literal(MANIFEST_TYPE),
  v: z.literal(MANIFEST_VERSION),
  tier: z.literal("private"),
  chunks: z.array(cidString),
  branches: z.array(branchSchema).min(1).optional(),
  salt: byteString,
  sealed: byteString,
}).strict();

const nodeSchema = z.object({
  type: z.literal(MANIFEST_NODE_TYPE),
  v: z.literal(MANIFEST_VERSION),
  chunks: z.array(cidString).min(1).optional(),
  branches: z.array(branchSchema).min(1).optional(),
}).strict();

/** zod schema of a manifest (either tier). */
export const manifestSchema: z.ZodType<Manifest> = z.discriminatedUnion("tier", [
  publicSchema,
  privateSchema,
]) as unknown as z.ZodType<Manifest>;

/** zod schema of the sealed plaintext metadata of a private file. */
export const sealedFileInfoSchema: z.ZodType<SealedFileInfo> = z.object({
  size: count,
  chunkSize: count.positive(),
  name: z.string().optional(),
  mime: z.string().optional(),
});

/** Canonical CBOR bytes of a manifest (what is stored, and what its CID names). */
export function encodeManifest(manifest: Manifest): Uint8Array {
  return encodeCanonical(manifest);
}

/**
 * The file id: CID of the manifest's canonical bytes — dag-cbor for a private manifest (its
 * canonical CBOR is valid DAG-CBOR: string keys sorted length first, no tags, integers
 * shortest), raw for a public one (only written before UnixFS; read, never written now).
 */
export function manifestCid(manifest: Manifest): string {
  const codec = manifest.tier === "private" ? DAG_CBOR_CODEC : RAW_CODEC;
  return cidOf(encodeManifest(manifest), codec);
}

/**
 * Parse manifest bytes; throws {@link InvalidManifestError} on anything that is not a
 * well-formed manifest (including plain blobs that merely decode as CBOR).
 */
export function decodeManifest(bytes: Uint8Array): Manifest {
  let raw: unknown;
  try {
    raw = decodeCheckedCbor(view(bytes));
  } catch (cause) {
    throw new InvalidManifestError("not CBOR", cause);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw new InvalidManifestError(parsed.error.issues[0]?.message ?? "shape");
  const m = parsed.data;
  if (m.tier === "private" && m.branches !== undefined) {
    if (m.chunks.length > 0) throw new InvalidManifestError("both chunks and branches");
    chunkCountOf(m); // the total must be a safe integer
  }
  if (m.tier === "public") {
    const expected = m.size === 0 ? 0 : Math.ceil(m.size / m.chunkSize);
    if (m.chunks.length !== expected) {
      throw new InvalidManifestError(
        `${m.chunks.length} chunks cannot hold ${m.size} bytes at ${m.chunkSize} per chunk`,
      );
    }
  }
  return m;
}

/**
 * Parse the bytes of a manifest tree's node; throws {@link InvalidManifestError} on anything
 * else, and on a node over {@link MAX_MANIFEST_NODE_BYTES} before decoding it.
 */
export function decodeManifestNode(bytes: Uint8Array): ManifestNode {
  if (bytes.length > MAX_MANIFEST_NODE_BYTES) {
    throw new InvalidManifestError(
      `a manifest node of ${bytes.length} bytes (limit ${MAX_MANIFEST_NODE_BYTES})`,
    );
  }
  let raw: unknown;
  try {
    raw = decodeCheckedCbor(view(bytes));
  } catch (cause) {
    throw new InvalidManifestError("not CBOR", cause);
  }
  const parsed = nodeSchema.safeParse(raw);
  if (!parsed.success) throw new InvalidManifestError(parsed.error.issues[0]?.message ?? "shape");
  const node = parsed.data as ManifestNode;
  if ((node.chunks === undefined) === (node.branches === undefined)) {
    throw new InvalidManifestError("a manifest node lists chunks or branches, exactly one");
  }
  chunkCountOf(node);
  return node;
}

/**
 * How many chunks a manifest (or tree node) holds: its chunks, or what its branches say they
 * hold (checked against each node as a reader descends into it).
 *
 * @throws {InvalidManifestError} the branches claim more than 2^53 chunks.
 */
export function chunkCountOf(manifest: { chunks?: string[]; branches?: ManifestBranch[] }): number {
  if (manifest.branches === undefined) return manifest.chunks?.length ?? 0;
  let total = 0;
  for (const branch of manifest.branches) total += branch.chunks;
  if (!Number.isSafeInteger(total)) throw new InvalidManifestError("chunk count past 2^53");
  return total;
}

/**
 * What a manifest or tree node links, in file order: its chunks, then its branches' nodes (one
 * of the two is empty). What GC, repair, audits and CAR export walk.
 */
export function manifestLinks(
  manifest: { chunks?: string[]; branches?: ManifestBranch[] },
): string[] {
  return [...(manifest.chunks ?? []), ...(manifest.branches ?? []).map((b) => b.cid)];
}

/** True when `bytes` are a well-formed manifest ({@link decodeManifest} accepts them). */
export function isManifest(bytes: Uint8Array): boolean {
  try {
    decodeManifest(bytes);
    return true;
  } catch {
    return false;
  }
}

/** True when `bytes` look like a manifest (cheap check on the type tag, no full validation). */
export function looksLikeManifest(bytes: Uint8Array): boolean {
  return typeTagOf(bytes) === MANIFEST_TYPE;
}

/** True when `bytes` look like a manifest tree's node (the type tag only, as above). */
export function looksLikeManifestNode(bytes: Uint8Array): boolean {
  return typeTagOf(bytes) === MANIFEST_NODE_TYPE;
}

/** The `type` field of a CBOR map, if `bytes` are one. */
function typeTagOf(bytes: Uint8Array): unknown {
  // A manifest is a CBOR map (major type 5); most raw blobs fail this one-byte test.
  if (bytes.length === 0 || (bytes[0] & CBOR_MAJOR_MASK) !== CBOR_MAP_MAJOR) return undefined;
  try {
    const raw = decodeCheckedCbor(view(bytes)) as { type?: unknown } | null;
    return typeof raw === "object" && raw !== null ? raw.type : undefined;
  } catch {
    return undefined;
  }
}

const CBOR_MAJOR_MASK = 0xe0;
const CBOR_MAP_MAJOR = 0xa0;

/** A fresh view of the same memory: cbor-x caches a DataView on the array it decodes. */
function view(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
