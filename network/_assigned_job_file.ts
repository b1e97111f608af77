/**
 * A forwarding node's assigned jobs on disk (`<dataDir>/assigned-jobs.log`): the job ids whose
 * worker's receipt it handed to its validator with its signed assignment (`_assigned_jobs.ts`),
 * so that a restart still refuses a client's retry of one (same nonce) as `duplicate_job`. Kept in
 * memory only, a router that restarted forwarded the retry to a second worker, its second
 * assignment of the job was refused `double_assignment` in every ledger, and neither worker was
 * paid (review s77).
 *
 * An append-only log of records after an 8-byte header ({@link MAGIC}, version 3):
 *
 * ```
 * mark (4 bytes) | job id (32) | flag (1 bit) and cancelled at (31 bits, big-endian; all ones: ran
 *   to its end) [ | handoff length (uint32), when the flag is set ] | head check (4)
 *   [ | handoff (that many bytes) | check (4), when the flag is set ]
 * ```
 *
 * each check being the first 4 bytes of the SHA-256 of the record's bytes before it. The handoff
 * is what the port hands its validator for the job (its worker's receipt, the job and the signed
 * assignment, CBOR), kept until the validator took it: the port waits for its append before its
 * client gets `done`, so a router killed right after `done` still hands the receipt over at its
 * restart (review s79 crash, F1: before, the assignment and the receipt were in memory only when
 * the client held the receipt, and the worker was paid in no ledger). A record of the same job
 * appended later without a handoff says it was taken, and supersedes it.
 *
 * The mark and the head check are how a reader gets past a damaged record (stop 80): the length
 * is trusted only once the head check holds, and a record that does not verify is skipped up to
 * the next mark a whole record starts at. In version 2 (no mark, one check after the handoff) a
 * damaged length lost every record after it, every later job's receipt handoff with them. A
 * version 2 file and a version 1 file (fixed records of 40 bytes, no handoff) are still read, and
 * rewritten as version 3 at that load.
 *
 * - **Appended and synced** before the receipt goes to the validator (the port waits for
 *   {@link AssignedJobFile.append}): a crash after the assignment reached a ledger cannot leave
 *   a job the file forgot. Appends that queue behind one in progress go out in one write and one
 *   `fsync`.
 * - **A torn or damaged file never stops the node**: a tail shorter than a record (a crash
 *   mid-append) and every stretch that holds no whole record are skipped; a file whose header is
 *   none of ours (another format, garbage) is read as empty. Each stretch is listed, where and
 *   how long, in {@link LoadedAssignedJobs.skipped} (its owner counts and logs it). What was skipped is forgotten, so a
 *   retry of such a job is forwarded again, as before the file existed.
 * - **Rewritten whole at load** (temporary file, `fsync`, rename, `fsync` of the folder:
 *   `proof/_durable_file.ts`) from the records kept, and again when its owner asks
 *   ({@link AssignedJobFile.compact}: once its dead bytes reach its live ones and 64 MiB, or it
 *   holds more than twice the records kept, see `_assigned_jobs.ts`). A rewrite that fails (a full
 *   disk)
 *   loses nothing: the records read are returned all the same
 *   ({@link LoadedAssignedJobs.rewriteFailed}), and the file stays as it was.
 * - **Appends stay on the records**: the file's good length (header and whole records) is
 *   kept, each write goes there, and after a write that failed or was cut short (a full disk
 *   writes part of a batch, then `ENOSPC`) the file is truncated back to it before the next one.
 *   Appended after the torn bytes, every later record sat off the grid and was dropped at the
 *   next load, though its append had resolved (review s78 vassign, F3).
 * - **Closed with its port** ({@link AssignedJobFile.close}): what was asked before is written,
 *   and nothing after ({@link AssignedJobFileClosedError}). A write the node did not wait for
 *   landed in its data directory after it stopped, and a removal of that directory failed
 *   "Directory not empty" (a flaky node test, s78).
 *
 * Not part of the public API.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { fromHex, sha256, toHex } from "../protocols/hash.ts";
import { OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** The file of a node's data directory that its forwarding port keeps its assigned jobs in. */
export const ASSIGNED_JOBS_FILE = "assigned-jobs.log";

