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
 * filled (to the end, or over a page inside the last frame); the append was never acknowledged —
 * is cut off, its bytes copied to
 * `ledger.log.torn-<time>` first, not reported as tampering; bytes that could hide an
 * acknowledged entry (a whole entry signed by the owner among them) are damage, however they
 * end (`judgeTail`, `ledger_recovery.ts`). A write that fails (a full disk, an I/O error) poisons
 * the ledger: it takes no write (`ledger_poisoned`) until {@link Ledger.reopen} opens it again from
 * disk, in place, by that same open (a torn tail cut), so a long-lived owner recovers without
 * being rebuilt.
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
 * refused), locks `slashMultiplier ×` its credit (`trainingReward`: `trainingCreditPerStep ×
 * steps`, scaled by the work of a step) from the trainer's free stake, and a second, different receipt of the trainer for the same round is
 * equivocation, slashed on arrival. From then on it is an open receipt like any other:
 * `finalizeDue` pays it, `openChallenge` / `clearChallenge` / `settleFault` / `leaveUnresolved`
 * end a challenge of it, and `settleTrainingFraud` settles a checked fraud proof (a failed or
 * refused step opening) against it. `ReceiptRecord.kind` tells the two apart.
 *
 * This file holds the public API: the `Ledger` class, its options and what it takes and
 * returns. Private modules beside it hold the pieces it composes: opening the ledger's directory
 * (`_ledger_open.ts`: its log and index, recovery, the directory syncs); the one writer that
 * signs, appends, applies and checkpoints every entry in turn (`_ledger_writer.ts`); the amounts
 * a receipt earns, locks and loses, and the read-only view of the ledger the decisions take
 * (`_ledger_amounts.ts`); and the decisions made in the writer's turn — recording an inference
 * receipt (`_ledger_receipts.ts`), recording and crediting a training receipt
 * (`_ledger_training.ts`), opening and ending the owner's challenges
 * (`_ledger_challenges.ts`), settling a fraud proof (`_ledger_accusations.ts`), settling a
 * steering conviction (`_ledger_steering.ts`), settling a stream conviction (a worker's signed
 * wrong tokens of a job it never receipted, `_ledger_stream_fraud.ts`), and recording and listing
 * stake pledges (`_ledger_pledges.ts`: a key's second, different pledge convicts it of pledge
 * equivocation, its account forfeited in `ledger_state.ts`).
 *
 * @module
 */
import { decodeCbor } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";
import { type Receipt, verifyReceipt } from "../protocols/receipt.ts";
import { type Verdict, verdictId, verifyVerdict } from "../protocols/verdict.ts";
import { type StakePledge, verifyStakePledge } from "../protocols/stake_pledge.ts";
import {
  type TrainingReceipt,
  trainingReceiptId,
  verifyTrainingReceipt,
} from "../training/training_receipt.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "./economics.ts";
import { FRAME_HEADER_BYTES, type LedgerEntry } from "./ledger_entry.ts";
import { LedgerError, LedgerRejectedError } from "./ledger_errors.ts";
import { checkAccountKey } from "./account_key.ts";
import type { LedgerLog } from "./ledger_log.ts";
import type { Account, LedgerState, ReceiptKind, ReceiptRecord } from "./ledger_state.ts";
import { type LedgerIndex, streamFraudKey } from "./ledger_index.ts";
import { LedgerWriter } from "./_ledger_writer.ts";
import type { LedgerView } from "./_ledger_amounts.ts";
import { receiptDecision } from "./_ledger_receipts.ts";
import { stakeRefusal } from "./_ledger_stake_refused.ts";
import {
  trainingCreditDecision,
  trainingFraudSubjectOf,
  trainingReceiptDecision,
} from "./_ledger_training.ts";
import { fraudDecision, fraudSubjectOf } from "./_ledger_accusations.ts";
import { steeringEntry, steeringSettlement } from "./_ledger_steering.ts";
import {
  streamEntryKind,
  streamFraudEntry,
  type StreamFraudSettlement,
} from "./_ledger_stream_fraud.ts";
import { pledgeEntry, pledgesOf, pledgeStanding } from "./_ledger_pledges.ts";
import {
  clearDecision,
  faultDecision,
  openChallengeDecision,
  unresolvedDecision,
} from "./_ledger_challenges.ts";
import { openLedgerFiles, syncOpenedDirectories } from "./_ledger_open.ts";

