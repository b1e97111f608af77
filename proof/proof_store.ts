/**
 * Where a worker keeps what it must be able to show a challenger: for each receipt it signed,
 * the job and its proof data, on disk, for as long as a challenge can still come — and then not
 * at all.
 *
 * Records are filed by when they were proven, one directory per minute
 * (`<dir>/<bucketStartMs>/<receiptId>.cbor`), so forgetting is removing whole directories whose
 * newest record is past the retention, never a scan of files. Each record is written durably
 * before the receipt leaves the worker: a temporary file, `fsync`, rename, `fsync` of the
 * directory (and, at the first record, of the directories that hold the bucket's and the
 * store's own entries). A node that crashed or restarted still answers every challenge it can
 * be asked.
 *
 * Each record keeps the signed receipt too, and the store knows its records by job id
 * ({@link ProofStore.findJob}, an index in memory made by {@link ProofStore.index} at start and
 * kept by every write and sweep): a worker killed after signing, before the receipt left it,
 * still hands it to the job's requester after a restart, and one that has no record of a job can
 * say so (review s79 crash F2, F4). Nothing more is kept than before: the receipt's few hundred
 * bytes in a record already kept for the retention, and one index entry per record.
 *
 * A write or a removal the file system refuses (a full disk, a read-only mount, permissions)
 * throws a {@link ProofStoreError} naming the directory and the OS's reason: a condition of the
 * machine that the operator must fix, not a bug of the caller, so the prover ends that one job
 * without a receipt and keeps running rather than crashing on every job.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { jobId as jobIdOf, type TextJob } from "../protocols/job.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { ProofData } from "./commitment.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { syncDirectory, writeFileDurably } from "./_durable_file.ts";
import { keepToOwner, OWNER_DIR_MODE } from "../protocols/owner_only.ts";

/** Records proven within this span share one directory (and are forgotten together). */
export const DEFAULT_PROOF_BUCKET_MS = 60_000;

/** One proven job, as kept for challenges. */
export interface StoredProof {
  /** The receipt's id. */
  receiptId: string;
  /** Unix ms when it was proven (filed by this). */
  provedAt: number;
  /** The job the receipt is for (absent in records of the old layout, which kept proofs only). */
  job?: TextJob;
  /** Its proof data (what a challenger is served). */
  proof: ProofData;
  /**
   * The signed receipt (absent in records from before review s79): what the job's requester is
   * handed when the receipt's `end` event was lost with the worker's process.
   */
  receipt?: Receipt;
}

/**
 * What {@link ProofStore.findJob} knows of a job: its record; `"none"`, sure that no record of it
 * is kept; or undefined, not sure (the index is not made, or a record could not be read).
 */
export type JobRecordLookup = StoredProof | "none" | undefined;

/** Options of {@link ProofStore}. */
export interface ProofStoreOptions {
  /** How long after it was proven a record is kept, at least. */
  retentionMs: number;
  /** Width of a directory, ms; default {@link DEFAULT_PROOF_BUCKET_MS}. */
  bucketMs?: number;
  /** Clock in unix ms; default `Date.now`. */
  now?: () => number;
}

/**
 * The file system refused to keep or forget proof data (code `proof_store_failed`): the message
 * names the directory and the OS's reason, and the OS error is the `cause`.
 *
 * @example
 * ```ts
 * import { ProofStoreError } from "./proof_store.ts";
 * const error = new ProofStoreError("/data/proofs", "written to", new Error("No space left on device"));
 * console.log(error.code); // proof_store_failed
 * ```
 */
export class ProofStoreError extends VeriflowError {
  /** The store's directory. */
  readonly dir: string;

  /**
   * Create the error.
   * @param dir The store's directory.
   * @param what What could not be done to proof data there: `written to`, `deleted from`.
   * @param cause What the file system threw.
   */
  constructor(dir: string, what: string, cause: unknown) {
    super(
      "proof_store_failed",
      `proof data cannot be ${what} ${dir}: ${osReason(cause)}; check free space and permissions`,
      { cause },
    );
    this.dir = dir;
  }
}

/** `PermissionDenied: Permission denied (os error 13): mkdir '…'`, for a Deno error. */
function osReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
}

