/**
 * The ledger's history index, `index.sqlite`: what the ledger must remember for ever but never
 * needs all at once — every receipt and its status, the receipt recorded for each job and what
 * it claimed (one payment per job, equivocation), settled accusations and fraud proofs (each
 * settled once), and verdicts (with their validator and target, so that one validator's own are
 * read without decoding everyone's). Kept on disk (SQLite, through Deno's built-in
 * `node:sqlite`), so memory stays a bounded page cache however long the history, and looked up
 * by key in microseconds.
 *
 * It is derived data: {@link LedgerIndex.apply} reads nothing but the index and the entry, and
 * records with each entry the position it has reached, so after a crash (or if the file is lost)
 * the ledger brings it up to date from the log. The log and its signed checkpoints stay the only
 * truth; `ledger verify` checks them from genesis.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import { entryHash, type LedgerEntry } from "./ledger_entry.ts";
import {
  type ReceiptKind,
  type ReceiptRecord,
  type ReceiptStatus,
  roundCredits,
} from "./ledger_state.ts";
import { LedgerNewerFormatError } from "./ledger_errors.ts";
import { keepToOwner, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/**
 * The key under which the index remembers that receipt `receiptId` was a steering conviction's
 * unpaid evidence (`Ledger.settleSteering`): a late assignment of it is not credited.
 */
export function steeringEvidenceKey(receiptId: string): string {
  return `steering-evidence/${receiptId}`;
}

/**
 * The key under which the index remembers that a stream conviction of hex `worker` for `jobId`
 * was settled (`Ledger.settleStreamFraud`): settled once per job and worker.
 */
export function streamFraudKey(jobId: string, worker: string): string {
  return `stream-fraud/${jobId}/${worker}`;
}

/**
 * The key under which the index remembers that hex `worker` was convicted of a stream here, for
 * any job: {@link LedgerIndex.convicted} answers for it as for a slashed receipt.
 */
function streamConvictedKey(worker: string): string {
  return `stream-convicted/${worker}`;
}

/**
 * The key under which the index remembers that receipt `receiptId` was recorded uncredited
 * (`recordReceipt`'s `uncredited`: its model was not here at intake, so it was never drawn): a
 * late assignment of it is not credited, whatever the owner holds by then.
 */
export function uncreditedReceiptKey(receiptId: string): string {
  return `uncredited/${receiptId}`;
}

/**
 * The key under which the index remembers that receipt `receiptId` was recorded with
 * `end: "cancelled"` (its `receipt` entry's `end`): a receipt of the same worker for the same job
 * with no `end`, over more tokens, is then its finished one, one claim with it, not its
 * equivocation (`_ledger_receipts.ts`, `cancelledPair`). Absent from entries written before the
 * field: such a record reads as a finished one, as it did.
 */
export function cancelledReceiptKey(receiptId: string): string {
  return `cancelled/${receiptId}`;
}

/**
 * The key under which the index remembers what receipt `receiptId` signed besides its end, token
 * count and output (`digest`, `pairableDigest` of it, its `receipt` entry's `pairable`): a
 * receipt of the same worker for the same job with the same digest can be its cancelled pair
 * (`_ledger_receipts.ts`, `cancelledPair`); another seed, model, input, parameters, commitment
 * scheme or prompt count cannot. Absent from entries written before the field: such a record pairs
 * with nothing, its worker's other claim for the job is equivocation, as before stop 81.
 */
export function pairableKey(receiptId: string, digest: string): string {
  return `pairable/${receiptId}/${digest}`;
}

/**
 * The other half of a cancelled pair whose recorded receipt holds the job
 * ({@link LedgerIndex.cancelledPair}): the worker's finished receipt, or its cancelled one,
 * never recorded (one claim with the record, not its own).
 */
export interface PairedClaim {
  /** Its receipt's id. */
  receiptId: string;
  /** The output it claims. */
  outputHash: string;
  /** The token count it claims. */
  tokens: number;
  /** The stake it would lock: a proof or equivocation slashes the pair by the larger lock. */
  locked: number;
  /** What the pair earns: the cancelled receipt's k tokens. */
  reward: number;
}

/**
 * A worker's claim for a job another worker's receipt holds here
 * ({@link LedgerIndex.unrecordedClaim}).
 */
export interface UnrecordedClaim {
  /**
   * Its receipt's id: recorded here only if the job was taken from it, else a row of its own
   * once convicted.
   */
  receiptId: string;
  /** The output it claims (null: convicted by an entry written before index format 4). */
  outputHash: string | null;
  /** The token count it claims (null as `outputHash`). */
  tokens: number | null;
  /** The stake it would lock, as when it became known. */
  locked: number;
  /** Whether its worker was slashed for equivocation on the job. */
  equivocated: boolean;
}

/** What an entry says of a receipt never recorded here (`unrecorded` in its body). */
interface UnrecordedBody {
  jobId: string;
  locked: number;
  pendingUntil: number;
  outputHash?: string;
  tokens?: number;
  worker?: string;
  receiptId?: string;
}

/** An entry body's `unrecorded` field, when it has one. */
function unrecordedOf(body: Record<string, unknown>): UnrecordedBody | undefined {
  const u = body.unrecorded;
  return typeof u === "object" && u !== null ? u as UnrecordedBody : undefined;
}

/** File name of the index inside the ledger directory. */
export const INDEX_FILE = "index.sqlite";

