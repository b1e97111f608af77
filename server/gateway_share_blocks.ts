/**
 * Which blocks a share link may serve: those reachable from the shared file's root through what
 * its manifests link (`chunksReferencedBy`, the links GC keeps alive): a flat manifest's chunks,
 * a manifest tree's inner nodes and their chunks (`storage/manifest_tree.ts`). Nothing else: a
 * share must not become a way to read another file's blocks.
 *
 * A block is looked for in the links of the root and of the tree's nodes, which are kept, by
 * storage key, in a bounded cache shared by every share: blocks are named by their hash, so what
 * one links never changes, whichever share or request read it. An 8 GiB file's tree (a root and
 * 4 nodes) is read once, then every chunk request is a few set lookups; a tree past the bound
 * is read again as its nodes are evicted, each request still answered right.
 *
 * Past the bound, one request's work is bounded, whatever the client asks: it reads at most
 * {@link MAX_SHARE_SEARCH_READS} manifest blocks the cache does not hold, so a client probing for
 * blocks that are not the file's (over and over) cannot make the node walk a huge tree per
 * request. A reader of a tree asks for a node before the blocks it links (a share link's opener
 * does, as every reader of a tree), so the blocks a file's recent requests found are searched
 * first: the nodes on the paths to the blocks last found (one per reader reading it at once, and
 * a few each left, up to {@link RECENT_PATHS_PER_FILE}), each from its bottom up, with half the
 * request's reads at most; then the node after the latest in file order (a reader taking the
 * chunks in order without asking for their nodes); then the whole tree. A request that runs out
 * of reads before it finds its block is refused as a block that is not the file's is,
 * `chunk_not_found` ({@link ShareSearchLimitError}); a node of the file its store lost hides only
 * the blocks below it.
 *
 * @module
 */
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { MAX_MANIFEST_DEPTH } from "../protocols/manifest.ts";
import { chunksReferencedBy } from "../storage/dag_links.ts";

/**
 * Links kept by default: 131,072 storage keys (~20 MB), a 32 GiB file's chunks at the default
 * 256 KiB chunk size, so the files shared at once are each read once.
 */
export const DEFAULT_SHARE_INDEX_LINKS = 131_072;

/**
 * Manifest blocks one request may read (those the cache does not hold) to find the block it
 * asks for: 32, at most 16 MiB of nodes as a put writes them (512 KiB each). A reader descending
 * a tree needs one (the node that links its block, when evicted), or a few more when other
 * readers' nodes, evicted too, come first; a reader taking a tree's chunks in order without its
 * nodes needs the next node's path, a read per level.
 */
export const MAX_SHARE_SEARCH_READS = 32;

/**
 * Paths kept per shared file, the last found by each reader reading it at once (and the few each
 * left behind): a reader's next block is linked by a node on one of them. Readers whose blocks
 * the cache answers move on while another waits for a read, so there is room for many.
 */
const RECENT_PATHS_PER_FILE = 32;

/**
 * Reads a request may spend on the recent paths' nodes: half its reads, so one they miss (a reader
 * taking the chunks in order without their nodes, past the paths other readers left) still has
 * reads for the next node in file order and the tree.
 */
const RECENT_PATH_READS = MAX_SHARE_SEARCH_READS / 2;

/** Shared files whose recent paths are kept: 32 paths of a few blocks each. */
const RECENT_FILES = 256;

/** Reads a block by CID (the node's storage port, with the request's signal). */
export type ReadShareBlock = (cid: string) => Promise<Uint8Array>;

/**
 * A share request ran out of {@link MAX_SHARE_SEARCH_READS} before it found its block in the
 * shared file: refused as a block that is not the file's (`chunk_not_found`, 404). A reader that
 * asks for a tree's node before the blocks it links never meets it.
 */
export class ShareSearchLimitError extends VeriflowError {
  /**
   * Build the error.
   *
   * @param cid The block asked for.
   * @param root The shared file's root.
   */
  constructor(cid: string, root: string) {
    super(
      "chunk_not_found",
      `${cid} was not found in shared file ${root} within ${MAX_SHARE_SEARCH_READS} manifest ` +
        `reads: ask for a manifest tree's node before the blocks it links`,
    );
  }
}

/** What one manifest block links. */
interface Links {
  /** Every block it links, by storage key. */
  keys: ReadonlySet<string>;
  /** The manifest blocks among them (dag-cbor: a tree's nodes), by CID, to walk into. */
  nodes: readonly string[];
}

/** What one request may still spend, and what its search met. */
interface Search {
  /** Reads of manifest blocks the cache does not hold, left to this request. */
  reads: number;
  /** Blocks whose subtrees were searched (or could not be read), by storage key. */
  visited: Set<string>;
  /** The first error of a node below the root that could not be read. */
  unread?: { error: unknown };
}

