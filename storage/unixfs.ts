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
import {
  cidV1String,
  cidV1Strings,
  type DagPbLinkView,
  type DagPbView,
  readDagPbNode,
} from "./dag_pb_reader.ts";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import {
  type CidCodec,
  cidCodec,
  cidDigest,
  cidFromDigest,
  DAG_PB_CODEC,
  identityBlock,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { LeafBatch, RAW_SHA256_PREFIX } from "./_leaf_batch.ts";
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

/**
 * Most links from a file's root to any block of it that a walk follows. A balanced tree of 174-link
 * nodes over 256 KiB leaves holds 2^64 bytes in 7 levels of nodes; a trickle DAG (`ipfs add
 * --trickle`) grows about one level per fivefold growth and needs ~18 for as much; an importer
 * that chunked to 1 KiB still needs under 10 balanced levels. 32 is far past what any writer
 * makes, and cheap to walk: a DAG deeper than that is made to cost, not to hold a file (a chain of
 * 50,000 one-link nodes over 8 bytes cost each plain read 22 CPU-s, review s78 F1).
 */
export const MAX_UNIXFS_DEPTH = 32;

/** A UnixFS file whose DAG goes deeper than {@link MAX_UNIXFS_DEPTH}: no read walks it. */
export class DagTooDeepError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The root walked from.
   * @param limit The depth allowed.
   */
  constructor(cid: string, limit: number) {
    super(
      "dag_too_deep",
      `${cid} links blocks more than ${limit} levels below it, deeper than any importer writes a ` +
        "file: this node does not read, serve, import or pin it",
    );
  }
}

/**
 * Bytes of file a plain read must bring per step of its walk (a leaf listed or a node read) once
 * past {@link FREE_READ_STEPS}: each step costs ~70 µs of node CPU however small the leaf, so a
 * file of 1-byte leaves cost ~250,000 times the CPU per byte of one of 256 KiB leaves, and a
 * 5-block DAG declaring 916 MB of them made one read last ~10 days (review s78 F2). 1 KiB keeps
 * the cost of a byte at most 256 times the default leaves' and passes every chunker IPFS tools
 * offer by default (fixed 256 KiB; rabin and buzhash, whose default minimums are far above it); a
 * file of smaller leaves is still whole as a CAR (`?format=car`), which lists each leaf once.
 */
export const MIN_BYTES_PER_READ_STEP = 1024;

/**
 * Steps any plain read may take whatever its bytes: as many as {@link MAX_RANGE_STEPS}, the walk a
 * range answer may take (~7 CPU-s at ~70 µs a step), so that a small file is read however it was
 * chunked (a 64 MiB file of 1 KiB leaves is 65,536 steps, a 10,000-leaf file of 64-byte leaves
 * ~10,060).
 */
export const FREE_READ_STEPS = 100_000;

/** Steps a read of `bytes` bytes of a file may take ({@link MIN_BYTES_PER_READ_STEP}). */
export function readStepBudget(bytes: number): number {
  return FREE_READ_STEPS + Math.ceil(bytes / MIN_BYTES_PER_READ_STEP);
}

/** A read whose walk would take more steps than its bytes pay for ({@link readStepBudget}). */
export class ReadTooCostlyError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The file.
   * @param bytes The bytes asked for.
   */
  constructor(cid: string, bytes: number) {
    super(
      "read_too_costly",
      `${bytes} bytes of ${cid} need more than ${readStepBudget(bytes)} blocks walked (leaves ` +
        `of under ${MIN_BYTES_PER_READ_STEP} bytes on average): ask for ?format=car, which lists ` +
        "each block once",
    );
  }
}

/** Throws {@link DagTooDeepError} when a block at `depth` links below `root` is too deep. */
function assertDepth(root: string, depth: number): void {
  if (depth > MAX_UNIXFS_DEPTH) throw new DagTooDeepError(root, MAX_UNIXFS_DEPTH);
}

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
 * writes by default, names the same dag-pb block).
 *
 * @throws {BlockTooLargeError} over {@link MAX_DAG_BLOCK_BYTES} or {@link MAX_LINKS_PER_NODE}.
 * @throws {InvalidManifestError} `bytes` are not dag-pb.
 */
