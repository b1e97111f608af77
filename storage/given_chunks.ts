/**
 * The record of which chunks this node gave to which storage holder, and its log on disk.
 *
 * An auditor blames a holder for a missing chunk only when this record says it was given it: a
 * write of it to that holder succeeded, or the holder proved holding it. A holder that was down
 * during the write, joined after it, or was dropped and re-added is never in it for those
 * chunks. Kept on disk ({@link GivenChunks.open}), the record survives a restart, so an audit
 * after one still holds a holder to what it was given before; kept in memory only (the
 * constructor), a restart forgets it and nothing is judged missing until a write or a repair
 * records it again. Either way a record that forgot fails safe, towards no verdict: that is what
 * lets every damaged or unwritten part of the log below be dropped rather than repaired.
 *
 * On disk, one record a line, each line `<check> <json>\n` where `<check>` is 8 hex digits of the
 * CRC-32 (IEEE) of the UTF-8 bytes of `<json>`:
 *
 * ```
 * ["given-chunks",2]        header, the first line (format and version)
 * ["+",holder,key]          the holder was given the chunk (its storage key)
 * ["-",key]                 the chunk is forgotten for every holder (its file was unpinned)
 * ["gone",holder,ms]        the holder left the peer set at ms (epoch milliseconds)
 * ["back",holder]           the holder is in the peer set again
 * ["x",holder]              the holder is forgotten (it stayed away past the retention)
 * ```
 *
 * - **Versioned**: every version keeps the header's shape, a first line whose JSON after the
 *   first space is `["given-chunks",version]`. Version 1 (the same records, each checked by the
 *   first 8 hex digits of SHA-256) is still read, and rewritten as version 2 on open. A version
 *   this code does not know (a newer node's, before a downgrade) is moved aside to
 *   `given-chunks.log.v<version>-<ms>`, never overwritten, and the record starts empty.
 * - **Appended in batches**: records collect in memory and {@link GivenChunks.flush} writes them
 *   with one write and one `fsync`; callers flush once per operation (a file put, a repair, an
 *   audit), not per chunk.
 * - **A torn tail is ignored**: loading applies records up to the first line that is not whole
 *   and checked — what a crash mid-append leaves — logs what it dropped and rewrites the file
 *   without it, so later appends never follow a partial line.
 * - **Read a block at a time**: loading holds the record and one block of the file (1 MiB), never
 *   the whole file; a rewrite encodes one block at a time too.
 * - **Bounded**: a chunk is forgotten when the file it belonged to is unpinned
 *   ({@link GivenChunks.forget}), a holder when it has been out of the peer set longer than
 *   {@link DEPARTED_HOLDER_RETENTION_MS} ({@link GivenChunks.setPeers}); once the log holds more
 *   than twice the records the live state needs (and at least `compactMinRecords`) it is rewritten
 *   from that state: temporary file, `fsync`, rename, `fsync` of the directory.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { storageKey } from "../protocols/cid.ts";
import { sha256 } from "../protocols/hash.ts";
import { IndexedKeys } from "./_indexed_keys.ts";

/** File name of the record in the store directory (`<data>/store/given-chunks.log`). */
export const GIVEN_CHUNKS_FILE = "given-chunks.log";

/**
 * How long a holder out of the peer set keeps its record, ms: 24 h. Long enough to ride out a
 * restart or a network outage on either side — a holder that flaps is still held to what it was
 * given. By then holder repair has put its chunks on other holders; one that comes back later is
 * checked like a newcomer, and what it proves is recorded again.
 */
export const DEPARTED_HOLDER_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * Records below which the log is never rewritten: a few hundred KiB, read in well under a
 * second, not worth a rewrite.
 */
const COMPACT_MIN_RECORDS = 4096;

/**
 * Records held in memory before an add writes them by itself, for an owner that never flushes
 * (a standalone `ReplicatedStore`): the buffer stays small whoever uses the record.
 */
const MAX_PENDING_RECORDS = 1024;

/** Name of the format, the first field of the header. */
const FORMAT = "given-chunks";

