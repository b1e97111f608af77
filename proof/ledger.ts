/**
 * The ledger: an append-only, hash-chained, signed log of useful work on disk.
 *
 * Every change is an entry (`ledger_entry.ts`): signed by the ledger's owner and linked to the
 * previous one by hash, appended and `fsync`'d before the call returns, so an acknowledged entry
 * survives a crash. Balances are never stored as truth: they are derived by replaying the log,
 * so the log is the only truth.
 *
 * What replaying derives is kept in two places, neither of which grows in memory with the log:
 * the working state (`ledger_state.ts`: balances and signed pledges per key, the receipts still
 * inside their window) and the history index (`ledger_index.ts`: every receipt, job, settled
 * accusation and verdict, on disk). Every {@link DEFAULT_CHECKPOINT_EVERY} entries, and on
 * close, the owner signs a checkpoint of the working state (`ledger_checkpoint.ts`); opening
 * verifies that checkpoint and only the entries after it, so open time and memory do not depend
 * on how long the history is. `ledger verify` checks every entry from genesis.
 *
 * On open, the first entry after the checkpoint that fails (bad CBOR, wrong sequence, broken
 * link, bad signature, foreign signer) raises {@link LedgerTamperedError} naming it and the
 * commands that recover (`ledger verify`, `ledger repair`). A torn write from a crash at the
 * very end — a frame cut short, or zeros where the file system allocated space the write never
 * filled; the append was never acknowledged — is cut off, its bytes copied to
 * `ledger.log.torn-<time>` first, not reported as tampering; bytes that could hide an
 * acknowledged entry (a whole entry signed by the owner among them) are damage, however they
 * end (`judgeTail`, `ledger_recovery.ts`).
 *
 * Flow of a receipt: `recordReceipt` (pending; the worker's potential slash is locked from its
 * stake; credited only with its requester's signed assignment, and a second, different receipt
 * of the same worker for the job is equivocation, slashed on arrival) → after the challenge
 * window `finalizeDue` credits `tokens × price` → or, within the
 * window, `settleFraud` with a checked fraud proof: confirmed slashes the worker and rewards the
 * validator, refuted charges the validator for a false accusation.
 *
 * When the ledger's owner challenges a receipt itself, `openChallenge` moves it to `challenged`
 * (durably: a restart mid-challenge cannot let it slip into payment), and the challenge ends in
 * exactly one of: `clearChallenge` (verdict `valid`: pending again, paid when its window
 * closes), `settleFraud` (a checked fraud proof), `settleFault` (a failure that is the worker's
 * but that no fraud proof can carry, such as proof data never served: the slash is burned, not
 * paid to anyone) or `leaveUnresolved` (the validator could not decide: the job is not paid and
 * the worker's stake is released). A challenged receipt is paid only after a `valid` verdict.
 * Storage audits and any other signed verdicts go through `recordVerdict`. There is no token and no chain here: the log is a
 * local signed record that a chain could anchor later.
 *
 * Training receipts (`training/training_receipt.ts`) are receipts of another kind on the same
 * machinery: `recordTrainingReceipt` checks the trainer's signature and the round's terms (a
 * receipt for another round, another start model, or more steps than the round's H is
 * refused), locks `slashMultiplier ×` its credit (`trainingCreditPerStep × steps`) from the
 * trainer's free stake, and a second, different receipt of the trainer for the same round is
 * equivocation, slashed on arrival. From then on it is an open receipt like any other:
 * `finalizeDue` pays it, `openChallenge` / `clearChallenge` / `settleFault` / `leaveUnresolved`
 * end a challenge of it, and `settleTrainingFraud` settles a checked fraud proof (a failed or
 * refused step opening) against it. `ReceiptRecord.kind` tells the two apart.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { decodeCbor } from "../protocols/cbor.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { steeringEvidenceKey, uncreditedReceiptKey } from "./ledger_index.ts";
import type { Identity } from "../protocols/identity.ts";
import { type Receipt, receiptId, verifyReceipt } from "../protocols/receipt.ts";
import { type Verdict, verdictId, verifyVerdict } from "../protocols/verdict.ts";
import { type StakePledge, verifyStakePledge } from "../protocols/stake_pledge.ts";
import { verifyAssignment } from "../protocols/assignment.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "../training/training_receipt.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "./economics.ts";
import { isTokenWidth, MIN_COMMITMENT_CHUNK_SIZE } from "./commitment.ts";
import {
  encodeEntryFrame,
  entryHash,
  FRAME_HEADER_BYTES,
  GENESIS_PREV,
  type LedgerEntry,
  type LedgerEntryKind,
  MAX_ENTRY_BYTES,
  signEntry,
} from "./ledger_entry.ts";
import { InsufficientStakeError, LedgerError, LedgerRejectedError } from "./ledger_errors.ts";
import { LedgerLog, LOG_FILE } from "./ledger_log.ts";
import {
  type Account,
  LedgerState,
  type ReceiptKind,
  type ReceiptRecord,
  type ReceiptStatus,
  roundCredits,
  takesFraudProofs,
} from "./ledger_state.ts";
import { INDEX_FILE, LedgerIndex, positionAfter } from "./ledger_index.ts";
import { recoverLedger } from "./ledger_recovery.ts";
import {
  CHECKPOINT_FILE,
  type LedgerCheckpoint,
  signCheckpoint,
  writeCheckpoint,
} from "./ledger_checkpoint.ts";
import { removeTemporaries, syncDirectory } from "./_durable_file.ts";
import { pathExists } from "../storage/path_exists.ts";

export * from "./ledger_errors.ts";
export { entryHash, entrySigningBytes } from "./ledger_entry.ts";
export type { LedgerEntry, LedgerEntryKind } from "./ledger_entry.ts";
export type { Account, ReceiptKind, ReceiptRecord, ReceiptStatus } from "./ledger_state.ts";
export { roundCredits, takesFraudProofs, worthFraudCheck } from "./ledger_state.ts";

/**
 * Entries between two checkpoints. Opening verifies at most this many entries (about 0.15 ms
 * each: signature, hash, replay), so a ledger opens in well under a second however long its
 * history; each checkpoint is one signed, `fsync`'d write of the working state.
 */
export const DEFAULT_CHECKPOINT_EVERY = 1024;

/**
 * Paid receipts a `steering` entry lists by id at most (about 66 bytes each: 4,096 take 270 KB),
 * the most recent; the rest are counted (`evidence`). The list is a record nothing replays (the
 * cut is `slashed`, the unpaid ones are `uncredited`), and unbounded it outgrew
 * `MAX_ENTRY_BYTES` past about 15,900 receipts: an entry the next open refuses (review s51).
 */
const MAX_STEERING_RECEIPTS_LISTED = 4096;

/**
 * Pending receipts one `steering` entry marks unpaid at most (`uncredited`, about 66 bytes each:
 * with the paid ones listed, an entry stays near 540 KB). The replay needs every id, so a
 * conviction with more is settled in several entries: `part` entries first, each marking the
 * next ones and cutting nothing, then the conviction's own with the rest and the cut. Listed in
 * one entry, past about 11,800 pending receipts it was over `MAX_ENTRY_BYTES` and refused: the
 * conviction never settled, the steerer was paid, and the validator failed every start (review
 * s52).
 */
const MAX_STEERING_UNCREDITED_PER_ENTRY = 4096;

/** Which pledges {@link Ledger.pledges} lists. */
export interface PledgeQuery {
  /** Only this key's pledge. */
  key?: Uint8Array;
  /** At most this many: the keys active in this ledger first, then the newest. */
  limit?: number;
}

/** Options of {@link Ledger.open}. */
export interface LedgerOptions {
  /** Economics; default {@link DEFAULT_ECONOMICS}. */
  economics?: Partial<EconomicParams>;
  /**
   * Price per output token (per run for one-shot models) of a model CID; default
   * `economics.defaultTokenPrice` for all.
   */
  tokenPrice?: (model: string) => number;
  /** Clock in unix ms; default `Date.now`. Injected by tests. */
  now?: () => number;
  /**
   * Write a signed checkpoint every this many entries (and on close); default
   * {@link DEFAULT_CHECKPOINT_EVERY}. 0 writes none: every open verifies the whole log.
   */
  checkpointEvery?: number;
}

