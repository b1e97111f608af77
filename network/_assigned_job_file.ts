/**
 * A forwarding node's assigned jobs on disk (`<dataDir>/assigned-jobs.log`): the job ids whose
 * worker's receipt it handed to its validator with its signed assignment (`_assigned_jobs.ts`),
 * so that a restart still refuses a client's retry of one (same nonce) as `duplicate_job`. Kept in
 * memory only, a router that restarted forwarded the retry to a second worker, its second
 * assignment of the job was refused `double_assignment` in every ledger, and neither worker was
 * paid (review s77).
 *
 * An append-only log of fixed-size records after an 8-byte header ({@link MAGIC}):
 *
 * ```
 * job id (32 bytes) | cancelled at (uint32, big-endian; 0xffffffff: ran to its end) | check (4)
 * ```
 *
 * the check being the first 4 bytes of the SHA-256 of the 36 bytes before it.
 *
 * - **Appended and synced** before the receipt goes to the validator (the port waits for
 *   {@link AssignedJobFile.append}): a crash after the assignment reached a ledger cannot leave
 *   a job the file forgot. Appends that queue behind one in progress go out in one write and one
 *   `fsync`.
 * - **A torn or damaged file never stops the node**: a tail shorter than a record (a crash
 *   mid-append) and every record whose check fails are skipped; a file whose header is not
 *   {@link MAGIC} (another format, garbage) is read as empty. Each is counted in
 *   {@link LoadedAssignedJobs.dropped}. What was skipped is forgotten, so a retry of such a job
 *   is forwarded again, as before the file existed.
 * - **Rewritten whole at load** (temporary file, `fsync`, rename, `fsync` of the folder:
 *   `proof/_durable_file.ts`) from the records kept, and again once it holds more than twice the
 *   records its owner keeps ({@link AssignedJobFile.compact}). A rewrite that fails (a full disk)
 *   loses nothing: the records read are returned all the same
 *   ({@link LoadedAssignedJobs.rewriteFailed}), and the file stays as it was.
 * - **Appends stay on the record grid**: the file's good length (header and whole records) is
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

/** The first bytes of the file: its format and version ("vf-asg" and version 1). */
const MAGIC = new TextEncoder().encode("vf-asg01");
/** Bytes of a job id (a SHA-256). */
const JOB_ID_BYTES = 32;
/** Bytes of the check: 32 bits tell a torn or damaged record from a whole one. */
const CHECK_BYTES = 4;
/** Bytes of one record: id, cancelled-at count, check. */
const RECORD_BYTES = JOB_ID_BYTES + 4 + CHECK_BYTES;
/** The cancelled-at field of a job that ran to its end. */
const FINISHED = 0xffff_ffff;

/** One assigned job: its id, and the tokens its receipt covers if it was signed `cancelled`. */
export interface AssignedRecord {
  /** The job id, 64 hex digits. */
  jobId: string;
  /** The cancelled receipt's token count; absent when the job ran to its end. */
  cancelledAt?: number;
}

/** What {@link AssignedJobFile.load} read. */
export interface LoadedAssignedJobs {
  /** The records, oldest first, at most the `max` newest. */
  records: AssignedRecord[];
  /** Records (or a whole file, with a wrong header) skipped as torn or damaged. */
  dropped: number;
  /**
   * The rewrite after the read failed (a full disk): the records are kept all the same, and the
   * file as it was; appends go on from its last whole record.
   */
  rewriteFailed: boolean;
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
      const { jobs, dropped, good } = parse(bytes);
      const records = [...jobs].slice(-max).map(([jobId, cancelledAt]) =>
        cancelledAt === undefined ? { jobId } : { jobId, cancelledAt }
      );
      // Only tidying: failed, the ids read are still returned (thrown, a full disk at a restart
      // lost every one of them, review s78 vassign, F2), and appends follow the file's last whole
      // record (a header that is not ours: the file is begun anew at the first append).
      const rewriteFailed = await this.#rewrite(records).then(() => false, () => true);
      if (rewriteFailed) {
        this.#good = good;
        this.#torn = good < bytes.length;
        this.#records = (good - Math.min(good, MAGIC.length)) / RECORD_BYTES;
      }
      return { records, dropped, rewriteFailed };
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
    const head = good === 0 ? MAGIC : new Uint8Array();
    const bytes = new Uint8Array(head.length + batch.length * RECORD_BYTES);
    bytes.set(head);
    batch.forEach((record, i) => bytes.set(record, head.length + i * RECORD_BYTES));
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
    const bytes = new Uint8Array(MAGIC.length + records.length * RECORD_BYTES);
    bytes.set(MAGIC);
    records.forEach((record, i) => bytes.set(encode(record), MAGIC.length + i * RECORD_BYTES));
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

/** `record` as its bytes on disk. */
function encode(record: AssignedRecord): Uint8Array {
  const bytes = new Uint8Array(RECORD_BYTES);
  bytes.set(fromHex(record.jobId));
  new DataView(bytes.buffer).setUint32(JOB_ID_BYTES, record.cancelledAt ?? FINISHED);
  const body = RECORD_BYTES - CHECK_BYTES;
  bytes.set(sha256(bytes.subarray(0, body)).subarray(0, CHECK_BYTES), body);
  return bytes;
}

/**
 * The records of a file's `bytes`, in order (a job recorded twice moves to its last place), how
 * many were skipped (see the module doc), and the length up to its last whole record on the grid
 * (`good`; 0 when its header is not ours, or it is empty).
 */
function parse(
  bytes: Uint8Array,
): { jobs: Map<string, number | undefined>; dropped: number; good: number } {
  const jobs = new Map<string, number | undefined>();
  if (bytes.length === 0) return { jobs, dropped: 0, good: 0 };
  const header = bytes.subarray(0, MAGIC.length);
  if (header.length < MAGIC.length || header.some((b, i) => b !== MAGIC[i])) {
    return { jobs, dropped: 1, good: 0 };
  }
  let dropped = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = MAGIC.length;
  for (; at + RECORD_BYTES <= bytes.length; at += RECORD_BYTES) {
    const body = bytes.subarray(at, at + RECORD_BYTES - CHECK_BYTES);
    const check = bytes.subarray(at + RECORD_BYTES - CHECK_BYTES, at + RECORD_BYTES);
    const want = sha256(body);
    if (check.some((b, i) => b !== want[i])) {
      dropped++;
      continue;
    }
    const jobId = toHex(body.subarray(0, JOB_ID_BYTES));
    const cancelledAt = view.getUint32(at + JOB_ID_BYTES);
    jobs.delete(jobId);
    jobs.set(jobId, cancelledAt === FINISHED ? undefined : cancelledAt);
  }
  if (at < bytes.length) dropped++; // a torn tail: a crash mid-append
  return { jobs, dropped, good: at };
}