/** Version written: lines checked by CRC-32. */
const VERSION = 2;

/** The first version: lines checked by SHA-256 (read, and rewritten as {@link VERSION}). */
const VERSION_SHA256 = 1;

/**
 * Hex digits of the check per line: 32 bits, enough to tell a torn or damaged line from a whole
 * one (the check guards against crashes and bad sectors, not against someone forging the file:
 * whoever can write it can write any check).
 */
const CHECK_HEX_DIGITS = 8;

/**
 * Bytes of the log read at a time on load: what loading holds besides the record itself. A line
 * longer than this is damage (a record is under 200 bytes; {@link MAX_PAIR_CHARS} keeps every
 * line well under it).
 */
const READ_BLOCK_BYTES = 1 << 20;

/**
 * Longest holder id plus chunk key recorded, UTF-16 units. Ids are 64 hex digits and keys about
 * 60 characters; a longer pair is not recorded (fails safe), so that no line, even with every
 * character escaped in JSON (6 bytes each), outgrows {@link READ_BLOCK_BYTES}.
 */
const MAX_PAIR_CHARS = 4096;

/** Bytes (about: characters) encoded at a time when the whole record is rewritten. */
const WRITE_BLOCK_BYTES = 1 << 20;

const NEWLINE = 0x0a;
const SPACE = 0x20;

/** One line of the log (see the module documentation). */
type GivenRecord =
  | readonly ["+", string, string]
  | readonly ["-", string]
  | readonly ["gone", string, number]
  | readonly ["back", string]
  | readonly ["x", string];

/** Options of {@link GivenChunks}. */
export interface GivenChunksOptions {
  /**
   * How long a holder out of the peer set keeps its record, ms. Default
   * {@link DEPARTED_HOLDER_RETENTION_MS} (24 h).
   */
  departedRetentionMs?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** `fsync` each appended batch. Default `true`; a rewrite is always durable. */
  durable?: boolean;
  /** The log is rewritten only once it holds more records than this. Default 4096. */
  compactMinRecords?: number;
  /** Where a dropped torn tail or a failed write is reported. */
  log?: (line: string) => void;
}

/** The record of a holder with none. */
const NO_CHUNKS: readonly string[] = [];

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Which chunks each storage holder was given or proved (see the module documentation): in
 * memory with `new GivenChunks()`, on disk with {@link GivenChunks.open}.
 */
export class GivenChunks {
  readonly #byPeer = new Map<string, IndexedKeys>();
  /** Holders out of the peer set, with when they left. */
  readonly #departed = new Map<string, number>();
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #durable: boolean;
  readonly #compactMin: number;
  readonly #log: ((line: string) => void) | undefined;
  /** Where the record is kept; `null`: in memory only. */
  #path: string | null = null;
  #file: Deno.FsFile | null = null;
  /** Lines recorded since the last write. */
  #pending: string[] = [];
  /** Whole records in the file. */
  #records = 0;
  /** Holder-chunk pairs held. */
  #pairs = 0;
  /** The file must be rewritten before anything is appended (missing, torn, a write failed). */
  #rewriteDue = false;
  #writing: Promise<void> = Promise.resolve();

  /**
   * A record kept in memory only.
   *
   * @param options Retention of departed holders and the clock.
   *
   * @example
   * ```ts
   * import { GivenChunks } from "./given_chunks.ts";
   * const given = new GivenChunks();
   * given.add("a1b2", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
   * given.has("a1b2", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"); // true
   * ```
   */
  constructor(options?: GivenChunksOptions) {
    this.#retentionMs = options?.departedRetentionMs ?? DEPARTED_HOLDER_RETENTION_MS;
    this.#now = options?.now ?? Date.now;
    this.#durable = options?.durable ?? true;
    this.#compactMin = options?.compactMinRecords ?? COMPACT_MIN_RECORDS;
    this.#log = options?.log;
  }