/** What a caller proves when settling a fraud proof (see `proof/fraud_check.ts`). */
export interface FraudSettlement {
  /** The receipt the proof is about. */
  receiptId: string;
  /**
   * That receipt, as its worker signed it (the proof carries it). Given, a proof about a receipt
   * not recorded here settles against the one its worker had recorded here for the same job
   * (another variant it signed: see {@link Ledger.fraudSubject}).
   */
  receipt?: Receipt;
  /** Hex hash of the fraud proof. */
  fraudProofHash: string;
  /** The validator who submitted it. */
  validator: Uint8Array;
  /** Whether the independent check confirmed it. */
  confirmed: boolean;
  /** Reason code of the check (kept for the record). */
  reason: string;
  /**
   * When this ledger's owner took the proof for checking (unix ms, its clock). A proof taken
   * inside the receipt's window settles after it — its check took the time — as in the ledgers
   * that checked it sooner; absent: now.
   */
  takenAt?: number;
  /**
   * The proof rests on its validator's word (a training challenge with no answer by its
   * deadline, `opening_missing`): confirmed, the slash is burned and nobody is rewarded, so
   * nobody gains by claiming it (as for inference proof data withheld, `settleFault`).
   */
  wordOnly?: boolean;
}

/**
 * The terms of the training round a receipt is recorded against, as the round's announcement
 * set them (not as the receipt claims them).
 */
export interface TrainingRoundTerms {
  /** Round number. */
  round: number;
  /** CID of the round's start model. */
  startModel: string;
  /** Local steps H the round asks for: a receipt may claim at most this many. */
  steps: number;
}

/**
 * The trainer's slot in a round: a round is its number and start model (a coordinator that
 * restarts a round gives it a new number), and a trainer has one receipt per round. Kept in
 * the history index where jobs are (one payment per slot, equivocation by slot); the prefix
 * keeps it apart from inference job ids.
 */
export function trainingSlot(trainer: string, round: number, startModel: string): string {
  return `training/${round}/${startModel}/${trainer}`;
}

/** How much of the ledger is held in memory (see {@link Ledger.workingSet}). */
export interface LedgerWorkingSet {
  /** Keys with balances in memory. */
  accounts: number;
  /** Receipts inside their window or under challenge. */
  openReceipts: number;
}

/**
 * The append-only ledger. Open with {@link Ledger.open}; one writer per directory (the node's
 * data-directory lock, `node/data_dir_lock.ts`, keeps it so).
 */