/** The blocks reachable from a shared file's root, found through a bounded cache of links. */
export class ShareBlockIndex {
  readonly #maxLinks: number;
  /** Storage key of a manifest block → what it links; least recently used first. */
  readonly #cache = new Map<string, Links>();
  /** Reads in progress, by storage key: requests that miss together read a block once. */
  readonly #pending = new Map<string, Promise<Links>>();
  #held = 0;
  /**
   * Per shared file (its root's storage key), the paths of manifest blocks, root first, to the
   * blocks its recent requests found (a node found ends its path; a chunk's path ends at the
   * node that links it); least recently used first, files and paths alike.
   */
  readonly #recent = new Map<string, string[][]>();

  /**
   * An index keeping at most `maxLinks` links in all.
   *
   * @param maxLinks Links kept across all cached blocks ({@link DEFAULT_SHARE_INDEX_LINKS}); a
   *   block linking more is read each time it is needed, never cached.
   */
  constructor(maxLinks: number = DEFAULT_SHARE_INDEX_LINKS) {
    this.#maxLinks = maxLinks;
  }

  /** Links held in the cache now, never more than the bound. */
  get heldLinks(): number {
    return this.#held;
  }

  /**
   * True when the block `cid` is the file `root` or reachable from it, reading (with `read`)
   * only the manifest blocks not cached, {@link MAX_SHARE_SEARCH_READS} at most; the search stops
   * at the first block that links `cid`. It goes no deeper than {@link MAX_MANIFEST_DEPTH} levels
   * of nodes, as every reader of a tree. A node below the root that cannot be read is passed
   * over; its error is thrown when no other node links `cid` (the block may be below it), the
   * root's at once.
   *
   * @throws {ShareSearchLimitError} the reads ran out before `cid` was found or ruled out.
   */
  async reaches(root: string, cid: string, read: ReadShareBlock): Promise<boolean> {
    const wanted = storageKey(cid);
    const rootKey = storageKey(root);
    if (wanted === rootKey) return true;
    const search: Search = { reads: MAX_SHARE_SEARCH_READS, visited: new Set() };
    /** `cid` is linked by the bottom of `path`, which links `links`. */
    const found = (path: string[], links: Links) => {
      // A node found ends the path its reader descends next; a chunk's stays at its node. A node
      // is known by how its parent links it (dag-cbor): a reader may ask for it by its storage
      // key (a raw CID), as a FileStore asks its blocks.
      const node = links.nodes.find((n) => storageKey(n) === wanted);
      this.#rememberPath(rootKey, node !== undefined ? [...path, node] : path);
      return true;
    };
    try {
      // 1. What the root links, then the blocks on the file's recent paths, the latest path
      // first, each from its bottom up (a reader's next block is linked by the node it asked for
      // last, or by one above it): those the cache holds first (free), then the others (read).
      // The root first: it links every node a reader starts a path with.
      const recent = [...(this.#recent.get(rootKey) ?? [])].reverse();
      const candidates = new Map<string, string[]>([[rootKey, [root]]]); // key → path down to it
      for (const path of recent) {
        for (let i = path.length - 1; i >= 1; i--) {
          const key = storageKey(path[i]);
          if (!candidates.has(key)) candidates.set(key, path.slice(0, i + 1));
        }
      }
      for (const [key, path] of candidates) {
        const links = this.#cached(key);
        if (links?.keys.has(wanted)) return found(path, links);
      }
      for (const [key, path] of candidates) {
        if (MAX_SHARE_SEARCH_READS - search.reads >= RECENT_PATH_READS) break;
        // Those cached above too: another request may have read one since, or evicted it.
        const links = await this.#linksOf(key, path.at(-1)!, read, search).catch((error) => {
          if (error === LIMIT || path.length === 1) throw error;
          return undefined;
        });
        if (links?.keys.has(wanted)) return found(path, links);
      }
      // 2. The node after the latest path's bottom in file order: where a reader taking a tree's
      // chunks in order without asking for its nodes goes next.
      const next = recent.length > 0
        ? await this.#nextInOrder(recent[0], wanted, read, search)
        : undefined;
      if (next !== undefined) return found(next.path, next.links);
      // 3. The whole tree, which alone decides a block that is not the file's.
      const hit = await this.#search(root, wanted, MAX_MANIFEST_DEPTH, read, search, true);
      if (hit !== undefined) return found(hit.path, hit.links);
    } catch (error) {
      throw error === LIMIT ? new ShareSearchLimitError(cid, root) : error;
    }
    if (search.unread !== undefined) throw search.unread.error;
    return false;
  }

