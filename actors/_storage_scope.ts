/**
 * Whose each block in the StorageActor's store is (`storage_actor.ts`): what the pins here reach
 * ({@link PinScope}, read once and kept up to date), what this node's running puts hold, and from
 * those what is this node's own only ({@link StorageScope.localOnly}: never sent to peers) and
 * what it holds for the network ({@link StorageScope.servesPeers}: what peers may read and
 * challenge; {@link StorageScope.heldForNetwork}: what holder repair may copy). Owned by the
 * actor, built in its constructor; the put (`_storage_put.ts`) counts its blocks in it. Read and
 * written only inside the actor's `receive` (and its start). Not part of the public API.
 *
 * @module
 */
import { isCid, storageKey } from "../protocols/cid.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import { dagBlocks } from "../storage/dag_links.ts";
import type { GivenChunks } from "../storage/given_chunks.ts";

/**
 * What the pins of a store reach (storage keys): the blocks of `local` pins (a trainer's private
 * shard, never on peers) and the blocks of every other pin. Leaves are listed from their parents,
 * not read, so a block missing here is still known to belong to its file.
 */
export interface PinScope {
  /** Blocks reachable from a `local` pin. */
  local: Set<string>;
  /** Blocks reachable from any other pin. */
  network: Set<string>;
  /** The pins directory's modification time when this was read ({@link ChunkStore.pinsStamp}). */
  stamp: number;
}

/** Add every block of the DAG under `root`, read with `get`, to `scope`'s `local` or `network`. */
async function addDag(
  scope: PinScope,
  root: string,
  local: boolean,
  get: (cid: string) => Promise<Uint8Array>,
  isLegacyManifest: (cid: string) => Promise<boolean>,
): Promise<void> {
  if (!isCid(root)) return; // a stray file among the pins roots nothing
  const into = local ? scope.local : scope.network;
  into.add(storageKey(root));
  try {
    for await (const block of dagBlocks(root, get, { isLegacyManifest })) {
      into.add(storageKey(block.cid));
    }
  } catch {
    // An unreadable root or inner node: what was reached is recorded (GC reports the rest).
  }
}

/** Roots {@link StorageScope.pinnedHere} remembers between two looks at `pins/`. */
const MAX_PINNED_HERE = 4096;

/**
 * Blocks {@link StorageScope.refusesReplica} remembers as let go by this node's unpins, oldest
 * dropped first: a 16 GiB file of 256 KiB chunks, about 10 MB of keys at most.
 */
const MAX_RELEASED = 65_536;

/** What the pins of the actor's store reach, and the blocks its running puts hold. */
export class StorageScope {
  readonly #store: () => ChunkStore;
  readonly #given: () => GivenChunks;
  /** What the pins here reach, by label (see {@link PinScope}); `null` until read or after an unpin. */
  #pinScope: Promise<PinScope> | null = null;
  /** Storage keys stored by `local` puts still running (not pinned yet), with a count per key. */
  readonly localPuts = new Map<string, number>();
  /**
   * Storage keys this node's running puts (not `local`) write or wrote to its own store as one of
   * their holders (not pinned yet), with a count per key from the moment the write starts: held
   * for the network like a pinned file's.
   */
  readonly ownPuts = new Map<string, number>();
  /**
   * Roots this actor pinned (its puts, its pins) since the catch-up's last look at `pins/`
   * (`_storage_catch_up.ts`), which takes them for its own, not another process's: their chunks
   * went to the holders with the put. Cleared by that look; bounded by {@link MAX_PINNED_HERE}.
   */
  readonly pinnedHere = new Set<string>();
  /**
   * Roots pinned here, this node's and those a pins check found, each with the {@link pinSeq} of
   * its latest pin: what a holder back soon after its last catch-up lacks at most (review s79
   * F5). Bounded by {@link MAX_PINNED_HERE}, oldest dropped first ({@link pinLogFloor}).
   */
  readonly pinLog = new Map<string, number>();
  /** Counts the pins {@link notePinned} saw; 0 before any. */
  pinSeq = 0;
  /** Pins with a sequence number up to this one may be missing from {@link pinLog}. */
  pinLogFloor = 0;
  /** Unpins this actor made: a catch-up copying meanwhile scans again (review s79 F6). */
  unpins = 0;
  /** Roots this actor unpinned since that look, bounded as {@link pinnedHere} is. */
  readonly unpinnedHere = new Set<string>();
  /**
   * This actor's writes of `pins/` since that look, as the directory's stamps read just before
   * and just after each ({@link pinWrite}): what lets the look take a changed stamp for this
   * node's own doing without listing every pin (review s79 F4). Bounded by
   * {@link MAX_PINNED_HERE}; past it, emptied (the look then lists, as it would have).
   */
  readonly pinWrites: { before: number; after: number }[] = [];
  /**
   * Storage keys of the blocks this node's unpins let go (see {@link forgetGiven}), bounded by
   * {@link MAX_RELEASED}, in memory only: a restart forgets them.
   */
  readonly #released = new Set<string>();