const RECEIPT_ID = /^[0-9a-f]{64}$/;
const BUCKET = /^\d+$/;

/** The proof store; see the module doc. */
export class ProofStore {
  readonly #dir: string;
  readonly #retentionMs: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  /** Bucket directories known to exist durably (created and their parent synced). */
  readonly #buckets = new Set<number>();
  /** Whether the store's own directory is known to exist durably (its parent synced). */
  #dirMade = false;
  /** The records kept, by job id: receipt id and bucket ({@link findJob}). */
  readonly #byJob = new Map<string, { receiptId: string; bucket: number }>();
  /**
   * Whether {@link #byJob} holds every record on disk: made whole by {@link index}; until then,
   * or when a record could not be read, no job is said to have none.
   */
  #indexWhole = false;

  /**
   * A store in `dir` (created on the first write).
   * @param dir Its directory (for example `<dataDir>/proofs`).
   * @param options Retention, directory width, clock.
   */
  constructor(dir: string, options: ProofStoreOptions) {
    this.#dir = dir;
    this.#retentionMs = options.retentionMs;
    this.#bucketMs = options.bucketMs ?? DEFAULT_PROOF_BUCKET_MS;
    this.#now = options.now ?? Date.now;
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Keep `record` durably (see the module doc); resolves once it survives a crash.
   * @throws {ProofStoreError} When the file system refuses the write (see the module doc).
   */
  async put(record: StoredProof): Promise<void> {
    if (!RECEIPT_ID.test(record.receiptId)) throw new RangeError("receipt id must be 64 hex");
    const bucket = record.provedAt - (record.provedAt % this.#bucketMs);
    const bucketDir = join(this.#dir, String(bucket));
    const bytes = encodeCbor({ v: 1, ...record });
    try {
      if (!this.#buckets.has(bucket)) {
        // Owner-only, the store's own directory too when this makes it: the records hold
        // clients' prompts in clear (the files are 0600, `writeFileDurably`).
        await Deno.mkdir(bucketDir, { recursive: true, mode: OWNER_DIR_MODE });
        await syncDirectory(this.#dir); // the new directory's own entry
        if (!this.#dirMade) {
          keepToOwner(this.#dir); // one an earlier version made with the umask
          // The store's own entry, if this made it: else a power cut can drop the directory
          // with every record written in it (review, stop 45).
          await syncDirectory(dirname(resolve(this.#dir)));
          this.#dirMade = true;
        }
        this.#buckets.add(bucket);
      }
      await writeFileDurably(join(bucketDir, `${record.receiptId}.cbor`), bytes);
    } catch (error) {
      throw new ProofStoreError(this.#dir, "written to", error);
    }
    const job = jobOf(record);
    if (job !== undefined) this.#byJob.set(job, { receiptId: record.receiptId, bucket });
  }

  /**
   * Read every record's job id into the index {@link findJob} answers from (at start: a worker
   * that restarted knows what it signed before). Returns how many records are kept. A record
   * that cannot be read, or one of the old layout, leaves the index partial: no job is then said
   * to have none.
   */
  async index(): Promise<number> {
    let whole = true;
    let n = 0;
    for (const bucket of await this.#bucketsOnDisk()) {
      for await (const entry of Deno.readDir(join(this.#dir, String(bucket)))) {
        if (!entry.isFile || !entry.name.endsWith(".cbor")) continue;
        n++;
        const receiptId = entry.name.slice(0, -".cbor".length);
        const record = await readRecord(join(this.#dir, String(bucket), entry.name))
          .catch(() => undefined);
        const job = record === undefined ? undefined : jobOf(record);
        if (job === undefined) whole = false;
        else this.#byJob.set(job, { receiptId, bucket });
      }
    }
    for await (const entry of readDirIfAny(this.#dir)) {
      if (entry.isFile && entry.name.endsWith(".cbor")) whole = false; // old layout: no job
    }
    this.#indexWhole = whole;
    return n;
  }

  /** The record of job `jobId`, or whether none is kept ({@link JobRecordLookup}). */
  async findJob(jobId: string): Promise<JobRecordLookup> {
    const at = this.#byJob.get(jobId);
    if (at === undefined) return this.#indexWhole ? "none" : undefined;
    const path = join(this.#dir, String(at.bucket), `${at.receiptId}.cbor`);
    return await readRecord(path).catch(() => undefined);
  }

  /** The record of `receiptId`, if it is still kept. */
  async get(receiptId: string): Promise<StoredProof | undefined> {
    if (!RECEIPT_ID.test(receiptId)) return undefined;
    for (const bucket of (await this.#bucketsOnDisk()).reverse()) {
      const record = await readRecord(join(this.#dir, String(bucket), `${receiptId}.cbor`));
      if (record !== undefined) return record;
    }
    return await readLegacy(join(this.#dir, `${receiptId}.cbor`), receiptId);
  }

  /**
   * Forget what no challenge can ask for any more: every directory whose newest possible record
   * is older than the retention, and files of the old one-directory layout (and temporary files
   * a crash left) older than it. Returns how many records were removed.
   * @throws {ProofStoreError} When the file system refuses a removal (a read-only mount).
   */
  async sweep(): Promise<number> {
    try {
      return await this.#sweep();
    } catch (error) {
      throw new ProofStoreError(this.#dir, "deleted from", error);
    }
  }

  async #sweep(): Promise<number> {
    const now = this.#now();
    let removed = 0;
    for (const bucket of await this.#bucketsOnDisk()) {
      if (bucket + this.#bucketMs + this.#retentionMs > now) continue;
      const path = join(this.#dir, String(bucket));
      for await (const entry of Deno.readDir(path)) if (entry.name.endsWith(".cbor")) removed++;
      await Deno.remove(path, { recursive: true });
      this.#buckets.delete(bucket);
      for (const [job, at] of this.#byJob) if (at.bucket === bucket) this.#byJob.delete(job);
    }
    for await (const entry of readDirIfAny(this.#dir)) {
      if (!entry.isFile) continue;
      const path = join(this.#dir, entry.name);
      const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
      if (mtime + this.#retentionMs > now) continue;
      await Deno.remove(path);
      if (entry.name.endsWith(".cbor")) removed++;
    }
    return removed;
  }

  /** Records kept now (a listing: for stats, not for every message). */
  async count(): Promise<number> {
    let n = 0;
    for (const bucket of await this.#bucketsOnDisk()) {
      for await (const entry of Deno.readDir(join(this.#dir, String(bucket)))) {
        if (entry.isFile && entry.name.endsWith(".cbor")) n++;
      }
    }
    return n;
  }

  /** Bucket directories on disk, oldest first. */
  async #bucketsOnDisk(): Promise<number[]> {
    const buckets: number[] = [];
    for await (const entry of readDirIfAny(this.#dir)) {
      if (entry.isDirectory && BUCKET.test(entry.name)) buckets.push(Number(entry.name));
    }
    return buckets.sort((a, b) => a - b);
  }
}

/** The job id of `record`: its receipt's, or its job's hash; undefined without either. */
function jobOf(record: StoredProof): string | undefined {
  if (record.receipt !== undefined) return record.receipt.jobId;
  try {
    return record.job === undefined ? undefined : jobIdOf(record.job);
  } catch {
    return undefined; // a job that does not encode: not indexed
  }
}

async function* readDirIfAny(path: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function readRecord(path: string): Promise<StoredProof | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const { v: _v, ...record } = decodeCbor(bytes) as StoredProof & { v: number };
  const plain: StoredProof = { ...record, proof: plainProof(record.proof) };
  const receipt = record.receipt;
  if (receipt !== undefined) {
    plain.receipt = {
      ...receipt,
      worker: new Uint8Array(receipt.worker),
      sig: new Uint8Array(receipt.sig),
    };
  }
  return plain;
}

/** A record of the old layout (`<dir>/<receiptId>.cbor`, proof data only), kept until swept. */
async function readLegacy(path: string, receiptId: string): Promise<StoredProof | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const proof = plainProof(decodeCbor(bytes) as ProofData);
  return { receiptId, provedAt: 0, proof };
}

function plainProof(p: ProofData): ProofData {
  const plain = {
    ...p,
    tokens: new Uint8Array(p.tokens),
    fingerprints: new Uint8Array(p.fingerprints),
  };
  if (p.input !== undefined) plain.input = new Uint8Array(p.input);
  return plain;
}