export class Ledger {
  readonly #dir: string;
  readonly #log: LedgerLog;
  readonly #index: LedgerIndex;
  readonly #identity: Identity;
  readonly #owner: string;
  readonly #economics: EconomicParams;
  readonly #tokenPrice: (model: string) => number;
  readonly #now: () => number;
  readonly #checkpointEvery: number;
  #state = new LedgerState();
  #head = GENESIS_PREV;
  #seq = 0;
  /** Byte offset of the last entry (its end is the log's size). */
  #last = 0;
  /** Entries the last checkpoint written covers. */
  #checkpointSeq = 0;
  #closed = false;
  /** Set when a write failed: the file may hold a torn entry; see `#transition`. */
  #poisoned: Error | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    dir: string,
    log: LedgerLog,
    index: LedgerIndex,
    identity: Identity,
    options: LedgerOptions,
  ) {
    this.#dir = dir;
    this.#log = log;
    this.#index = index;
    this.#identity = identity;
    this.#owner = toHex(identity.publicKey);
    this.#economics = { ...DEFAULT_ECONOMICS, ...options.economics };
    this.#tokenPrice = options.tokenPrice ?? (() => this.#economics.defaultTokenPrice);
    this.#now = options.now ?? Date.now;
    this.#checkpointEvery = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  }

  /**
   * Open (or create) the ledger in `dir`: verify its checkpoint and the entries after it, and
   * bring the history index up to date (a damaged index, one SQLite fails on, is deleted and
   * built anew from the log). Its directory (and every directory above it that this open
   * creates, and its parent) is synced at every open once its files exist, so they survive a
   * power cut before the first checkpoint, even when an earlier open was killed before its sync.
   *
   * @example
   * ```ts
   * import { Ledger } from "./ledger.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const dir = await Deno.makeTempDir();
   * const ledger = await Ledger.open(dir, Identity.generate());
   * await ledger.close();
   * ```
   * @throws {LedgerTamperedError} naming the first entry that fails verification, and how to
   *   recover.
   */
  static async open(dir: string, identity: Identity, options: LedgerOptions = {}): Promise<Ledger> {
    // The directories this open creates (the ledger's, and any missing above it): each one's
    // name lives in its parent, synced below.
    const newDirs: string[] = [];
    for (let d = resolve(dir); !await pathExists(d, { followSymlinks: false }); d = dirname(d)) {
      newDirs.push(d);
    }
    await Deno.mkdir(dir, { recursive: true });
    // A checkpoint, or a copy of a log's tail set aside, cut short by a crash: never read.
    await removeTemporaries(
      dir,
      (name) => name === CHECKPOINT_FILE || name.startsWith(`${LOG_FILE}.`),
    );
    const log = await LedgerLog.open(join(dir, LOG_FILE), { write: true });
    let index: LedgerIndex | undefined;
    try {
      const indexPath = join(dir, INDEX_FILE);
      index = await openIndex(indexPath);
      const recover = () =>
        recoverLedger(dir, log, index!, identity.publicKey, options.now ?? Date.now);
      let recovered;
      try {
        recovered = await recover();
      } catch (error) {
        if (!isIndexError(error)) throw error;
        // The index is derived data, and SQLite found it damaged (a torn page, a bad sector):
        // built anew from the log, once.
        closeQuietly(index);
        index = undefined;
        await removeIndex(indexPath);
        index = LedgerIndex.open(indexPath);
        recovered = await recover();
      }
      const ledger = new Ledger(dir, log, index, identity, options);
      ledger.#state = recovered.state;
      ledger.#seq = recovered.seq;
      ledger.#head = recovered.head;
      ledger.#last = recovered.last;
      ledger.#checkpointSeq = recovered.checkpointSeq;
      if (ledger.#seq === 0) {
        await ledger.#append("genesis", { owner: ledger.#owner, version: 1 });
      }
      // A new file's name lives in its directory: without this, a power cut before the first
      // checkpoint (which syncs the directory) could lose the log with its acknowledged entries.
      // Synced at every open, not only when this one created the files: an earlier open killed
      // before its sync left them there, their names not yet durable (review s45). The parent
      // too, for the same reason, and the parent of every directory this open created.
      await syncDirectory(dir);
      for (const d of new Set([resolve(dir), ...newDirs])) await syncDirectory(dirname(d));
      if (
        ledger.#checkpointEvery > 0 &&
        ledger.#seq - ledger.#checkpointSeq >= ledger.#checkpointEvery
      ) {
        await ledger.#checkpoint(); // a long unverified tail is not left for the next open
      }
      return ledger;
    } catch (e) {
      index?.close();
      log.close();
      throw e;
    }
  }

  /** Serialize appends: one writer, entries in call order. */
  #append(kind: LedgerEntryKind, body: Record<string, unknown>): Promise<LedgerEntry> {
    return this.#transition(kind, () => body) as Promise<LedgerEntry>;
  }

  /**
   * One state transition, atomic: `decide` runs in the writer's turn, after every earlier
   * append has been applied, and returns the entry's body (or null: nothing to do); its checks
   * and the append are one step, so two settlements of one receipt, or a settlement racing
   * `finalizeDue`, cannot both pass their checks. A write that fails leaves the file in an
   * unknown state: the ledger is poisoned (every later call fails) and its owner reopens it
   * from disk, where a torn tail is cut.
   */
  #transition(
    kind: LedgerEntryKind,
    decide: () => Record<string, unknown> | null,
  ): Promise<LedgerEntry | null> {
    return this.#transitionOf(() => {
      const body = decide();
      return body === null ? null : { kind, body };
    });
  }

  /**
   * {@link Ledger.#transition} where `decide` also chooses the entry's kind: one call whose
   * outcome depends on what is recorded (a receipt that is equivocation, a late assignment, or
   * new) decides it in one turn, so two such calls racing cannot both decide on stale state.
   */
  #transitionOf(
    decide: () => { kind: LedgerEntryKind; body: Record<string, unknown> } | null,
  ): Promise<LedgerEntry | null> {
    const run = this.#queue.then(async () => {
      if (this.#closed) throw new LedgerError("ledger_closed", "ledger is closed");
      this.#throwIfPoisoned();
      const decided = decide();
      if (decided === null) return null;
      const { kind, body } = decided;
      const entry = signEntry({
        seq: this.#seq,
        prev: this.#head,
        at: this.#now(),
        kind,
        body,
        signer: this.#identity.publicKey,
      }, this.#identity);
      const frame = encodeEntryFrame(entry);
      if (frame.length - FRAME_HEADER_BYTES > MAX_ENTRY_BYTES) {
        // The log's reader takes a longer frame for damage (an impossible length): written, the
        // acknowledged entry would stop the ledger from opening, and a repair would set it aside
        // with every entry after it (review s51). Refused before the write: nothing poisoned.
        throw new LedgerRejectedError(
          "entry_too_large",
          `a ${kind} entry of ${
            frame.length - FRAME_HEADER_BYTES
          } bytes is over ${MAX_ENTRY_BYTES}`,
        );
      }
      const offset = this.#log.size;
      try {
        // Durable before acknowledged: an entry the caller saw succeed survives a crash.
        await this.#log.append(frame);
        this.#state.apply(entry);
        this.#index.apply(entry, positionAfter(entry, offset, offset + frame.length, this.#owner));
      } catch (error) {
        this.#poisoned = error as Error;
        throw error;
      }
      this.#head = entryHash(entry);
      this.#seq = entry.seq + 1;
      this.#last = offset;
      if (this.#checkpointEvery > 0 && this.#seq - this.#checkpointSeq >= this.#checkpointEvery) {
        // The entry is durable and applied: a checkpoint that fails to write only means the
        // next open verifies more entries; it is tried again at the next one.
        await this.#checkpoint().catch(() => {});
      }
      return entry;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * After a failed write the state in memory may hold an entry the log does not (or the reverse):
   * nothing is appended, and no checkpoint signed, until the ledger is reopened from disk.
   */
  #throwIfPoisoned(): void {
    if (this.#poisoned) {
      throw new LedgerError("ledger_poisoned", "a write failed: reopen the ledger", {
        cause: this.#poisoned,
      });
    }
  }

  /** Sign and write a checkpoint of the working state as it is now (in the writer's turn). */
  async #checkpoint(): Promise<void> {
    const checkpoint: LedgerCheckpoint = signCheckpoint({
      seq: this.#seq,
      head: this.#head,
      last: this.#last,
      end: this.#log.size,
      at: this.#now(),
      state: this.#state.snapshot(),
    }, this.#identity);
    await writeCheckpoint(this.#dir, checkpoint);
    this.#checkpointSeq = checkpoint.seq;
  }

  /**
   * Write a checkpoint now, after the appends already queued (the ledger also writes one every
   * `checkpointEvery` entries and on close).
   *
   * @throws {LedgerError} `ledger_poisoned` after a failed write (the state in memory may not be
   *   the log's: reopen the ledger), `ledger_closed` once closed.
   */
  async checkpoint(): Promise<void> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new LedgerError("ledger_closed", "ledger is closed");
      this.#throwIfPoisoned();
      return this.#checkpoint();
    });
    this.#queue = run.catch(() => {});
    await run;
  }

  /** The record of a receipt, open or closed (the live one when open: do not hand it out). */
  #record(receiptId: string): ReceiptRecord | undefined {
    return this.#state.open(receiptId) ?? this.#index.receipt(receiptId);
  }

  /** Economics in force. */
  get economics(): Readonly<EconomicParams> {
    return this.#economics;
  }

  /** Number of entries (including genesis). */
  get length(): number {
    return this.#seq;
  }

  /** Hex hash of the last entry: commits to the whole log (what a chain would anchor). */
  get head(): string {
    return this.#head;
  }

  /**
   * All entries, oldest first, read from disk on each call: for audits and tests (it costs the
   * whole log's size in memory while the array lives), never on a hot path.
   */
  entries(): readonly LedgerEntry[] {
    const end = this.#log.size;
    const bytes = Deno.readFileSync(this.#log.path).subarray(0, end);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const entries: LedgerEntry[] = [];
    for (let offset = 0; offset + FRAME_HEADER_BYTES <= bytes.length;) {
      const length = view.getUint32(offset);
      const payload = bytes.subarray(
        offset + FRAME_HEADER_BYTES,
        offset + FRAME_HEADER_BYTES + length,
      );
      entries.push(decodeCbor(payload) as LedgerEntry);
      offset += FRAME_HEADER_BYTES + length;
    }
    return entries;
  }

  /** How much of the ledger is held in memory: it depends on keys and open receipts only. */
  workingSet(): LedgerWorkingSet {
    return { accounts: this.#state.accountCount, openReceipts: this.#state.openCount };
  }

  /** Balances of a key (zeros when unknown). */
  account(key: Uint8Array): Account {
    return { ...this.#state.account(toHex(key)) };
  }

  /** Whether `validator` has already had an accusation against `receiptId` settled here. */
  hasAccused(validator: Uint8Array, receiptId: string): boolean {
    return this.#index.hasAccused(toHex(validator), receiptId);
  }

  /** Whether `key` has ever had stake recorded here (deposit or pledge). */
  hasStaked(key: Uint8Array): boolean {
    return this.#state.hasStaked(toHex(key));
  }

  /** The ledger's record of a receipt, if any. */
  receipt(receiptId: string): ReceiptRecord | undefined {
    const r = this.#record(receiptId);
    return r && { ...r };
  }

  /**
   * The record a fraud proof about `receipt` settles here: the receipt's own; else, when
   * `receipt` verifies under its worker's key, the inference receipt that same worker had
   * recorded here for the same job. A worker may sign several variants of its receipt for one
   * job (other fingerprints, timings or output) and send each ledger another: each records the
   * first it sees and refuses the rest, yet a proof against any of them convicts the worker that
   * signed it, on every ledger (review s46). A receipt another key signed never settles
   * against this worker's.
   */
  fraudSubject(receipt: Receipt): ReceiptRecord | undefined {
    const r = this.#subject(receipt);
    return r && { ...r };
  }

  /** {@link Ledger.fraudSubject}, for a proof that names its receipt `id` (another: none). */
  #subject(receipt: Receipt, id = receiptId(receipt)): ReceiptRecord | undefined {
    if (id !== receiptId(receipt)) return undefined;
    const own = this.#record(id);
    if (own !== undefined) return own;
    // Only the worker's own signature binds it to a variant it did not send here.
    if (!verifyReceipt(receipt).ok) return undefined;
    const recordedId = this.#index.jobReceipt(receipt.jobId);
    const recorded = recordedId === undefined ? undefined : this.#record(recordedId);
    const same = recorded?.kind === "inference" && recorded.worker === toHex(receipt.worker);
    return same ? recorded : undefined;
  }

  /** Whether `worker` has ever been slashed here (a confirmed fraud, a fault, equivocation). */
  convicted(worker: Uint8Array): boolean {
    return this.#index.convicted(toHex(worker));
  }

  /** The id of the receipt recorded for job `jobId`, if any (a job is paid once). */
  receiptOfJob(jobId: string): string | undefined {
    return this.#index.jobReceipt(jobId);
  }

  /** Whether the verdict with id `verdictId` is recorded here. */
  hasVerdict(verdictId: string): boolean {
    return this.#index.hasVerdict(verdictId);
  }

  /**
   * Verdicts recorded, in the order recorded (read from the history index on each call): every
   * one, decoded (200,000 take about 2 s and 270 MB): for audits and tests. A caller that needs
   * one validator's asks {@link Ledger.verdictsBy}.
   */
  verdicts(): Verdict[] {
    return this.#index.verdicts();
  }

  /**
   * The verdicts `validator` signed, only those about `target` when given, in the order recorded:
   * exactly what filtering {@link Ledger.verdicts} by them gives, read through an index, so the
   * cost is theirs, not every verdict's (a validator's own at its start, its own about one worker
   * at a steering conviction: 2 to 3 s each on a ledger of 200,000 verdicts, review s57).
   *
   * @example
   * ```ts
   * import { Ledger } from "./ledger.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const me = Identity.generate();
   * const ledger = await Ledger.open(await Deno.makeTempDir(), me);
   * ledger.verdictsBy(me.publicKey).length; // 0
   * await ledger.close();
   * ```
   */
  verdictsBy(validator: Uint8Array, target?: Uint8Array): Verdict[] {
    return this.#index.verdictsBy(toHex(validator), target && toHex(target));
  }

  /** Credit `amount` of stake to `key` (a deposit; there is no token, this is bookkeeping). */
  async deposit(key: Uint8Array, amount: number): Promise<void> {
    if (!(amount > 0) || !Number.isFinite(amount)) throw new RangeError("amount must be > 0");
    await this.#append("stake", { key: toHex(key), amount });
  }

  /**
   * Record another key's signed stake pledge, once per key: a key that already has stake here
   * (pledged, deposited, or slashed down to nothing) cannot add more by pledging again. The
   * signed pledge is kept whole (in its entry and in the working state), so it can be passed on
   * to peers that join later ({@link Ledger.pledges}).
   *
   * @returns whether the pledge was recorded (false: the key already has stake here).
   * @throws {LedgerRejectedError} for a pledge whose signature does not verify.
   */
  async recordPledge(pledge: StakePledge): Promise<boolean> {
    if (!verifyStakePledge(pledge)) {
      throw new LedgerRejectedError("pledge_rejected", "stake pledge signature does not verify");
    }
    const key = toHex(pledge.key);
    const entry = await this.#transition("stake", () =>
      this.#state.hasStaked(key) ? null : {
        key,
        amount: pledge.amount,
        pledge: { v: pledge.v, issuedAt: pledge.issuedAt, sig: pledge.sig },
      });
    return entry !== null;
  }

  /**
   * The signed pledges recorded here, as each pledger signed it (so a peer checks each one
   * itself). Deposits are not pledges and are not listed. Held in memory, one per pledged key
   * (about 150 bytes each), and in every checkpoint.
   *
   * @param query Absent: every pledge, in the order recorded. `key`: that key's pledge only
   *   (none or one). `limit`: at most that many, for a peer that connects (a ledger may hold
   *   thousands of pledges of keys that never did anything): the keys active here first (an open
   *   receipt, a balance, stake that changed since the pledge), then the rest, each group newest
   *   first.
   */
  pledges(query?: PledgeQuery): StakePledge[] {
    const all = this.#state.pledges();
    if (query?.key !== undefined) {
      const pledge = this.#pledgeOf(toHex(query.key));
      return pledge === undefined ? [] : [{ ...pledge }];
    }
    if (query?.limit === undefined) return [...all].map((p) => ({ ...p }));
    const active: StakePledge[] = [];
    const idle: StakePledge[] = [];
    for (const pledge of [...all].reverse()) {
      const a = this.#state.account(toHex(pledge.key));
      const touched = a.locked !== 0 || a.balance !== 0 || a.stake !== roundCredits(pledge.amount);
      (touched ? active : idle).push(pledge);
      if (active.length >= query.limit) break;
    }
    return [...active, ...idle].slice(0, Math.max(0, query.limit)).map((p) => ({ ...p }));
  }

  /** The pledge recorded for hex `key`, if any (a scan: asked only when a peer lacks one). */
  #pledgeOf(key: string): StakePledge | undefined {
    if (!this.#state.hasStaked(key)) return undefined;
    for (const pledge of this.#state.pledges()) if (toHex(pledge.key) === key) return pledge;
    return undefined;
  }

  /**
   * Record a signed receipt as pending. Its reward is `tokenCount × price(model)`, credited when
   * it is final only if `options.assignment` is its job's assignment to its worker, signed by
   * another key ({@link verifyAssignment}); unrequested work is recorded (and can be slashed)
   * but earns 0. The slash `slashMultiplier × reward` is locked from the worker's free stake
   * until it is final. A receipt recorded without an assignment gets one attached by a later
   * call that brings it (the requester's announcement may arrive after the worker's), while it
   * is open, or left unpaid by its owner's undecided challenge (earning nothing then).
   *
   * @throws {LedgerRejectedError} for a receipt that does not verify, is already recorded, or is
   *   for a job another receipt was recorded for (one payment per job; except that an assigned
   *   receipt takes the job from another worker's unassigned one, which stays recorded and
   *   earns nothing); `double_assignment` for a receipt assigned to another worker than the
   *   job's recorded assigned receipt (the requester contradicted itself: the recorded one
   *   loses its credit if still open); `receipt_rejected` for a
   *   text receipt whose commitment has fewer than {@link MIN_COMMITMENT_CHUNK_SIZE} positions
   *   per chunk (its fraud proofs would not fit the frame that carries them to other nodes) or
   *   packs its tokens at a width no proof data has (not 2 or 4: no fraud proof could open it).
   * @throws {InsufficientStakeError} when the worker cannot back the slash.
   *
   * `options.uncredited` (a reason code, kept in the entry): recorded, locked and slashable like
   * any receipt, but earning 0 here even with its assignment (the ledger's owner cannot check
   * it: `model_unavailable`). Decided when the receipt is recorded: a later call that attaches
   * its assignment neither lifts it nor adds it.
   */
  async recordReceipt(
    receipt: Receipt,
    options: { assignment?: unknown; uncredited?: string } = {},
  ): Promise<ReceiptRecord> {
    const check = verifyReceipt(receipt);
    if (!check.ok) throw new LedgerRejectedError("receipt_rejected", check.message);
    // One turn of the writer decides what this receipt is, so two calls racing (the worker's
    // announcement and the requester's, or two receipts of one worker for one job) each see
    // what the other recorded.
    const entry = await this.#transitionOf(this.#receiptDecision(receipt, check, options));
    if (entry?.kind === "equivocation") {
      throw new LedgerRejectedError(
        "equivocation",
        "the worker signed two different receipts for one job: its stake is slashed",
      );
    }
    if (entry?.kind === "double_assignment") {
      throw new LedgerRejectedError(
        "double_assignment",
        "the job's requester assigned it to two workers: neither receipt is paid",
      );
    }
    return this.receipt(check.receiptId)!;
  }

  /**
   * The code {@link Ledger.recordReceipt} would refuse `receipt` with now (`equivocation` and
   * `double_assignment` included: refused, though they write an entry), or undefined when it
   * would record it (or attach its assignment). Writes nothing. A caller that must do work for a
   * receipt only once it is recorded asks first: the ValidatorActor keeps a drawn receipt on disk
   * before recording it, and doing that for one the ledger then refuses made the refusal take
   * longer exactly when the coin drew it, so anyone could learn the coin of a receipt without
   * committing to it (review s52).
   */
  receiptRefusal(
    receipt: Receipt,
    options: { assignment?: unknown; uncredited?: string } = {},
  ): string | undefined {
    const check = verifyReceipt(receipt);
    if (!check.ok) return "receipt_rejected";
    try {
      const { kind } = this.#receiptDecision(receipt, check, options)();
      return kind === "equivocation" || kind === "double_assignment" ? kind : undefined;
    } catch (error) {
      if (error instanceof LedgerError) return error.code;
      throw error;
    }
  }

  /**
   * What recording `receipt` (`check`: its signature verified) is, decided when called, on what
   * is recorded then: the entry to write, or a refusal thrown (see {@link Ledger.recordReceipt}).
   */
  #receiptDecision(
    receipt: Receipt,
    check: { receiptId: string },
    options: { assignment?: unknown; uncredited?: string },
  ): () => { kind: LedgerEntryKind; body: Record<string, unknown> } {
    const worker = toHex(receipt.worker);
    const reward = this.#rewardOf(receipt);
    const locked = this.#lockOf(reward);
    const assignment = options.assignment;
    const assigned = verifyAssignment(assignment, { jobId: receipt.jobId, worker: receipt.worker });
    const requester = assigned ? toHex(assignment.requester) : null;
    const uncredited = options.uncredited;
    const credit = assigned && uncredited === undefined ? reward : 0;
    return () => {
      const firstId = this.#index.jobReceipt(receipt.jobId);
      const first = firstId === undefined ? undefined : this.#record(firstId);
      // Another receipt of this worker for a job it already has one recorded for, claiming
      // other work (another output or token count): two signed answers to one job. Its own
      // signatures convict it; the first receipt is slashed (or, if already paid, its stake is
      // cut as much), by the larger of the two claims (`#equivocationSlash`).
      if (
        first !== undefined && first.receiptId !== check.receiptId && first.worker === worker &&
        !this.#index.equivocated(receipt.jobId)
      ) {
        const claim = this.#index.claim(receipt.jobId);
        // The same claim signed twice (fingerprints' last bits) is not equivocation: it is
        // refused below, not paid twice.
        const slashed = this.#equivocationSlash(first, locked);
        if (
          claim !== undefined &&
          (claim.outputHash !== receipt.outputHash || claim.tokens !== receipt.tokenCount) &&
          (first.status !== "fraud" || slashed > 0)
        ) {
          return {
            kind: "equivocation",
            body: {
              jobId: receipt.jobId,
              receiptId: first.receiptId,
              second: receipt as unknown as Record<string, unknown>,
              slashed,
            },
          };
        }
      }
      if (receipt.kind === "text" && receipt.commitment.chunkSize < MIN_COMMITMENT_CHUNK_SIZE) {
        // Not recorded, so never paid: no fraud proof against it would reach the other ledgers.
        throw new LedgerRejectedError(
          "receipt_rejected",
          `the commitment has ${receipt.commitment.chunkSize} positions per chunk, fewer than ${MIN_COMMITMENT_CHUNK_SIZE}`,
        );
      }
      if (receipt.kind === "text" && !isTokenWidth(receipt.commitment.tokenBytes)) {
        // Not recorded, so never paid: no proof data opens a commitment of another width, so
        // no fraud proof could convict it (review s46: the checker threw on its openings).
        throw new LedgerRejectedError(
          "receipt_rejected",
          `the commitment packs tokens ${receipt.commitment.tokenBytes} bytes wide, not 2 or 4`,
        );
      }
      const existing = this.#record(check.receiptId);
      if (existing !== undefined) {
        // Recorded before without its assignment: the requester's announcement came second.
        const open = existing.status === "pending" || existing.status === "challenged";
        // Meanwhile another worker's assigned receipt took the job from it: the requester
        // assigned the job twice, and this ends as if both had come with their assignments
        // (below): the one holding the job loses its credit while open, this one earns nothing.
        if (requester !== null && first !== undefined && first.receiptId !== check.receiptId) {
          const twice = doubleAssignment(first, receipt, assignment);
          if (twice !== undefined) return twice;
          throw new LedgerRejectedError(
            "job_already_recorded",
            "another receipt for this job is already recorded",
          );
        }
        // Left unpaid by the owner's own undecided challenge, it takes its assignment all the
        // same, earning nothing here: as if the assigned copy had come first, the job is
        // assigned here (another worker's assigned receipt for it is a double assignment, not a
        // takeover of the job), and the owner passes the assigned receipt on, once, to the
        // ledgers that hear it only through it and pay it (review s48: they never heard it).
        const undecided = existing.status === "unpaid";
        if (requester !== null && (open || undecided) && existing.requester === undefined) {
          // Evidence of a steering conviction is never paid, whenever its assignment comes.
          // Whether the owner could check it was decided at intake, where it was drawn or not:
          // recorded uncredited (its model was not here), it earns nothing whatever the owner
          // holds when its assignment comes; recorded checkable, it is credited even if the
          // model has left since (review s47: the late announcement decided both ways).
          const unpaid = undecided ||
            this.#index.proofSettled(steeringEvidenceKey(check.receiptId)) ||
            this.#index.proofSettled(uncreditedReceiptKey(check.receiptId));
          return {
            kind: "assigned",
            body: { receiptId: check.receiptId, requester, credit: unpaid ? 0 : reward },
          };
        }
        throw new LedgerRejectedError("duplicate_receipt", "receipt already recorded");
      }
      // An assigned receipt takes the job from another worker's receipt recorded without one: a
      // copier that re-signed the worker's announced receipt under its own key and got here
      // first cannot be assigned the job (only the requester the job names can sign that), so
      // it keeps its record (and its lock) but not the job's one payment.
      const supersedes = first !== undefined && requester !== null && first.worker !== worker &&
        first.requester === undefined;
      // Two workers' receipts for one job, each with a valid assignment: the requester (the one
      // key the job names) signed two contradicting assignments, say to take a worker's output
      // for a key of its own. Neither is paid, whichever came first: the first loses its credit
      // while it is open (a paid receipt stays paid), the second is not recorded. One entry per
      // job keeps the evidence (the second receipt and its assignment).
      if (
        first !== undefined && requester !== null && first.worker !== worker &&
        first.requester !== undefined
      ) {
        const twice = doubleAssignment(first, receipt, assignment);
        if (twice !== undefined) return twice;
      }
      if (firstId !== undefined && !supersedes) {
        // One payment per job: the same work re-signed with other timings, signed again under
        // another key, or answered again from a cache is not paid twice.
        throw new LedgerRejectedError(
          "job_already_recorded",
          "another receipt for this job is already recorded",
        );
      }
      const acc = this.#state.account(worker);
      const free = roundCredits(acc.stake - acc.locked);
      if (locked > free) throw new InsufficientStakeError(locked, free);
      return {
        kind: "receipt",
        body: {
          receiptId: check.receiptId,
          jobId: receipt.jobId,
          model: receipt.model,
          worker,
          tokens: receipt.tokenCount,
          outputHash: receipt.outputHash,
          credit,
          requester,
          locked,
          pendingUntil: this.#now() + this.#economics.challengeWindowMs,
          ...(uncredited === undefined ? {} : { uncredited }),
        },
      };
    };
  }

  /**
   * Useful work: tokens × the model's price; a one-shot (tensor) job counts as one unit. To a
   * millionth of a credit, as every amount ({@link roundCredits}).
   */
  #rewardOf(receipt: Receipt): number {
    const units = receipt.kind === "tensor" ? 1 : receipt.tokenCount;
    return roundCredits(units * this.#tokenPrice(receipt.model));
  }

  /** The stake a receipt earning `reward` locks: `slashMultiplier ×` it, to the quantum. */
  #lockOf(reward: number): number {
    return roundCredits(reward * this.#economics.slashMultiplier);
  }

  /**
   * The other claim `receipt` makes for the job of `rec` (the receipt its worker had recorded
   * here, which a proof about `receipt` settles: {@link Ledger.fraudSubject}): its job and the
   * stake it would lock, when it claims other work (another output or token count) and the job
   * was not slashed for equivocation yet; else undefined (the same receipt, or the same claim).
   */
  #otherClaim(
    rec: ReceiptRecord,
    receipt: Receipt | undefined,
  ): { jobId: string; locked: number } | undefined {
    if (receipt === undefined || receiptId(receipt) === rec.receiptId) return undefined;
    if (this.#index.equivocated(receipt.jobId)) return undefined;
    const claim = this.#index.claim(receipt.jobId);
    if (claim === undefined) return undefined;
    if (claim.outputHash === receipt.outputHash && claim.tokens === receipt.tokenCount) {
      return undefined;
    }
    return {
      jobId: receipt.jobId,
      locked: this.#lockOf(this.#rewardOf(receipt)),
    };
  }

  /**
   * Record a signed training receipt as pending, against the terms of its round. Its reward is
   * `trainingCreditPerStep × steps`, credited when final unless `options.credited` is false: the
   * caller vouches for the terms (its node coordinated the round, or audited its outcome), while
   * terms that arrive by gossip alone are the trainer's word, and a round nobody ran must earn
   * nothing. A receipt recorded
   * without credit gets it from {@link Ledger.creditTrainingReceipt}. The slash
   * `slashMultiplier × reward` is locked from the trainer's free stake until then, credited or
   * not. A second, different receipt of the same
   * trainer for the same round is equivocation: the first is slashed (or, if already closed, the
   * trainer's stake is cut as much) and the second is not recorded.
   *
   * @throws {LedgerRejectedError} `receipt_rejected` for a receipt that does not verify,
   *   `round_mismatch` for one of another round or start model, `too_many_steps` for one
   *   claiming more steps than the round's H, `equivocation` (after slashing),
   *   `duplicate_receipt`, or `round_already_recorded` (the trainer's round already has a
   *   receipt, slashed before).
   * @throws {InsufficientStakeError} when the trainer cannot back the slash.
   */
  async recordTrainingReceipt(
    receipt: TrainingReceipt,
    terms: TrainingRoundTerms,
    options: { credited?: boolean } = {},
  ): Promise<ReceiptRecord> {
    const check = verifyTrainingReceipt(receipt);
    if (!check.ok) throw new LedgerRejectedError("receipt_rejected", check.message);
    if (receipt.round !== terms.round || receipt.startModel !== terms.startModel) {
      throw new LedgerRejectedError(
        "round_mismatch",
        `the receipt is for round ${receipt.round} from ${receipt.startModel}, not round ${terms.round} from ${terms.startModel}`,
      );
    }
    if (!(receipt.steps <= terms.steps)) {
      // The round asked for H steps: billing more is claiming work nobody asked for.
      throw new LedgerRejectedError(
        "too_many_steps",
        `the receipt claims ${receipt.steps} steps, the round allows ${terms.steps}`,
      );
    }
    const receiptId = trainingReceiptId(receipt);
    const trainer = toHex(receipt.trainer);
    const slot = trainingSlot(trainer, receipt.round, receipt.startModel);
    const reward = roundCredits(receipt.steps * this.#economics.trainingCreditPerStep);
    const locked = this.#lockOf(reward);
    const credit = options.credited === false ? 0 : reward;
    // Decided in one turn of the writer, as for inference: two receipts of one trainer for one
    // round racing each other are equivocation, not a refusal of whichever comes second.
    const entry = await this.#transitionOf(() => {
      // Two signed receipts of one trainer for one round: its own signatures convict it
      // (signing is deterministic, so a different id is a different claim).
      const firstId = this.#index.jobReceipt(slot);
      const first = firstId === undefined ? undefined : this.#record(firstId);
      const slashed = first === undefined ? 0 : this.#equivocationSlash(first, locked);
      if (
        first !== undefined && first.receiptId !== receiptId &&
        (first.status !== "fraud" || slashed > 0) && !this.#index.equivocated(slot)
      ) {
        return {
          kind: "training_equivocation",
          body: {
            slot,
            receiptId: first.receiptId,
            worker: trainer,
            second: receipt as unknown as Record<string, unknown>,
            // As for inference: the larger claim's lock, what is left of the stake at most.
            slashed,
          },
        };
      }
      if (this.#record(receiptId) !== undefined) {
        throw new LedgerRejectedError("duplicate_receipt", "receipt already recorded");
      }
      if (firstId !== undefined) {
        throw new LedgerRejectedError(
          "round_already_recorded",
          "another receipt of this trainer for this round is already recorded",
        );
      }
      const acc = this.#state.account(trainer);
      const free = roundCredits(acc.stake - acc.locked);
      if (locked > free) throw new InsufficientStakeError(locked, free);
      return {
        kind: "training_receipt",
        body: {
          receiptId,
          slot,
          round: receipt.round,
          startModel: receipt.startModel,
          steps: receipt.steps,
          roundSteps: terms.steps,
          deltaHash: receipt.deltaHash,
          worker: trainer,
          credit,
          locked,
          pendingUntil: this.#now() + this.#economics.challengeWindowMs,
        },
      };
    });
    if (entry?.kind === "training_equivocation") {
      throw new LedgerRejectedError(
        "equivocation",
        "the trainer signed two different receipts for one round: its stake is slashed",
      );
    }
    return this.receipt(receiptId)!;
  }

  /**
   * Credit a training receipt recorded without credit (gossip alone), now that a round outcome
   * this ledger's owner audited names it: `trainingCreditPerStep × steps` (its locked slash ÷
   * `slashMultiplier`), paid when final.
   * Returns whether it changed anything (a receipt unknown, closed or already credited: no).
   */
  async creditTrainingReceipt(receiptId: string): Promise<boolean> {
    const entry = await this.#transition("assigned", () => {
      const rec = this.#record(receiptId);
      const open = rec?.status === "pending" || rec?.status === "challenged";
      if (rec === undefined || !open || rec.kind !== "training" || rec.credit > 0) return null;
      // Its slash was locked as `slashMultiplier ×` the credit it was recorded without.
      return {
        receiptId,
        requester: this.#owner,
        credit: roundCredits(rec.locked / this.#economics.slashMultiplier),
      };
    });
    return entry !== null;
  }

  /**
   * Make every pending receipt whose window has closed final, crediting it (a `challenged` one
   * waits for its challenge to end). Returns their ids.
   *
   * @param held Receipts not to finalize yet (a fraud proof taken inside the window is still
   *   being checked: paid now, the cheat it catches would keep the pay): still due, finalized by
   *   a later call.
   */
  async finalizeDue(held?: (receiptId: string) => boolean): Promise<string[]> {
    const now = this.#now();
    // Only the receipts that are due, from a queue ordered by window end: never a scan of all.
    const due = this.#state.takeDue(now);
    const finalized: string[] = [];
    for (const id of due) {
      if (held?.(id)) {
        this.#state.deferDue(id);
        continue;
      }
      // Checked again in the writer's turn: a settlement may have come first.
      const entry = await this.#transition("final", () => {
        const rec = this.#state.open(id);
        return rec?.status === "pending" && rec.pendingUntil <= now ? { receiptId: id } : null;
      });
      if (entry !== null) finalized.push(id);
    }
    return finalized;
  }

  /**
   * Settle a fraud proof that has been independently checked. Confirmed: the worker loses the
   * locked slash and is not paid, the validator earns `validatorRewardShare` of it (a proof about
   * another claim of the worker's for the job, `settlement.receipt`, proves its equivocation too:
   * the slash is the larger claim's, as for two receipts recorded). Refuted: the
   * validator loses `falseAccusationPenalty` of stake and the receipt stays pending.
   *
   * @throws {LedgerRejectedError} when the receipt is unknown or no longer pending, the window has
   *   closed, this proof was settled before, its validator already accused this receipt, its
   *   validator is the receipt's own worker (`self_accusation`), or it is a training receipt
   *   (`wrong_kind`: {@link Ledger.settleTrainingFraud}).
   */
  settleFraud(settlement: FraudSettlement): Promise<LedgerEntry> {
    return this.#settleFraud(settlement, "inference");
  }

  /**
   * Settle a training fraud proof that has been independently checked (a step opening that
   * re-ran outside tolerance, or one refused or not delivered by its deadline, as a signed
   * proof): as {@link Ledger.settleFraud}, for a training receipt. Confirmed: the trainer loses
   * the locked slash and is not paid, the validator earns `validatorRewardShare` of it.
   * Refuted: the validator loses `falseAccusationPenalty` of stake and the receipt stays open.
   *
   * @throws {LedgerRejectedError} as {@link Ledger.settleFraud}, and `wrong_kind` for an
   *   inference receipt.
   */
  settleTrainingFraud(settlement: FraudSettlement): Promise<LedgerEntry> {
    return this.#settleFraud(settlement, "training");
  }

  async #settleFraud(settlement: FraudSettlement, receiptKind: ReceiptKind): Promise<LedgerEntry> {
    const validator = toHex(settlement.validator);
    const kind = settlement.confirmed ? "fraud" : "false_accusation";
    const entry = await this.#transition(kind, () => {
      // The receipt named, or the variant of it its worker had recorded here for the job.
      const rec = settlement.receipt === undefined
        ? this.#record(settlement.receiptId)
        : this.#subject(settlement.receipt, settlement.receiptId);
      if (!rec) throw new LedgerRejectedError("unknown_receipt", "no such receipt in the ledger");
      if (rec.kind !== receiptKind) {
        // A fraud proof is checked against one kind of work: an inference proof says nothing
        // about a training receipt, nor the reverse.
        throw new LedgerRejectedError("wrong_kind", `receipt is a ${rec.kind} receipt`);
      }
      // `unpaid`: this ledger's own challenge ended undecided (`leaveUnresolved`). Inside the
      // window it still takes a proof, as every ledger that did not challenge does: else the
      // cheat keeps here the stake it loses everywhere else.
      const unpaid = rec.status === "unpaid";
      // A receipt already slashed takes only a refuted proof (see `takesFraudProofs`).
      if (!takesFraudProofs(rec.status) || (rec.status === "fraud" && settlement.confirmed)) {
        throw new LedgerRejectedError("not_pending", `receipt is ${rec.status}, not pending`);
      }
      // After its window, only this ledger's own open challenge still settles a receipt: a
      // proof from elsewhere is refused on every ledger alike (whether or not it challenged),
      // unless it was taken inside the window and its check ended after it.
      if (
        Math.min(this.#now(), settlement.takenAt ?? Infinity) > rec.pendingUntil &&
        (rec.status !== "challenged" || validator !== this.#owner)
      ) {
        throw new LedgerRejectedError(
          "challenge_window_closed",
          "the challenge window has closed",
        );
      }
      if (this.#index.proofSettled(settlement.fraudProofHash)) {
        throw new LedgerRejectedError("already_settled", "this fraud proof was settled before");
      }
      if (this.#index.hasAccused(validator, rec.receiptId)) {
        // One accusation per accuser and receipt: a refuted accuser cannot re-roll with a
        // fresh timestamp, making every ledger re-check (and re-book) the same claim.
        throw new LedgerRejectedError(
          "repeated_accusation",
          "this validator has already accused this receipt",
        );
      }
      if (rec.worker === validator) {
        // The worker accusing its own receipt only shapes its own settlement: refuted, a flat
        // penalty in place of checks; confirmed, a reward out of its own slash.
        throw new LedgerRejectedError("self_accusation", "the worker accused its own receipt");
      }
      // The slash is the lock, or what is left of the worker's stake after a steering
      // conviction cut into it: a reward is a share of what was really taken, never minted.
      // An unpaid receipt's lock was released: the slash is its amount, out of the stake
      // (`worker` names whose, as the receipt is no longer open in the working state).
      // A confirmed proof about another claim the worker signed for the job (another output
      // or token count) also proves its equivocation: the slash is the larger claim's, as where
      // that claim was recorded, and the job is marked so that the claim coming here later is
      // not slashed again (review s54: 10 tokens recorded here, a proof about its 1,000-token
      // variant cut 200 here and 20,000 there, its accuser rewarded 100 here and 10,000 there).
      const other = settlement.confirmed ? this.#otherClaim(rec, settlement.receipt) : undefined;
      const slashed = other === undefined
        ? this.#slashable(rec)
        : this.#equivocationSlash(rec, other.locked);
      // The variant the proof was about, when it is not the receipt recorded here.
      const variant = rec.receiptId === settlement.receiptId
        ? {}
        : { variant: settlement.receiptId };
      return settlement.confirmed
        ? {
          receiptId: rec.receiptId,
          ...variant,
          fraudProof: settlement.fraudProofHash,
          validator,
          slashed,
          reward: settlement.wordOnly
            ? 0
            : roundCredits(slashed * this.#economics.validatorRewardShare),
          reason: settlement.reason,
          ...(unpaid ? { worker: rec.worker } : {}),
          ...(other === undefined ? {} : { equivocated: other.jobId }),
        }
        : {
          receiptId: rec.receiptId,
          ...variant,
          fraudProof: settlement.fraudProofHash,
          validator,
          // What the accuser has free, at most: a stake never goes below zero (an accuser with
          // none here loses nothing, and its proofs are not checked: `ValidatorActor`), and never
          // below what its own receipts lock (review s45: a cheat whose stake was all locked
          // accused for free, out of the slash it was about to lose, its finder's reward cut).
          penalty: roundCredits(Math.min(
            this.#economics.falseAccusationPenalty,
            freeStake(this.#state.account(validator)),
          )),
          reason: settlement.reason,
        };
    });
    return entry!;
  }

  /**
   * This ledger's owner challenges a pending receipt (inference or training): it is
   * `challenged`, and is not paid until the challenge ends (see the module doc for the four
   * ways it can).
   *
   * @throws {LedgerRejectedError} when the receipt is unknown, not pending, or past its window.
   */
  async openChallenge(receiptId: string): Promise<void> {
    await this.#transition("challenge", () => {
      const rec = this.#pendingRecord(receiptId, ["pending"]);
      if (this.#now() > rec.pendingUntil) {
        throw new LedgerRejectedError("challenge_window_closed", "the challenge window has closed");
      }
      return { receiptId };
    });
  }

  /** The challenge ended `valid`: the receipt is pending again and paid when its window closes. */
  async clearChallenge(receiptId: string): Promise<void> {
    await this.#transition("cleared", () => {
      this.#pendingRecord(receiptId, ["challenged"]);
      return { receiptId };
    });
  }

  /**
   * The challenge ended in a failure that is the worker's own but that no fraud proof carries
   * (for example proof data, or a training step opening, never served by the deadline): the
   * job is not paid and the locked slash is burned (no one is rewarded, so no one gains by
   * claiming it).
   *
   * @param validator The challenger (this ledger's owner), kept for the record.
   * @param reason Stable reason code (`proof_unavailable`, ...).
   */
  async settleFault(receiptId: string, validator: Uint8Array, reason: string): Promise<void> {
    await this.#transition("fault", () => {
      const rec = this.#pendingRecord(receiptId, ["challenged"]);
      return { receiptId, validator: toHex(validator), reason, slashed: this.#slashable(rec) };
    });
  }

  /**
   * What slashing `rec` takes: its lock, or less when a steering conviction
   * ({@link Ledger.settleSteering}) has cut the worker's stake below its locks.
   */
  #slashable(rec: ReceiptRecord): number {
    return roundCredits(Math.min(rec.locked, Math.max(0, this.account(fromHex(rec.worker)).stake)));
  }

  /**
   * What equivocation on `first` (the receipt recorded for the job or round) takes, the
   * worker's other signed claim for it locking `other`: `slashMultiplier ×` the larger of the two
   * claims' rewards, so the cut does not depend on which of the two a ledger recorded first (it
   * used to be the lock of that one: 10 tokens claimed first and 1,000 second cost 200 there and
   * 20,000 where the 1,000 came first, and nothing after a fraud proof against the 10; review
   * s54). `first`'s own part as before (its lock, from what is left of the stake; nothing when
   * a fraud proof or a fault already slashed it); what the larger claim adds, only from stake no
   * open receipt locks: recorded first, that claim would have needed as much free, and the locks
   * of the worker's other receipts still back their slashes.
   */
  #equivocationSlash(first: ReceiptRecord, other: number): number {
    const account = this.account(fromHex(first.worker));
    const open = first.status === "pending" || first.status === "challenged";
    const own = first.status === "fraud" ? 0 : Math.min(first.locked, Math.max(0, account.stake));
    // An open `first`'s lock is among the locks: its part comes out of it, not out of the free.
    const free = Math.max(0, roundCredits(account.stake - account.locked - (open ? 0 : own)));
    return roundCredits(own + Math.min(Math.max(0, other - first.locked), free));
  }

  /** Whether this ledger's owner has settled a steering conviction of `worker` here. */
  steeringSettled(worker: Uint8Array): boolean {
    return this.#index.proofSettled(this.#steeringSettlement(toHex(worker)));
  }

  #steeringSettlement(worker: string): string {
    return `steering/${this.#owner}/${worker}`;
  }

  /**
   * This ledger's owner convicted `worker` of steering (`steering.ts`): the receipts in the
   * evidence are treated as caught cheats. Those still pending are not paid (credit 0); those
   * already paid are clawed back; and each is slashed `slashMultiplier ×` its credit: `(1 + m) ×`
   * the paid ones' credit and `m ×` the pending ones' is cut from the worker's stake (the part
   * open receipts lock included; never below zero). Only receipts of this worker that are or will
   * be paid (pending or final) count. Settled once per worker here: in one entry, or, with more
   * pending evidence than one lists ({@link MAX_STEERING_UNCREDITED_PER_ENTRY}), in several, the
   * cut in the last; a call that a crash cut off between them is finished by the next.
   *
   * @param worker The convicted worker.
   * @param receiptIds The worker's receipts whose verdicts by this owner passed over an end.
   * @returns The stake cut.
   * @throws {LedgerRejectedError} `already_settled` for a second conviction of the worker.
   */
  async settleSteering(worker: Uint8Array, receiptIds: readonly string[]): Promise<number> {
    const key = toHex(worker);
    const settlement = this.#steeringSettlement(key);
    const ids = [...new Set(receiptIds)];
    for (;;) {
      const entry = await this.#transition("steering", () => {
        if (this.#index.proofSettled(settlement)) {
          throw new LedgerRejectedError("already_settled", "this worker's steering was settled");
        }
        return this.#steeringEntry(key, settlement, ids);
      });
      // A `part` marked some pending evidence unpaid: decided again with the rest (a crash
      // between the parts leaves the conviction unsettled, and its next settlement goes on).
      if (entry!.body.part !== true) return entry!.body.slashed as number;
    }
  }

  /**
   * The next `steering` entry of the conviction of `key` (hex) over `ids`, decided in the
   * writer's turn: the conviction's own, or, while more of its pending evidence is not marked
   * unpaid than one entry lists, a `part` that marks the next {@link
   * MAX_STEERING_UNCREDITED_PER_ENTRY} of them and cuts nothing.
   */
  #steeringEntry(key: string, settlement: string, ids: string[]): Record<string, unknown> {
    const evidence = ids.filter((id) => {
      const rec = this.#record(id);
      return rec?.worker === key && (rec.status === "pending" || rec.status === "final");
    });
    // Receipts still pending are not paid at all (their credit goes to 0, as a doubly
    // assigned job's); those already paid are clawed back from the stake. Either way each is
    // slashed `m` times its credit as well.
    const pending = evidence.filter((id) => this.#record(id)!.status === "pending");
    // Those an earlier part of this conviction marked unpaid are not listed again.
    const unmarked = pending.filter((id) => !this.#index.proofSettled(steeringEvidenceKey(id)));
    if (unmarked.length > MAX_STEERING_UNCREDITED_PER_ENTRY) {
      return {
        worker: key,
        validator: this.#owner,
        part: true,
        uncredited: unmarked.slice(0, MAX_STEERING_UNCREDITED_PER_ENTRY),
        slashed: 0,
      };
    }
    const sum = (ids: string[], of: (rec: ReceiptRecord) => number) =>
      ids.reduce((total, id) => total + of(this.#record(id)!), 0);
    const m = this.#economics.slashMultiplier;
    const open = new Set(pending); // a Set: the evidence may be tens of thousands of receipts
    const paid = evidence.filter((id) => !open.has(id));
    // A pending receipt's slash is its lock (m × its reward), credited yet or not: one whose
    // assignment comes later is not paid either (`steeringEvidenceKey`).
    const owed = roundCredits(
      sum(paid, (rec) => rec.credit) * (1 + m) + sum(pending, (rec) => rec.locked),
    );
    // From the whole stake, the part open receipts lock included: a steerer that keeps its
    // stake at its locks must not be convicted for free. Never below zero.
    const slashed = Math.min(Math.max(0, this.#state.account(key).stake), owed);
    return {
      worker: key,
      validator: this.#owner,
      settlement,
      // Bounded, so the entry fits one frame however long the worker served (see the const).
      receipts: evidence.slice(-MAX_STEERING_RECEIPTS_LISTED),
      evidence: evidence.length,
      uncredited: unmarked,
      slashed,
    };
  }

  /**
   * The challenge could not be decided (the validator lacks the model, failed, restarted): the
   * job is not paid, and the worker's locked stake is released.
   */
  async leaveUnresolved(receiptId: string, reason: string): Promise<void> {
    await this.#transition("unresolved", () => {
      this.#pendingRecord(receiptId, ["pending", "challenged"]);
      return { receiptId, reason };
    });
  }

  /** Ids of receipts whose challenge by this ledger's owner is open. */
  challenged(): string[] {
    return [...this.#state.openReceipts()].filter((r) => r.status === "challenged").map((r) =>
      r.receiptId
    );
  }

  #pendingRecord(receiptId: string, allowed: ReceiptStatus[]): ReceiptRecord {
    const rec = this.#record(receiptId);
    if (!rec) throw new LedgerRejectedError("unknown_receipt", "no such receipt in the ledger");
    if (!allowed.includes(rec.status)) {
      throw new LedgerRejectedError(
        "wrong_status",
        `receipt is ${rec.status}, not ${allowed.join(" or ")}`,
      );
    }
    return rec;
  }

  /**
   * Record any signed verdict (inference challenges, storage audits). The verdict is stored
   * whole; it moves no balance by itself (fraud moves balances only through
   * {@link Ledger.settleFraud}, which needs a checked proof).
   *
   * @throws {LedgerRejectedError} when the verdict's signature does not verify.
   */
  async recordVerdict(verdict: Verdict): Promise<string> {
    if (!verifyVerdict(verdict)) {
      throw new LedgerRejectedError("verdict_rejected", "verdict signature does not verify");
    }
    const id = verdictId(verdict);
    await this.#transition(
      "verdict",
      () =>
        this.#index.hasVerdict(id)
          ? null
          : { verdict: verdict as unknown as Record<string, unknown> },
    );
    return id;
  }

  /** Wait for pending appends, write a checkpoint if entries came since the last, and close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue;
    this.#closed = true;
    try {
      if (this.#checkpointEvery > 0 && this.#seq > this.#checkpointSeq && this.#poisoned === null) {
        await this.#checkpoint().catch(() => {}); // the next open verifies more, that is all
      }
    } finally {
      this.#index.close();
      this.#log.close();
    }
  }
}

/** Open the history index; one SQLite cannot read is deleted and built anew from the log. */
async function openIndex(path: string): Promise<LedgerIndex> {
  try {
    return LedgerIndex.open(path);
  } catch {
    await removeIndex(path);
    return LedgerIndex.open(path);
  }
}

/** Delete the history index's files (it is rebuilt from the log). */
async function removeIndex(path: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${path}${suffix}`).catch(() => {});
  }
}

/** Whether `error` is SQLite's (`node:sqlite`): from the history index, not from the log. */
function isIndexError(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === "ERR_SQLITE_ERROR";
}

function closeQuietly(index: LedgerIndex): void {
  try {
    index.close();
  } catch {
    // a damaged database may fail to close cleanly: it is deleted next
  }
}

/**
 * The entry for a job its requester assigned twice, `first` holding it and `second` the other
 * worker's receipt with its assignment: the first loses its credit while it is open; undefined
 * when it has none left to lose (closed, or earning nothing).
 */
function doubleAssignment(first: ReceiptRecord, second: Receipt, assignment: unknown) {
  const open = first.status === "pending" || first.status === "challenged";
  if (!open || first.credit <= 0) return undefined;
  return {
    kind: "double_assignment" as const,
    body: {
      jobId: second.jobId,
      receiptId: first.receiptId,
      second: second as unknown as Record<string, unknown>,
      assignment: assignment as unknown as Record<string, unknown>,
      uncredited: first.credit,
    },
  };
}

/** What of `account`'s stake its pending receipts do not lock: never below zero, to the quantum. */
export function freeStake(account: Readonly<Account>): number {
  return Math.max(0, roundCredits(account.stake - account.locked));
}
