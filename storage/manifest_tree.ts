/**
 * Private files of any size: the manifest tree (format in `protocols/manifest.ts`). A put builds
 * it bottom-up once the flat manifest would be over the block limit ({@link buildPrivateManifest});
 * a get finds chunk `i` by descending only the branches whose chunk counts cover `i`
 * ({@link manifestChunks}), so a byte range of an 8 GiB file reads one node per level, not the
 * whole chunk list.
 *
 * A tree comes from whoever wrote the file, so a reader trusts nothing in it: every node is read
 * by CID (the block store verifies it), decoded under {@link MAX_MANIFEST_NODE_BYTES}, must hold
 * exactly the chunks its parent says (a subtree size that lies is `invalid_manifest`), and no
 * path may be deeper than {@link MAX_MANIFEST_DEPTH} (a cycle cannot be built from hashes, but a
 * deep chain or a node linked many times is bounded by it and by the sealed size the root's
 * total must match). Memory is one path of nodes.
 *
 * The sealed metadata need not cover the tree: the file id is the root's CID, which commits to
 * every node and chunk, and the chunk total is checked against the sealed size on open.
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import { cidDigest, cidFromDigest, DAG_CBOR_CODEC } from "../protocols/cid.ts";
import {
  chunkCountOf,
  decodeManifestNode,
  encodeManifest,
  MANIFEST_NODE_TYPE,
  MANIFEST_TYPE,
  MANIFEST_VERSION,
  type ManifestBranch,
  type ManifestNode,
  MAX_MANIFEST_DEPTH,
  MAX_MANIFEST_NODE_BYTES,
  type PrivateManifest,
} from "../protocols/manifest.ts";
import { MAX_WIRE_CHUNK_BYTES } from "../protocols/storage_messages.ts";
import { InvalidManifestError, StorageError } from "./errors.ts";

export { MAX_MANIFEST_DEPTH, MAX_MANIFEST_NODE_BYTES };

/**
 * Default largest manifest block a put writes: 512 KiB, the largest block the wire carries to a
 * storage peer, so every node of a private file replicates. A flat manifest over it is split.
 */
export const DEFAULT_MAX_MANIFEST_BYTES = MAX_WIRE_CHUNK_BYTES;

/** What the root of a private file carries besides its chunk list. */
export interface SealedRoot {
  /** The file's salt. */
  salt: Uint8Array;
  /** Its sealed metadata. */
  sealed: Uint8Array;
}

/**
 * The root manifest of a private file whose ciphertext chunks are `chunks`: the flat v1 manifest
 * when it fits in `maxBytes` (so a small file's id is what it always was), else a tree whose
 * nodes, each at most `maxBytes`, are stored with `put` (which resolves with their storage key).
 *
 * @throws {StorageError} `manifest_too_large`: `maxBytes` cannot hold two entries, the root's
 *   own fields (a long sealed name) leave no room, or the tree would pass
 *   {@link MAX_MANIFEST_DEPTH}.
 */
export async function buildPrivateManifest(
  chunks: readonly string[],
  root: SealedRoot,
  maxBytes: number,
  put: (bytes: Uint8Array) => Promise<string>,
): Promise<PrivateManifest> {
  const base = { type: MANIFEST_TYPE, v: MANIFEST_VERSION, tier: "private" } as const;
  const flat: PrivateManifest = {
    ...base,
    chunks: [...chunks],
    salt: root.salt,
    sealed: root.sealed,
  };
  if (encodeManifest(flat).length <= maxBytes) return flat;
  const rootOf = (branches: ManifestBranch[]): PrivateManifest => ({
    ...base,
    chunks: [],
    branches,
    salt: root.salt,
    sealed: root.sealed,
  });
  const store = async (node: ManifestNode, count: number): Promise<ManifestBranch> => {
    const bytes = encodeCanonical(node);
    const cid = cidFromDigest(cidDigest(await put(bytes)), DAG_CBOR_CODEC);
    return { cid, chunks: count };
  };
  const rootOverhead = encodeManifest(rootOf([])).length + ARRAY_HEADER_SLACK;
  if (rootOverhead > maxBytes) {
    throw tooLarge(`its root's own fields take ${rootOverhead} bytes (limit ${maxBytes})`);
  }
  let level: ManifestBranch[] = [];
  for (const group of groups(chunks, maxBytes, NODE_OVERHEAD_BYTES, (c) => c)) {
    level.push(
      await store({ type: MANIFEST_NODE_TYPE, v: MANIFEST_VERSION, chunks: group }, group.length),
    );
  }
  for (let depth = 1; rootOverhead + entriesBytes(level) > maxBytes; depth++) {
    if (depth >= MAX_MANIFEST_DEPTH) {
      throw tooLarge(`its manifest tree would be more than ${MAX_MANIFEST_DEPTH} levels deep`);
    }
    const next: ManifestBranch[] = [];
    for (const group of groups(level, maxBytes, NODE_OVERHEAD_BYTES, (b) => b)) {
      const node = { type: MANIFEST_NODE_TYPE, v: MANIFEST_VERSION, branches: group } as const;
      next.push(await store(node, chunkCountOf(node)));
    }
    level = next;
  }
  return rootOf(level);
}

