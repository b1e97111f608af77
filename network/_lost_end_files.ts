/**
 * The lost ends of a forwarding node on disk (`<dataDir>/lost-ends/<job id>.cbor`): each job
 * whose every token its client got and whose worker's `end` event (its receipt) was lost with the
 * connection, with what asking for the receipt later needs (`_lost_ends.ts`). Kept in memory
 * only, a router that restarted forgot every receipt it still had to ask for, and those honest
 * workers were paid in no ledger (review s64). Written when a lost end is remembered, removed
 * when it is forgotten (its receipt came, it yielded its place, its challenge window closed), and
 * read back when the store starts.
 *
 * Not part of the public API.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { ReceiptFiles } from "../actors/_receipt_files.ts";
import { jobId, type TextJob } from "../protocols/job.ts";
import type { JobSummary } from "../inference/inference_port.ts";
import { type JobAssignment, verifyAssignment } from "../protocols/assignment.ts";
import type { RelayedOutput } from "./failover.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { PromptTokenSeen } from "./_prompt_token_claim.ts";

/** The folder of a node's data directory its forwarding port keeps its lost ends in. */
export const LOST_ENDS_DIR = "lost-ends";

/**
 * Version of a {@link StoredLostEnd} record: 2 keeps what the router saw of the worker's `start`
 * ({@link StoredLostEnd.seen}, review s79 vlate F5). A version-1 record (written before) is still
 * read, with no `seen`.
 */
const RECORD_VERSION = 2;
/** The record versions read back: this one, and version 1 (no `seen`). */
const READ_VERSIONS: readonly unknown[] = [1, RECORD_VERSION];

/** What is kept of a lost end: enough to ask for its receipt and check it as before. */
export interface StoredLostEnd {
  job: TextJob;
  worker: Uint8Array;
  relayed: RelayedOutput;
  summary: JobSummary;
  assignment: JobAssignment;
  /** Unix ms past which it is forgotten (its challenge window closed). */
  expiresAt: number;
  /**
   * What the router saw of the worker's `start` (its count, the window it stated, the model's
   * listed window): the late receipt's prompt count is checked against it, as the end event's
   * would have been. Absent in a lost end kept before it was (version 1).
   */
  seen?: PromptTokenSeen;
}

/** A write, removal or read asked of {@link LostEndFiles} after its close. */
export class LostEndFilesClosedError extends VeriflowError {
  /** @param dir The folder. */
  constructor(dir: string) {
    super("lost_ends_closed", `${dir} is closed: nothing more is written to it`);
  }
}

/**
 * The lost ends in one folder. Writes and removals run one at a time, in the order asked, so a
 * lost end forgotten just after it was remembered is not left on disk; a failed one is dropped
 * (the lost end is then kept in memory only, as before). Closed as its node stops
 * ({@link LostEndFiles.close}): what was asked before is on disk when the close resolves, and
 * nothing is asked of the disk after.
 */
export class LostEndFiles {
  readonly #files: ReceiptFiles;
  readonly #dir: string;
  #queue: Promise<void> = Promise.resolve();
  /** {@link close} was called: nothing more is asked of the disk. */
  #closed = false;

  /**
   * The store in `dir` (made on the first write).
   * @param dir The folder, e.g. `<dataDir>/lost-ends` ({@link LOST_ENDS_DIR}).
   */
  constructor(dir: string) {
    this.#dir = dir;
    this.#files = ReceiptFiles.in(dirname(dir), basename(dir));
  }

  /**
   * Ask nothing more of the disk: resolves once every write and removal asked before has ended
   * (a stop that did not wait left a write landing after the node released its data directory,
   * or cut off as the process ended). Later ones reject with {@link LostEndFilesClosedError}.
   * Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closed = true;
    return this.#queue;
  }

  /** Keep `lost` on disk, under its job id. */
  save(lost: StoredLostEnd): Promise<void> {
    const { job, worker, relayed, summary, assignment, expiresAt, seen } = lost;
    const record = {
      v: RECORD_VERSION,
      job,
      worker,
      relayed,
      summary,
      assignment,
      expiresAt,
      ...(seen === undefined ? {} : { seen }),
    };
    return this.#then(() => this.#files.save(jobId(job), record));
  }

  /** Forget the lost end of job `id` on disk. */
  remove(id: string): Promise<void> {
    return this.#then(() => this.#files.remove(id));
  }

  /**
   * Every lost end kept, oldest (soonest to expire) first; a record that does not parse as one
   * (another version, a damaged file, an assignment that does not verify) is removed, as is one
   * expired at `now` (unix ms).
   */
  async all(now: number): Promise<StoredLostEnd[]> {
    const found = await this.#then(() => this.#files.all());
    const kept: StoredLostEnd[] = [];
    for (const [id, record] of found) {
      const lost = parse(id, record);
      if (lost === undefined || lost.expiresAt <= now) await this.remove(id);
      else kept.push(lost);
    }
    return kept.sort((a, b) => a.expiresAt - b.expiresAt);
  }

  /** Run `op` after every write asked before it; its failure fails only its own caller. */
  #then<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new LostEndFilesClosedError(this.#dir));
    const result = this.#queue.then(op);
    this.#queue = result.then(() => {}, () => {});
    return result;
  }
}

/** `record` (read from the file of job `id`) as a lost end, or undefined if it is not one. */
function parse(id: string, record: unknown): StoredLostEnd | undefined {
  if (typeof record !== "object" || record === null) return undefined;
  const r = record as Record<string, unknown>;
  if (!READ_VERSIONS.includes(r.v) || typeof r.expiresAt !== "number") return undefined;
  const { job, worker, relayed, summary, assignment } = r;
  const seen = r.v === 1 ? undefined : parseSeen(r.seen);
  if (seen === null) return undefined;
  if (!(worker instanceof Uint8Array) || typeof summary !== "object" || summary === null) {
    return undefined;
  }
  try {
    if (jobId(job as TextJob) !== id) return undefined;
  } catch {
    return undefined;
  }
  if (!verifyAssignment(assignment, { jobId: id, worker })) return undefined;
  const out = relayed as Partial<RelayedOutput> | null;
  const relayedOk = typeof out === "object" && out !== null &&
    Number.isInteger(out.tokens) && Number.isInteger(out.resumedAt) &&
    (out.output === undefined || typeof out.output === "string") &&
    (out.lastToken === "stop" || out.lastToken === "length");
  if (!relayedOk) return undefined;
  return {
    job: job as TextJob,
    worker,
    relayed: out as RelayedOutput,
    summary: summary as JobSummary,
    assignment,
    expiresAt: r.expiresAt,
    ...(seen === undefined ? {} : { seen }),
  };
}

/** The fields of a {@link PromptTokenSeen}: counts and windows, each a whole number or absent. */
const SEEN_FIELDS = ["started", "stated", "known"] as const;

/**
 * `value` (a record's `seen`) as a {@link PromptTokenSeen}: undefined where none was kept, null
 * where it is not one (a damaged record).
 */
function parseSeen(value: unknown): PromptTokenSeen | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const seen: PromptTokenSeen = {};
  for (const field of SEEN_FIELDS) {
    const n = v[field];
    if (n === undefined) continue;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) return null;
    seen[field] = n;
  }
  return seen;
}