  /**
   * The record kept in the file at `path`: loaded from it (created on the first write), a torn
   * tail dropped and logged.
   *
   * @param path The log file (the StorageActor uses `<store>/`{@link GIVEN_CHUNKS_FILE}).
   * @param options Retention, the clock, durability, compaction, where problems are logged.
   * @returns The loaded record.
   *
   * @example
   * ```ts
   * import { GivenChunks } from "./given_chunks.ts";
   * const path = `${await Deno.makeTempDir()}/given-chunks.log`;
   * const cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
   * const given = await GivenChunks.open(path);
   * given.add("a1b2", cid);
   * await given.close();
   * (await GivenChunks.open(path)).has("a1b2", cid); // true
   * ```
   */
  static async open(path: string, options?: GivenChunksOptions): Promise<GivenChunks> {
    const given = new GivenChunks(options);
    given.#path = path;
    // A rewrite its process died in left a temporary file beside the log.
    await removeTemporaries(dirname(path), (name) => name === basename(path));
    await given.#load(path);
    given.#expire();
    // Cut a torn tail now, so it is logged once; expired holders and compaction go with it.
    if (given.#rewriteDue || given.#pending.length > 0 || given.#compactionDue()) {
      await given.flush();
    }
    return given;
  }

  /**
   * Record that `peerId` holds `cid` (by storage key: any codec of the same digest).
   *
   * @param peerId The holder's id.
   * @param cid The chunk.
   */
  add(peerId: string, cid: string): void {
    const key = keyOf(cid);
    // Longer than any holder id and chunk key: not recorded, so every line fits a read block.
    if (peerId.length + key.length > MAX_PAIR_CHARS) return;
    if (!this.#hold(peerId, key)) return;
    this.#append(["+", peerId, key]);
  }

  /**
   * True when `peerId` was recorded as holding `cid` (and, if it left the peer set, its retention
   * has not run out yet, whether or not a {@link setPeers} has noticed).
   *
   * @param peerId The holder's id.
   * @param cid The chunk.
   * @returns Whether it was given it.
   */
  has(peerId: string, cid: string): boolean {
    return this.#kept(peerId)?.has(keyOf(cid)) ?? false;
  }

  /**
   * The chunks (storage keys) `peerId` is recorded as given or having proved, in no set order;
   * none once its retention ran out. A copy: what is added meanwhile is not in it. An audit sweep
   * goes through it; a round draws from {@link recordOf}, which copies nothing.
   *
   * @param peerId The holder's id.
   * @returns Its chunks.
   */
  chunksOf(peerId: string): string[] {
    return [...this.#kept(peerId) ?? []];
  }

  /**
   * `peerId`'s record as it is now, read by position (what {@link chunksOf} copies): an audit
   * round draws a few random positions of it, so its work does not grow with the record (review
   * s81 vaudit, F4). Live: read it before the record changes (synchronously).
   *
   * @param peerId The holder's id.
   * @returns Its chunks, by position; empty once its retention ran out.
   */
  recordOf(peerId: string): { readonly length: number; at(index: number): string | undefined } {
    return this.#kept(peerId) ?? NO_CHUNKS;
  }

  /**
   * Whether a record of what `peerId` was given is kept: it has one, and is in the peer set or has
   * been away for less than its retention. An audit sweep of it ends when this turns false.
   *
   * @param peerId The holder's id.
   * @returns Whether its record is kept.
   */
  retained(peerId: string): boolean {
    return (this.#kept(peerId)?.size ?? 0) > 0;
  }

  /**
   * `peerId`'s recorded chunks (storage keys), or undefined when it has none or it left the peer
   * set longer ago than the retention, whether or not a {@link setPeers} has noticed.
   */
  #kept(peerId: string): IndexedKeys | undefined {
    const since = this.#departed.get(peerId);
    return since !== undefined && this.retentionRanOut(since)
      ? undefined
      : this.#byPeer.get(peerId);
  }

  /**
   * The record's clock now (its `now` option), ms since the epoch: what a departure is stamped
   * with, so a caller that keeps more about departed holders forgets it on the same clock.
   *
   * @returns The time now.
   */
  now(): number {
    return this.#now();
  }

  /**
   * Whether a holder that left the peer set at `since` (a {@link now} reading) has been away for
   * the departed-holder retention ({@link GivenChunksOptions.departedRetentionMs}) by now.
   *
   * @param since When it left.
   * @returns Whether its retention ran out.
   */
  retentionRanOut(since: number): boolean {
    return this.#now() - since >= this.#retentionMs;
  }

  /**
   * Forget `cids` for every holder (their file was unpinned here), durably when this resolves.
   *
   * @param cids The chunks.
   */
  async forget(cids: Iterable<string>): Promise<void> {
    for (const cid of cids) {
      const key = keyOf(cid);
      if (this.#drop(key)) this.#append(["-", key]);
    }
    await this.flush();
  }

  /**
   * Forget that `peerId` holds `cid` (by storage key), durably with the next {@link flush}: it
   * proved the chunk but said it keeps no copy for this node (`ProveChunksOptions.onUnkept`). The
   * log has no record for one pair — a node on older code, after a downgrade, would stop reading
   * at one it does not know — so that flush rewrites the whole record from memory, as a compaction
   * does. Rare: a pair so recorded is one an older node wrote from such a proof.
   *
   * @param peerId The holder's id.
   * @param cid The chunk.
   */
  remove(peerId: string, cid: string): void {
    const keys = this.#byPeer.get(peerId);
    if (keys === undefined || !keys.delete(keyOf(cid))) return;
    this.#pairs--;
    if (keys.size === 0) this.#forgetPeer(peerId);
    if (this.#path !== null) this.#rewriteDue = true;
  }

  /**
   * Tell the record which holders are in the peer set now. One that left starts its retention
   * ({@link GivenChunksOptions.departedRetentionMs}); one that came back before it ran out keeps
   * its record; one away longer is forgotten — also when this call is the one that brings it
   * back. Recorded with the next {@link flush}.
   *
   * @param peerIds The ids of the current peer set.
   */
  setPeers(peerIds: Iterable<string>): void {
    // Expired first: a holder back after the retention ran out, with no peer-set change while it
    // was away to notice, is checked like a newcomer, not held to what it was given before.
    this.#expire();
    const present = new Set(peerIds);
    const now = this.#now();
    for (const peer of this.#byPeer.keys()) {
      if (present.has(peer)) {
        if (this.#departed.delete(peer)) this.#append(["back", peer]);
      } else if (!this.#departed.has(peer)) {
        this.#departed.set(peer, now);
        this.#append(["gone", peer, now]);
      }
    }
  }

  /**
   * Write what was recorded since the last write: appended with one write and one `fsync`, or
   * the whole record rewritten when the log is due for compaction (or the last write failed).
   * Never rejects: a failed write is logged, and the next flush rewrites the whole record —
   * until then the record is what memory holds, which only costs verdicts after a crash.
   */
  flush(): Promise<void> {
    this.#writing = this.#writing.then(() => this.#write());
    return this.#writing;
  }

  /** Flush and close the file (a later write opens it again). */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = null;
  }

  #hold(peer: string, key: string): boolean {
    const keys = this.#byPeer.get(peer) ?? new IndexedKeys();
    if (keys.has(key)) return false;
    keys.add(key);
    this.#byPeer.set(peer, keys);
    this.#pairs++;
    return true;
  }

  /** Forget `key` for every holder; true when one held it. */
  #drop(key: string): boolean {
    let dropped = false;
    for (const [peer, keys] of this.#byPeer) {
      if (!keys.delete(key)) continue;
      dropped = true;
      this.#pairs--;
      if (keys.size === 0) this.#forgetPeer(peer);
    }
    return dropped;
  }

  #forgetPeer(peer: string): void {
    this.#pairs -= this.#byPeer.get(peer)?.size ?? 0;
    this.#byPeer.delete(peer);
    this.#departed.delete(peer);
  }

  /** Forget the holders away longer than the retention. */
  #expire(): void {
    const now = this.#now();
    for (const [peer, since] of this.#departed) {
      if (now - since < this.#retentionMs) continue;
      this.#forgetPeer(peer);
      this.#append(["x", peer]);
    }
  }

  #append(record: GivenRecord): void {
    if (this.#path === null) return;
    this.#pending.push(encodeLine(record));
    if (this.#pending.length >= MAX_PENDING_RECORDS) void this.flush();
  }

  #compactionDue(): boolean {
    const records = this.#records + this.#pending.length;
    const live = 1 + this.#pairs + this.#departed.size;
    return records > this.#compactMin && records > 2 * live;
  }

  async #write(): Promise<void> {
    const path = this.#path;
    if (path === null) return;
    if (!this.#rewriteDue && !this.#compactionDue()) {
      if (this.#pending.length === 0) return;
      const lines = this.#pending;
      this.#pending = [];
      try {
        await this.#appendLines(path, lines);
        this.#records += lines.length;
      } catch (error) {
        this.#failed(path, error); // a partial line may have been written: rewrite next time
      }
      return;
    }
    const empty = this.#pairs === 0 && this.#departed.size === 0;
    if (empty && this.#records === 0 && this.#pending.length === 0) return; // no file needed yet
    // The whole record as memory holds it, taken at once: records added while it is written
    // are pending, appended after it.
    const snapshot = this.#snapshot();
    this.#pending = [];
    // Cleared at the snapshot, not after the write: a `remove` while it is written is not in it,
    // and must leave the next write a rewrite too.
    this.#rewriteDue = false;
    this.#file?.close();
    this.#file = null;
    try {
      await writeFileDurably(path, snapshot.blocks());
      this.#records = snapshot.lines;
    } catch (error) {
      this.#failed(path, error);
    }
  }

  async #appendLines(path: string, lines: string[]): Promise<void> {
    this.#file ??= await Deno.open(path, { append: true });
    const bytes = encoder.encode(lines.join(""));
    for (let off = 0; off < bytes.length;) off += await this.#file.write(bytes.subarray(off));
    if (this.#durable) await this.#file.syncData();
  }

  #failed(path: string, error: unknown): void {
    this.#rewriteDue = true;
    this.#file?.close();
    this.#file = null;
    this.#log?.(`storage: writing ${path} failed, rewritten on the next write: ${String(error)}`);
  }

  /**
   * Every line the live record needs — the header, each pair, each departure — as it is now:
   * taken at once (references to the ids, a few bytes a pair), encoded a block at a time as the
   * write asks for them, so a rewrite never holds the whole file in memory.
   */
  #snapshot(): { lines: number; blocks: () => AsyncGenerator<Uint8Array> } {
    const held = [...this.#byPeer].map(([peer, keys]) => [peer, [...keys]] as const);
    const departed = [...this.#departed];
    const lines = 1 + this.#pairs + departed.length;
    async function* blocks(): AsyncGenerator<Uint8Array> {
      let block: string[] = [encodeLine([FORMAT, VERSION])];
      let size = 0;
      const take = (line: string): Uint8Array | undefined => {
        block.push(line);
        size += line.length;
        if (size < WRITE_BLOCK_BYTES) return undefined;
        const bytes = encoder.encode(block.join(""));
        block = [];
        size = 0;
        return bytes;
      };
      for (const [peer, keys] of held) {
        for (const key of keys) {
          const full = take(encodeLine(["+", peer, key]));
          if (full) yield full;
        }
      }
      for (const [peer, since] of departed) {
        const full = take(encodeLine(["gone", peer, since]));
        if (full) yield full;
      }
      yield encoder.encode(block.join(""));
    }
    return { lines, blocks };
  }

  /**
   * Apply the log at `path`, up to its first line that is not whole and checked, reading it a
   * block at a time. A log in a version this code does not read is moved aside, untouched.
   */
  async #load(path: string): Promise<void> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      this.#rewriteDue = true; // created, header first, by the first write
      return;
    }
    let size: number;
    let version: number | undefined; // known once the header is read
    let unread: UnreadHeader | undefined;
    let offset = 0; // bytes of whole, checked records
    let records = 0;
    try {
      size = (await file.stat()).size;
      reading: for await (const block of lineBlocks(file)) {
        const ascii = asciiText(block);
        for (let start = 0; start < block.length;) {
          const end = block.indexOf(NEWLINE, start);
          if (version !== undefined) {
            if (!this.#apply(decodeLine(block, start, end, version, ascii))) break reading;
          } else {
            const header = readHeader(block.subarray(start, end));
            if (typeof header !== "number") {
              unread = header;
              break reading;
            }
            version = header;
          }
          records++;
          offset += end + 1 - start;
          start = end + 1;
        }
      }
    } finally {
      file.close();
    }
    if (unread) return await this.#moveAside(path, unread);
    this.#records = records;
    if (offset < size) {
      this.#rewriteDue = true;
      this.#log?.(
        `storage: ignored the last ${size - offset} bytes of ${path} (a torn or ` +
          `damaged tail after ${records} whole records); the record goes on without them`,
      );
    } else if (records === 0) this.#rewriteDue = true; // empty: no header yet
    else if (version !== VERSION) {
      this.#rewriteDue = true;
      this.#log?.(
        `storage: ${path} is in version ${version} of the given-chunks format; ` +
          `rewritten in version ${VERSION}`,
      );
    }
  }

  /**
   * Move a log whose header this code cannot read out of the way, untouched, and start an empty
   * record: a node downgraded below the version that wrote it must not overwrite what the newer
   * one may read again. If it cannot be moved, the record is kept in memory only.
   */
  async #moveAside(path: string, header: UnreadHeader): Promise<void> {
    const { version } = header;
    const label = typeof version === "number" && Number.isSafeInteger(version) && version >= 0
      ? `v${version}`
      : "unknown";
    const aside = `${path}.${label}-${this.#now()}`;
    const why = header.known
      ? "but its header's check does not match"
      : `which this node does not read (it reads versions ${VERSION_SHA256} and ${VERSION})`;
    const what = `storage: ${path} is in version ${JSON.stringify(version)} of the given-chunks ` +
      `format, ${why}`;
    try {
      await Deno.rename(path, aside);
    } catch (error) {
      this.#path = null;
      this.#log?.(
        `${what}, and moving it aside failed (${String(error)}): left untouched, the record is ` +
          `kept in memory only`,
      );
      return;
    }
    this.#rewriteDue = true;
    this.#log?.(
      `${what}: moved it, untouched, to ${aside}; the record starts empty (no chunk is judged ` +
        `missing until it is given again)`,
    );
  }

  /** Apply one record read back; false when it is not one (`undefined`: a line not whole). */
  #apply(parsed: unknown): boolean {
    if (!Array.isArray(parsed) || typeof parsed[1] !== "string") return false;
    const [op, peerOrKey, third] = parsed as [unknown, string, unknown];
    const arity = parsed.length;
    if (op === "+" && arity === 3 && typeof third === "string") this.#hold(peerOrKey, third);
    else if (op === "-" && arity === 2) this.#drop(peerOrKey);
    else if (op === "gone" && arity === 3 && isMs(third)) {
      if (this.#byPeer.has(peerOrKey)) this.#departed.set(peerOrKey, third);
    } else if (op === "back" && arity === 2) this.#departed.delete(peerOrKey);
    else if (op === "x" && arity === 2) this.#forgetPeer(peerOrKey);
    else return false;
    return true;
  }
}