export * from "./ledger_errors.ts";
export { entryHash, entrySigningBytes } from "./ledger_entry.ts";
export type { LedgerEntry, LedgerEntryKind } from "./ledger_entry.ts";
export type { Account, ReceiptKind, ReceiptRecord, ReceiptStatus } from "./ledger_state.ts";
export { roundCredits, takesFraudProofs, worthFraudCheck } from "./ledger_state.ts";
export { trainingSlot } from "./_ledger_training.ts";
export { freeStake } from "./_ledger_amounts.ts";
export type { StreamFraudSettlement } from "./_ledger_stream_fraud.ts";

/**
 * Entries between two checkpoints. Opening verifies at most this many entries (about 0.15 ms
 * each: signature, hash, replay), so a ledger opens in well under a second however long its
 * history; each checkpoint is one signed, `fsync`'d write of the working state.
 */
export const DEFAULT_CHECKPOINT_EVERY = 1024;

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
  /**
   * Where an open says what takes it long: a rebuild of the history index (an upgrade emptied
   * it, or it was lost) or a replay of the whole log, with a line when it starts (why, how
   * much), progress every few seconds of `now`, and one when it ends. Default: no lines.
   */
  log?: (line: string) => void;
  /**
   * Aborting it stops an open's rebuild or replay before its next entry (the open rejects with
   * the signal's reason); what the history index took is kept, and the next open goes on from
   * there. Default: the open runs to the end.
   */
  signal?: AbortSignal;
  /**
   * Why no entry may be written now, asked before each one is decided (a read-only node on a full
   * disk: `node/disk_room.ts`); the error is thrown to the caller, nothing is written or poisoned,
   * and an open skips a checkpoint that is due. Default: every write is tried.
   */
  refuseWrite?: () => Error | undefined;
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
  /**
   * For a training receipt: that receipt, as its trainer signed it (the proof carries it). Given,
   * a proof about a receipt not recorded here (another receipt of its trainer for the round was
   * recorded first) settles against the one recorded (see {@link Ledger.trainingFraudSubject}).
   */
  trainingReceipt?: TrainingReceipt;
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
  readonly #identity: Identity;
  readonly #owner: string;
  readonly #economics: EconomicParams;
  readonly #tokenPrice: (model: string) => number;
  readonly #now: () => number;
  readonly #checkpointEvery: number;
  /** What an open says of a long read, and what stops one (`LedgerOptions`). */
  readonly #watch: { log?: (line: string) => void; signal?: AbortSignal };
  readonly #refuseWrite?: () => Error | undefined;
  // The files, and the writer and state on them: set together by `#openFiles`, at the open and
  // again, whole, by `reopen` (see `#attach`).
  #log!: LedgerLog;
  #index!: LedgerIndex;
  /** The one writer: every change goes through it (`_ledger_writer.ts`). */
  #writer!: LedgerWriter;
  /** The writer's working state. */
  #state!: LedgerState;
  /** What the decisions in the `_ledger_*.ts` modules read. */
  #view!: LedgerView;

  private constructor(dir: string, identity: Identity, options: LedgerOptions) {
    this.#dir = dir;
    this.#identity = identity;
    this.#owner = toHex(identity.publicKey);
    this.#economics = { ...DEFAULT_ECONOMICS, ...options.economics };
    this.#tokenPrice = options.tokenPrice ?? (() => this.#economics.defaultTokenPrice);
    this.#now = options.now ?? Date.now;
    this.#checkpointEvery = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    this.#watch = { log: options.log, signal: options.signal };
    this.#refuseWrite = options.refuseWrite;
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
   * @throws {LedgerNewerFormatError} naming an entry of a kind a newer version wrote (the ledger
   *   is left as it is).
   * @throws the reason of `options.signal` when it stops a rebuild of the history index.
   */
  static async open(dir: string, identity: Identity, options: LedgerOptions = {}): Promise<Ledger> {
    const ledger = new Ledger(dir, identity, options);
    await ledger.#openFiles();
    return ledger;
  }

  /**
   * Whether a write failed since the ledger was opened: it takes none (`ledger_poisoned`) until
   * {@link Ledger.reopen}.
   */
  get poisoned(): boolean {
    return this.#writer.poisoned !== null;
  }

  /**
   * Why no entry may be written now (`LedgerOptions.refuseWrite`: a read-only node on a full
   * disk), asked without writing; undefined when writes are tried.
   */
  writeRefusal(): Error | undefined {
    return this.#refuseWrite?.();
  }

  /**
   * After a write failed (the ledger is {@link Ledger.poisoned}), open it again from disk, in
   * place: the same open as {@link Ledger.open}'s (a torn tail cut, copied aside first; the
   * checkpoint and the entries after it verified; the history index brought up to date), so the
   * state in memory is the log's again, and every holder of this ledger writes to the reopened
   * one. The files in use are closed only once the new ones are open: a reopen that fails (the
   * disk still failing) leaves the ledger as it was — poisoned, its reads answered — to be tried
   * again. Not to be called while another call of this ledger is under way.
   *
   * @returns Whether it reopened: false, doing nothing, when no write failed.
   * @throws What {@link Ledger.open} throws (an I/O error, {@link LedgerTamperedError}).
   */
  async reopen(): Promise<boolean> {
    const failed = this.#writer;
    if (failed.poisoned === null) return false;
    await this.#openFiles();
    // No checkpoint of the poisoned state: closing only waits for its queue and closes its files.
    await failed.close();
    return true;
  }

  /**
   * The open itself (`Ledger.open`, `reopen`): the directory, its log and index, and what
   * recovery found (`_ledger_open.ts`); the genesis entry of a new ledger, the directory syncs
   * and a checkpoint due. Only once all of it succeeded is it the ledger's (`#attach`).
   */
  async #openFiles(): Promise<void> {
    const dir = this.#dir;
    const { log, index, recovered, newDirs } = await openLedgerFiles(dir, this.#identity, {
      now: this.#now,
      ...this.#watch,
    });
    try {
      const writer = new LedgerWriter({
        dir,
        log,
        index,
        identity: this.#identity,
        owner: this.#owner,
        now: () => this.#now(),
        checkpointEvery: this.#checkpointEvery,
        refuseWrite: this.#refuseWrite,
      }, recovered);
      if (writer.seq === 0) await writer.append("genesis", { owner: this.#owner, version: 1 });
      await syncOpenedDirectories(dir, newDirs);
      await writer.checkpointIfDue();
      this.#attach(log, index, writer);
    } catch (e) {
      index.close();
      log.close();
      throw e;
    }
  }

  /** Make `writer`, on `log` and `index`, the ledger's: one synchronous step, nothing between. */
  #attach(log: LedgerLog, index: LedgerIndex, writer: LedgerWriter): void {
    this.#log = log;
    this.#index = index;
    this.#writer = writer;
    this.#state = writer.state;
    this.#view = {
      state: this.#state,
      index,
      owner: this.#owner,
      economics: this.#economics,
      tokenPrice: (model) => this.#tokenPrice(model),
      now: () => this.#now(),
      record: (receiptId) => this.#record(receiptId),
      // Keys here come from recorded entries, checked when recorded: not checked again, so a
      // damaged one reads as an unknown account instead of throwing inside a settlement.
      account: (key) => ({ ...this.#state.account(toHex(key)) }),
    };
  }

  /**
   * Write a checkpoint now, after the appends already queued (the ledger also writes one every
   * `checkpointEvery` entries and on close).
   *
   * @throws {LedgerError} `ledger_poisoned` after a failed write (the state in memory may not be
   *   the log's: reopen the ledger), `ledger_closed` once closed.
   */
  async checkpoint(): Promise<void> {
    await this.#writer.checkpoint();
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
    return this.#writer.seq;
  }

  /** Hex hash of the last entry: commits to the whole log (what a chain would anchor). */
  get head(): string {
    return this.#writer.head;
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

  /**
   * Balances of a key (zeros when unknown).
   *
   * @throws {InvalidAccountKeyError} for a key that is not 32 bytes: it names no account.
   */
  account(key: Uint8Array): Account {
    return { ...this.#state.account(toHex(checkAccountKey(key))) };
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
   * against this worker's: when another worker's receipt holds the job here (a job assigned
   * twice, a copier's receipt after the worker's), `receipt` is its own subject, never recorded
   * here — unpaid, locking what it would have, inside the holder's window (review s62: it
   * settled nowhere where the other receipt came first).
   */
  fraudSubject(receipt: Receipt): ReceiptRecord | undefined {
    const r = fraudSubjectOf(this.#view, receipt);
    return r && { ...r };
  }

  /**
   * The record a fraud proof about training receipt `receipt` settles here: its own when it is
   * recorded; else the receipt its trainer had recorded here for the same round (it signed both,
   * so a proof about either convicts it: the later one was answered `equivocation` or
   * `round_already_recorded`, and settled nowhere, review s63), when its signature checks and its
   * trainer's stake backs its lock (a key without stake buys no re-runs). Undefined otherwise.
   */
  trainingFraudSubject(receipt: TrainingReceipt): ReceiptRecord | undefined {
    const r = trainingFraudSubjectOf(this.#view, receipt);
    return r && { ...r };
  }

  /**
   * Whether `worker` has ever been slashed here (a confirmed fraud, a fault, equivocation, a
   * stream convicted by {@link Ledger.settleStreamFraud}, two different pledges:
   * {@link Ledger.pledgeEquivocated}).
   */
  convicted(worker: Uint8Array): boolean {
    return this.pledgeEquivocated(worker) || this.#index.convicted(toHex(worker));
  }

  /**
   * Whether `key` is convicted here of pledge equivocation: it signed two different pledges and
   * this ledger holds both. Its stake and balance are forfeited (it keeps no stake but what its
   * open receipts lock, and earns nothing), the same in every ledger that holds both, whichever
   * it heard first.
   */
  pledgeEquivocated(key: Uint8Array): boolean {
    return this.#state.pledgeEquivocated(toHex(key)) !== undefined;
  }

  /**
   * Whether `pledge` would add nothing here: its key has stake and this is its recorded pledge,
   * the key's stake is a deposit, or the key is convicted of pledge equivocation already. A map
   * look-up and no signature check: every connection brings every pledge its peer holds, so
   * repeats are the common case. False: {@link Ledger.recordPledge} may record it.
   */
  knowsPledge(pledge: StakePledge): boolean {
    return pledgeStanding(this.#state, pledge) === "known";
  }

  /** The id of the receipt recorded for job `jobId`, if any (a job is paid once). */
  receiptOfJob(jobId: string): string | undefined {
    return this.#index.jobReceipt(jobId);
  }

  /**
   * Whether a claim of `worker` for job `jobId` is kept here though another worker's receipt
   * holds the job (`LedgerIndex.unrecordedClaim`: a receipt the job was taken from, the second of
   * a double assignment, ...): the worker signed a receipt for the job all the same.
   */
  keepsClaim(jobId: string, worker: Uint8Array): boolean {
    return this.#index.unrecordedClaim(jobId, toHex(worker)) !== undefined;
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
    await this.#writer.append("stake", { key: toHex(key), amount });
  }

  /**
   * Record another key's signed stake pledge, once per key: a key that already has stake here
   * (pledged, deposited, or slashed down to nothing) cannot add more by pledging again. The
   * signed pledge is kept whole (in its entry and in the working state), so it can be passed on
   * to peers that join later ({@link Ledger.pledges}). A second pledge of a pledged key that
   * differs from its first is recorded too (`pledge_equivocation`): it convicts the key
   * ({@link Ledger.pledgeEquivocated}), and is passed on with the first.
   *
   * @returns whether the pledge was recorded (false: nothing new, {@link Ledger.knowsPledge}).
   * @throws {LedgerRejectedError} for a pledge whose signature does not verify.
   */
  async recordPledge(pledge: StakePledge): Promise<boolean> {
    if (!verifyStakePledge(pledge)) {
      throw new LedgerRejectedError("pledge_rejected", "stake pledge signature does not verify");
    }
    const entry = await this.#writer.transitionOf(pledgeEntry(this.#state, pledge));
    return entry !== null;
  }

  /**
   * The signed pledges recorded here, as each pledger signed it (so a peer checks each one
   * itself). Deposits are not pledges and are not listed. Held in memory, one per pledged key
   * (about 150 bytes each: its key and signature are decoded from the peer's frame as copies of
   * their own, not views of a frame padded up to 1 MiB, `decodeCheckedCbor`), and in every
   * checkpoint.
   *
   * A key convicted of pledge equivocation has both its pledges listed, first then second.
   *
   * @param query Absent: every pledge, in the order recorded. `key`: that key's pledge only
   *   (none or one; both of a convicted key). `limit`: at most that many, for a peer that connects
   *   (a ledger may hold thousands of pledges of keys that never did anything): the keys active
   *   here first (an open receipt, a balance, stake that changed since the pledge), then the rest,
   *   each group newest first.
   */
  pledges(query?: PledgeQuery): StakePledge[] {
    return pledgesOf(this.#state, query);
  }

  /**
   * Record a signed receipt as pending. Its reward is `tokenCount × price(model)`, credited when
   * it is final only if `options.assignment` is its job's assignment to its worker, signed by
   * another key ({@link verifyAssignment}); unrequested work is recorded (and can be slashed)
   * but earns 0. The slash `slashMultiplier × reward` is locked from the worker's free stake
   * until it is final. A receipt recorded without an assignment gets one attached by a later
   * call that brings it (the requester's announcement may arrive after the worker's), while it
   * is open, or left unpaid by its owner's undecided challenge or convicted inside its window
   * (earning nothing then); an assignment coming with another receipt of the same worker for
   * the job attaches to the worker's record holding it all the same (paying it only if that
   * receipt is the same claim: output, token count and lock), and the receipt it came with is
   * refused `job_already_recorded` (`_ledger_late_assignment.ts`).
   *
   * @throws {LedgerRejectedError} for a receipt that does not verify, is already recorded, or is
   *   for a job another receipt was recorded for (one payment per job; except that an assigned
   *   receipt takes the job from another worker's unassigned one, which stays recorded and
   *   earns nothing; refused `job_already_recorded` while another worker's receipt holding the
   *   job is open, it is kept as its worker's claim for the job, once per job and staked worker,
   *   so that worker's later, different receipt for it is `equivocation`); `double_assignment`
   *   for a receipt assigned to another worker than the
   *   job's recorded assigned receipt (the requester contradicted itself: the recorded one
   *   loses its credit if still open); `receipt_rejected` for a
   *   text receipt whose commitment has fewer than {@link MIN_COMMITMENT_CHUNK_SIZE} positions
   *   per chunk (its fraud proofs would not fit the frame that carries them to other nodes) or
   *   packs its tokens at a width no proof data has (not 2 or 4: no fraud proof could open it).
   * @throws {InsufficientStakeError} when the worker cannot back the slash (a staked worker's
   *   receipt is kept as its claim for the job first, once per job and within its stake, so its
   *   other claim for the job is `equivocation`: `_ledger_stake_refused.ts`).
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
    const entry = await this.#writer.transitionOf(
      receiptDecision(this.#view, receipt, check, options),
    );
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
    const refused = entry === null ? undefined : stakeRefusal(this.#view, entry, receipt.worker);
    if (refused !== undefined) throw refused;
    if (entry?.kind === "unrecorded_claim") {
      throw new LedgerRejectedError(
        "job_already_recorded",
        "another receipt for this job is already recorded (this one is kept as its worker's claim)",
      );
    }
    if (entry?.kind === "cancelled_pair") {
      throw new LedgerRejectedError(
        "job_already_recorded",
        "this worker's receipt for the job is recorded: this one is kept as its cancelled pair",
      );
    }
    if (entry?.kind === "assigned" && entry.body.receiptId !== check.receiptId) {
      throw new LedgerRejectedError(
        "job_already_recorded",
        "another receipt of this worker holds the job (its assignment is recorded on that one)",
      );
    }
    return this.receipt(check.receiptId)!;
  }

  /**
   * The code {@link Ledger.recordReceipt} would refuse `receipt` with now (`equivocation`,
   * `double_assignment`, and `job_already_recorded` or `insufficient_stake` for a receipt kept as
   * its worker's claim included: refused, though they write an entry), or undefined when it
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
      const { kind, body } = receiptDecision(this.#view, receipt, check, options)();
      if (stakeRefusal(this.#view, { kind, body }, receipt.worker)) return "insufficient_stake";
      if (kind === "unrecorded_claim" || kind === "cancelled_pair") return "job_already_recorded";
      if (kind === "assigned" && body.receiptId !== check.receiptId) return "job_already_recorded";
      return kind === "equivocation" || kind === "double_assignment" ? kind : undefined;
    } catch (error) {
      if (error instanceof LedgerError) return error.code;
      throw error;
    }
  }

  /**
   * Record a signed training receipt as pending, against the terms of its round. Its reward is
   * `trainingReward` (`trainingCreditPerStep × steps`, scaled by the work of a step), credited
   * when final unless `options.credited` is false: the caller vouches for the terms (its node coordinated the round, or audited its outcome), while
   * terms that arrive by gossip alone are the trainer's word, and a round nobody ran must earn
   * nothing. A receipt recorded
   * without credit gets it from {@link Ledger.creditTrainingReceipt}. The slash
   * `slashMultiplier × reward` is locked from the trainer's free stake until then, credited or
   * not. A second, different receipt of the same
   * trainer for the same round is equivocation: the first is slashed (or, if already closed, the
   * trainer's stake is cut as much and what it was paid taken back) and the second is not recorded.
   *
   * @throws {LedgerRejectedError} `receipt_rejected` for a receipt that does not verify,
   *   `round_mismatch` for one of another round or start model, `too_many_steps` for one
   *   claiming more steps than the round's H, `equivocation` (after slashing),
   *   `duplicate_receipt`, or `round_already_recorded` (the trainer's round already has a
   *   receipt, slashed before).
   * @throws {InsufficientStakeError} when the trainer cannot back the slash (kept as its claim for
   *   the round first, once and within its stake, so its other receipt for the round is
   *   `equivocation`: `_ledger_stake_refused.ts`).
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
    // Decided in one turn of the writer, as for inference: two receipts of one trainer for one
    // round racing each other are equivocation, not a refusal of whichever comes second.
    const entry = await this.#writer.transitionOf(
      trainingReceiptDecision(this.#view, receipt, receiptId, terms, options),
    );
    const refused = entry === null ? undefined : stakeRefusal(this.#view, entry, receipt.trainer);
    if (refused !== undefined) throw refused;
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
   * this ledger's owner audited names it: `trainingReward` (`trainingCreditPerStep × steps`,
   * scaled by the work of a step; its locked slash ÷ `slashMultiplier`), paid when final; or paid
   * now when its window already closed unpaid and it was never convicted (`training_late_credit`:
   * its round outlasted the window, review s79 trainnet F1; `_ledger_training.ts`).
   * Returns whether it changed anything (a receipt unknown, convicted, left unpaid by an undecided
   * challenge or already credited: no).
   */
  async creditTrainingReceipt(receiptId: string): Promise<boolean> {
    const entry = await this.#writer.transitionOf(trainingCreditDecision(this.#view, receiptId));
    return entry !== null;
  }

  /**
   * Make every pending receipt whose window has closed final, crediting it (a `challenged` one
   * waits for its challenge to end); release, unpaid, the lock of one left `unpaid` by an
   * undecided challenge. Returns the ids of those paid.
   *
   * @param held Receipts not to finalize yet (a fraud proof taken inside the window is still
   *   being checked: paid now, the cheat it catches would keep the pay): still due, finalized by
   *   a later call.
   * @returns The receipts finalized; none while writes are refused (`LedgerOptions.refuseWrite`).
   */
  async finalizeDue(held?: (receiptId: string) => boolean): Promise<string[]> {
    // While writes are refused (a read-only node on a full disk) the due receipts stay due, paid
    // at the first call after: refused here, the validator's tick would crash at every turn and
    // its supervisor take the node down.
    if (this.#refuseWrite?.() !== undefined) return [];
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
      let paid = false;
      const entry = await this.#writer.transition("final", () => {
        const rec = this.#state.open(id);
        // Left unpaid by an undecided challenge: its lock is released, unpaid (`ledger_state.ts`).
        paid = rec?.status === "pending";
        const due = paid || rec?.status === "unpaid";
        return due && rec!.pendingUntil <= now ? { receiptId: id } : null;
      });
      if (entry !== null && paid) finalized.push(id);
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
   *   closed, this proof was settled before (an accuser's other proofs of an inference receipt
   *   each settle: `_ledger_accusations.ts`), its validator is the receipt's own worker (`self_accusation`), or it is a training receipt
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
    const kind = settlement.confirmed ? "fraud" : "false_accusation";
    const entry = await this.#writer.transition(
      kind,
      fraudDecision(this.#view, settlement, receiptKind),
    );
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
    await this.#writer.transition("challenge", openChallengeDecision(this.#view, receiptId));
  }

  /** The challenge ended `valid`: the receipt is pending again and paid when its window closes. */
  async clearChallenge(receiptId: string): Promise<void> {
    await this.#writer.transition("cleared", clearDecision(this.#view, receiptId));
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
    await this.#writer.transition(
      "fault",
      faultDecision(this.#view, receiptId, validator, reason),
    );
  }

  /** Whether this ledger's owner has settled a steering conviction of `worker` here. */
  steeringSettled(worker: Uint8Array): boolean {
    return this.#index.proofSettled(steeringSettlement(this.#owner, toHex(worker)));
  }

  /**
   * This ledger's owner convicted `worker` of steering (`steering.ts`): the receipts in the
   * evidence are treated as caught cheats. Those still pending are not paid (credit 0); those
   * already paid are clawed back; and each is slashed `slashMultiplier ×` its credit: `(1 + m) ×`
   * the paid ones' credit and `m ×` the pending ones' is cut from the worker's stake (the part
   * open receipts lock included; never below zero). Only receipts of this worker still open here
   * (pending, challenged, or left undecided inside their window) or paid count. Settled once per
   * worker here: in one entry, or, with more
   * pending evidence than one lists (`MAX_STEERING_UNCREDITED_PER_ENTRY` in
   * `_ledger_steering.ts`), in several, the cut in the last; a call that a crash cut off between
   * them is finished by the next.
   *
   * @param worker The convicted worker.
   * @param receiptIds The worker's receipts whose verdicts by this owner passed over an end.
   * @returns The stake cut.
   * @throws {LedgerRejectedError} `already_settled` for a second conviction of the worker.
   */
  async settleSteering(worker: Uint8Array, receiptIds: readonly string[]): Promise<number> {
    const key = toHex(worker);
    const settlement = steeringSettlement(this.#owner, key);
    const ids = [...new Set(receiptIds)];
    for (;;) {
      const entry = await this.#writer.transition("steering", () => {
        if (this.#index.proofSettled(settlement)) {
          throw new LedgerRejectedError("already_settled", "this worker's steering was settled");
        }
        return steeringEntry(this.#view, key, settlement, ids);
      });
      // A `part` marked some pending evidence unpaid: decided again with the rest (a crash
      // between the parts leaves the conviction unsettled, and its next settlement goes on).
      if (entry!.body.part !== true) return entry!.body.slashed as number;
    }
  }

  /** Whether a stream conviction of `worker` for job `jobId` (hex) is settled here. */
  streamFraudSettled(jobId: string, worker: Uint8Array): boolean {
    return this.#index.proofSettled(streamFraudKey(jobId, toHex(worker)));
  }

  /**
   * This ledger's owner checked a stream claim (`proof/stream_check.ts`), its own router's or a
   * peer's stream proof (`protocols/stream_proof.ts`, whose signer is `settlement.accuser`).
   *
   * Confirmed: the worker signed `tokens` tokens of the job that the job could not give, and
   * dropped before any receipt. No stake was locked for a stream, so `slashMultiplier ×` the
   * reward of `tokens` tokens at the model's price (`settlement.model`'s) is cut from the worker's
   * whole stake (the part its open receipts lock included; at most all of it, never below zero;
   * nothing from a key convicted of pledge equivocation, whose stake is forfeited already); the
   * accuser earns `validatorRewardShare` of the cut, the rest is burned. A key with no stake here
   * is convicted all the same: the entry is on record, moving nothing. Settled once per job and
   * worker (a `stream_fraud` entry), whoever accused.
   *
   * Refuted (`confirmed: false`, a peer's proof only): its accuser is charged the
   * false-accusation penalty, at most its free stake (a `false_accusation` entry), as for a
   * refuted fraud proof. One accusation per accuser, job and worker, confirmed or refuted.
   *
   * A receipt of the worker's for the job, recorded before the conviction or after, neither stops
   * it nor is stopped by it: the receipt is judged on its own (its fraud proof, if the tokens it
   * signs are wrong, slashes it too, for the claim it signed), and earns nothing without the
   * requester's assignment, which a lost worker never gets.
   *
   * @returns The stake cut (the accuser earned `validatorRewardShare` of it, to the quantum), or
   *   the penalty charged for a refutation.
   * @throws {LedgerRejectedError} `self_accusation` for a worker accusing its own stream,
   *   `already_settled` for a second conviction of the worker for the job,
   *   `repeated_accusation` for a second accusation of it by one accuser.
   * @throws {RangeError} for a settlement that names no job, key, claim or token count, or a
   *   refutation of the owner's own claim.
   */
  async settleStreamFraud(settlement: StreamFraudSettlement): Promise<number> {
    const entry = await this.#writer.transition(
      streamEntryKind(settlement),
      () => streamFraudEntry(this.#view, settlement),
    );
    return (entry!.body.slashed ?? entry!.body.penalty) as number;
  }

  /**
   * The challenge could not be decided (the validator lacks the model, failed, restarted): the
   * job is not paid, and the worker's locked stake is released when the receipt's window ends (a
   * peer's fraud proof can still convict it until then, out of that lock).
   */
  async leaveUnresolved(receiptId: string, reason: string): Promise<void> {
    await this.#writer.transition("unresolved", unresolvedDecision(this.#view, receiptId, reason));
  }

  /** Ids of receipts whose challenge by this ledger's owner is open. */
  challenged(): string[] {
    return [...this.#state.openReceipts()].filter((r) => r.status === "challenged").map((r) =>
      r.receiptId
    );
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
    await this.#writer.transition(
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
    await this.#writer.close();
  }
}
