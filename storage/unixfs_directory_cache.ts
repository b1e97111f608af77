/**
 * Decoded UnixFS directory nodes, kept by CID for the gateway's path lookups and listings. A
 * directory's CID fixes its bytes, so a decoded node never goes stale; without a cache every
 * request for `/ipfs/{dir}/name` decoded the whole directory again, per path segment (review s74,
 * finding 1). The cache holds decoding only: the caller still reads each block through its
 * storage port (verified, `only-if-cached` honoured, a block gone from the store still missing),
 * and asks here for the node of the bytes it read.
 *
 * Least recently used first out, bounded by the bytes of the blocks held (a decoded node keeps
 * views into its block, plus one small object per link).
 *
 * @module
 */
import { decodeUnixfs, type UnixfsDecodeStats, type UnixfsNode } from "./unixfs.ts";

/**
 * Default bound on the directory blocks held: 8 MiB is ten of the largest flat directories a
 * node accepts (816 KB for 16,000 entries, `MAX_LINKS_PER_NODE`), or thousands of ordinary ones,
 * while a node serving big models keeps its memory for them. A decoded node costs about twice its
 * block (a ~100-byte link object per ~50-byte link), so ~16 MiB of heap at most.
 */
export const DEFAULT_DIRECTORY_CACHE_BYTES = 8 * 1024 * 1024;

/** Options of {@link UnixfsDirectoryCache}. */
export interface UnixfsDirectoryCacheOptions {
  /** Bytes of directory blocks held. Default {@link DEFAULT_DIRECTORY_CACHE_BYTES}. */
  maxBytes?: number;
  /** Counted into by the decodes this cache does (tests, metrics). */
  stats?: UnixfsDecodeStats;
}

/** Counts of a cache's use. */
export interface DirectoryCacheCounts {
  /** Nodes answered from the cache. */
  hits: number;
  /** Nodes decoded. */
  misses: number;
}

/** A bounded LRU of decoded UnixFS directory nodes by CID. */
export class UnixfsDirectoryCache {
  readonly #maxBytes: number;
  readonly #stats: UnixfsDecodeStats | undefined;
  /** Insertion order is recency: the first key is the least recently used. */
  readonly #nodes = new Map<string, { node: UnixfsNode; bytes: number }>();
  #bytes = 0;
  readonly #counts: DirectoryCacheCounts = { hits: 0, misses: 0 };

  /**
   * Build a cache.
   *
   * @param options The bound, and decode counts to add to.
   */
  constructor(options?: UnixfsDirectoryCacheOptions) {
    this.#maxBytes = options?.maxBytes ?? DEFAULT_DIRECTORY_CACHE_BYTES;
    this.#stats = options?.stats;
  }

  /** Hits and misses so far. */
  get counts(): Readonly<DirectoryCacheCounts> {
    return { ...this.#counts };
  }

  /** Bytes of the blocks held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The node of block `cid` whose verified bytes are `bytes`: the cached one, else
   * `decodeUnixfs`'s (kept when it is a directory no bigger than the bound).
   *
   * @example
   * ```ts
   * import { UnixfsDirectoryCache } from "./unixfs_directory_cache.ts";
   * const cache = new UnixfsDirectoryCache({ maxBytes: 1 << 20 });
   * const raw = "bafkqaalb"; // an identity raw CID: a file, never kept
   * cache.decode(raw, new TextEncoder().encode("a")).type; // "file"
   * ```
   *
   * @throws {InvalidManifestError} as `decodeUnixfs`.
   */
  decode(cid: string, bytes: Uint8Array): UnixfsNode {
    const held = this.#nodes.get(cid);
    if (held !== undefined) {
      this.#counts.hits++;
      this.#nodes.delete(cid); // re-inserted: now the most recently used
      this.#nodes.set(cid, held);
      return held.node;
    }
    this.#counts.misses++;
    // A node keeps views into its block: one read out of a larger buffer (a pack) is copied, so
    // what is held is the block's bytes, as counted, not the buffer around them.
    const own = bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
    const node = decodeUnixfs(cid, own, { stats: this.#stats });
    // Files are walked once per read and a big one's nodes would push the directories out.
    if (node.type === "directory" && own.length <= this.#maxBytes) {
      this.#nodes.set(cid, { node, bytes: own.length });
      this.#bytes += own.length;
      for (const [old, entry] of this.#nodes) {
        if (this.#bytes <= this.#maxBytes) break;
        this.#nodes.delete(old);
        this.#bytes -= entry.bytes;
      }
    }
    return node;
  }
}
