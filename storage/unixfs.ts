/**
 * UnixFS: how a public file or directory becomes a DAG that IPFS tools can read, and how one is
 * read back. The nodes are encoded with the npm packages `@ipld/dag-pb` and `ipfs-unixfs`; the
 * layout is the one `ipfs add --cid-version 1 --raw-leaves --chunker=size-262144` (and the npm
 * `ipfs-unixfs-importer` with its defaults) gives, so the root CID is the same for the same bytes:
 *
 * - every chunk is a raw leaf (CID = raw sha2-256 of its bytes);
 * - balanced layout: leaves are grouped 174 to a dag-pb `file` node, those nodes 174 to a node,
 *   and so on until one root remains;
 * - a file of one chunk (or none: the empty file is one empty leaf) is its raw leaf itself;
 * - a directory is one dag-pb `directory` node whose links name its entries (sorted by name, as
 *   dag-pb requires). HAMT-sharded directories are not written: a directory big enough to need
 *   one is refused ({@link DirectoryTooLargeError}) rather than given an id IPFS would not give.
 *
 * Tests pin the equality against the importer (`tests/storage/unixfs_test.ts`).
 *
 * @module
 */
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import {
  cidCodec,
  cidDigest,
  cidFromDigest,
  DAG_PB_CODEC,
  identityBlock,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import {
  BlockTooLargeError,
  InvalidManifestError,
  MAX_DAG_BLOCK_BYTES,
  MAX_LINKS_PER_NODE,
  StorageError,
} from "./errors.ts";

/** Children per dag-pb file node: the importer's (and kubo's) balanced-layout default. */
export const MAX_CHILDREN_PER_NODE = 174;
/**
 * Size estimate (sum of link names and CID bytes) above which the importer shards a directory
 * (HAMT); we refuse such a directory instead (see the module doc).
 */
export const SHARD_SPLIT_THRESHOLD_BYTES = 262_144;

/** A directory too big to be one flat UnixFS node. */
export class DirectoryTooLargeError extends StorageError {
  /**
   * Build the error.
   *
   * @param estimate The directory's size estimate in bytes.
   */
  constructor(estimate: number) {
    super(
      "directory_too_large",
      `a directory of ~${estimate} bytes of links needs HAMT sharding, which Veriflow does not ` +
        `write (limit ${SHARD_SPLIT_THRESHOLD_BYTES})`,
    );
  }
}

/** A node of a DAG being built: its CID, the file bytes below it, and its cumulative size. */
export interface DagEntry {
  /** CID string (raw for a leaf, dag-pb for a node). */
  cid: string;
  /** File bytes under it (0 for a directory). */
  fileSize: number;
  /** Bytes of every block under it, itself included: a dag-pb link's `Tsize`. */
  tsize: number;
}

/** Stores a block, resolving with its storage key once it is durable. */
export type PutBlock = (bytes: Uint8Array) => Promise<string>;

/** The entry of a raw leaf of `size` bytes stored under storage key `cid`. */
export function leafEntry(cid: string, size: number): DagEntry {
  return { cid, fileSize: size, tsize: size };
}

/**
 * The root of a file whose raw leaves are `leaves`, in order (balanced layout). Stores every
 * dag-pb node it creates with `put`. With no leaves it is an empty file: pass the empty leaf.
 */
export async function buildFile(leaves: readonly DagEntry[], put: PutBlock): Promise<DagEntry> {
  if (leaves.length === 0) {
    throw new StorageError("invalid_request", "a file has one leaf at least");
  }
  if (leaves.length === 1) return leaves[0]; // a single-chunk file is its leaf
  let level: DagEntry[] = [...leaves];
  while (true) {
    const next: DagEntry[] = [];
    for (let i = 0; i < level.length; i += MAX_CHILDREN_PER_NODE) {
      next.push(await fileNode(level.slice(i, i + MAX_CHILDREN_PER_NODE), put));
    }
    if (next.length === 1) return next[0];
    level = next;
  }
}

async function fileNode(children: readonly DagEntry[], put: PutBlock): Promise<DagEntry> {
  const unixfs = new UnixFS({ type: "file" });
  const links: dagPb.PBLink[] = [];
  for (const child of children) {
    if (child.fileSize === 0) continue; // the importer links no empty child
    unixfs.addBlockSize(BigInt(child.fileSize));
    links.push({ Name: "", Tsize: child.tsize, Hash: CID.parse(child.cid) });
  }
  return await storeNode({ Data: unixfs.marshal(), Links: links }, Number(unixfs.fileSize()), put);
}

/** One named entry of a directory. */
export interface DirectoryEntry extends DagEntry {
  /** The entry's name (no `/`). */
  name: string;
}

/**
 * A flat UnixFS directory node over `entries`, stored with `put`.
 *
 * @throws {DirectoryTooLargeError} the importer would shard it.
 */
export async function buildDirectory(
  entries: readonly DirectoryEntry[],
  put: PutBlock,
): Promise<DagEntry> {
  let estimate = 0;
  const links: dagPb.PBLink[] = entries.map((entry) => {
    const hash = CID.parse(entry.cid);
    estimate += new TextEncoder().encode(entry.name).length + hash.bytes.length;
    return { Name: entry.name, Tsize: entry.tsize, Hash: hash };
  });
  if (estimate > SHARD_SPLIT_THRESHOLD_BYTES) throw new DirectoryTooLargeError(estimate);
  const node = { Data: new UnixFS({ type: "directory" }).marshal(), Links: links };
  return await storeNode(node, 0, put);
}

async function storeNode(node: dagPb.PBNode, fileSize: number, put: PutBlock): Promise<DagEntry> {
  const bytes = dagPb.encode(dagPb.prepare(node));
  const key = await put(bytes);
  const cid = cidFromDigest(cidDigest(key), DAG_PB_CODEC);
  const linked = node.Links.reduce((sum, link) => sum + (link.Tsize ?? 0), 0);
  return { cid, fileSize, tsize: bytes.length + linked };
}

/**
 * The CID strings a dag-pb node links to, in order, as CIDv1 (a CIDv0 link, `Qm…`, as `ipfs add`
 * writes by default, names the same dag-pb block). Throws when `bytes` are not dag-pb.
 *
 * @throws {BlockTooLargeError} over {@link MAX_DAG_BLOCK_BYTES} or {@link MAX_LINKS_PER_NODE}.
 */
export function dagPbLinks(bytes: Uint8Array, cid = "(dag-pb node)"): string[] {
  return decodeDagPb(cid, bytes).Links.map((link) => link.Hash.toV1().toString());
}

/** A dag-pb node, decoded only when within the size and link limits. */
function decodeDagPb(cid: string, bytes: Uint8Array): dagPb.PBNode {
  assertDagBlockSize(cid, bytes.length);
  const node = dagPb.decode(bytes);
  if (node.Links.length > MAX_LINKS_PER_NODE) {
    throw new BlockTooLargeError(cid, `${node.Links.length} links (limit ${MAX_LINKS_PER_NODE})`);
  }
  return node;
}

/** Throws {@link BlockTooLargeError} when a DAG node of `size` bytes is over the limit. */
export function assertDagBlockSize(cid: string, size: number): void {
  if (size > MAX_DAG_BLOCK_BYTES) {
    throw new BlockTooLargeError(cid, `${size} bytes (limit ${MAX_DAG_BLOCK_BYTES})`);
  }
}

/** What a UnixFS node is. */
export interface UnixfsNode {
  /** `file` (a raw leaf counts as one), `directory`, or another UnixFS type. */
  type: string;
  /** File size (0 for a directory). */
  fileSize: number;
  /** Links: name, CID, Tsize. */
  links: { name: string; cid: string; tsize: number }[];
  /** File bytes held in the node itself (raw leaves: all of them). */
  data: Uint8Array;
  /** Bytes under each link, for a file node (from `blockSizes`). */
  blockSizes: number[];
}

/**
 * Decode the block of `cid`: a raw leaf is a file of its bytes; a dag-pb node is parsed as
 * UnixFS.
 *
 * @throws {InvalidManifestError} a dag-pb node that is not UnixFS, or whose sizes disagree.
 */
export function decodeUnixfs(cid: string, bytes: Uint8Array): UnixfsNode {
  const codec = identityBlock(cid)?.codec ?? cidCodec(cid); // an inline node has no sha2-256
  if (codec === RAW_CODEC) {
    return { type: "file", fileSize: bytes.length, links: [], data: bytes, blockSizes: [] };
  }
  if (codec !== DAG_PB_CODEC) throw new InvalidManifestError(`${cid} is not a UnixFS node`);
  let node: dagPb.PBNode;
  let unixfs: UnixFS;
  assertDagBlockSize(cid, bytes.length);
  try {
    node = dagPb.decode(bytes);
    if (node.Data === undefined) throw new Error("no Data");
    unixfs = UnixFS.unmarshal(node.Data);
  } catch (cause) {
    throw new InvalidManifestError(`${cid} is not a UnixFS node: ${(cause as Error).message}`);
  }
  if (node.Links.length > MAX_LINKS_PER_NODE) {
    throw new BlockTooLargeError(cid, `${node.Links.length} links (limit ${MAX_LINKS_PER_NODE})`);
  }
  const links = node.Links.map((link) => ({
    name: link.Name ?? "",
    cid: link.Hash.toV1().toString(),
    tsize: link.Tsize ?? 0,
  }));
  const blockSizes = unixfs.blockSizes.map(Number);
  if (unixfs.type === "file" || unixfs.type === "raw") {
    if (blockSizes.length !== links.length) {
      throw new InvalidManifestError(`${cid}: ${links.length} links, ${blockSizes.length} sizes`);
    }
    for (const link of links) storageKey(link.cid); // a link we could not fetch is invalid
  }
  return {
    type: unixfs.type,
    fileSize: Number(unixfs.fileSize()),
    links,
    data: unixfs.data ?? new Uint8Array(0),
    blockSizes,
  };
}

/** A piece of a file: `[from, to)` of the leaf `cid`, whose file data is `size` bytes. */
export interface FilePiece {
  /** Raw leaf CID (or a dag-pb leaf node carrying data). */
  cid: string;
  /** Bytes of the leaf's file data. */
  size: number;
  /** First byte of the leaf wanted. */
  from: number;
  /** One past the last byte of the leaf wanted. */
  to: number;
  /**
   * The leaf's file data, when the walk already read it: a dag-pb leaf (a file imported without
   * raw leaves, or a root that is its own leaf) is a UnixFS node, and its data is the `Data` field
   * it carries, not its block. Absent for a raw leaf, whose block is its data: fetch `cid`.
   */
  data?: Uint8Array;
}

/** Reads a verified block. */
export type GetBlock = (cid: string) => Promise<Uint8Array>;

/**
 * The leaves of file `root` that overlap `[start, end)` in order, each with the part wanted.
 * Reads only the inner nodes on the way (one per 174 leaves), never a raw leaf; a dag-pb leaf is a
 * node too, so it is read on the way and its piece carries its data ({@link FilePiece.data}). A
 * node whose sizes disagree with its parent's is {@link InvalidManifestError}.
 */
export async function* filePieces(
  root: UnixfsNode & { cid: string },
  start: number,
  end: number,
  get: GetBlock,
): AsyncGenerator<FilePiece> {
  // Iterative, with a stack of its own: a DAG is as deep as whoever made it chose (a chain of
  // 5,000 one-link nodes recursed 5,000 generators deep and overflowed the call stack), and each
  // piece came back up every level of `yield*`.
  assertFileNode(root.cid, root);
  if (root.links.length === 0) {
    const piece = leafPiece(root.cid, root, 0, start, end);
    if (piece) yield piece;
    return;
  }
  const stack: WalkFrame[] = [{ cid: root.cid, node: root, index: 0, at: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.index >= frame.node.links.length || frame.at >= end) {
      stack.pop();
      continue;
    }
    const i = frame.index++;
    const size = frame.node.blockSizes[i];
    const link = frame.node.links[i];
    const at = frame.at;
    frame.at += size;
    if (at + size <= start || at >= end) continue;
    if (cidCodec(link.cid) === RAW_CODEC) {
      yield { cid: link.cid, size, from: Math.max(0, start - at), to: Math.min(size, end - at) };
      continue;
    }
    const child = decodeUnixfs(link.cid, await get(link.cid));
    if (child.fileSize !== size) {
      throw new InvalidManifestError(`${link.cid} holds ${child.fileSize} bytes, not ${size}`);
    }
    assertFileNode(link.cid, child);
    if (child.links.length === 0) {
      const piece = leafPiece(link.cid, child, at, start, end);
      if (piece) yield piece;
      continue;
    }
    stack.push({ cid: link.cid, node: child, index: 0, at });
  }
}

/** A block of a file's range walk: its CID, and its bytes when the walk read it. */
export interface RangeBlock {
  /** The block's CID, as its parent links it. */
  cid: string;
  /** Its bytes for the root and every node read on the way; `undefined` for a raw leaf. */
  bytes?: Uint8Array;
}

/**
 * The blocks a reader needs to verify bytes `[start, end)` of file `root`, depth first: the root,
 * then each inner node whose bytes overlap the range, each followed by its overlapping leaves
 * (the trustless gateway's `entity-bytes`). It is {@link filePieces}' walk, reporting the nodes it
 * reads as well as the leaves it finds; a leaf outside the range is never listed, a subtree outside
 * it never read. Raw leaves are listed, not read.
 */
export async function* fileRangeBlocks(
  root: string,
  start: number,
  end: number,
  get: GetBlock,
): AsyncGenerator<RangeBlock> {
  const rootBytes = await get(root);
  yield { cid: root, bytes: rootBytes };
  const read: RangeBlock[] = [];
  const reading: GetBlock = async (cid) => {
    const bytes = await get(cid);
    read.push({ cid, bytes });
    return bytes;
  };
  const node = { ...decodeUnixfs(root, rootBytes), cid: root };
  for await (const piece of filePieces(node, start, end, reading)) {
    // The nodes read to reach this piece come before it: a parent before its children.
    yield* read.splice(0);
    // A piece with data is a dag-pb leaf, already listed as a node read (or the root itself).
    if (piece.data === undefined) yield { cid: piece.cid };
  }
  yield* read.splice(0);
}

/** A file node on the way down, and where the walk is in it. */
interface WalkFrame {
  cid: string;
  node: UnixfsNode;
  /** The next link to visit. */
  index: number;
  /** File offset of that link's first byte. */
  at: number;
}

/** Throws unless `node` is a file node a walk can read: a leaf, or links without data. */
function assertFileNode(cid: string, node: UnixfsNode): void {
  if (node.type !== "file" && node.type !== "raw") {
    throw new StorageError("not_a_file", `${cid} is a UnixFS ${node.type}, not a file`);
  }
  if (node.links.length > 0 && node.data.length > 0) {
    throw new InvalidManifestError(`${cid}: file node with both data and links is not supported`);
  }
}

/** The part of leaf node `node` (at file offset `offset`) inside `[start, end)`, if any. */
function leafPiece(
  cid: string,
  node: UnixfsNode,
  offset: number,
  start: number,
  end: number,
): FilePiece | undefined {
  const size = node.data.length;
  const from = Math.max(0, start - offset);
  const to = Math.min(size, end - offset);
  return from < to ? { cid, size, from, to, data: node.data } : undefined;
}
