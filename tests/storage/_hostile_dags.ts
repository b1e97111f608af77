/**
 * Small hostile UnixFS file DAGs, held in memory (review s78): a chain of one-link file nodes over
 * one leaf (as deep as asked), and a "bomb" whose nodes each link the node below
 * {@link MAX_CHILDREN_PER_NODE} times over a 1-byte leaf (a few blocks declaring 174^levels bytes).
 */
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import { MAX_CHILDREN_PER_NODE } from "../../storage/unixfs.ts";

/** A DAG in memory: its root, its blocks by CID string, and a reader of them. */
export interface MemoryDag {
  root: string;
  blocks: Map<string, Uint8Array>;
  get: (cid: string) => Promise<Uint8Array>;
  /** File bytes the root declares. */
  size: number;
}

async function put(blocks: Map<string, Uint8Array>, code: number, bytes: Uint8Array) {
  const cid = CID.createV1(code, await sha256.digest(bytes)).toString();
  blocks.set(cid, bytes);
  return cid;
}

async function fileNode(
  blocks: Map<string, Uint8Array>,
  children: readonly { cid: string; size: number }[],
): Promise<string> {
  const unixfs = new UnixFS({ type: "file" });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  const bytes = dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: children.map((c) => ({ Name: "", Hash: CID.parse(c.cid), Tsize: c.size })),
  }));
  return await put(blocks, dagPb.code, bytes);
}

function memory(root: string, blocks: Map<string, Uint8Array>, size: number): MemoryDag {
  return {
    root,
    blocks,
    size,
    get: (cid) => {
      const bytes = blocks.get(cid);
      return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
    },
  };
}

/** `nodes` one-link file nodes over the 8-byte leaf `deepleaf`: the leaf is `nodes` links deep. */
export async function chainDag(nodes: number): Promise<MemoryDag> {
  const blocks = new Map<string, Uint8Array>();
  let cid = await put(blocks, raw.code, new TextEncoder().encode("deepleaf"));
  for (let i = 0; i < nodes; i++) cid = await fileNode(blocks, [{ cid, size: 8 }]);
  return memory(cid, blocks, 8);
}

/** `levels` nodes, each linking the one below 174 times, over one 1-byte leaf. */
export async function bombDag(levels: number): Promise<MemoryDag> {
  const blocks = new Map<string, Uint8Array>();
  let below = { cid: await put(blocks, raw.code, new Uint8Array([42])), size: 1 };
  for (let i = 0; i < levels; i++) {
    const cid = await fileNode(blocks, Array(MAX_CHILDREN_PER_NODE).fill(below));
    below = { cid, size: below.size * MAX_CHILDREN_PER_NODE };
  }
  return memory(below.cid, blocks, below.size);
}

/** A balanced file of `count` distinct 64-byte leaves (174 to a node), as the review's probe. */
export async function manyLeavesDag(count: number): Promise<MemoryDag> {
  const blocks = new Map<string, Uint8Array>();
  let level: { cid: string; size: number }[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = new Uint8Array(64);
    new DataView(bytes.buffer).setUint32(0, i);
    level.push({ cid: await put(blocks, raw.code, bytes), size: 64 });
  }
  while (level.length > 1) {
    const next: { cid: string; size: number }[] = [];
    for (let i = 0; i < level.length; i += MAX_CHILDREN_PER_NODE) {
      const group = level.slice(i, i + MAX_CHILDREN_PER_NODE);
      next.push({
        cid: await fileNode(blocks, group),
        size: group.reduce((n, c) => n + c.size, 0),
      });
    }
    level = next;
  }
  return memory(level[0].cid, blocks, count * 64);
}

/**
 * A chain of `nodes` one-link file nodes over the leaf `deepleaf` ({@link chainDag}) under `dirs`
 * one-entry UnixFS directories, each naming the one below `d`: the leaf is `dirs + nodes` links
 * below the root, and `nodes` below its file's root.
 */
export async function dirsOverChainDag(dirs: number, nodes: number): Promise<MemoryDag> {
  const { blocks, root } = await chainDag(nodes);
  let cid = root;
  for (let i = 0; i < dirs; i++) {
    const bytes = dagPb.encode(dagPb.prepare({
      Data: new UnixFS({ type: "directory" }).marshal(),
      Links: [{ Name: "d", Hash: CID.parse(cid), Tsize: 8 }],
    }));
    cid = await put(blocks, dagPb.code, bytes);
  }
  return memory(cid, blocks, 8);
}