/** The first bytes of the file: its format and version ("vf-asg" and version 3: marked records). */
const MAGIC = new TextEncoder().encode("vf-asg03");
/** The header of a version 2 file (handoffs, records not marked), still read. */
const MAGIC_V2 = new TextEncoder().encode("vf-asg02");
/** The header of a version 1 file (fixed records, no handoff), still read. */
const MAGIC_V1 = new TextEncoder().encode("vf-asg01");
/** Bytes of the file's header (its magic). */
export const ASSIGNED_JOBS_HEADER_BYTES = MAGIC.length;
/**
 * The first bytes of each record (version 3): where a reader that met a damaged record looks for
 * the next one. 0xf8 and 0xc1 never occur in UTF-8, so a prompt's text does not hold it by chance;
 * a match that is no record fails its head check and the search goes on.
 */
const MARK = new Uint8Array([0xf8, 0xc1, 0x76, 0x66]);
/** Bytes of a job id (a SHA-256). */
const JOB_ID_BYTES = 32;
/** Bytes of the check: 32 bits tell a torn or damaged record from a whole one. */
const CHECK_BYTES = 4;
/** Bytes of a record's id and cancelled-at field, all a record without a handoff holds but its check. */
const PLAIN_BYTES = JOB_ID_BYTES + 4;
/** Bytes of a record with a handoff before the handoff: its plain bytes and the handoff's length. */
const HEAD_BYTES = PLAIN_BYTES + 4;
/**
 * Most bytes a handoff may take: a job of `MAX_NETWORK_JOB_BYTES` (448 KiB) with its receipt and
 * assignment fits with room. A longer length read back is a damaged record, not a huge one (in a
 * version 2 file the rest of the file cannot be walked past it and is dropped; version 3 looks
 * for the next {@link MARK}).
 */
export const MAX_HANDOFF_BYTES = 1 << 20;
/** The cancelled-at field of a job that ran to its end (version 2; version 1: all 32 bits set). */
const FINISHED = 0x7fff_ffff;
/** The cancelled-at field of a job that ran to its end in a version 1 file. */
const FINISHED_V1 = 0xffff_ffff;
/** The cancelled-at field's top bit: a handoff follows (version 2). */
const HANDOFF_FLAG = 0x8000_0000;

/** One assigned job: its id, and the tokens its receipt covers if it was signed `cancelled`. */
export interface AssignedRecord {
  /** The job id, 64 hex digits. */
  jobId: string;
  /** The cancelled receipt's token count; absent when the job ran to its end. */
  cancelledAt?: number;
  /**
   * What the port hands its validator for the job, until the validator took it (see the module
   * doc); absent once it did.
   */
  handoff?: Uint8Array;
}

/** What {@link AssignedJobFile.load} read. */
export interface LoadedAssignedJobs {
  /** The records, oldest first, at most the `max` newest. */
  records: AssignedRecord[];
  /**
   * Each stretch skipped as torn or damaged, in file order, for its owner's count and log: a
   * damaged record (with what could not be told from it), a torn tail, or a whole file with a
   * wrong header.
   */
  skipped: SkippedBytes[];
  /**
   * The rewrite after the read failed (a full disk): the records are kept all the same, and the
   * file as it was; appends go on from its last whole record.
   */
  rewriteFailed: boolean;
}

/** A stretch of the file skipped at load: no whole record could be read from it. */
export interface SkippedBytes {
  /** Where it starts in the file. */
  offset: number;
  /** How long it is. */
  bytes: number;
}

/** A load, append or compaction asked of an {@link AssignedJobFile} after its close. */
export class AssignedJobFileClosedError extends VeriflowError {
  /**
   * Create it.
   * @param path The file.
   */
  constructor(path: string) {
    super("assigned_jobs_closed", `${path} is closed: nothing more is written to it`);
  }
}

/** See the module doc. */
export class AssignedJobFile {
  readonly #path: string;
  /** Records waiting for the next write, and that write; none while it runs. */
  #batch?: { records: Uint8Array[]; written: Promise<void> };
  /** Records in the file. */
  #records = 0;
  /**
   * Bytes of the file up to its last whole record on the grid (0: it must be begun with its
   * header); undefined until a load read it, and then no append is made.
   */
  #good?: number;
  /** The file may hold bytes past {@link #good} (a failed or short write): truncated first. */
  #torn = false;
  #queue: Promise<void> = Promise.resolve();
  /** {@link close} was called: nothing more is asked of the disk. */
  #closed = false;