  /**
   * @param store The actor's chunk store, open from its start.
   * @param given Which chunks each peer was given or proved, open from the actor's start.
   */
  constructor(store: () => ChunkStore, given: () => GivenChunks) {
    this.#store = store;
    this.#given = given;
  }

  /**
   * Run `write`, this actor's pin (`pinned`) or unpin of `root`, noting the stamps of `pins/`
   * around it (see {@link pinWrites}). Resolves to what `write` resolves to.
   */
  async pinWrite<T>(root: string, pinned: boolean, write: () => Promise<T>): Promise<T> {
    const store = this.#store();
    // A stamp not read leaves the write unnoted: the next look lists, as it did before.
    const before = await store.pinsStamp().catch(() => null);
    try {
      return await write();
    } finally {
      const after = await store.pinsStamp().catch(() => null);
      if (this.pinWrites.length >= MAX_PINNED_HERE) this.pinWrites.length = 0;
      if (before !== null && after !== null) this.pinWrites.push({ before, after });
      if (!pinned) {
        this.unpins++;
        if (this.unpinnedHere.size >= MAX_PINNED_HERE) {
          this.unpinnedHere.clear();
          this.pinWrites.length = 0; // an unpin forgotten: the look must list
        }
        this.unpinnedHere.add(root);
      }
    }
  }

  /** Note a pin of `root` in {@link pinLog}. */
  notePinned(root: string): void {
    this.pinLog.delete(root); // re-inserted last: the map's order is the pins' order
    this.pinLog.set(root, ++this.pinSeq);
    if (this.pinLog.size <= MAX_PINNED_HERE) return;
    const [oldest, seq] = this.pinLog.entries().next().value!;
    this.pinLog.delete(oldest);
    this.pinLogFloor = seq;
  }

  /** The roots of {@link pinLog} pinned after pin number `seq`; `null`: some may be missing. */
  pinnedSince(seq: number): string[] | null {
    if (seq < this.pinLogFloor) return null;
    const out: string[] = [];
    for (const [root, at] of this.pinLog) if (at > seq) out.push(root);
    return out;
  }

  /** Forget the {@link pinWrites} a look at `pins/` with stamp `stamp` has taken in. */
  forgetPinWrites(stamp: number): void {
    const left = this.pinWrites.filter((write) => write.after > stamp);
    this.pinWrites.length = 0;
    this.pinWrites.push(...left);
  }

  /** Drop what the pins reach: it is read again on next use (after an unpin). */
  clear(): void {
    this.#pinScope = null;
  }

