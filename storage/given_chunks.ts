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
 * On disk, one record a line, each line `<check> <json>\n` where `<check>` is the first 8 hex
 * digits of SHA-256 of `<json>`:
 *
 * ```
 * ["given-chunks",1]        header, the first line (format and version)
 * ["+",holder,key]          the holder was given the chunk (its storage key)
 * ["-",key]                 the chunk is forgotten for every holder (its file was unpinned)
 * ["gone",holder,ms]        the holder left the peer set at ms (epoch milliseconds)
 * ["back",holder]           the holder is in the peer set again
 * ["x",holder]              the holder is forgotten (it stayed away past the retention)
 * ```
 *
 * - **Appended in batches**: records collect in memory and {@link GivenChunks.flush} writes them
 *   with one write and one `fsync`; callers flush once per operation (a file put, a repair, an
 *   audit), not per chunk.
 * - **A torn tail is ignored**: loading applies records up to the first line that is not whole
 *   and checked — what a crash mid-append leaves — logs what it dropped and rewrites the file
 *   without it, so later appends never follow a partial line.
 * - **Bounded**: a chunk is forgotten when the file it belonged to is unpinned
 *   ({@link GivenChunks.forget}), a holder when it has been out of the peer set longer than
 *   {@link DEPARTED_HOLDER_RETENTION_MS} ({@link GivenChunks.setPeers}); once the log holds more
 *   than twice the records the live state needs (and at least `compactMinRecords`) it is rewritten
 *   from that state: temporary file, `fsync`, rename, `fsync` of the directory.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { writeFileDurably } from "../proof/_durable_file.ts";
import { storageKey } from "../protocols/cid.ts";
import { sha256Hex } from "../protocols/hash.ts";

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

/** Format name and version, the first record of the file. */
const HEADER = ["given-chunks", 1] as const;

/** Hex digits of SHA-256 kept per line: enough to tell a damaged line from a whole one. */
const CHECK_HEX_DIGITS = 8;

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

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Which chunks each storage holder was given or proved (see the module documentation): in
 * memory with `new GivenChunks()`, on disk with {@link GivenChunks.open}.
 */
export class GivenChunks {
  readonly #byPeer = new Map<string, Set<string>>();
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
    await given.#sweepTemporaries(path);
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
    if (!this.#hold(peerId, key)) return;
    this.#append(["+", peerId, key]);
  }

  /**
   * True when `peerId` was recorded as holding `cid`.
   *
   * @param peerId The holder's id.
   * @param cid The chunk.
   * @returns Whether it was given it.
   */
  has(peerId: string, cid: string): boolean {
    return this.#byPeer.get(peerId)?.has(keyOf(cid)) ?? false;
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
   * Tell the record which holders are in the peer set now. One that left starts its retention
   * ({@link GivenChunksOptions.departedRetentionMs}); one that came back before it ran out keeps
   * its record; one away longer is forgotten. Recorded with the next {@link flush}.
   *
   * @param peerIds The ids of the current peer set.
   */
  setPeers(peerIds: Iterable<string>): void {
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
    this.#expire();
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
    const keys = this.#byPeer.get(peer) ?? new Set<string>();
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
    const lines = this.#snapshot();
    this.#pending = [];
    this.#file?.close();
    this.#file = null;
    try {
      await writeFileDurably(path, encoder.encode(lines.join("")));
      this.#records = lines.length;
      this.#rewriteDue = false;
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

  /** Every line the live record needs: the header, each pair, each departure. */
  #snapshot(): string[] {
    const lines = [encodeHeader()];
    for (const [peer, keys] of this.#byPeer) {
      for (const key of keys) lines.push(encodeLine(["+", peer, key]));
    }
    for (const [peer, since] of this.#departed) lines.push(encodeLine(["gone", peer, since]));
    return lines;
  }

  /** Apply the log at `path`, up to its first line that is not whole and checked. */
  async #load(path: string): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      this.#rewriteDue = true; // created, header first, by the first write
      return;
    }
    let offset = 0;
    let records = 0;
    while (offset < bytes.length) {
      const end = bytes.indexOf(0x0a, offset);
      if (end < 0) break; // cut short
      const parsed = decodeLine(bytes.subarray(offset, end));
      if (records === 0 ? !isHeader(parsed) : !this.#apply(parsed)) break;
      records++;
      offset = end + 1;
    }
    this.#records = records;
    if (offset < bytes.length) {
      this.#rewriteDue = true;
      this.#log?.(
        `storage: ignored the last ${bytes.length - offset} bytes of ${path} (a torn or ` +
          `damaged tail after ${records} whole records); the record goes on without them`,
      );
    } else if (records === 0) this.#rewriteDue = true; // empty: no header yet
  }

  /** Apply one record read back; false when it is not one. */
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

  /** Remove temporary files a rewrite left behind when its process died. */
  async #sweepTemporaries(path: string): Promise<void> {
    const prefix = `${basename(path)}.`;
    try {
      for await (const entry of Deno.readDir(dirname(path))) {
        if (entry.isFile && entry.name.startsWith(prefix) && entry.name.endsWith(".tmp")) {
          await Deno.remove(join(dirname(path), entry.name)).catch(() => {});
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
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

function isHeader(parsed: unknown): boolean {
  return Array.isArray(parsed) && parsed.length === HEADER.length &&
    parsed.every((v, i) => v === HEADER[i]);
}

function encodeHeader(): string {
  return withCheck(JSON.stringify(HEADER));
}

function encodeLine(record: GivenRecord): string {
  return withCheck(JSON.stringify(record));
}

function withCheck(json: string): string {
  return `${checkOf(json)} ${json}\n`;
}

function checkOf(json: string): string {
  return sha256Hex(encoder.encode(json)).slice(0, CHECK_HEX_DIGITS);
}

/** The JSON of one line whose check matches, or `undefined`. */
function decodeLine(line: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return undefined; // not UTF-8: bytes where the write did not land
  }
  const space = text.indexOf(" ");
  const json = text.slice(space + 1);
  if (space !== CHECK_HEX_DIGITS || text.slice(0, space) !== checkOf(json)) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}