/**
 * What an index's rows mean, kept in `meta` (absent: 1). Raised whenever `apply` comes to write
 * rows an earlier version did not for the same entries: an index of an older format is emptied
 * at open and built anew from the log, once, or it would answer from rows the log contradicts.
 * 2: receipts recorded uncredited carry {@link uncreditedReceiptKey} (stop 47; an index of
 * format 1 paid them on a late assignment after an upgrade, review s48).
 * 3: a receipt slashed for equivocation while it still took fraud proofs keeps what was slashed
 * until a confirmed proof rewards its accuser ({@link LedgerIndex.unrewardedSlash}), and a receipt
 * never recorded, convicted, is remembered by its job and worker
 * (`unrecordedConviction`; stop 62).
 * 4: a worker's claim for a job another worker's receipt holds, known from the log (the second
 * receipt of a double assignment, one convicted unrecorded, or one another worker's assigned
 * receipt took the job from), is kept with its claim, lock, and whether its worker was slashed
 * for equivocation on the job ({@link LedgerIndex.unrecordedClaim}, replacing
 * `unrecordedConviction` and format 3's table; review s62).
 * 5: a receipt refused while another worker's receipt held its job is kept as its worker's claim
 * (`unrecorded_claim` entries; {@link LedgerIndex.refusedClaimLocks}), an equivocation that is a
 * double assignment too unpays the job's holder (`doubleAssignment` in its body), and a proof
 * convicting a receipt the job was taken from for equivocation marks that worker's claim, not the
 * job (stop 63): an index built before lacks those rows or marks the wrong one.
 * 6: a training receipt slashed for equivocation while it still took fraud proofs keeps what was
 * slashed for a confirmed proof coming later, as an inference receipt does since format 3
 * (`training_equivocation` entries; review s63): an index built before has no such row, and a
 * proof about that receipt was refused `not_pending`, its accuser unpaid.
 * 7: a job another worker's assigned receipt took from a receipt recorded without an assignment
 * loses the job's mark of equivocation (the former holder's worker's, kept with its claim), and
 * an equivocation against a kept claim whose second receipt came assigned passes the job to that
 * claim (stop 63 red team): an index built before kept the mark on the job, so the new holder's
 * own other claim for the job was refused, not slashed.
 * 8: a receipt refused for want of stake is kept as its worker's claim though no receipt holds
 * its job (`unrecorded_claim` with `refused`, inference and training; stop 64); a claim recorded
 * later as its worker's receipt (the same receipt, after a pledge) is that receipt from then on,
 * its claim row gone; an equivocation against a claim no receipt held (`holdsJob`, or a
 * `training_equivocation` carrying `unrecorded`) passes the job to the convicted claim: an index
 * built before keeps the recorded receipt's claim row, so a job taken from it later kept the
 * row's old mark (its worker's other claim slashed twice).
 * 9: a `fault` keeps what it burned as unrewarded, so a peer's confirmed proof inside the window
 * still earns its accuser its share (review s79, F4); a steering conviction keeps what it cut
 * ({@link LedgerIndex.steeringLeft}), so a proof about its pending evidence takes its slash from
 * that, not from the stake again (F3); and a `final` entry that releases a receipt left `unpaid`
 * keeps it `unpaid` (F1): an index built before has none of those rows.
 */
const INDEX_FORMAT = 9;

/**
 * SQLite's page cache for the index, in KiB: what the index may hold in memory. Lookups touch a
 * few B-tree pages each; hot pages stay cached, the rest is read back from the OS's file cache.
 */
const INDEX_CACHE_KIB = 2048;

/** How far the index has applied the log, and where that point is. */
export interface IndexPosition {
  /** Entries applied (the next entry's `seq`). */
  seq: number;
  /** Hash of the last entry applied. */
  head: string;
  /** Byte offset of the last entry applied. */
  last: number;
  /** Byte offset just past it. */
  end: number;
}

/** What the recorded receipt of a job claims (for equivocation). */
export interface JobClaim {
  /** Output hash of the recorded receipt. */
  outputHash: string;
  /** Its token count. */
  tokens: number;
}