/** A chunk of a private file: its ciphertext's CID and its index in the file. */
export interface IndexedChunk {
  /** The chunk's CID. */
  cid: string;
  /** Its index (its nonce and associated data). */
  index: number;
}

/**
 * The chunks `first` to `last` (inclusive) of the file whose root manifest is `root`, in order,
 * reading (with `get`) only the nodes on the way to them.
 *
 * @throws {InvalidManifestError} a node that is not one, holds other than its parent says, is
 *   too big, or lies past {@link MAX_MANIFEST_DEPTH}.
 */
export async function* manifestChunks(
  root: { chunks: string[]; branches?: ManifestBranch[] },
  first: number,
  last: number,
  get: (cid: string) => Promise<Uint8Array>,
): AsyncGenerator<IndexedChunk> {
  yield* walk(root, 0, 0, first, last, get);
}

async function* walk(
  node: { chunks?: string[]; branches?: ManifestBranch[] },
  offset: number,
  depth: number,
  first: number,
  last: number,
  get: (cid: string) => Promise<Uint8Array>,
): AsyncGenerator<IndexedChunk> {
  if (node.branches === undefined) {
    const chunks = node.chunks ?? [];
    const from = Math.max(first - offset, 0);
    const to = Math.min(last - offset, chunks.length - 1);
    for (let i = from; i <= to; i++) yield { cid: chunks[i], index: offset + i };
    return;
  }
  let start = offset;
  for (const branch of node.branches) {
    const end = start + branch.chunks - 1;
    if (end >= first && start <= last) {
      if (depth >= MAX_MANIFEST_DEPTH) {
        throw new InvalidManifestError(
          `the manifest tree goes deeper than ${MAX_MANIFEST_DEPTH} levels at ${branch.cid}`,
        );
      }
      const child = decodeManifestNode(await get(branch.cid));
      const held = chunkCountOf(child);
      if (held !== branch.chunks) {
        throw new InvalidManifestError(
          `node ${branch.cid} holds ${held} chunks, its parent says ${branch.chunks}`,
        );
      }
      yield* walk(child, start, depth + 1, first, last, get);
    }
    if (end >= last) return;
    start = end + 1;
  }
}

/** Bytes a node's map takes without its list's entries (type, v, the key): measured once. */
const NODE_OVERHEAD_BYTES = encodeCanonical({
  type: MANIFEST_NODE_TYPE,
  v: MANIFEST_VERSION,
  branches: [],
}).length + 9; // the list's header grows to 9 bytes at most
/** Room left for the branch list's header to grow past the empty list's one byte. */
const ARRAY_HEADER_SLACK = 8;

/**
 * `items` cut in order into groups whose encoded entries fit in `maxBytes - overhead`.
 *
 * @throws {StorageError} `manifest_too_large`: a group cannot hold two entries (a level of
 *   such nodes would never shrink).
 */
function* groups<T>(
  items: readonly T[],
  maxBytes: number,
  overhead: number,
  entry: (item: T) => unknown,
): Generator<T[]> {
  let group: T[] = [];
  let bytes = overhead;
  for (const item of items) {
    const size = encodeCanonical(entry(item)).length;
    if (group.length > 0 && bytes + size > maxBytes) {
      if (group.length < 2) {
        throw tooLarge(`${maxBytes} bytes per manifest block cannot hold two entries`);
      }
      yield group;
      group = [];
      bytes = overhead;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) yield group;
}

function entriesBytes(level: readonly ManifestBranch[]): number {
  let total = 0;
  for (const branch of level) total += encodeCanonical(branch).length;
  return total;
}

function tooLarge(why: string): StorageError {
  return new StorageError("manifest_too_large", `cannot store this private file: ${why}`);
}