  /**
   * The path of manifest blocks from `top` to the one that links `wanted` (each reached from the
   * one before), and what that one links, walking at most `levels` levels of nodes below `top`;
   * `undefined` if none does.
   * A node that cannot be read (lost by its store) hides only what is below it: the search goes
   * on through its siblings, and its error is kept in `search` (thrown at once for `top` when
   * `isRoot`). Blocks `search` visited already are not searched again.
   */
  async #search(
    top: string,
    wanted: string,
    levels: number,
    read: ReadShareBlock,
    search: Search,
    isRoot = false,
  ): Promise<{ path: string[]; links: Links } | undefined> {
    const parents = new Map<string, string>();
    let level = [top];
    for (let depth = 0; depth <= levels && level.length > 0; depth++) {
      const next: string[] = [];
      for (const block of level) {
        const key = storageKey(block);
        if (search.visited.has(key)) continue;
        search.visited.add(key);
        let links: Links;
        try {
          links = await this.#linksOf(key, block, read, search);
        } catch (error) {
          if (error === LIMIT || (depth === 0 && isRoot)) throw error;
          search.unread ??= { error };
          continue;
        }
        if (links.keys.has(wanted)) {
          const path = [block];
          for (let up = parents.get(key); up !== undefined; up = parents.get(storageKey(up))) {
            path.unshift(up);
          }
          return { path, links };
        }
        for (const node of links.nodes) {
          if (!parents.has(storageKey(node))) parents.set(storageKey(node), block);
          next.push(node);
        }
      }
      level = next;
    }
    return undefined;
  }

  /**
   * The path to the node after the bottom of `path` in file order, as deep as it (each node on
   * the way read, the first child taken below the ancestor they share), and what it links, when
   * it links `wanted`; `undefined` otherwise, at the file's end, or where a node on the way cannot
   * be read (the whole tree's search meets it then).
   */
  async #nextInOrder(
    path: readonly string[],
    wanted: string,
    read: ReadShareBlock,
    search: Search,
  ): Promise<{ path: string[]; links: Links } | undefined> {
    const linksOf = (block: string) => this.#linksOf(storageKey(block), block, read, search);
    try {
      for (let i = path.length - 2; i >= 0; i--) {
        const siblings = (await linksOf(path[i])).nodes;
        const at = siblings.findIndex((n) => storageKey(n) === storageKey(path[i + 1]));
        if (at < 0 || at + 1 >= siblings.length) continue;
        const next = [...path.slice(0, i + 1), siblings[at + 1]];
        while (next.length < path.length) {
          const first = (await linksOf(next.at(-1)!)).nodes[0];
          if (first === undefined) return undefined;
          next.push(first);
        }
        const links = await linksOf(next.at(-1)!);
        return links.keys.has(wanted) ? { path: next, links } : undefined;
      }
    } catch (error) {
      if (error === LIMIT) throw error;
    }
    return undefined;
  }

  /** What block `key` links, when the cache holds it (made the most recently used). */
  #cached(key: string): Links | undefined {
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#cache.delete(key);
      this.#cache.set(key, cached);
    }
    return cached;
  }

  /** Keeps `path` as the latest found in the file `rootKey` (see {@link ShareBlockIndex}). */
  #rememberPath(rootKey: string, path: string[]): void {
    // One path per bottom; a path the new one extends (its reader went down) is the new one's.
    const keys = path.map(storageKey);
    const replaced = (p: string[]) =>
      storageKey(p.at(-1)!) === keys.at(-1) ||
      (p.length <= keys.length && p.every((block, i) => storageKey(block) === keys[i]));
    const paths = (this.#recent.get(rootKey) ?? []).filter((p) => !replaced(p));
    paths.push(path);
    if (paths.length > RECENT_PATHS_PER_FILE) paths.shift();
    this.#recent.delete(rootKey);
    this.#recent.set(rootKey, paths);
    if (this.#recent.size > RECENT_FILES) this.#recent.delete(this.#recent.keys().next().value!);
  }

  /**
   * What block `cid` (storage key `key`) links: from the cache, or read and cached. Requests that
   * miss at once (an opener asks for several chunks together) share one read; one whose shared
   * read failed (its request went away) reads for itself.
   */
  async #linksOf(key: string, cid: string, read: ReadShareBlock, search: Search): Promise<Links> {
    const cached = this.#cached(key);
    if (cached !== undefined) return cached;
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      try {
        return await pending;
      } catch {
        // Another request's read: this one's own follows.
      }
    }
    // Only a read of its own is counted: a cached block, or one another request reads, is free.
    if (search.reads <= 0) throw LIMIT;
    search.reads--;
    const reading = read(cid).then((bytes) => {
      const linked = chunksReferencedBy(bytes);
      const links: Links = {
        keys: new Set(linked.map(storageKey)),
        nodes: linked.filter((link) => cidCodec(link) === DAG_CBOR_CODEC),
      };
      this.#remember(key, links);
      return links;
    });
    this.#pending.set(key, reading);
    try {
      return await reading;
    } finally {
      if (this.#pending.get(key) === reading) this.#pending.delete(key);
    }
  }

  #remember(key: string, links: Links): void {
    const size = links.keys.size;
    // Two requests may read one block at once: it is held once.
    if (size > this.#maxLinks || this.#cache.has(key)) return;
    for (const [old, oldLinks] of this.#cache) {
      if (this.#held + size <= this.#maxLinks) break;
      this.#cache.delete(old);
      this.#held -= oldLinks.keys.size;
    }
    this.#cache.set(key, links);
    this.#held += size;
  }
}

/** Thrown inside a search whose reads ran out; `reaches` turns it into its typed error. */
const LIMIT: unique symbol = Symbol("share search limit");
