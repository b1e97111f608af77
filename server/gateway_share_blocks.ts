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
 * is read again as its nodes are evicted, each request still answered right. As a reader asks
 * for a file's chunks in order, the path to the last one found in each file is searched first,
 * from its bottom up, so even a tree past the bound costs a few node reads per chunk, not a walk
 * of the whole tree; a node of the file its store lost hides only the blocks below it.
 *
 * @module
 */
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../protocols/cid.ts";
import { MAX_MANIFEST_DEPTH } from "../protocols/manifest.ts";
import { chunksReferencedBy } from "../storage/dag_links.ts";

/**
 * Links kept by default: 131,072 storage keys (~20 MB), a 32 GiB file's chunks at the default
 * 256 KiB chunk size, so the files shared at once are each read once.
 */
export const DEFAULT_SHARE_INDEX_LINKS = 131_072;

/** Files whose last found path is kept ({@link ShareBlockIndex.reaches}): a few blocks each. */
const LAST_PATHS = 1024;

/** Reads a block by CID (the node's storage port, with the request's signal). */
export type ReadShareBlock = (cid: string) => Promise<Uint8Array>;

/** What one manifest block links. */
interface Links {
  /** Every block it links, by storage key. */
  keys: ReadonlySet<string>;
  /** The manifest blocks among them (dag-cbor: a tree's nodes), by CID, to walk into. */
  nodes: readonly string[];
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
   * Per shared file (its root's storage key), the path of manifest blocks that linked the block
   * last found in it, root first; least recently used first.
   */
  readonly #lastPaths = new Map<string, string[]>();

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
   * only the manifest blocks not cached; the walk stops at the first block that links `cid`.
   * It goes no deeper than {@link MAX_MANIFEST_DEPTH} levels of nodes, as every reader of a tree.
   * A node below the root that cannot be read is passed over; its error is thrown when no other
   * node links `cid` (the block may be below it), the root's at once.
   */
  async reaches(root: string, cid: string, read: ReadShareBlock): Promise<boolean> {
    const wanted = storageKey(cid);
    const rootKey = storageKey(root);
    if (wanted === rootKey) return true;
    // A reader asks for a file's chunks in order: the next is most often linked by the node that
    // linked the last, or near it. The last path found is searched first, from its bottom up,
    // then the whole tree (which alone decides a block that is not the file's).
    const last = this.#lastPaths.get(rootKey) ?? [];
    for (let i = last.length - 1; i >= 1; i--) {
      const below = await this.#search(last[i], wanted, MAX_MANIFEST_DEPTH - i, read)
        .catch(() => undefined);
      if (below !== undefined) {
        this.#rememberPath(rootKey, [...last.slice(0, i), ...below]);
        return true;
      }
    }
    const path = await this.#search(root, wanted, MAX_MANIFEST_DEPTH, read);
    if (path === undefined) return false;
    this.#rememberPath(rootKey, path);
    return true;
  }

  /**
   * The path of manifest blocks from `top` to the one that links `wanted` (each reached from the
   * one before), walking at most `levels` levels of nodes below `top`; `undefined` if none does.
   * A node below `top` that cannot be read (lost by its store) hides only what is below it: the
   * walk goes on through its siblings, and its error is thrown only if none of them links it.
   */
  async #search(
    top: string,
    wanted: string,
    levels: number,
    read: ReadShareBlock,
  ): Promise<string[] | undefined> {
    const parents = new Map<string, string>();
    const visited = new Set<string>();
    let unread: { error: unknown } | undefined;
    let level = [top];
    for (let depth = 0; depth <= levels && level.length > 0; depth++) {
      const next: string[] = [];
      for (const block of level) {
        const key = storageKey(block);
        if (visited.has(key)) continue;
        visited.add(key);
        let links: Links;
        try {
          links = await this.#linksOf(key, block, read);
        } catch (error) {
          if (depth === 0) throw error;
          unread ??= { error };
          continue;
        }
        if (links.keys.has(wanted)) {
          const path = [block];
          for (let up = parents.get(key); up !== undefined; up = parents.get(storageKey(up))) {
            path.unshift(up);
          }
          return path;
        }
        for (const node of links.nodes) {
          if (!parents.has(storageKey(node))) parents.set(storageKey(node), block);
          next.push(node);
        }
      }
      level = next;
    }
    if (unread !== undefined) throw unread.error;
    return undefined;
  }

  /** Keeps `path` as the last found in the file `rootKey`, for {@link LAST_PATHS} files. */
  #rememberPath(rootKey: string, path: string[]): void {
    this.#lastPaths.delete(rootKey);
    this.#lastPaths.set(rootKey, path);
    if (this.#lastPaths.size > LAST_PATHS) {
      this.#lastPaths.delete(this.#lastPaths.keys().next().value!);
    }
  }

  /**
   * What block `cid` (storage key `key`) links: from the cache, or read and cached. Requests that
   * miss at once (an opener asks for several chunks together) share one read; one whose shared
   * read failed (its request went away) reads for itself.
   */
  async #linksOf(key: string, cid: string, read: ReadShareBlock): Promise<Links> {
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#cache.delete(key); // to the most recently used end
      this.#cache.set(key, cached);
      return cached;
    }
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      try {
        return await pending;
      } catch {
        // Another request's read: this one's own follows.
      }
    }
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