  /**
   * The log at `path`.
   * @param path The file, e.g. `<dataDir>/`{@link ASSIGNED_JOBS_FILE} (made at load).
   */
  constructor(path: string) {
    this.#path = path;
  }

  /** Records written to the file (the owner compacts it when they are far more than it keeps). */
  get records(): number {
    return this.#records;
  }

  /** Bytes of the file up to its last whole record (the owner compacts it past a bound too). */
  get bytes(): number {
    return this.#good ?? 0;
  }

  /**
   * Read the file (none: empty), keep the newest `max` records (a job recorded twice counts at its
   * last place), and rewrite it with exactly those. Call once, before any append.
   */
  load(max: number): Promise<LoadedAssignedJobs> {
    return this.#then(async () => {
      await removeTemporaries(dirname(this.#path), (name) => name === basename(this.#path));
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(this.#path);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        bytes = new Uint8Array();
      }
      const { jobs, skipped, good } = parse(bytes);
      const records = [...jobs.values()].slice(-max);
      // Only tidying: failed, the ids read are still returned (thrown, a full disk at a restart
      // lost every one of them, review s78 vassign, F2), and appends follow the file's last whole
      // record (a header that is not ours: the file is begun anew at the first append).
      const rewriteFailed = await this.#rewrite(records).then(() => false, () => true);
      if (rewriteFailed) {
        // A version 1 file is begun anew at the first append (its records are returned all the
        // same): version 2 records appended to it would not read back.
        const current = good > 0 && sameBytes(bytes.subarray(0, MAGIC.length), MAGIC);
        this.#good = current ? good : 0;
        this.#torn = current ? good < bytes.length : bytes.length > 0;
        this.#records = current ? jobs.size : 0;
      }
      return { records, skipped, rewriteFailed };
    });
  }