/** The storage key of `cid`, or `cid` itself when it is not one a store accepts. */
function keyOf(cid: string): string {
  try {
    return storageKey(cid);
  } catch {
    return cid;
  }
}

function isMs(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

/** A header this code cannot read: the version it names, and whether that is one it knows. */
interface UnreadHeader {
  version: unknown;
  /** A version this code reads, but the header's check does not match. */
  known: boolean;
}

/**
 * The version of the log whose first line is `line`: a version this code reads, its check
 * verified; an {@link UnreadHeader} for a header of another version (whose check cannot be
 * judged) or of a known version whose check fails (the header is written whole, by a rename, so
 * that is no torn write: another format's, or damage); `undefined` when it is no header at all.
 */
function readHeader(line: Uint8Array): number | UnreadHeader | undefined {
  const space = line.indexOf(SPACE);
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(line.subarray(space + 1)));
  } catch {
    return undefined;
  }
  if (!Array.isArray(header) || header.length !== 2 || header[0] !== FORMAT) return undefined;
  const version = header[1];
  if (version !== VERSION && version !== VERSION_SHA256) return { version, known: false };
  const checked = decodeLine(line, 0, line.length, version) !== undefined;
  return checked ? version : { version, known: true };
}

function encodeLine(record: GivenRecord | readonly [typeof FORMAT, number]): string {
  const json = JSON.stringify(record);
  return `${crc32(encoder.encode(json)).toString(16).padStart(CHECK_HEX_DIGITS, "0")} ${json}\n`;
}

