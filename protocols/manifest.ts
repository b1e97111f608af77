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
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { decodeCheckedCbor } from "./cbor_guard.ts";
import { cidOf, DAG_CBOR_CODEC, isCid, RAW_CODEC } from "./cid.ts";
import { VeriflowError } from "./errors.ts";

/** The `type` tag every manifest carries. */
export const MANIFEST_TYPE = "veriflow/manifest";
/** The manifest format version this code writes and reads. */
export const MANIFEST_VERSION = 1;

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

/** Manifest of a private file: everything but the ciphertext chunk list is sealed. */
export interface PrivateManifest {
  /** Always {@link MANIFEST_TYPE}. */
  type: typeof MANIFEST_TYPE;
  /** Format version, {@link MANIFEST_VERSION}. */
  v: 1;
  /** Tier. */
  tier: "private";
  /** CIDs of the ciphertext chunks, in file order. */
  chunks: string[];
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

const privateSchema = z.object({
  type: z.literal(MANIFEST_TYPE),
  v: z.literal(MANIFEST_VERSION),
  tier: z.literal("private"),
  chunks: z.array(cidString),
  salt: byteString,
  sealed: byteString,
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
  // A manifest is a CBOR map (major type 5); most raw blobs fail this one-byte test.
  if (bytes.length === 0 || (bytes[0] & CBOR_MAJOR_MASK) !== CBOR_MAP_MAJOR) return false;
  try {
    const raw = decodeCheckedCbor(view(bytes)) as { type?: unknown } | null;
    return typeof raw === "object" && raw !== null && raw.type === MANIFEST_TYPE;
  } catch {
    return false;
  }
}

const CBOR_MAJOR_MASK = 0xe0;
const CBOR_MAP_MAJOR = 0xa0;

/** A fresh view of the same memory: cbor-x caches a DataView on the array it decodes. */
function view(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