/** Where the index stands once it has applied `entry`, framed at bytes `last`..`end`. */
export function positionAfter(
  entry: LedgerEntry,
  last: number,
  end: number,
  owner: string,
): IndexPosition & { owner: string } {
  return { seq: entry.seq + 1, head: entryHash(entry), last, end, owner };
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v ANY) STRICT;
  CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY, worker TEXT NOT NULL, status TEXT NOT NULL, credit REAL NOT NULL,
    requester TEXT, locked REAL NOT NULL, pending_until REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'inference'
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY, receipt TEXT, output_hash TEXT, tokens INTEGER,
    equivocated INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS accusations (
    validator TEXT NOT NULL, receipt TEXT NOT NULL, PRIMARY KEY (validator, receipt)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS proofs (hash TEXT PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS unrewarded (
    receipt TEXT PRIMARY KEY, slashed REAL NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS steering_cuts (
    worker TEXT PRIMARY KEY, left REAL NOT NULL
  ) WITHOUT ROWID;
  DROP TABLE IF EXISTS unrecorded;
  CREATE TABLE IF NOT EXISTS unrecorded_claims (
    job TEXT NOT NULL, worker TEXT NOT NULL, receipt TEXT NOT NULL, output_hash TEXT,
    tokens INTEGER, locked REAL NOT NULL, equivocated INTEGER NOT NULL,
    PRIMARY KEY (job, worker)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS refused_claims (
    job TEXT NOT NULL, worker TEXT NOT NULL, locked REAL NOT NULL, until INTEGER NOT NULL,
    PRIMARY KEY (job, worker)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS refused_claims_by_worker ON refused_claims (worker, until);
  CREATE TABLE IF NOT EXISTS cancelled_pairs (
    receipt TEXT PRIMARY KEY, other TEXT NOT NULL, output_hash TEXT NOT NULL,
    tokens INTEGER NOT NULL, locked REAL NOT NULL, reward REAL NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, verdict BLOB NOT NULL,
    validator TEXT, target TEXT
  );
  CREATE INDEX IF NOT EXISTS receipts_by_worker ON receipts (worker, status);
`;

/** The tables that hold what entries said (all but `meta`, the index's position and format). */
const ENTRY_TABLES = [
  "receipts",
  "jobs",
  "accusations",
  "proofs",
  "unrewarded",
  "steering_cuts",
  "unrecorded_claims",
  "refused_claims",
  "cancelled_pairs",
  "verdicts",
] as const;

/** SQL that deletes every row of {@link ENTRY_TABLES}. */
const FORGET_ROWS = ENTRY_TABLES.map((t) => `DELETE FROM ${t};`).join(" ");

/** The history index; see the module doc. */
export class LedgerIndex {
  readonly #db: DatabaseSync;
  readonly #q: Record<string, StatementSync>;
  #inBatch = false;
  /** The format of the index `#upgrade` emptied, if it emptied one. */
  #upgradedFrom?: number;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    const p = (sql: string) => db.prepare(sql);
    this.#q = {
      meta: p("SELECT v FROM meta WHERE k = ?"),
      setMeta: p(
        "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
      ),
      receipt: p("SELECT * FROM receipts WHERE id = ?"),
      insertReceipt: p(
        "INSERT OR REPLACE INTO receipts (id, worker, status, credit, requester, locked, pending_until, kind) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
      ),
      status: p("UPDATE receipts SET status = ? WHERE id = ?"),
      finalize: p("UPDATE receipts SET status = 'final' WHERE id = ? AND status <> 'unpaid'"),
      assign: p("UPDATE receipts SET requester = ?, credit = ? WHERE id = ?"),
      uncredit: p("UPDATE receipts SET credit = 0 WHERE id = ?"),
      job: p("SELECT * FROM jobs WHERE job = ?"),
      recordJob: p(
        "INSERT INTO jobs (job, receipt, output_hash, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (job) DO UPDATE SET receipt = excluded.receipt, output_hash = coalesce(excluded.output_hash, output_hash), tokens = coalesce(excluded.tokens, tokens)",
      ),
      equivocate: p(
        "INSERT INTO jobs (job, equivocated) VALUES (?, 1) ON CONFLICT (job) DO UPDATE SET equivocated = 1",
      ),
      unequivocate: p("UPDATE jobs SET equivocated = 0 WHERE job = ?"),
      convicted: p("SELECT 1 FROM receipts WHERE worker = ? AND status = 'fraud' LIMIT 1"),
      accused: p("SELECT 1 FROM accusations WHERE validator = ? AND receipt = ?"),
      accuse: p("INSERT OR IGNORE INTO accusations (validator, receipt) VALUES (?, ?)"),
      proof: p("SELECT 1 FROM proofs WHERE hash = ?"),
      settle: p("INSERT OR IGNORE INTO proofs (hash) VALUES (?)"),
      unrewarded: p("SELECT slashed FROM unrewarded WHERE receipt = ?"),
      keepUnrewarded: p("INSERT OR REPLACE INTO unrewarded (receipt, slashed) VALUES (?, ?)"),
      rewarded: p("DELETE FROM unrewarded WHERE receipt = ?"),
      steeringLeft: p("SELECT left FROM steering_cuts WHERE worker = ?"),
      keepSteeringCut: p("INSERT OR REPLACE INTO steering_cuts (worker, left) VALUES (?, ?)"),
      unrecorded: p("SELECT * FROM unrecorded_claims WHERE job = ? AND worker = ?"),
      pair: p("SELECT * FROM cancelled_pairs WHERE receipt = ?"),
      keepPair: p(
        "INSERT INTO cancelled_pairs (receipt, other, output_hash, tokens, locked, reward) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (receipt) DO NOTHING",
      ),
      keepUnrecorded: p(
        "INSERT INTO unrecorded_claims (job, worker, receipt, output_hash, tokens, locked, equivocated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job, worker) DO NOTHING",
      ),
      keepRefused: p(
        "INSERT INTO refused_claims (job, worker, locked, until) VALUES (?, ?, ?, ?) ON CONFLICT (job, worker) DO NOTHING",
      ),
      refusedLocks: p(
        "SELECT COALESCE(SUM(MIN(locked, ?)), 0) AS locked FROM refused_claims WHERE worker = ? AND until >= ?",
      ),
      refusedUntil: p("SELECT until FROM refused_claims WHERE job = ? AND worker = ?"),
      forgetClaim: p("DELETE FROM unrecorded_claims WHERE job = ? AND worker = ? AND receipt = ?"),
      equivocateUnrecorded: p(
        "UPDATE unrecorded_claims SET equivocated = 1 WHERE job = ? AND worker = ?",
      ),
      verdictById: p("SELECT 1 FROM verdicts WHERE id = ?"),
      verdict: p(
        "INSERT INTO verdicts (seq, id, verdict, validator, target) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET verdict = excluded.verdict, validator = excluded.validator, target = excluded.target",
      ),
      verdicts: p("SELECT verdict FROM verdicts ORDER BY seq"),
      verdictsBy: p("SELECT verdict FROM verdicts WHERE validator = ? ORDER BY seq"),
      verdictsByOn: p(
        "SELECT verdict FROM verdicts WHERE validator = ? AND target = ? ORDER BY seq",
      ),
    };
  }

  /**
   * Open (or create) the index at `path`. A file SQLite cannot read is an error: the ledger
   * then deletes it and rebuilds it from the log.
   */
  static open(path: string): LedgerIndex {
    // Created 0600 before SQLite opens it: SQLite creates a new database with the umask's mode
    // (0644), and its `-wal` and `-shm` with the database file's. An empty file is a new database.
    Deno.openSync(path, { write: true, create: true, mode: OWNER_FILE_MODE }).close();
    keepToOwner(path);
    const db = new DatabaseSync(path);
    try {
      // WAL without a sync per commit: the index is derived, and a commit lost to a power cut
      // is re-applied from the log (the position travels in the same transaction).
      db.exec(
        `PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -${INDEX_CACHE_KIB};`,
      );
      db.exec(SCHEMA);
      // There now (WAL): new ones took the database's mode, ones an earlier version left did not.
      for (const suffix of ["-wal", "-shm"]) keepToOwner(`${path}${suffix}`);
      addKindColumn(db);
      addVerdictKeys(db);
      const index = new LedgerIndex(db);
      index.#upgrade();
      return index;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /**
   * Where the index stands, with the owner it was built for; undefined when empty, or when what
   * is kept does not parse as a position (a damaged row SQLite reads without complaint: the
   * ledger then rebuilds the index from the log, where a parse error stopped it from opening,
   * review s51).
   */
  position(): (IndexPosition & { owner: string }) | undefined {
    const raw = this.#q.meta.get("position") as { v: unknown } | undefined;
    if (raw === undefined || typeof raw.v !== "string") return undefined;
    let at: unknown;
    try {
      at = JSON.parse(raw.v);
    } catch {
      return undefined;
    }
    return typeof at === "object" && at !== null
      ? at as IndexPosition & { owner: string }
      : undefined;
  }

  /**
   * Forget everything but the format (the index does not match the log: it is rebuilt from
   * genesis, by this version), in one transaction: deleted one table at a time, a crash after
   * the position went and before the rows did left an index with no position and stale rows,
   * which the rebuild then ran on top of (a worker convicted, a job never recordable, with no
   * entry in the log saying so; a review showed it at stop 33).
   */
  reset(): void {
    this.#db.exec(`BEGIN; DELETE FROM meta WHERE k <> 'format'; ${FORGET_ROWS} COMMIT;`);
  }

  /**
   * An index of an older {@link INDEX_FORMAT} (or of none: an earlier version's) is emptied,
   * its position with it, so the ledger builds it anew from the log; in one transaction with the
   * new format, so a crash leaves either the old index whole or an empty new one.
   */
  #upgrade(): void {
    const raw = this.#q.meta.get("format") as { v: unknown } | undefined;
    if (raw?.v === INDEX_FORMAT) return;
    // An index without a format and without rows is a new file, not an earlier version's.
    if (raw !== undefined || this.hasRows()) {
      this.#upgradedFrom = typeof raw?.v === "number" ? raw.v : 1;
    }
    this.#db.exec(
      `BEGIN; DELETE FROM meta; ${FORGET_ROWS} INSERT INTO meta (k, v) VALUES ('format', ${INDEX_FORMAT}); COMMIT;`,
    );
  }

  /**
   * The format of the index this open emptied because it was another version's (see
   * {@link INDEX_FORMAT}; 1 for one that kept none), with the format it is rebuilt in: the reason
   * an open rebuilds it from the log. Undefined when the index was of this format, or new.
   */
  get upgradedFrom(): { from: number; to: number } | undefined {
    return this.#upgradedFrom === undefined
      ? undefined
      : { from: this.#upgradedFrom, to: INDEX_FORMAT };
  }

  /** Whether it holds anything but a position (rows of entries). */
  hasRows(): boolean {
    return ENTRY_TABLES.some((t) =>
      this.#db.prepare(`SELECT 1 FROM ${t} LIMIT 1`).get() !== undefined
    );
  }

  /**
   * Start a transaction that many {@link LedgerIndex.apply} calls share until
   * {@link LedgerIndex.commit} (catching up with the log: one commit per thousands of entries).
   */
  begin(): void {
    this.#db.exec("BEGIN");
    this.#inBatch = true;
  }

  /** Commit the transaction {@link LedgerIndex.begin} started. */
  commit(): void {
    this.#inBatch = false;
    this.#db.exec("COMMIT");
  }

  /** Undo the transaction {@link LedgerIndex.begin} started (an apply in it failed). */
  rollback(): void {
    this.#inBatch = false;
    this.#rollbackIfOpen();
  }

  /**
   * Apply one verified entry, and record that the index now stands at `at` (atomically: one
   * transaction, or part of the one {@link LedgerIndex.begin} started).
   */
  apply(entry: LedgerEntry, at: IndexPosition & { owner: string }): void {
    if (!this.#inBatch) this.#db.exec("BEGIN");
    try {
      this.#applyEntry(entry);
      this.#q.setMeta.run("position", JSON.stringify(at));
      if (!this.#inBatch) this.#db.exec("COMMIT");
    } catch (error) {
      if (!this.#inBatch) this.#rollbackIfOpen();
      throw error; // the failure that matters, never the rollback's
    }
  }

  /**
   * `ROLLBACK` if a transaction is still open. SQLite ends it by itself on some failures
   * (`SQLITE_FULL`, an I/O error), and a second `ROLLBACK` then throws "no transaction is active",
   * which hid a full disk behind a message about rollbacks (review s72).
   */
  #rollbackIfOpen(): void {
    if (!this.#db.isTransaction) return;
    try {
      this.#db.exec("ROLLBACK");
    } catch {
      // the caller throws the failure that made it roll back
    }
  }

  #applyEntry(entry: LedgerEntry): void {
    const b = entry.body as Record<string, never>;
    const q = this.#q;
    const status = (s: ReceiptStatus) => q.status.run(s, b.receiptId);
    switch (entry.kind) {
      case "receipt":
        this.#keepSuperseded(b.jobId, b.worker);
        q.insertReceipt.run(
          b.receiptId,
          b.worker,
          b.credit,
          b.requester || null,
          b.locked,
          b.pendingUntil,
          "inference",
        );
        q.recordJob.run(
          b.jobId,
          b.receiptId,
          typeof b.outputHash === "string" ? b.outputHash : null,
          typeof b.outputHash === "string" ? b.tokens : null,
        );
        if (typeof b.uncredited === "string") q.settle.run(uncreditedReceiptKey(b.receiptId));
        if (b.end === "cancelled") q.settle.run(cancelledReceiptKey(b.receiptId));
        if (typeof b.pairable === "string") q.settle.run(pairableKey(b.receiptId, b.pairable));
        // Kept before as its worker's claim (refused: for want of stake, or while another's
        // receipt held the job): the record stands for it now, and takes its marks.
        q.forgetClaim.run(b.jobId, b.worker, b.receiptId);
        return;
      case "training_receipt":
        q.insertReceipt.run(
          b.receiptId,
          b.worker,
          b.credit,
          null,
          b.locked,
          b.pendingUntil,
          "training",
        );
        // The trainer's slot in its round: one receipt per trainer and round, as per job.
        q.recordJob.run(b.slot, b.receiptId, null, null);
        q.forgetClaim.run(b.slot, b.worker, b.receiptId);
        return;
      case "training_equivocation": {
        // As `equivocation`: slashed while it still took fraud proofs, a confirmed proof coming
        // later earns its accuser its share of the slash, as where it came first. Against a
        // claim kept for want of stake (`unrecorded`: no receipt held the slot), the convicted
        // claim's row holds the slot from now on, as the receipt recorded first would.
        const unrecorded = unrecordedOf(b);
        const fresh = unrecorded !== undefined && q.receipt.get(b.receiptId) === undefined;
        if (unrecorded !== undefined) {
          if (fresh) {
            q.insertReceipt.run(
              b.receiptId,
              b.worker,
              0,
              null,
              unrecorded.locked,
              unrecorded.pendingUntil,
              "training",
            );
          }
          q.recordJob.run(b.slot, b.receiptId, null, null);
          q.equivocateUnrecorded.run(b.slot, b.worker);
        }
        const was = fresh
          ? "unpaid"
          : (q.receipt.get(b.receiptId) as { status: ReceiptStatus } | undefined)?.status;
        q.equivocate.run(b.slot);
        if (was === "pending" || was === "challenged" || was === "unpaid") {
          q.keepUnrewarded.run(b.receiptId, b.slashed);
        }
        return void status("fraud");
      }
      case "final":
        // Releasing a receipt left unpaid (its window over, its lock kept till then): unpaid.
        return void q.finalize.run(b.receiptId);
      case "fraud": {
        q.accuse.run(b.validator, b.receiptId);
        q.settle.run(b.fraudProof);
        q.rewarded.run(b.receiptId);
        // Steering evidence: its slash was part of the conviction's cut, taken from that now.
        this.#takeSteeringCut(b.receiptId, b.steering);
        // A receipt never recorded here (another worker's held its job), convicted: its row.
        const unrecorded = unrecordedOf(b);
        if (unrecorded !== undefined) this.#convictUnrecorded(b, unrecorded);
        // A proof about another claim of the worker's for the job: its equivocation too (of
        // that worker only, where another worker's receipt holds the job).
        if (typeof b.equivocated === "string") {
          if (unrecorded !== undefined) q.equivocateUnrecorded.run(unrecorded.jobId, b.worker);
          else this.#equivocateOf(b.equivocated, b.receiptId);
        }
        return void status("fraud");
      }
      case "false_accusation":
        q.accuse.run(b.validator, b.receiptId);
        q.settle.run(b.fraudProof);
        return;
      case "equivocation": {
        // Slashed while it still took fraud proofs, with no accuser rewarded: a confirmed proof
        // coming later still earns its accuser its share, as where it came before this entry.
        // One never recorded here (another worker's receipt holds the job) took them unless it
        // was convicted: it is convicted now, and that worker's claims for the job settled.
        const unrecorded = unrecordedOf(b);
        const fresh = unrecorded !== undefined && q.receipt.get(b.receiptId) === undefined;
        if (unrecorded !== undefined) {
          this.#convictUnrecorded(b, unrecorded);
          q.equivocateUnrecorded.run(b.jobId, b.worker);
          // Its second receipt came assigned, the holder recorded without an assignment, or no
          // receipt held the job (a claim kept for want of stake: `holdsJob`): the job passes to
          // this claim, as to an assigned receipt recorded (`receipt` above).
          if (typeof b.requester === "string" || b.holdsJob === true) this.#takeJob(b, unrecorded);
        } else {
          q.equivocate.run(b.jobId);
        }
        const was = fresh
          ? "unpaid"
          : (q.receipt.get(b.receiptId) as { status: ReceiptStatus } | undefined)?.status;
        if (was === "pending" || was === "challenged" || was === "unpaid") {
          // With what of a steering conviction's cut its slash is (`steering`, stop 80), as a
          // fault keeps it: a proof coming later earns its share of both.
          q.keepUnrewarded.run(
            b.receiptId,
            roundCredits(b.slashed + ((b.steering as number | undefined) ?? 0)),
          );
        }
        this.#takeSteeringCut(b.receiptId, b.steering);
        // Assigned while another worker's assigned receipt held the job: that one is unpaid.
        const twice = b.doubleAssignment as { receiptId: string } | undefined;
        if (twice !== undefined) q.uncredit.run(twice.receiptId);
        // Assigned while the worker's own unassigned record held the job: the job is assigned
        // to it (absent from entries written before stop 63, which never carried it).
        if (typeof b.requester === "string") q.assign.run(b.requester, 0, b.receiptId);
        return void status("fraud");
      }
      case "cancelled_pair": {
        // The other half of the record's cancelled pair: kept, so a third claim of the worker's
        // for the job is equivocation against both, and the job is paid and slashed as the pair.
        const pair = b.pair as unknown as PairedClaim;
        q.keepPair.run(
          b.receiptId,
          pair.receiptId,
          pair.outputHash,
          pair.tokens,
          pair.locked,
          pair.reward,
        );
        const rec = q.receipt.get(b.receiptId) as { requester: string | null } | undefined;
        if (typeof b.credit === "number" && rec !== undefined) {
          q.assign.run(
            typeof b.requester === "string" ? b.requester : rec.requester,
            b.credit,
            b.receiptId,
          );
        }
        // What the pair's larger claim added to an equivocation's slash: a proof's share too.
        const kept = q.unrewarded.get(b.receiptId) as { slashed: number } | undefined;
        if (typeof b.slashed === "number" && kept !== undefined) {
          q.keepUnrewarded.run(b.receiptId, roundCredits(kept.slashed + b.slashed));
        }
        return;
      }
      case "assigned":
      case "training_late_credit":
        // A late credit is the closed receipt's credit, paid: a second credit finds it paid.
        return void q.assign.run(b.requester, b.credit, b.receiptId);
      case "double_assignment":
        // The second worker's claim for the job, known here though never recorded (absent
        // from entries written before index format 4).
        this.#keepClaim(unrecordedOf(b));
        return void q.uncredit.run(b.receiptId);
      case "unrecorded_claim": {
        // A receipt refused while another worker's receipt held its job: its worker's claim,
        // and the stake it would lock inside the holder's window (`refusedClaimLocks`).
        const u = unrecordedOf(b);
        this.#keepClaim(u);
        if (u?.worker !== undefined) q.keepRefused.run(u.jobId, u.worker, u.locked, u.pendingUntil);
        return;
      }
      case "challenge":
        return void status("challenged");
      case "cleared":
        return void status("pending");
      case "fault":
        // Burned, no accuser rewarded: a peer's confirmed proof inside the window still earns
        // its share of it, as after an equivocation (review s79, F4).
        q.keepUnrewarded.run(
          b.receiptId,
          roundCredits(b.slashed + ((b.steering as number | undefined) ?? 0)),
        );
        this.#takeSteeringCut(b.receiptId, b.steering);
        return void status("fraud");
      case "unresolved":
        return void status("unpaid");
      case "steering":
        // Settled once per worker and validator (`Ledger.settleSteering`); its pending evidence
        // is not paid, now or when its assignment comes. A `part` of a conviction too large for
        // one entry marks evidence only: the conviction is settled by its last entry.
        for (const id of (b.uncredited as unknown as string[] | undefined) ?? []) {
          q.uncredit.run(id);
          q.settle.run(steeringEvidenceKey(id));
        }
        if (typeof b.settlement === "string") {
          q.settle.run(b.settlement);
          // What it cut: a proof about its pending evidence takes its slash from this (F3).
          q.keepSteeringCut.run(b.worker, b.slashed);
        }
        return;
      case "stream_fraud":
        // Settled once per job and worker (`Ledger.settleStreamFraud`); no receipt to mark, and
        // the worker is convicted here as one with a slashed receipt is (routed around).
        q.settle.run(streamFraudKey(b.jobId, b.worker));
        // Its receipt for the job, open here, is not paid when its assignment comes either.
        for (const id of (b.uncredited as unknown as string[] | undefined) ?? []) {
          q.settle.run(uncreditedReceiptKey(id));
        }
        return void q.settle.run(streamConvictedKey(b.worker));
      case "verdict": {
        const v = b.verdict as unknown as Verdict;
        return void q.verdict.run(
          entry.seq,
          verdictId(v),
          encodeCbor(v),
          toHex(v.validator),
          toHex(v.target),
        );
      }
      case "genesis":
      case "stake":
      case "pledge_equivocation":
        return; // balances live in the working state (ledger_state.ts)
      default: {
        // As in `LedgerState.apply`: a kind without its case does not compile, and one a newer
        // version wrote is refused, never skipped (the index would answer without it).
        const unknown: never = entry.kind;
        throw new LedgerNewerFormatError(entry.seq, String(unknown));
      }
    }
  }

  /** The record of any receipt ever recorded. */
  receipt(receiptId: string): ReceiptRecord | undefined {
    const row = this.#q.receipt.get(receiptId) as Record<string, never> | undefined;
    if (row === undefined) return undefined;
    const rec: ReceiptRecord = {
      receiptId: row.id,
      kind: row.kind as ReceiptKind,
      worker: row.worker,
      status: row.status,
      credit: row.credit,
      locked: row.locked,
      pendingUntil: row.pending_until,
    };
    if (row.requester !== null) rec.requester = row.requester;
    return rec;
  }

  /**
   * The receipt recorded for `jobId`, if any (for a training receipt, `jobId` is its trainer's
   * slot in the round, `trainingSlot` of `ledger.ts`).
   */
  jobReceipt(jobId: string): string | undefined {
    return (this.#q.job.get(jobId) as { receipt: string | null } | undefined)?.receipt ?? undefined;
  }

  /** What the recorded receipt of `jobId` claims, if it carried a claim. */
  claim(jobId: string): JobClaim | undefined {
    const row = this.#q.job.get(jobId) as Record<string, never> | undefined;
    if (row === undefined || row.output_hash === null) return undefined;
    return { outputHash: row.output_hash, tokens: row.tokens };
  }

  /** Whether the worker of `jobId` has been slashed for equivocation on it. */
  equivocated(jobId: string): boolean {
    return (this.#q.job.get(jobId) as { equivocated: number } | undefined)?.equivocated === 1;
  }

  /**
   * Whether `worker` (hex) is convicted here: any receipt of its slashed (fraud, a fault,
   * equivocation), or a stream of its (`stream_fraud`).
   */
  convicted(worker: string): boolean {
    return this.#q.convicted.get(worker) !== undefined ||
      this.proofSettled(streamConvictedKey(worker));
  }

  /** Whether `validator` (hex) has had an accusation against `receiptId` settled. */
  hasAccused(validator: string, receiptId: string): boolean {
    return this.#q.accused.get(validator, receiptId) !== undefined;
  }

  /**
   * What is left of the cut of this ledger's owner's steering conviction of `worker` (hex) that
   * no slash of its pending evidence has taken since (`steeringCover`, `_ledger_steering.ts`);
   * undefined when no conviction of `worker` is settled here.
   */
  steeringLeft(worker: string): number | undefined {
    return (this.#q.steeringLeft.get(worker) as { left: number } | undefined)?.left;
  }

  /** `taken` (an entry's `steering`, if it has one) out of the cut of `receiptId`'s worker. */
  #takeSteeringCut(receiptId: string, taken: unknown): void {
    if (typeof taken !== "number") return;
    const rec = this.#q.receipt.get(receiptId) as { worker: string } | undefined;
    const left = rec === undefined ? undefined : this.steeringLeft(rec.worker);
    if (left === undefined) return;
    this.#q.keepSteeringCut.run(rec!.worker, Math.max(0, roundCredits(left - taken)));
  }

  /** The claim an entry keeps (`unrecorded` in its body, naming its worker and receipt). */
  #keepClaim(u: UnrecordedBody | undefined): void {
    if (u?.worker === undefined || u.receiptId === undefined) return;
    const { jobId, worker, receiptId, outputHash, tokens, locked } = u;
    this.#q.keepUnrecorded.run(
      jobId,
      worker,
      receiptId,
      outputHash ?? null,
      tokens ?? null,
      locked,
      0,
    );
  }

  /**
   * `jobId` settled for equivocation by a proof about recorded `receiptId`: the job's, when that
   * receipt holds it; else (the job was taken from it, `#keepSuperseded`) its worker's claim
   * only. Stop 63: the job's mark let the copier's variant coming later be slashed again, and
   * spared the holder's own equivocation.
   */
  #equivocateOf(jobId: string, receiptId: string): void {
    const q = this.#q;
    const job = q.job.get(jobId) as { receipt: string } | undefined;
    const rec = q.receipt.get(receiptId) as { worker: string } | undefined;
    if (job === undefined || job.receipt === receiptId || rec === undefined) {
      return void q.equivocate.run(jobId);
    }
    q.equivocateUnrecorded.run(jobId, rec.worker);
  }

  /** Rows for `b.receiptId` of `b.worker`, never recorded here, now convicted. */
  #convictUnrecorded(b: Record<string, never>, u: UnrecordedBody): void {
    const q = this.#q;
    const worker: string = b.worker;
    if (q.receipt.get(b.receiptId) === undefined) {
      q.insertReceipt.run(b.receiptId, worker, 0, null, u.locked, u.pendingUntil, "inference");
    }
    // Its claim (absent from entries written before format 4: it then takes no equivocation).
    q.keepUnrecorded.run(
      u.jobId,
      worker,
      b.receiptId,
      u.outputHash ?? null,
      u.tokens ?? null,
      u.locked,
      0,
    );
  }

  /**
   * An `equivocation` entry convicting `b.receiptId`, a claim of `b.worker` never recorded here,
   * whose second receipt came with the job's assignment while another worker's receipt held the
   * job without one: the job passes to the convicted claim (its row, assigned by the caller) and
   * is settled for equivocation, as where the assigned receipt was recorded first, taking the
   * job, and the claim came second; the holder's receipt is kept as its worker's claim
   * (`#keepSuperseded`). So the holder's own assignment coming later, or a third worker's
   * assigned receipt, is a double assignment, not paid (stop 63 red team).
   */
  #takeJob(b: Record<string, never>, u: UnrecordedBody): void {
    const q = this.#q;
    this.#keepSuperseded(u.jobId, b.worker);
    q.recordJob.run(u.jobId, b.receiptId, u.outputHash ?? null, u.tokens ?? null);
    q.equivocate.run(u.jobId);
  }

  /**
   * A receipt entry for `jobId` of `worker` (hex) taking the job from another worker's receipt
   * recorded without an assignment (a copier's, say): that receipt is kept as its worker's
   * claim for the job, its equivocation with it, so its worker's other claims for the job still
   * settle against it ({@link unrecordedClaim}); the job's mark of equivocation, that worker's,
   * goes with it (stop 63: kept on the job, the new holder's own other claim for it was not its
   * equivocation, and w2 was paid 700 and kept 14,000 in 2 of 24 orders).
   */
  #keepSuperseded(jobId: string, worker: string): void {
    const q = this.#q;
    const job = q.job.get(jobId) as Record<string, never> | undefined;
    if (job === undefined) return;
    const rec = q.receipt.get(job.receipt) as Record<string, never> | undefined;
    if (rec === undefined || rec.worker === worker) return;
    q.keepUnrecorded.run(
      jobId,
      rec.worker,
      job.receipt,
      job.output_hash,
      job.tokens,
      rec.locked,
      job.equivocated,
    );
    q.unequivocate.run(jobId);
  }

  /**
   * What the claims of `worker` (hex) kept from its refused receipts (`unrecorded_claim`
   * entries) would lock together, each counted at most at `stake` (its worker's), counting those
   * whose window is not over at `now`: a claim is kept only while the worker's stake covers this
   * and its own lock (`claimKeepable`), so one stake keeps claims for a bounded number of jobs at
   * a time.
   */
  refusedClaimLocks(worker: string, now: number, stake: number): number {
    return (this.#q.refusedLocks.get(stake, worker, now) as { locked: number }).locked;
  }

  /**
   * When the window of `worker`'s (hex) claim for `jobId` kept from a refused receipt
   * (`unrecorded_claim`) ends: its job's holder's, or, kept for want of stake with no receipt
   * holding the job, one challenge window from when it came. Undefined if none was kept.
   */
  refusedClaimUntil(jobId: string, worker: string): number | undefined {
    return (this.#q.refusedUntil.get(jobId, worker) as { until: number } | undefined)?.until;
  }

  /**
   * What an equivocation entry (`equivocation` or `training_equivocation`) slashed from
   * `receiptId` while it still took fraud proofs, when no confirmed fraud proof has rewarded an
   * accuser for it since; else undefined. A confirmed proof about it (or about the worker's other
   * claim) then earns its share out of this, as it would have before the equivocation came
   * (`fraudDecision`).
   */
  unrewardedSlash(receiptId: string): number | undefined {
    return (this.#q.unrewarded.get(receiptId) as { slashed: number } | undefined)?.slashed;
  }

  /**
   * The claim of `worker` (hex) for `jobId` known here though another worker's receipt holds
   * the job (the second receipt of a double assignment, or a receipt convicted here unrecorded),
   * if any: a proof about it or another variant of it settles against it (`fraudSubjectOf`), and
   * another claim of that worker for the job is its equivocation (`receiptDecision`), so the
   * worker is slashed once for the job, as where its receipt held it.
   */
  unrecordedClaim(jobId: string, worker: string): UnrecordedClaim | undefined {
    const row = this.#q.unrecorded.get(jobId, worker) as Record<string, never> | undefined;
    if (row === undefined) return undefined;
    return {
      receiptId: row.receipt,
      outputHash: row.output_hash,
      tokens: row.tokens,
      locked: row.locked,
      equivocated: row.equivocated === 1,
    };
  }

  /**
   * The other half of the cancelled pair whose recorded receipt is `receiptId` (a
   * `cancelled_pair` entry), if one came: the pair is one claim, paid its `reward` once, and
   * slashed by the larger of the two locks.
   */
  cancelledPair(receiptId: string): PairedClaim | undefined {
    const row = this.#q.pair.get(receiptId) as Record<string, never> | undefined;
    if (row === undefined) return undefined;
    return {
      receiptId: row.other,
      outputHash: row.output_hash,
      tokens: row.tokens,
      locked: row.locked,
      reward: row.reward,
    };
  }

  /** Whether the fraud proof with this hash has been settled. */
  proofSettled(hash: string): boolean {
    return this.#q.proof.get(hash) !== undefined;
  }

  /** Whether a verdict with this id is recorded. */
  hasVerdict(id: string): boolean {
    return this.#q.verdictById.get(id) !== undefined;
  }

  /** Every recorded verdict, in the order recorded (read from disk on each call). */
  verdicts(): Verdict[] {
    return decodeVerdicts(this.#q.verdicts.all());
  }

  /**
   * The verdicts signed by `validator` (hex), and about `target` (hex) only when given, in the
   * order recorded: looked up in an index, so only those are read and decoded.
   */
  verdictsBy(validator: string, target?: string): Verdict[] {
    return decodeVerdicts(
      target === undefined
        ? this.#q.verdictsBy.all(validator)
        : this.#q.verdictsByOn.all(validator, target),
    );
  }

  /** Close the database. */
  close(): void {
    this.#db.close();
  }
}

/** Verdict rows given their keys per read when an older index is upgraded (bounded memory). */
const VERDICT_KEYS_BATCH = 4096;

function decodeVerdicts(rows: unknown[]): Verdict[] {
  return (rows as { verdict: Uint8Array }[]).map((row) => decodeCbor(row.verdict) as Verdict);
}

/**
 * Give every verdict row its validator and target (hex), indexed: an index created before they
 * were kept gets the columns, filled from the verdicts it holds (the rows say all it takes, so
 * nothing is read from the log: rebuilding the index of a ledger of 200,000 verdicts from the log
 * took 17 s, review s57), and so do rows an older version wrote since. In one transaction: a
 * crash leaves the index as it was, and the next open does it again. With nothing to fill, it
 * costs one lookup in the index.
 */
function addVerdictKeys(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(verdicts)").all() as { name: string }[];
  db.exec("BEGIN");
  try {
    for (const column of ["validator", "target"]) {
      if (!columns.some((c) => c.name === column)) {
        db.exec(`ALTER TABLE verdicts ADD COLUMN ${column} TEXT`);
      }
    }
    db.exec(
      "CREATE INDEX IF NOT EXISTS verdicts_by_validator ON verdicts (validator, target, seq)",
    );
    const unkeyed = db.prepare(
      `SELECT seq, verdict FROM verdicts WHERE validator IS NULL LIMIT ${VERDICT_KEYS_BATCH}`,
    );
    const key = db.prepare("UPDATE verdicts SET validator = ?, target = ? WHERE seq = ?");
    for (;;) {
      const rows = unkeyed.all() as { seq: number; verdict: Uint8Array }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        const v = decodeCbor(row.verdict) as Verdict;
        key.run(toHex(v.validator), toHex(v.target), row.seq);
      }
    }
    db.exec("COMMIT");
  } catch (error) {
    // Only if still open: SQLite ends it itself on a full disk, and the ROLLBACK's own error
    // would hide that one (review s72).
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/**
 * Give an index created before training receipts existed its `kind` column (every receipt it
 * holds is an inference receipt, the column's default).
 */
function addKindColumn(db: DatabaseSync): void {
  const columns = db.prepare("PRAGMA table_info(receipts)").all() as { name: string }[];
  if (!columns.some((c) => c.name === "kind")) {
    db.exec("ALTER TABLE receipts ADD COLUMN kind TEXT NOT NULL DEFAULT 'inference'");
  }
}
