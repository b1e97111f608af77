/**
 * Which blocks a stored object links to, whatever kind of root it is: a UnixFS (dag-pb) node
 * links its children, a manifest (dag-cbor, or raw-labelled in stores written before UnixFS)
 * lists its chunks, a raw leaf links nothing. GC, repair, `ls`, CAR export and the gateway all
 * walk a file's DAG with these, so they agree on what a file is made of.
 *
 * @module
 */
import { cidCodec, DAG_CBOR_CODEC, DAG_PB_CODEC, isCid, storageKey } from "../protocols/cid.ts";
import { decodeCbor } from "../protocols/cbor.ts";
import { decodeManifest, looksLikeManifest } from "../protocols/manifest.ts";
import { dagPbLinks } from "./unixfs.ts";

/**
 * The chunks a manifest keeps alive. A valid manifest keeps its chunks; an object that
 * carries the manifest tag but not a manifest's shape (a future version, or a hostile blob)
 * keeps every valid CID in its `chunks` field, so GC never guesses less than the object names
 * and never throws on it; any other object keeps nothing but itself.
 */
export function chunksReferencedBy(bytes: Uint8Array): string[] {
  if (!looksLikeManifest(bytes)) return [];
  try {
    return decodeManifest(bytes).chunks;
  } catch {
    const raw = decodeCbor(bytes.slice()) as { chunks?: unknown }; // a copy: see manifest.ts
    if (!Array.isArray(raw.chunks)) return [];
    return raw.chunks.filter((c): c is string => typeof c === "string" && isCid(c));
  }
}

/**
 * The blocks object `id` links to: a dag-pb node's links (nothing if it does not decode: its
 * reader fails on it anyway), or a manifest's chunks ({@link chunksReferencedBy}).
 */
export function blocksReferencedBy(id: string, bytes: Uint8Array): string[] {
  if (cidCodec(id) !== DAG_PB_CODEC) return chunksReferencedBy(bytes);
  try {
    return dagPbLinks(bytes);
  } catch {
    return [];
  }
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
 * to find their links); leaves are listed, not read.
 */
export async function* dagBlocks(
  root: string,
  get: (cid: string) => Promise<Uint8Array>,
): AsyncGenerator<WalkedBlock> {
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    const cid = stack.pop()!;
    const key = storageKey(cid);
    if (seen.has(key)) continue;
    seen.add(key);
    if (cid !== root && !isDagNode(cid)) {
      yield { cid };
      continue;
    }
    const bytes = await get(cid);
    yield { cid, bytes };
    const links = blocksReferencedBy(cid, bytes);
    for (let i = links.length - 1; i >= 0; i--) stack.push(links[i]);
  }
}