/**
 * The JSON of the line `bytes[start, end)` (no newline) if its check in `version` matches, else
 * `undefined`. `ascii`: all of `bytes` as text, when every byte is ASCII (one character a byte),
 * so the line's text is a slice of it rather than a decode of its own.
 */
function decodeLine(
  bytes: Uint8Array,
  start: number,
  end: number,
  version: number,
  ascii?: string,
): unknown {
  const from = start + CHECK_HEX_DIGITS + 1; // where the JSON starts
  if (end < from || bytes[from - 1] !== SPACE) return undefined;
  const check = hexWord(bytes, start);
  const ok = version === VERSION
    ? check === crc32(bytes, from, end)
    : check === sha256Word(bytes.subarray(from, end));
  if (check < 0 || !ok) return undefined;
  let text: string;
  try {
    text = ascii?.slice(from, end) ?? decoder.decode(bytes.subarray(from, end));
  } catch {
    return undefined; // not UTF-8: bytes where the write did not land
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * `bytes` as text when every byte is ASCII, else `undefined`. Whole UTF-8 as long in characters
 * as in bytes has no multi-byte sequence; one decode of a block is much cheaper than one a line.
 */
function asciiText(bytes: Uint8Array): string | undefined {
  try {
    const text = decoder.decode(bytes);
    return text.length === bytes.length ? text : undefined;
  } catch {
    return undefined; // a damaged line: decoded line by line, up to it
  }
}

/** The number written by `bytes[start, start + 8)` as lower-case hex digits, or -1. */
function hexWord(bytes: Uint8Array, start: number): number {
  let word = 0;
  for (let i = start; i < start + CHECK_HEX_DIGITS; i++) {
    const c = bytes[i];
    const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (digit < 0) return -1;
    word = word * 16 + digit;
  }
  return word;
}

/** The first 32 bits of SHA-256 of `bytes`: the check of a version-1 line. */
function sha256Word(bytes: Uint8Array): number {
  const digest = sha256(bytes);
  return ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
}

/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) of `bytes[start, end)`, as an unsigned
 * number.
 */
function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The CRC of each byte value, for {@link crc32} to take a byte at a time. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/**
 * The bytes of `file` a block of whole lines at a time (each ending in a newline), reading
 * {@link READ_BLOCK_BYTES} at a time; the block is reused, so each must be used before the next
 * is asked for. Ends at the end of the file — bytes after its last newline are never yielded — or
 * at a line longer than a block (damage: no record is that long).
 */
async function* lineBlocks(file: Deno.FsFile): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(READ_BLOCK_BYTES);
  let filled = 0;
  while (filled < buffer.length) {
    const read = await file.read(buffer.subarray(filled));
    if (read === null) return;
    filled += read;
    const last = buffer.lastIndexOf(NEWLINE, filled - 1);
    if (last < 0) continue;
    yield buffer.subarray(0, last + 1);
    buffer.copyWithin(0, last + 1, filled);
    filled -= last + 1;
  }
}
