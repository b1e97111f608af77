/**
 * Which blocks a stored object links to, whatever kind of root it is: a UnixFS (dag-pb) node
 * links its children, a manifest (dag-cbor, or raw-labelled in stores written before UnixFS,
 * when the store's record says so: `legacy_manifests.ts`) lists its chunks (and a manifest
 * tree's root and nodes their branches' nodes, dag-cbor too), a raw leaf links
 * nothing, whatever its bytes look like. GC, repair, `ls`, CAR export and the gateway all
 * walk a file's DAG with these, so they agree on what a file is made of.
 *
 * @module
 */
import {
  cidCodec,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  identityBlock,
  isCid,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { decodeCheckedCbor } from "../protocols/cbor_guard.ts";
import {
  decodeManifest,
  decodeManifestNode,
  looksLikeManifest,
  looksLikeManifestNode,
  manifestLinks,
} from "../protocols/manifest.ts";
import { UnixFS } from "ipfs-unixfs";
import { assertDagBlockSize, dagPbLinks, DagTooDeepError, MAX_UNIXFS_DEPTH } from "./unixfs.ts";
import { readDagPbNode } from "./dag_pb_reader.ts";
import { BlockTooLargeError } from "./errors.ts";

/**
 * The blocks a manifest keeps alive; for an object already known to be a manifest (by its
 * dag-cbor codec or the store's record), never to tell whether it is one. A valid manifest keeps
 * its chunks, and a manifest tree's root or node (`protocols/manifest.ts`) its branches' nodes
 * too. An object that carries a manifest's tag but not its shape (a future version, or a
 * hostile blob) keeps every valid CID in its `chunks` field and its `branches`' `cid`s, so GC
 * never guesses less than the object names and never throws on it; any other object keeps
 * nothing but itself.
 */
export function chunksReferencedBy(bytes: Uint8Array): string[] {
  const isManifest = looksLikeManifest(bytes);
  if (!isManifest && !looksLikeManifestNode(bytes)) return [];
  try {
    return manifestLinks(isManifest ? decodeManifest(bytes) : decodeManifestNode(bytes));
  } catch {
    // A copy: see manifest.ts.
    const raw = decodeCheckedCbor(bytes.slice()) as { chunks?: unknown; branches?: unknown };
    const chunks = Array.isArray(raw.chunks) ? raw.chunks : [];
    const branches = Array.isArray(raw.branches)
      ? raw.branches.map((b) => (b as { cid?: unknown } | null)?.cid)
      : [];
    return [...chunks, ...branches].filter((c): c is string => typeof c === "string" && isCid(c));
  }
}

/**
 * The blocks object `id` links to: a dag-pb node's links (nothing if it does not decode: its
 * reader fails on it anyway), a dag-cbor manifest's chunks ({@link chunksReferencedBy}), and a
 * raw object's only when `options.legacyManifest` says the store records it as a manifest: a
 * raw block is otherwise a leaf, and a file's bytes shaped like a manifest name nothing.
 *
 * Stored blocks only: an identity CID carries its block and is stored nowhere, so it has no
 * storage key for GC, repair or a listing to keep or ask for (one made every GC of the store fail
 * with `invalid_cid`). An inline dag-pb node's own links stand in its place (`ipfs add --inline`
 * with an `--inline-limit` over ~50 bytes inlines a one-entry directory that links a stored file).
 */
export function blocksReferencedBy(
  id: string,
  bytes: Uint8Array,
  options?: {
    legacyManifest?: boolean;
    refuseTooLarge?: boolean;
    /** Told each link left out for having no storage key ({@link storedLinks}). */
    onUnstorable?: (link: string) => void;
  },
): string[] {
  const codec = cidCodec(id);
  if (codec === DAG_PB_CODEC) {
    let links: string[];
    try {
      links = dagPbLinks(bytes, id);
    } catch (error) {
      // A walk that hands blocks on (a CAR, a listing) must not pass an oversized node off as a
      // leaf; GC, which cannot read one anyway, keeps just the node.
      if (options?.refuseTooLarge && error instanceof BlockTooLargeError) throw error;
      return [];
    }
    return storedLinks(links, options?.onUnstorable);
  }
  if (codec === DAG_CBOR_CODEC || options?.legacyManifest === true) {
    return chunksReferencedBy(bytes);
  }
  return [];
}

/**
 * `links` with each identity CID replaced by the links of the node it inlines (none for an inline
 * leaf), in order: the stored blocks they name. Each inline node is smaller than the CID that
 * carries it, so this ends. A valid CID this store cannot hold (another codec such as dag-json,
 * another hash) names no block here and is left out, told to `onUnstorable`: a peer's directory
 * linking one made every GC and CAR export of a store pinning it fail (review s74 verify2).
 *
 * @example
 * ```ts
 * import { storedLinks } from "./dag_links.ts";
 * // An inlined leaf (`ipfs add --inline`) names no stored block.
 * storedLinks(["bafkqaaa"]); // []
 * ```
 */
export function storedLinks(
  links: readonly string[],
  onUnstorable?: (link: string) => void,
): string[] {
  const out: string[] = [];
  const stack = [...links].reverse();
  while (stack.length > 0) {
    const link = stack.pop()!;
    const inline = identityBlock(link);
    if (inline === undefined) {
      if (isCid(link)) out.push(link);
      else onUnstorable?.(link);
    } else if (inline.codec === DAG_PB_CODEC) {
      try {
        stack.push(...dagPbLinks(inline.bytes, link).reverse());
      } catch {
        // An inline node that does not decode links nothing (its reader fails on it), and must
        // not cost its parent's other links their place: the parent's decode is what counts.
      }
    }
  }
  return out;
}

/**
 * True when `cid` names an object that links others and must be read to walk a DAG below the
 * root: a dag-pb node or a dag-cbor manifest. (A raw root may be a manifest written before
 * UnixFS; a raw block below a root is always a leaf.)
 */
export function isDagNode(cid: string): boolean {
  if (!isCid(cid)) return false;
  const codec = cidCodec(cid);
  return codec === DAG_PB_CODEC || codec === DAG_CBOR_CODEC;
}

/**
 * Most links from a root to any block of its DAG that a walk which hands a DAG on (a CAR export, an
 * import's check before the pin) follows: a content path's directories (the gateway follows 64
 * names, `server/gateway_paths.ts` `MAX_PATH_NAMES`) above a file of up to
 * {@link MAX_UNIXFS_DEPTH} levels. A manifest tree is 8 levels at most. A chain of 50,000
 * one-link nodes took a CAR walk 5.8 s per request and an import 3 minutes (review s78 F1). Such a
 * walk also holds each UnixFS file in it to {@link MAX_UNIXFS_DEPTH} levels ({@link dagBlocks}).
 */
export const MAX_DAG_DEPTH = 64 + MAX_UNIXFS_DEPTH;

/** A block met on a walk: its CID, and its bytes when the walk had to read it. */
export interface WalkedBlock {
  /** The block's CID, with the codec its parent links it by. */
  cid: string;
  /** Its verified bytes for the root and linking nodes; `undefined` for leaves. */
  bytes?: Uint8Array;
}

/**
 * Every block of the DAG under `root`, root first, depth first, each once (by digest): the
 * order of a CAR export. The root and every linking node are read with `get` (they must be,
 * to find their links); leaves are listed, not read. A raw root links nothing unless
 * `options.isLegacyManifest` (the store's record) says it is a manifest written before UnixFS.
 * An identity root comes with the bytes its CID carries, never read with `get`, and is not walked
 * into; below the root, an identity block is no stored block and is not listed, but an inline
 * node's links are ({@link blocksReferencedBy}).
 *
 * @throws {DagTooDeepError} with `options.maxDepth`, a block more links below the root than it, or
 * more than {@link MAX_UNIXFS_DEPTH} below the UnixFS file node it belongs to: the bound every
 * plain read holds a file to, so that a walk which hands a DAG on (a CAR export, an import, a peer's
 * pin) takes no file the node's reads refuse (a file 33 to 96 levels deep was imported and served
 * as a CAR while its plain reads were `422`). Without it the walk goes to any depth (GC must keep
 * whatever a pin reaches).
 */
export async function* dagBlocks(
  root: string,
  get: (cid: string) => Promise<Uint8Array>,
  options?: {
    isLegacyManifest?: (cid: string) => Promise<boolean>;
    /** Told each link passed over for naming no block a store here holds ({@link storedLinks}). */
    onUnstorable?: (link: string) => void;
    /** Most links below the root a block may be ({@link MAX_DAG_DEPTH}); default no limit. */
    maxDepth?: number;
  },
): AsyncGenerator<WalkedBlock> {
  const maxDepth = options?.maxDepth ?? Infinity;
  const fileDepths = options?.maxDepth !== undefined;
  const seen = new Set<string>(); // listed, by digest
  // Read for its links, by digest. Apart from `seen`: a DAG can link one block as a raw leaf and,
  // by the same digest, as a dag-pb node; met as the leaf first, the node must still be walked,
  // else what it links is never listed (a CAR import took such a DAG for whole without them).
  const walked = new Set<string>();
  // Each block with its depth: links below the root, on the path that reached it first; inside a
  // UnixFS file (with a bound), that file's root node and the links below it.
  const stack: WalkEntry[] = [{ cid: root, depth: 0 }];
  while (stack.length > 0) {
    const { cid, depth, file } = stack.pop()!;
    if (depth > maxDepth) throw new DagTooDeepError(root, maxDepth);
    if (file !== undefined && file.depth > MAX_UNIXFS_DEPTH) {
      throw new DagTooDeepError(file.root, MAX_UNIXFS_DEPTH);
    }
    // An identity CID carries its block: nothing stored under a key, nothing to fetch.
    const inline = identityBlock(cid);
    const key = inline === undefined ? storageKey(cid) : cid;
    if (inline !== undefined || (cid !== root && !isDagNode(cid))) {
      if (seen.has(key)) continue;
      seen.add(key);
      yield inline === undefined ? { cid } : { cid, bytes: inline.bytes };
      continue;
    }
    if (walked.has(key)) continue;
    walked.add(key);
    const bytes = await get(cid);
    // A node too large to walk is an error, not a leaf: a CAR or listing without its children
    // would look complete.
    if (cidCodec(cid) === DAG_PB_CODEC) assertDagBlockSize(cid, bytes.length);
    if (!seen.has(key)) yield { cid, bytes };
    seen.add(key);
    const legacyManifest = cid === root && cidCodec(cid) === RAW_CODEC &&
      (await options?.isLegacyManifest?.(cid) ?? false);
    const links = blocksReferencedBy(cid, bytes, {
      legacyManifest,
      refuseTooLarge: true,
      onUnstorable: options?.onUnstorable,
    });
    // Only a node outside any file is decoded for its type: one inside a file is of that file.
    const inFile = file ??
      (fileDepths && isFileNode(cid, bytes) ? { root: cid, depth: 0 } : undefined);
    const below = inFile && { root: inFile.root, depth: inFile.depth + 1 };
    for (let i = links.length - 1; i >= 0; i--) {
      stack.push({ cid: links[i], depth: depth + 1, file: below });
    }
  }
}

/** A block a {@link dagBlocks} walk has still to visit. */
interface WalkEntry {
  cid: string;
  /** Links below the walk's root. */
  depth: number;
  /** In a UnixFS file: the file's root node, and links below it. */
  file?: { root: string; depth: number };
}

/**
 * True when dag-pb node `cid` (`bytes`) is a UnixFS file node (type `file` or `raw`); false for
 * a directory, anything else, or a node that does not decode (its reader refuses it anyway).
 */
function isFileNode(cid: string, bytes: Uint8Array): boolean {
  if (cidCodec(cid) !== DAG_PB_CODEC) return false;
  try {
    const data = readDagPbNode(bytes).data;
    if (data === undefined) return false;
    const type = UnixFS.unmarshal(data).type;
    return type === "file" || type === "raw";
  } catch {
    return false;
  }
}