export function dagPbLinks(bytes: Uint8Array, cid = "(dag-pb node)"): string[] {
  assertDagBlockSize(cid, bytes.length);
  const node = readDagPbNode(bytes);
  assertLinkCount(cid, node.links.length);
  return node.links.map((link) => cidV1String(link.hash));
}

function assertLinkCount(cid: string, count: number): void {
  if (count > MAX_LINKS_PER_NODE) {
    throw new BlockTooLargeError(cid, `${count} links (limit ${MAX_LINKS_PER_NODE})`);
  }
}

/** Throws {@link BlockTooLargeError} when a DAG node of `size` bytes is over the limit. */
export function assertDagBlockSize(cid: string, size: number): void {
  if (size > MAX_DAG_BLOCK_BYTES) {
    throw new BlockTooLargeError(cid, `${size} bytes (limit ${MAX_DAG_BLOCK_BYTES})`);
  }
}

/** One link of a UnixFS node. */
export interface UnixfsLink {
  /**
   * The link's name as text, for display: dag-pb names are bytes, and ones that are not UTF-8 read
   * here with U+FFFD in place of what does not decode (two such names may read alike).
   */
  name: string;
  /** The name's bytes, as the node holds them: what a lookup compares ({@link findLink}). */
  nameBytes: Uint8Array;
  /** The linked node's CID (CIDv1). */
  cid: string;
  /** The link's `Tsize`: bytes of every block under it, as its parent records it. */
  tsize: number;
}

/** What a UnixFS node is. */
export interface UnixfsNode {
  /** `file` (a raw leaf counts as one), `directory`, or another UnixFS type. */
  type: string;
  /** File size (0 for a directory). */
  fileSize: number;
  /** Links: name, CID, Tsize. */
  links: UnixfsLink[];
  /** File bytes held in the node itself (raw leaves: all of them). */
  data: Uint8Array;
  /** Bytes under each link, for a file node (from `blockSizes`). */
  blockSizes: number[];
}

/** Counts of the work {@link decodeUnixfs} did, for whoever needs to see it (tests, metrics). */
export interface UnixfsDecodeStats {
  /** Link CIDs turned into strings: one per link whose `cid` was read, never more. */
  cidsStringified: number;
}

/** Options of {@link decodeUnixfs}. */
export interface DecodeUnixfsOptions {
  /** Counted into as links' CIDs are read. */
  stats?: UnixfsDecodeStats;
}

/** Text of link names: UTF-8 with U+FFFD for what does not decode, as `@ipld/dag-pb` read them. */
const NAME_DECODER = new TextDecoder();

/**
 * A link whose name text and CID string are made when first read, then kept: a lookup in a
 * directory reads one link's CID, not every one (review s74: decoding 16,000 CIDs into objects,
 * then strings, per request stalled the node for 0.3-0.7 s). A class, not an object literal with
 * getters: 16,000 literals each with their own accessor cost ~25x the walk of the bytes itself.
 * Its `name` and `cid` are prototype getters: read them, do not spread a link.
 */
class LazyLink implements UnixfsLink {
  readonly nameBytes: Uint8Array;
  readonly tsize: number;
  #hash: Uint8Array;
  #stats: UnixfsDecodeStats | undefined;
  #name: string | undefined;
  #cid: string | undefined;

  constructor(view: DagPbLinkView, stats: UnixfsDecodeStats | undefined) {
    this.nameBytes = view.name ?? EMPTY;
    this.tsize = view.tsize ?? 0;
    this.#hash = view.hash;
    this.#stats = stats;
  }

  get name(): string {
    return this.#name ??= this.nameBytes.length === 0 ? "" : NAME_DECODER.decode(this.nameBytes);
  }

