/**
 * The reference implementation the UnixFS tests compare against: the npm `ipfs-unixfs-importer`
 * with the settings of `ipfs add --cid-version 1 --raw-leaves --chunker=size-262144` (its
 * defaults), importing into an in-memory blockstore.
 */
import { type ImportCandidate, importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import type { CID } from "multiformats/cid";

/** The blocks an import wrote, by CID string. */
export class MemoryBlocks {
  /** CID string → bytes. */
  readonly blocks: Map<string, Uint8Array> = new Map();
  /** Store a block (the importer's blockstore interface). */
  put(cid: CID, bytes: Uint8Array): Promise<CID> {
    this.blocks.set(cid.toString(), bytes);
    return Promise.resolve(cid);
  }
  /** Whether a block is stored. */
  has(cid: CID): Promise<boolean> {
    return Promise.resolve(this.blocks.has(cid.toString()));
  }
  /** A stored block, in the interface-blockstore v7 shape (an iterable of byte pieces). */
  async *get(cid: CID): AsyncGenerator<Uint8Array> {
    const bytes = this.blocks.get(cid.toString());
    if (!bytes) throw new Error(`no block ${cid}`);
    yield bytes;
  }
}

/**
 * The root CID the importer gives `candidates` (one file, or the files of one directory with
 * paths `dir/…`), and its blocks. `rawLeaves: false` gives the layout of `ipfs add` without
 * `--raw-leaves`: every leaf a dag-pb node carrying its bytes; with `cidVersion: 0` as well, the
 * layout of plain `ipfs add` (CIDv0 root and links, `Qm…`).
 */
export async function importerRoot(
  candidates: ImportCandidate[],
  options?: { chunkSize?: number; rawLeaves?: boolean; cidVersion?: 0 | 1 },
): Promise<{ root: string; blocks: MemoryBlocks }> {
  const blocks = new MemoryBlocks();
  let root: CID | undefined;
  for await (
    const entry of importer(candidates, blocks as never, {
      cidVersion: options?.cidVersion ?? 1,
      rawLeaves: options?.rawLeaves ?? true,
      chunker: options?.chunkSize ? fixedSize({ chunkSize: options.chunkSize }) : undefined,
    })
  ) root = entry.cid; // the last entry is the root (a directory comes after its files)
  return { root: root!.toString(), blocks };
}
