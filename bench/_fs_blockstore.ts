/**
 * The storage bench's reference blockstore: what the npm `ipfs-unixfs-importer` writes to when
 * the bench measures it beside Veriflow's put. One file per block, like `blockstore-fs` (Helia's
 * filesystem blockstore: CID-named files in two-character shard directories), and as durable as
 * Veriflow's `ChunkStore`: each block is written to a temp file, fsynced, renamed to its name,
 * and the shard directory is fsynced, before `put` resolves. So after a crash a block is absent
 * or complete, and an acknowledged block survives — the guarantee a Veriflow put gives.
 *
 * Only `put` is implemented (all the importer calls); written for the bench, not as a store.
 *
 * @module
 */
import type { CID } from "multiformats/cid";

/** Characters of a CID (base32, before its last) that name its shard directory. */
const SHARD_CHARS = 2;

/** Blocks as files under `dir/<shard>/<cid>`, each durable before its put resolves. */
export class FsBlockstore {
  readonly #dir: string;
  /** Shard directories created (or being created), so each is made once. */
  readonly #shards = new Map<string, Promise<void>>();
  #blocks = 0;
  #bytes = 0;

  /** A store in `dir` (created if missing). */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Blocks and bytes written so far. */
  get written(): { blocks: number; bytes: number } {
    return { blocks: this.#blocks, bytes: this.#bytes };
  }

  /**
   * Write `value` (bytes, or the interface-blockstore v7 iterable of byte pieces) as the block
   * `cid`; resolves with `cid` once the file and its directory entry are on disk.
   */
  async put(
    cid: CID,
    value: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<CID> {
    const name = cid.toString();
    const shard = name.slice(-SHARD_CHARS - 1, -1); // blockstore-fs's "next to last" sharding
    const shardDir = `${this.#dir}/${shard}`;
    await this.#shard(shardDir);
    const temp = `${shardDir}/.${name}.${crypto.randomUUID()}.tmp`;
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      const pieces = value instanceof Uint8Array ? [value] : value;
      for await (const piece of pieces) {
        for (let o = 0; o < piece.length;) o += await file.write(piece.subarray(o));
        this.#bytes += piece.length;
      }
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, `${shardDir}/${name}`);
    await fsyncDir(shardDir);
    this.#blocks++;
    return cid;
  }

  #shard(path: string): Promise<void> {
    let made = this.#shards.get(path);
    if (!made) {
      made = (async () => {
        await Deno.mkdir(path, { recursive: true });
        await fsyncDir(this.#dir); // the new shard's entry is durable too
      })();
      this.#shards.set(path, made);
    }
    return made;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}