  /**
   * Makes the CIDs of `links` not made yet in one pass (`cidV1Strings`), counted as each `cid`
   * read would count them: what a range walk does with a file node whose links it will read one
   * after another (a string each made alone cost twice as much, stop 77).
   */
  static makeCids(links: readonly UnixfsLink[]): void {
    const lazy: LazyLink[] = [];
    for (const link of links) {
      if (link instanceof LazyLink && link.#cid === undefined) lazy.push(link);
    }
    if (lazy.length === 0) return;
    const cids = cidV1Strings(lazy.map((link) => link.#hash));
    for (let i = 0; i < lazy.length; i++) {
      lazy[i].#cid = cids[i];
      if (lazy[i].#stats !== undefined) lazy[i].#stats!.cidsStringified++;
    }
  }

  get cid(): string {
    if (this.#cid === undefined) {
      this.#cid = cidV1String(this.#hash);
      if (this.#stats !== undefined) this.#stats.cidsStringified++;
    }
    return this.#cid;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Decode the block of `cid`: a raw leaf is a file of its bytes; a dag-pb node is parsed as
 * UnixFS.
 *
 * @throws {InvalidManifestError} a dag-pb node that is not UnixFS, or whose sizes disagree.
 */
export function decodeUnixfs(
  cid: string,
  bytes: Uint8Array,
  options?: DecodeUnixfsOptions,
): UnixfsNode {
  const codec = codecOf(cid);
  if (codec === RAW_CODEC) {
    return { type: "file", fileSize: bytes.length, links: [], data: bytes, blockSizes: [] };
  }
  if (codec !== DAG_PB_CODEC) throw new InvalidManifestError(`${cid} is not a UnixFS node`);
  let node: DagPbView;
  let unixfs: UnixFS;
  assertDagBlockSize(cid, bytes.length);
  try {
    node = readDagPbNode(bytes);
    if (node.data === undefined) throw new Error("no Data");
    unixfs = UnixFS.unmarshal(node.data);
  } catch (cause) {
    throw new InvalidManifestError(`${cid} is not a UnixFS node: ${(cause as Error).message}`);
  }
  assertLinkCount(cid, node.links.length);
  const stats = options?.stats;
  const links: UnixfsLink[] = node.links.map((link) => new LazyLink(link, stats));
  const blockSizes = unixfs.blockSizes.map(Number);
  if (unixfs.type === "file" || unixfs.type === "raw") {
    if (blockSizes.length !== links.length) {
      throw new InvalidManifestError(`${cid}: ${links.length} links, ${blockSizes.length} sizes`);
    }
    // A link we could not fetch is invalid; an identity link carries its block (`ipfs add --inline`
    // inlines a chunk or a node of up to 32 bytes), so it needs no storage key.
    for (let i = 0; i < links.length; i++) {
      if (isSha256Link(node.links[i].hash)) continue;
      const link = links[i].cid;
      if (identityBlock(link) === undefined) storageKey(link);
    }
  }
  return {
    type: unixfs.type,
    fileSize: Number(unixfs.fileSize()),
    links,
    data: unixfs.data ?? new Uint8Array(0),
    blockSizes,
  };
}

/** A CID's bytes: CIDv1 prefix (version 1), the multihash's sha2-256 code and 32-byte length. */
const CIDV1 = 1;
const SHA2_256 = 0x12;
const DIGEST_BYTES = 32;
/** CIDv1 header (version, codec) and multihash header (code, length), in bytes. */
const CIDV1_HEADER = 4;
/** Multihash header alone: a CIDv0 (`Qm…`) is a bare sha2-256 multihash of a dag-pb node. */
const CIDV0_HEADER = 2;

/**
 * True when a link's CID bytes are a CIDv1 raw or dag-pb, or a CIDv0, of a sha2-256 digest: the
 * string {@link storageKey} would accept, told from the bytes. Parsing each link's string twice
 * was most of the cost of decoding a node of 174 leaves (review s76 vcar F1).
 */
function isSha256Link(hash: Uint8Array): boolean {
  if (hash.length === CIDV0_HEADER + DIGEST_BYTES) {
    return hash[0] === SHA2_256 && hash[1] === DIGEST_BYTES;
  }
  return hash.length === CIDV1_HEADER + DIGEST_BYTES && hash[0] === CIDV1 &&
    (hash[1] === RAW_CODEC || hash[1] === DAG_PB_CODEC) && hash[2] === SHA2_256 &&
    hash[3] === DIGEST_BYTES;
}

/** The codec of `cid`, an identity CID's too (an inline block has no sha2-256 digest). */
function codecOf(cid: string): CidCodec {
  return identityBlock(cid)?.codec ?? cidCodec(cid);
}

/** How every dag-pb sha2-256 CIDv1 in base32 begins: each inner node of such a file. */
const DAG_PB_SHA256_PREFIX = "bafybei";

/**
 * {@link codecOf} of a link of a node {@link decodeUnixfs} decoded (so a valid CID): a raw leaf's
 * or a sha2-256 dag-pb node's without parsing it. Parsing each leaf's CID (twice) was most of a
 * range walk's cost per leaf (~65,000 leaves of a 64 MiB file of 1 KiB leaves: review s76 vcar F1,
 * F2), and each node's twice most of the rest (stop 77).
 */
function linkCodec(cid: string): CidCodec {
  if (cid.startsWith(RAW_SHA256_PREFIX)) return RAW_CODEC;
  return cid.startsWith(DAG_PB_SHA256_PREFIX) ? DAG_PB_CODEC : codecOf(cid);
}

/**
 * `get`, except that an identity CID's block is the bytes the CID carries: nothing is stored under
 * it to fetch (a file `ipfs add --inline` wrote links its small last chunk so).
 */
function inlineAware(get: GetBlock): GetBlock {
  return (cid) => {
    const inline = identityBlock(cid);
    return inline === undefined ? get(cid) : Promise.resolve(inline.bytes);
  };
}

/**
 * The first link of `links` named `name` byte for byte (UTF-8 for text), or `undefined`: the
 * UnixFS spec's rule for a directory holding duplicates is that the first wins. Names are compared
 * as bytes, never as decoded text, so two names that are not UTF-8 (`0xFE`, `0xFF`) stay two
 * names. The name is encoded once, not once per link: a lookup in a 16,000-entry directory is one
 * pass over bytes already decoded.
 */
export function findLink(
  links: readonly UnixfsLink[],
  name: string | Uint8Array,
): UnixfsLink | undefined {
  const bytes = typeof name === "string" ? new TextEncoder().encode(name) : name;
  return links.find((link) => bytesEqual(link.nameBytes, bytes));
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
   * it carries, not its block (a node with links too: the bytes before its links'); an identity
   * raw leaf's is the bytes its CID carries. Absent for a raw leaf stored under its CID, whose
   * block is its data: fetch `cid`.
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
 *
 * @throws {DagTooDeepError} a block in the range lies deeper than {@link MAX_UNIXFS_DEPTH}.
 * @throws {ReadTooCostlyError} the walk would take more than {@link readStepBudget} steps for the
 * range's bytes (thrown when met: what a read sent before it stays sent).
 */
export async function* filePieces(
  root: UnixfsNode & { cid: string },
  start: number,
  end: number,
  getStored: GetBlock,
): AsyncGenerator<FilePiece> {
  const get = inlineAware(getStored);
  // Iterative, with a stack of its own: a DAG is as deep as whoever made it chose (a chain of
  // 5,000 one-link nodes recursed 5,000 generators deep and overflowed the call stack), and each
  // piece came back up every level of `yield*`.
  assertFileNode(root.cid, root);
  const own = leafPiece(root.cid, root, 0, start, end);
  if (own) yield own;
  if (root.links.length === 0) return;
  const budget = readStepBudget(end - start);
  let steps = 0;
  const stack: WalkFrame[] = [{ cid: root.cid, node: root, index: 0, at: root.data.length }];
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
    // A link holding no byte has none to read, wherever it sits: walked, a zero-byte subtree that
    // links the next level 174 times costs 174^depth reads for nothing (a tiny hostile DAG).
    if (size === 0 || at + size <= start || at >= end) continue;
    // The link's block is `stack.length` links below the root.
    assertDepth(root.cid, stack.length);
    if (++steps > budget) throw new ReadTooCostlyError(root.cid, end - start);
    if (codecOf(link.cid) === RAW_CODEC) {
      const from = Math.max(0, start - at);
      const to = Math.min(size, end - at);
      const inline = identityBlock(link.cid);
      yield inline === undefined
        ? { cid: link.cid, size, from, to }
        : { cid: link.cid, size, from, to, data: inline.bytes };
      continue;
    }
    const { node: child } = await fileChild(link.cid, size, get);
    const piece = leafPiece(link.cid, child, at, start, end);
    if (piece) yield piece;
    if (child.links.length === 0) continue;
    stack.push({ cid: link.cid, node: child, index: 0, at: at + child.data.length });
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
 * Most steps one byte-range walk ({@link fileRangeBlocks}) takes: each link it follows into the
 * range (written, or skipped as written already) is one. A range of a file Veriflow or `ipfs add`
 * wrote takes about one step per leaf, so this is ~25 GiB of 256 KiB leaves per answer; a client
 * wanting more asks for the whole entity (not walked by range) or for several ranges. It bounds
 * what a small hostile DAG can cost: without it, and without skipping what is written, a 53 KB
 * DAG whose nodes each link one child 174 times claimed 27.7 TB and a walk of it never ended.
 */
export const MAX_RANGE_STEPS = 100_000;

/** A byte range whose walk would take more than its limit of steps ({@link MAX_RANGE_STEPS}). */
export class RangeTooLargeError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The file.
   * @param limit The steps allowed.
   */
  constructor(cid: string, limit: number) {
    super(
      "range_too_large",
      `the byte range of ${cid} needs more than ${limit} blocks walked: ask for a smaller range`,
    );
  }
}

/** Options of {@link fileRangeBlocks}. */
export interface FileRangeOptions {
  /** Steps allowed before {@link RangeTooLargeError}. Default {@link MAX_RANGE_STEPS}. */
  maxSteps?: number;
}

/**
 * The blocks a reader needs to verify bytes `[start, end)` of file `root`, depth first, each once:
 * the root, then each inner node whose bytes overlap the range, each followed by its overlapping
 * leaves (the trustless gateway's `entity-bytes`). A leaf or subtree outside the range is never
 * listed nor read; raw leaves are listed, not read.
 *
 * A node may link the same child many times (a file of repeated chunks does, and a hostile DAG can
 * make a tiny DAG claim terabytes so): a child wholly inside the range whose blocks were all listed
 * already is skipped without reading it, so the walk reads each node once, plus at most the two at
 * the range's ends on each level again.
 *
 * @throws {RangeTooLargeError} the walk would take more than `options.maxSteps`.
 * @throws {StorageError} `not_a_file`: `root` (or a node below it) is not a UnixFS file node.
 * @throws {InvalidManifestError} a node's sizes disagree with its parent's.
 */
export async function* fileRangeBlocks(
  root: string,
  start: number,
  end: number,
  getStored: GetBlock,
  options?: FileRangeOptions,
): AsyncGenerator<RangeBlock> {
  for await (const run of fileRangeRuns(root, start, end, getStored, options)) {
    if (run.leaves === undefined) yield { cid: run.cid, bytes: run.bytes };
    else for (const cid of run.leaves) yield { cid };
  }
}

/**
 * A stretch of a range walk ({@link fileRangeRuns}): a node read on the way (decoded), or raw
 * leaves listed in a row between two such nodes (never read).
 */
export type RangeRun =
  | { cid: string; bytes: Uint8Array; node: UnixfsNode; leaves?: undefined }
  | { leaves: string[] };

/**
 * Most leaves one {@link RangeRun} lists: a run ends at the next node read, and a walk that skips
 * every node (each met again, already listed) would otherwise gather a whole range's leaves
 * (up to `maxSteps`) before handing any on.
 */
const MAX_LEAVES_PER_RUN = 4096;

/** Options of {@link fileRangeRuns}. */
export interface RangeRunOptions extends FileRangeOptions {
  /**
   * List each leaf once (default), as a CAR must. False: a leaf linked again is listed again, for
   * a caller that only asks whether leaves are held (the range check): a set of every leaf's CID
   * was a third of that check's CPU for 65,536 leaves (stop 77). Nodes are read and listed once
   * either way, so a DAG that links one subtree many times is still walked once.
   */
  leavesOnce?: boolean;
}

/**
 * {@link fileRangeBlocks}' walk, in runs: each node read (decoded once, as the walk reads it) and
 * the raw leaves between nodes in one array, in the same order and each once. What a caller that
 * handles leaves by the batch takes (the range check, a CAR's length): a generator step per leaf
 * (and an object per leaf) was most of the CPU of a check of 65,536 leaves (stop 77 profile).
 *
 * @throws What {@link fileRangeBlocks} throws, when it would.
 */
export async function* fileRangeRuns(
  root: string,
  start: number,
  end: number,
  getStored: GetBlock,
  options?: RangeRunOptions,
): AsyncGenerator<RangeRun> {
  const get = inlineAware(getStored);
  const maxSteps = options?.maxSteps ?? MAX_RANGE_STEPS;
  const leavesOnce = options?.leavesOnce ?? true;
  let steps = 0;
  const rootBytes = await get(root);
  const rootNode = decodeUnixfs(root, rootBytes);
  assertFileNode(root, rootNode);
  LazyLink.makeCids(rootNode.links);
  yield { cid: root, bytes: rootBytes, node: rootNode };
  const listed = new Set<string>([root]);
  /** Nodes every block under which is listed: met again inside the range, nothing to add. */
  const complete = new Set<string>();
  const stack: RangeFrame[] = [
    { cid: root, node: rootNode, index: 0, at: rootNode.data.length, inside: false },
  ];
  let run: string[] = [];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    const { links, blockSizes } = frame.node;
    if (frame.index >= links.length || frame.at >= end) {
      stack.pop();
      if (frame.inside) complete.add(frame.cid);
      continue;
    }
    const i = frame.index++;
    const size = blockSizes[i];
    const at = frame.at;
    frame.at += size;
    if (at + size <= start || at >= end) continue;
    assertDepth(root, stack.length); // the link's block is `stack.length` links below the root
    if (++steps > maxSteps) throw new RangeTooLargeError(root, maxSteps);
    const cid = links[i].cid;
    if (linkCodec(cid) === RAW_CODEC) {
      // A raw leaf is one block, listed whole: once listed, complete (one set, not two, per leaf).
      if (leavesOnce) {
        if (listed.has(cid)) continue;
        listed.add(cid);
      }
      run.push(cid);
      if (run.length < MAX_LEAVES_PER_RUN) continue;
      yield { leaves: run };
      run = [];
      continue;
    }
    if (complete.has(cid)) continue;
    // The leaves before this node go first: the order is the CAR's, and a caller may end the walk
    // on them before this node is read.
    if (run.length > 0) {
      yield { leaves: run };
      run = [];
    }
    const { bytes, node: child } = await fileChild(cid, size, get);
    LazyLink.makeCids(child.links);
    if (!listed.has(cid)) yield { cid, bytes, node: child };
    listed.add(cid);
    const inside = start <= at && at + size <= end;
    if (child.links.length === 0) complete.add(cid); // a dag-pb leaf: its data is its node's
    else stack.push({ cid, node: child, index: 0, at: at + child.data.length, inside });
  }
  if (run.length > 0) yield { leaves: run };
}

/**
 * Most bytes of nodes {@link assertRangeReadable} reads before it stops checking. The inner nodes
 * of a file of raw leaves are ~8 KiB per 174 leaves (~45 MiB of file), so 8 MiB covers ~1,000 of
 * them, a ~44 GiB range; a file whose leaves are dag-pb nodes (`ipfs add` without `--raw-leaves`)
 * has its leaves read by the walk, and the check must not read the file's bytes twice.
 */
export const MAX_READABLE_CHECK_BYTES = 8 * 1024 * 1024;

/** Options of {@link assertRangeReadable}. */
export interface RangeReadableOptions extends FileRangeOptions {
  /** Bytes of nodes read before the check stops. Default {@link MAX_READABLE_CHECK_BYTES}. */
  maxNodeBytes?: number;
}

/** Thrown inside {@link assertRangeReadable} when its walk has read its budget: the check ends. */
class CheckBudgetSpent extends Error {}

export { MAX_LEAVES_PER_CHECK } from "./_leaf_batch.ts";

/** What a storage answers of a batch of a file's leaves ({@link LeafChecker}). */
export interface LeafCheck {
  /** The first of the leaves asked about that no read can get (`chunk_not_found`); else absent. */
  missing?: string;
  /**
   * False when the storage would say "readable" of every leaf it does not hold, for this read and
   * every other (a node with storage peers, which are not asked): checking more leaves can find
   * nothing, so the walk stops. True when a leaf not held here is answered as missing.
   */
  checks: boolean;
}

/** Checks leaves (in order) for {@link assertRangeReadable}; `GatewayStorage.leavesReadable`. */
export type LeafChecker = (cids: readonly string[]) => Promise<LeafCheck>;

/**
 * Steps ({@link fileRangeBlocks}) a walk of `[start, end)` would take, from the first node read
 * that links raw leaves: a step per leaf (the range's length over the mean size of that node's
 * leaves) and one per node of such leaves (the levels above add under 1 %). A node written by
 * Veriflow or `ipfs add` links leaves of one size, so this is the walk's count to within a node;
 * `undefined` for a node that links no raw leaf.
 */
function estimatedSteps(node: UnixfsNode, start: number, end: number): number | undefined {
  let leaves = 0;
  let bytes = 0;
  for (let i = 0; i < node.links.length; i++) {
    if (linkCodec(node.links[i].cid) !== RAW_CODEC) continue;
    leaves++;
    bytes += node.blockSizes[i];
  }
  if (leaves === 0) return undefined;
  if (bytes === 0) return Infinity;
  const rangeLeaves = Math.ceil((end - start) / (bytes / leaves));
  return rangeLeaves + Math.ceil(rangeLeaves / leaves);
}

/**
 * Throws `ChunkNotFoundError` (`errors.ts`) for the first stored leaf of file `root`'s bytes
 * `[start, end)` that `check` says no read can get: what a route checks before its `200`, so that a
 * file with a lost leaf is answered as a missing block is, not with a length and then a cut body
 * (review s76 F3). The walk is {@link fileRangeRuns}' (a leaf linked again is checked again, not
 * looked up in a set): it reads the inner nodes over the range (one per 174 leaves, which the read
 * reads anyway) and no raw leaf; the leaves go to `check` in batches of up to
 * {@link MAX_LEAVES_PER_CHECK}, the first node's at once. What that costs, measured through the
 * routes (`tmp/s77/carperf`: a StorageActor and `Deno.serve` in one process, two runs of medians of
 * 3 rounds on 2 cores shared at load 11-13; "no check" is the tree before it, 63e0d0b~1): a 4 GiB
 * file of 256 KiB leaves (16,384 leaves, 96 node reads, 5 asks) has its `GET` status 77-126 ms
 * after the request and its `HEAD` 88-101 ms (15 and 3-4 ms with no check; 120-125 and 76-178 ms at
 * 5439e49, which asked per node and walked a generator step per leaf); a 64 MiB file of 1 KiB
 * leaves (65,536 leaves, 381 node reads) 285-316 ms (66-163 with no check; 421-496 at 5439e49).
 * The two trees' checks alone, alternated in one process: 49 → 43 ms of CPU for the 4 GiB file,
 * 279 → 201 ms for the 64 MiB one, of which the walk 123 → 43 ms. What is left is per node and
 * per leaf, not per ask: each node read through the storage actor (~0.1-0.2 ms: the pack file
 * opened, read and closed, the block hashed), a CID string made for each leaf (~0.25 µs) and the
 * store's index lookup of it (~0.5 µs in an index of ~180,000 entries, a third of that for a string
 * hashed already).
 *
 * It is skipped, passing, where it would cost more than it saves or can find nothing:
 * - a range of more than `maxSteps` leaves, judged from the first node of raw leaves (the leftmost
 *   path, a few node reads) before the rest is walked; a file of 256 KiB leaves has ~25 GiB of
 *   them, one of 1 KiB leaves ~100 MiB;
 * - once `maxNodeBytes` of nodes are read (dag-pb leaves are read by the walk);
 * - once `check` says it does not check (`LeafCheck.checks`: a node with storage peers, after one
 *   call).
 * A leaf missing where the check was skipped still cuts the body after a `200`.
 *
 * Refused, not passed: a block the walk meets deeper than {@link MAX_UNIXFS_DEPTH}
 * ({@link DagTooDeepError}), and a range whose estimated steps are over {@link readStepBudget}
 * ({@link ReadTooCostlyError}): the read itself would stop on either, so they are refused before
 * the status.
 */
export async function assertRangeReadable(
  root: string,
  start: number,
  end: number,
  get: GetBlock,
  check: LeafChecker,
  options?: RangeReadableOptions,
): Promise<void> {
  const maxSteps = options?.maxSteps ?? MAX_RANGE_STEPS;
  let budget = options?.maxNodeBytes ?? MAX_READABLE_CHECK_BYTES;
  const counted: GetBlock = async (cid) => {
    if (budget <= 0) throw new CheckBudgetSpent();
    const bytes = await get(cid);
    budget -= bytes.length;
    return bytes;
  };
  const batch = new LeafBatch(check);
  let estimated = false;
  try {
    const walk = fileRangeRuns(root, start, end, counted, { ...options, leavesOnce: false });
    for await (const run of walk) {
      if (run.leaves !== undefined) {
        if (!await batch.add(run.leaves)) return;
        // The first node's leaves go at once: a storage that checks nothing says so before the
        // walk reads another node.
        if (!batch.asked && !await batch.flush()) return;
        continue;
      }
      if (!estimated) {
        const steps = estimatedSteps(run.node, start, end);
        // A read that would walk more than its bytes pay for is refused before its status, not
        // cut after it: the read's own walk would stop there anyway (`filePieces`).
        if (steps !== undefined && steps > readStepBudget(end - start)) {
          throw new ReadTooCostlyError(root, end - start);
        }
        if (steps !== undefined && steps > maxSteps) return;
        estimated = steps !== undefined;
      }
    }
    await batch.flush();
  } catch (error) {
    if (!(error instanceof RangeTooLargeError || error instanceof CheckBudgetSpent)) throw error;
    // The walk stops here, passing, but the leaves it has gathered are still checked: up to a
    // batch of them, where asking per node left at most one node's unchecked.
    await batch.flush();
  }
}

/** A node of a range walk: {@link WalkFrame}, and whether the range holds all of its bytes. */
interface RangeFrame extends WalkFrame {
  /** True when every byte under it is in the range: once walked, every block under it is listed. */
  inside: boolean;
}

/** A file node on the way down, and where the walk is in it. */
interface WalkFrame {
  cid: string;
  node: UnixfsNode;
  /** The next link to visit. */
  index: number;
  /** File offset of that link's first byte (past the node's own data, which comes first). */
  at: number;
}

/**
 * A file node's child `cid`, read and checked: a file node a walk can read, holding the `size`
 * bytes its parent says (else {@link InvalidManifestError}).
 */
async function fileChild(
  cid: string,
  size: number,
  get: GetBlock,
): Promise<{ bytes: Uint8Array; node: UnixfsNode }> {
  const bytes = await get(cid);
  const node = decodeUnixfs(cid, bytes);
  assertChildHolds(cid, node.fileSize, size);
  assertFileNode(cid, node);
  return { bytes, node };
}

/**
 * Throws {@link InvalidManifestError} unless child `cid` of a file node holds the `declared` bytes
 * of file data its parent's `blockSizes` say: the check a read makes on each child it reads, and
 * the one an import and `ls` make on a raw leaf ({@link assertRawLeafSizes}).
 *
 * @param holds Bytes of file data the child holds: a dag-pb node's `fileSize`, a raw leaf's length.
 */
export function assertChildHolds(cid: string, holds: number, declared: number): void {
  if (holds !== declared) {
    throw new InvalidManifestError(`${cid} holds ${holds} bytes, not ${declared}`);
  }
}

/** Bytes stored under a CID (not read, not verified), or `undefined` when it is not stored. */
export type StoredLength = (cid: string) => Promise<number | undefined>;

/**
 * Throws {@link InvalidManifestError} when a raw leaf that file node `cid` links holds other than
 * the bytes its `blockSizes` say: every read of the file fails on it (review s76 F1), so an import
 * refuses it before pinning and `ls` flags it. A leaf's length comes from `storedLength` (the
 * store's index, no read) or its identity CID; a leaf not stored is left to the caller's check of
 * what is missing. Any other block (a directory, a node that is not UnixFS, whose reader refuses
 * it) is not this check's: nothing is thrown. A link declaring 0 bytes is skipped, as every read
 * skips it.
 */
export async function assertRawLeafSizes(
  cid: string,
  bytes: Uint8Array,
  storedLength: StoredLength,
): Promise<void> {
  if (codecOf(cid) !== DAG_PB_CODEC) return;
  let node: UnixfsNode;
  try {
    node = decodeUnixfs(cid, bytes);
  } catch {
    return;
  }
  if (node.type !== "file" && node.type !== "raw") return;
  for (let i = 0; i < node.links.length; i++) {
    const declared = node.blockSizes[i];
    const leaf = node.links[i].cid;
    if (declared === 0 || codecOf(leaf) !== RAW_CODEC) continue;
    const holds = identityBlock(leaf)?.bytes.length ?? await storedLength(leaf);
    if (holds !== undefined) assertChildHolds(leaf, holds, declared);
  }
}

/**
 * Throws unless `node` is a file node a walk can read. Its bytes are its own `Data`, then its
 * links' in order (UnixFS spec): a node may hold both, as other importers than `ipfs add` write.
 */
function assertFileNode(cid: string, node: UnixfsNode): void {
  if (node.type !== "file" && node.type !== "raw") {
    throw new StorageError("not_a_file", `${cid} is a UnixFS ${node.type}, not a file`);
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