  /**
   * True when `cid` is this node's own: reachable from a `local` pin (or stored by a `local` put
   * still running), and neither reachable from another pin nor held for a peer (a `replicas/`
   * record: the network gave it to us). Such an object never leaves this node.
   */
  async localOnly(cid: string): Promise<boolean> {
    const key = storageKey(cid);
    const scope = await this.read();
    if (!scope.local.has(key) && !this.localPuts.has(key)) return false;
    if (scope.network.has(key) || this.ownPuts.has(key)) return false;
    return !await this.#store().isReplica(key);
  }

  /**
   * True when `cid` is one this node holds for the network, so a peer may read it (`get_chunk`),
   * learn that it is here (`has_chunk`) and challenge it (`prove`): a chunk a peer gave it
   * (`replicas/`), or an object of a pin that is not `local` or of a put of this node's still
   * running (see {@link heldForNetwork}).
   */
  async servesPeers(cid: string): Promise<boolean> {
    const key = storageKey(cid); // invalid_cid before it names a file
    if (this.ownPuts.has(key) || await this.#store().isReplica(key)) return true;
    return (await this.read()).network.has(key);
  }

  /**
   * What this node holds for the network, which holder repair may copy to peers: the chunks peers
   * gave it (`replicas/`), its objects of every pin but `local` ones and the copies its running
   * puts wrote here as a holder. Never a block that only `local` pins reach, nor an unpinned
   * leftover (a failed put's chunks, an unpinned file's).
   */
  async *heldForNetwork(): AsyncGenerator<string> {
    const store = this.#store();
    const listed = new Set<string>();
    for await (const key of store.replicas()) {
      if (!await store.has(key)) continue; // lost here: the holders that still have it repair it
      listed.add(key);
      yield key;
    }
    const scope = await this.read();
    for (const keys of [scope.network, this.ownPuts.keys()]) {
      for (const key of keys) {
        if (listed.has(key)) continue;
        listed.add(key);
        if (await store.has(key)) yield key;
      }
    }
  }

  /**
   * What the pins reach, read once and kept up to date: puts and pins here add to it, an unpin
   * drops it (a block may be shared, so it is read again), and a pin another process made
   * (`cli.ts put` into this store) shows as a change of the pins directory and reads it again.
   */
  async read(): Promise<PinScope> {
    const stamp = await this.#store().pinsStamp();
    const current = this.#pinScope && await this.#pinScope.catch(() => null);
    if (current && current.stamp === stamp) return current;
    const reading = this.#readScope(stamp);
    this.#pinScope = reading;
    reading.catch(() => {
      if (this.#pinScope === reading) this.#pinScope = null;
    });
    const fresh = await reading;
    if (current) {
      // Another process's unpin (`store/pins/<cid>` deleted by hand): what no pin reaches now is
      // let go as by this node's own (`forgetGiven`).
      const gone = [];
      for (const keys of [current.network, current.local]) {
        for (const key of keys) {
          if (!fresh.network.has(key) && !fresh.local.has(key)) gone.push(key);
        }
      }
      this.#release(gone);
    }
    return fresh;
  }

  async #readScope(stamp: number): Promise<PinScope> {
    const store = this.#store();
    const scope: PinScope = { local: new Set(), network: new Set(), stamp };
    for (const root of await store.pins()) {
      const label = await store.pinLabel(root).catch(() => undefined);
      await addDag(
        scope,
        root,
        label?.local === true,
        (cid) => store.get(cid),
        (cid) => store.isLegacyManifest(cid),
      );
    }
    return scope;
  }

  /** Record a new pin of `root` (labelled `local` or not) in the scope, if one is kept. */
  async add(root: string, local: boolean, blocks?: Iterable<string>): Promise<void> {
    // Past the bound (no look at `pins/` for a long while) the set starts over: a pin forgotten
    // so is then taken for another process's, which costs a catch-up a rank per block, no copy.
    if (this.pinnedHere.size >= MAX_PINNED_HERE) this.pinnedHere.clear();
    this.pinnedHere.add(root);
    this.notePinned(root);
    const pending = this.#pinScope;
    const scope = pending && await pending.catch(() => null);
    if (!scope || this.#pinScope !== pending) return; // read afresh on next use: it sees the pin
    const into = local ? scope.local : scope.network;
    if (blocks) { for (const cid of blocks) into.add(storageKey(cid)); }
    else {
      const store = this.#store();
      await addDag(
        scope,
        root,
        local,
        (cid) => store.get(cid),
        (cid) => store.isLegacyManifest(cid),
      );
    }
    // Our own pin changed the directory: not another process's change.
    scope.stamp = await this.#store().pinsStamp();
  }

  /** The storage keys of the blocks of the DAG under `root` this store can walk. */
  async reached(root: string): Promise<Set<string>> {
    const store = this.#store();
    const scope: PinScope = { local: new Set(), network: new Set(), stamp: 0 };
    await addDag(
      scope,
      root,
      false,
      (cid) => store.get(cid),
      (cid) => store.isLegacyManifest(cid),
    );
    return scope.network;
  }

  /**
   * Forget, for every holder, the blocks among `reached` (an unpinned file's) that no pin left
   * here reaches: nobody here will audit them, and the record of what was given stays as small as
   * what is kept.
   *
   * Being held for a peer (`replicas/`) does not keep a block's record: stores written before
   * `SelfPeer` put this node's own copies into the put hold them as replicas too, which on disk
   * cannot be told from a peer's `put_chunk` — skipping replicas forgot nothing at all there. A
   * block that a peer did give this node loses what was recorded for it here: that only fails
   * safe (no verdict), and a later repair or audit records it again.
   */
  async forgetGiven(reached: Iterable<string>): Promise<void> {
    const scope = await this.read();
    const gone: string[] = [];
    for (const key of reached) {
      if (!scope.network.has(key) && !scope.local.has(key)) gone.push(key);
    }
    await this.#given().forget(gone);
    this.#release(gone);
  }

  /** Note `keys` as let go here (see {@link refusesReplica}); the oldest past the bound go. */
  #release(keys: Iterable<string>): void {
    for (const key of keys) {
      this.#released.delete(key); // the newest last: dropped last
      this.#released.add(key);
    }
    for (const key of this.#released) {
      if (this.#released.size <= MAX_RELEASED) break;
      this.#released.delete(key);
    }
  }

  /**
   * True when a peer's copy of `cid` (`put_chunk`) is to be refused: an unpin here let the block
   * go and nothing here holds it for the network since (no pin but `local` ones, no running put
   * of this node's, no peer's copy). Taken, it was a replica for good: the survivors of the next
   * departure still list the copies this node's put gave them, rank this node among the holders,
   * find it without the chunk and send it one, so a file the owner unpinned and collected came
   * back onto its disk, never to be released (review s82 repair, F2). Refused, the copy goes to
   * the next peer in rank, as from a full node. Asked of repair copies only
   * (`_storage_peer_requests.ts`).
   *
   * With nothing let go here it answers false at once, reading nothing: another process's unpin
   * is noticed at the next read of the pins that happens anyway (a peer's `get_chunk`,
   * `has_chunk` or `prove`, a GC, holder repair), not by a `put_chunk` (review s82 vstore2, F2).
   */
  async refusesReplica(cid: string): Promise<boolean> {
    if (this.#released.size === 0) return false;
    const key = storageKey(cid);
    // Another process's unpin since the pins were last read shows in a new read (one `stat`
    // while nothing changed). With none read yet there is nothing to compare: no read now.
    if (this.#pinScope !== null) await this.read();
    if (!this.#released.has(key)) return false;
    if (!await this.servesPeers(key)) return true;
    this.#released.delete(key); // pinned or put here again, or held for a peer: kept as before
    return false;
  }

  /** Note that a peer's copy of `cid` is held here now: its block is no longer let go. */
  heldForPeer(cid: string): void {
    if (this.#released.size > 0) this.#released.delete(storageKey(cid));
  }
}