  /**
   * Append `record`, with every other record appended before the write it joins starts; resolves
   * once that write is on disk (rejects if it failed).
   */
  append(record: AssignedRecord): Promise<void> {
    // Checked here too: joined to a batch asked before the close, it would still be written.
    if (this.#closed) return Promise.reject(new AssignedJobFileClosedError(this.#path));
    if (this.#batch === undefined) {
      const records: Uint8Array[] = [];
      this.#batch = { records, written: this.#then(() => this.#write(records)) };
    }
    this.#batch.records.push(encode(record));
    return this.#batch.written;
  }

  /** Rewrite the file with `records` only (oldest first), after the appends asked before. */
  compact(records: readonly AssignedRecord[]): Promise<void> {
    return this.#then(() => this.#rewrite(records));
  }

  /**
   * Write nothing more: resolves once every load, append and compaction asked before has ended
   * (each as it would have: failed ones fail their own callers only); any asked after rejects with
   * {@link AssignedJobFileClosedError}. Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true;
    return this.#queue;
  }

  /**
   * Write `batch` at the file's good length with one write and one `fsync`; a file that may hold
   * torn bytes there is truncated back first, and is again when this write fails.
   */
  async #write(batch: Uint8Array[]): Promise<void> {
    // Appends from now on join the next write.
    if (this.#batch?.records === batch) this.#batch = undefined;
    const good = this.#good;
    if (good === undefined) throw new Error(`${this.#path} was not read: nothing is appended`);
    const bytes = concat(good === 0 ? [MAGIC, ...batch] : batch);
    // Opened for each batch, not held: a node that dies mid-batch (a crash, a kill) leaves at most
    // a torn record, which the next load skips.
    const file = await Deno.open(this.#path, { write: true, create: true, mode: OWNER_FILE_MODE });
    try {
      if (this.#torn) await file.truncate(good);
      this.#torn = false;
      await file.seek(good, Deno.SeekMode.Start);
      try {
        for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
        await file.syncData();
      } catch (error) {
        this.#torn = true;
        // Shrinking needs no space: done now, the next load and append find whole records.
        await file.truncate(good).then(() => this.#torn = false, () => {});
        throw error;
      }
    } finally {
      file.close();
    }
    this.#good = good + bytes.length;
    this.#records += batch.length;
  }

  async #rewrite(records: readonly AssignedRecord[]): Promise<void> {
    const bytes = concat([MAGIC, ...records.map(encode)]);
    await Deno.mkdir(dirname(this.#path), { recursive: true, mode: OWNER_DIR_MODE });
    await writeFileDurably(this.#path, bytes);
    this.#records = records.length;
    this.#good = bytes.length;
    this.#torn = false;
  }

  /**
   * Run `op` after every operation asked before it; its failure fails only its own caller. Asked
   * after {@link close}: not run, rejected.
   */
  #then<T>(op: () => Promise<T> | T): Promise<T> {
    if (this.#closed) return Promise.reject(new AssignedJobFileClosedError(this.#path));
    const result = this.#queue.then(op);
    this.#queue = result.then(() => {}, () => {});
    return result;
  }
}

/** Bytes of a record's head before its head check: its mark, id, field and handoff length. */
function headBytes(handoff: boolean): number {
  return MARK.length + (handoff ? HEAD_BYTES : PLAIN_BYTES);
}

/**
 * Bytes `record` takes in the file: what its owner counts to tell live bytes from dead ones
 * (see `_assigned_jobs.ts`).
 */
export function recordBytes(record: AssignedRecord): number {
  const handoff = record.handoff;
  return handoff === undefined
    ? headBytes(false) + CHECK_BYTES
    : headBytes(true) + CHECK_BYTES + handoff.length + CHECK_BYTES;
}

/** `record` as its bytes on disk (version 3). */
function encode(record: AssignedRecord): Uint8Array {
  const handoff = record.handoff;
  if (handoff !== undefined && handoff.length > MAX_HANDOFF_BYTES) {
    throw new RangeError(`a handoff of ${handoff.length} bytes, over ${MAX_HANDOFF_BYTES}`);
  }
  const head = headBytes(handoff !== undefined);
  const bytes = new Uint8Array(recordBytes(record));
  bytes.set(MARK);
  bytes.set(fromHex(record.jobId), MARK.length);
  const view = new DataView(bytes.buffer);
  const cancelledAt = record.cancelledAt ?? FINISHED;
  const field = MARK.length + JOB_ID_BYTES;
  view.setUint32(field, handoff === undefined ? cancelledAt : (cancelledAt | HANDOFF_FLAG) >>> 0);
  if (handoff !== undefined) view.setUint32(field + 4, handoff.length);
  bytes.set(checkOf(bytes.subarray(0, head)), head);
  if (handoff !== undefined) {
    const body = head + CHECK_BYTES + handoff.length;
    bytes.set(handoff, head + CHECK_BYTES);
    bytes.set(checkOf(bytes.subarray(0, body)), body);
  }
  return bytes;
}

/** The check of `bytes`: the first {@link CHECK_BYTES} of their SHA-256. */
function checkOf(bytes: Uint8Array): Uint8Array {
  return sha256(bytes).subarray(0, CHECK_BYTES);
}

/** Whether the {@link CHECK_BYTES} at `at` in `bytes` are the check of the bytes `from` there. */
function checked(bytes: Uint8Array, from: number, at: number): boolean {
  const want = checkOf(bytes.subarray(from, at));
  return want.every((b, i) => b === bytes[at + i]);
}

/** `parts` one after the other. */
function concat(parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** Whether `a` and `b` hold the same bytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What {@link parse} read of a file. */
interface Parsed {
  /** The records by job id, in order (a job recorded twice moves to its last place). */
  jobs: Map<string, AssignedRecord>;
  /** The stretches skipped (see the module doc), in file order. */
  skipped: SkippedBytes[];
  /** The length up to its last whole record: 0 when its header is not ours, or it is empty. */
  good: number;
}

/** The records of a file's `bytes` (any version read), and what was skipped. */
function parse(bytes: Uint8Array): Parsed {
  const parsed: Parsed = { jobs: new Map(), skipped: [], good: 0 };
  if (bytes.length === 0) return parsed;
  const header = bytes.subarray(0, MAGIC.length);
  if (sameBytes(header, MAGIC)) parseMarked(bytes, parsed);
  else if (sameBytes(header, MAGIC_V2)) parseUnmarked(bytes, parsed, false);
  else if (sameBytes(header, MAGIC_V1)) parseUnmarked(bytes, parsed, true);
  else parsed.skipped.push({ offset: 0, bytes: bytes.length });
  return parsed;
}

/** Keep `record` as its job's last. */
function keep(parsed: Parsed, record: AssignedRecord): void {
  parsed.jobs.delete(record.jobId);
  parsed.jobs.set(record.jobId, record);
}

/**
 * Read a version 3 file: a record that does not verify (torn, damaged, its length too) is skipped
 * up to the next {@link MARK} a whole record starts at, so one damaged record costs itself only.
 */
function parseMarked(bytes: Uint8Array, parsed: Parsed): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = MAGIC.length;
  parsed.good = at;
  while (at < bytes.length) {
    const read = readMarked(bytes, view, at);
    if (read !== undefined) {
      keep(parsed, read.record);
      at = parsed.good = read.end;
      continue;
    }
    let next = at + 1;
    for (;; next++) {
      next = findMark(bytes, next);
      if (next === -1) next = bytes.length;
      if (next === bytes.length || readMarked(bytes, view, next) !== undefined) break;
    }
    parsed.skipped.push({ offset: at, bytes: next - at });
    at = next;
  }
}

/** The version 3 record at `at` of `bytes` and where it ends, or undefined if none whole is. */
function readMarked(
  bytes: Uint8Array,
  view: DataView,
  at: number,
): { record: AssignedRecord; end: number } | undefined {
  if (at + headBytes(false) + CHECK_BYTES > bytes.length) return undefined;
  if (!MARK.every((b, i) => bytes[at + i] === b)) return undefined;
  const fieldAt = at + MARK.length + JOB_ID_BYTES;
  const field = view.getUint32(fieldAt);
  const flagged = (field & HANDOFF_FLAG) !== 0;
  const head = at + headBytes(flagged);
  // The head's own check first: a damaged length is found before it is trusted.
  if (head + CHECK_BYTES > bytes.length || !checked(bytes, at, head)) return undefined;
  const record: AssignedRecord = { jobId: toHex(bytes.subarray(at + MARK.length, fieldAt)) };
  const cancelledAt = (field & ~HANDOFF_FLAG) >>> 0;
  if (cancelledAt !== FINISHED) record.cancelledAt = cancelledAt;
  if (!flagged) return { record, end: head + CHECK_BYTES };
  const length = view.getUint32(fieldAt + 4);
  if (length > MAX_HANDOFF_BYTES) return undefined;
  const body = head + CHECK_BYTES + length;
  if (body + CHECK_BYTES > bytes.length || !checked(bytes, at, body)) return undefined;
  record.handoff = bytes.slice(head + CHECK_BYTES, body);
  return { record, end: body + CHECK_BYTES };
}

/** The first {@link MARK} in `bytes` at `from` or after; -1 if none. */
function findMark(bytes: Uint8Array, from: number): number {
  for (let at = bytes.indexOf(MARK[0], from); at !== -1; at = bytes.indexOf(MARK[0], at + 1)) {
    if (at + MARK.length > bytes.length) return -1;
    if (MARK.every((b, i) => bytes[at + i] === b)) return at;
  }
  return -1;
}

/**
 * Read a version 1 or 2 file (records not marked): a record whose check fails is skipped alone,
 * but past a damaged length (version 2) nothing can be found, and the rest is skipped.
 */
function parseUnmarked(bytes: Uint8Array, parsed: Parsed, v1: boolean): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = MAGIC.length;
  for (;;) {
    if (at + PLAIN_BYTES + CHECK_BYTES > bytes.length) break;
    const field = view.getUint32(at + JOB_ID_BYTES);
    const flagged = !v1 && (field & HANDOFF_FLAG) !== 0;
    if (flagged && at + HEAD_BYTES + CHECK_BYTES > bytes.length) break;
    const length = flagged ? view.getUint32(at + PLAIN_BYTES) : 0;
    if (length > MAX_HANDOFF_BYTES) break;
    const head = flagged ? HEAD_BYTES : PLAIN_BYTES;
    const body = head + length;
    if (at + body + CHECK_BYTES > bytes.length) break;
    if (checked(bytes, at, at + body)) {
      const jobId = toHex(bytes.subarray(at, at + JOB_ID_BYTES));
      const cancelledAt = v1 ? field : (field & ~HANDOFF_FLAG) >>> 0;
      const record: AssignedRecord = { jobId };
      if (cancelledAt !== (v1 ? FINISHED_V1 : FINISHED)) record.cancelledAt = cancelledAt;
      if (flagged) record.handoff = bytes.slice(at + head, at + body);
      keep(parsed, record);
    } else parsed.skipped.push({ offset: at, bytes: body + CHECK_BYTES });
    at += body + CHECK_BYTES;
  }
  // A torn tail (a crash mid-append), or a damaged length.
  if (at < bytes.length) parsed.skipped.push({ offset: at, bytes: bytes.length - at });
  parsed.good = at;
}
