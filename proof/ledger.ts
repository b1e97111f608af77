/**
 * The ledger: an append-only, hash-chained, signed log of useful work on disk.
 *
 * Every change is an entry `{ seq, prev, at, kind, body, signer, sig }`: `prev` is the hash of
 * the previous entry (so editing, dropping or reordering any entry breaks every later link),
 * `sig` is the ledger owner's ed25519 signature over the rest. Entries are CBOR, each framed by
 * a 4-byte big-endian length, appended and `fsync`'d before the call returns, so an
 * acknowledged entry survives a crash. Balances are never stored: they are derived by
 * replaying the log, so the log is the only truth.
 *
 * On open the whole chain is checked; the first entry that fails (bad CBOR, wrong sequence,
 * broken link, bad signature, foreign signer) raises {@link LedgerTamperedError} naming it. A
 * frame cut short at the very end is a torn write from a crash (the append was never
 * acknowledged) and is cut off, not reported as tampering.
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
 * @module
 */
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { type Receipt, verifyReceipt } from "../protocols/receipt.ts";
import { type Verdict, verdictId, verifyVerdict } from "../protocols/verdict.ts";
import { type StakePledge, verifyStakePledge } from "../protocols/stake_pledge.ts";
import { verifyAssignment } from "../protocols/assignment.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "./economics.ts";

const ENTRY_DOMAIN = "veriflow/ledger/v1";
const LENGTH_BYTES = 4;
/** Largest entry accepted when reading (a length beyond this is corruption, not data). */
const MAX_ENTRY_BYTES = 1 << 20;
const GENESIS_PREV = "0".repeat(64);
const LOG_FILE = "ledger.log";

/** Kinds of ledger entries. */
export type LedgerEntryKind =
  | "genesis"
  | "stake"
  | "receipt"
  | "final"
  | "fraud"
  | "false_accusation"
  | "assigned"
  | "equivocation"
  | "challenge"
  | "cleared"
  | "fault"
  | "unresolved"
  | "verdict";

/** One signed ledger entry. */
export interface LedgerEntry {
  /** 0-based position in the log. */
  seq: number;
  /** Hex hash of the previous entry (64 zeros for the first). */
  prev: string;
  /** Unix ms when appended. */
  at: number;
  /** What happened. */
  kind: LedgerEntryKind;
  /** Kind-specific data (CBOR-able). */
  body: Record<string, unknown>;
  /** The ledger owner's public key. */
  signer: Uint8Array;
  /** Signature over the entry without `sig`. */
  sig: Uint8Array;
}

/**
 * The state of one receipt in the ledger: `pending` (in its window), `challenged` (this
 * ledger's owner is checking it), `final` (paid), `fraud` (slashed, unpaid) or `unpaid` (a
 * challenge that could not be decided: neither paid nor slashed).
 */
export type ReceiptStatus = "pending" | "challenged" | "final" | "fraud" | "unpaid";

/** What the ledger knows about one receipt. */
export interface ReceiptRecord {
  /** Receipt id. */
  receiptId: string;
  /** Hex worker key. */
  worker: string;
  /** See {@link ReceiptStatus}. */
  status: ReceiptStatus;
  /**
   * Credit due when final: tokens × price when a requester other than the worker signed the
   * job's assignment to it (`requester`), else 0 — unrequested work earns nothing.
   */
  credit: number;
  /** Hex key of the requester whose assignment backs the credit, if any. */
  requester?: string;
  /** Stake locked against it (the slash if fraud is proven). */
  locked: number;
  /** Unix ms when the challenge window closes. */
  pendingUntil: number;
}

/** Balances of one key. */
export interface Account {
  /** Credits earned (final work, validator rewards). */
  balance: number;
  /** Stake deposited minus slashes. */
  stake: number;
  /** Stake locked against pending receipts. */
  locked: number;
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
}

/** Base class of ledger errors. */
export class LedgerError extends VeriflowError {}

/** The log on disk fails verification at entry `seq`. */
export class LedgerTamperedError extends LedgerError {
  /** Sequence number (position) of the first bad entry. */
  readonly seq: number;
  /**
   * Create the error.
   * @param seq Position of the bad entry.
   * @param reason What failed.
   */
  constructor(seq: number, reason: string) {
    super("ledger_tampered", `ledger entry ${seq} fails verification: ${reason}`);
    this.seq = seq;
  }
}

/** The ledger on disk belongs to another identity. */
export class LedgerOwnerMismatchError extends LedgerError {
  /** Create the error. */
  constructor() {
    super("ledger_owner_mismatch", "ledger was created by another identity");
  }
}

/** The worker has not enough free stake to back a receipt's potential slash. */
export class InsufficientStakeError extends LedgerError {
  /**
   * Create the error.
   * @param needed Stake the receipt needs.
   * @param free Stake the worker has free.
   */
  constructor(needed: number, free: number) {
    super("insufficient_stake", `receipt needs ${needed} free stake, worker has ${free}`);
  }
}

/** A receipt or verdict refused by the ledger (bad signature, unknown, duplicate, late). */
export class LedgerRejectedError extends LedgerError {
  /**
   * Create the error.
   * @param code Stable error code.
   * @param message Human-readable explanation.
   */
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** What a caller proves when settling a fraud proof (see `proof/fraud_check.ts`). */
export interface FraudSettlement {
  /** The receipt the proof is about. */
  receiptId: string;
  /** Hex hash of the fraud proof. */
  fraudProofHash: string;
  /** The validator who submitted it. */
  validator: Uint8Array;
  /** Whether the independent check confirmed it. */
  confirmed: boolean;
  /** Reason code of the check (kept for the record). */
  reason: string;
}

/** The append-only ledger. Open with {@link Ledger.open}; one writer per directory. */
export class Ledger {
  readonly #file: Deno.FsFile;
  readonly #identity: Identity;
  readonly #economics: EconomicParams;
  readonly #tokenPrice: (model: string) => number;
  readonly #now: () => number;
  #head = GENESIS_PREV;
  #seq = 0;
  #entries: LedgerEntry[] = [];
  readonly #accounts = new Map<string, Account>();
  readonly #receipts = new Map<string, ReceiptRecord>();
  readonly #verdicts = new Map<string, Verdict>();
  /** Keys that have any stake entry: a pledge is recorded once per key. */
  readonly #staked = new Set<string>();
  /** `validator:receiptId` of every settled accusation: one per accuser and receipt, ever. */
  readonly #accusations = new Set<string>();
  /** The receipt recorded for each job id: a unit of work is paid once. */
  readonly #receiptOfJob = new Map<string, string>();
  /** What the recorded receipt of each job claims (entries that carry it), for equivocation. */
  readonly #claims = new Map<string, { outputHash: string; tokens: number }>();
  /** Job ids whose worker has been slashed for equivocation (once per job). */
  readonly #equivocated = new Set<string>();
  /** Hashes of every settled fraud proof: a proof is settled once, even after a restart. */
  readonly #settledProofs = new Set<string>();
  #closed = false;
  /** Set when a write failed: the file may hold a torn entry; see `#transition`. */
  #poisoned: Error | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(file: Deno.FsFile, identity: Identity, options: LedgerOptions) {
    this.#file = file;
    this.#identity = identity;
    this.#economics = { ...DEFAULT_ECONOMICS, ...options.economics };
    this.#tokenPrice = options.tokenPrice ?? (() => this.#economics.defaultTokenPrice);
    this.#now = options.now ?? Date.now;
  }

  /**
   * Open (or create) the ledger in `dir`, verifying the whole chain.
   *
   * @example
   * ```ts
   * import { Ledger } from "./ledger.ts";
   * import { Identity } from "../protocols/identity.ts";
   * const dir = await Deno.makeTempDir();
   * const ledger = await Ledger.open(dir, Identity.generate());
   * await ledger.close();
   * ```
   * @throws {LedgerTamperedError} naming the first entry that fails verification.
   */
  static async open(dir: string, identity: Identity, options: LedgerOptions = {}): Promise<Ledger> {
    await Deno.mkdir(dir, { recursive: true });
    const path = `${dir}/${LOG_FILE}`;
    const file = await Deno.open(path, { read: true, write: true, create: true });
    const ledger = new Ledger(file, identity, options);
    try {
      await ledger.#load();
      if (ledger.#seq === 0) {
        await ledger.#append("genesis", { owner: toHex(identity.publicKey), version: 1 });
      }
    } catch (e) {
      file.close();
      throw e;
    }
    return ledger;
  }

  async #load(): Promise<void> {
    const stat = await this.#file.stat();
    const bytes = new Uint8Array(stat.size);
    let read = 0;
    await this.#file.seek(0, Deno.SeekMode.Start);
    while (read < bytes.length) {
      const n = await this.#file.read(bytes.subarray(read));
      if (n === null) break;
      read += n;
    }
    const view = new DataView(bytes.buffer);
    let offset = 0;
    while (offset < bytes.length) {
      if (offset + LENGTH_BYTES > bytes.length) break; // torn header
      const len = view.getUint32(offset);
      if (len === 0 || len > MAX_ENTRY_BYTES) {
        throw new LedgerTamperedError(this.#seq, `impossible frame length ${len}`);
      }
      if (offset + LENGTH_BYTES + len > bytes.length) break; // torn body
      const frame = bytes.subarray(offset + LENGTH_BYTES, offset + LENGTH_BYTES + len);
      this.#accept(this.#verifyEntry(frame));
      offset += LENGTH_BYTES + len;
    }
    if (offset < bytes.length) {
      // A torn tail: the append that wrote it never returned, so nobody relied on it.
      await this.#file.truncate(offset);
      await this.#file.syncData();
    }
    await this.#file.seek(offset, Deno.SeekMode.Start);
  }

  #verifyEntry(frame: Uint8Array): LedgerEntry {
    const seq = this.#seq;
    let entry: LedgerEntry;
    try {
      entry = decodeCbor(frame) as LedgerEntry;
    } catch {
      throw new LedgerTamperedError(seq, "not valid CBOR");
    }
    if (typeof entry !== "object" || entry === null) {
      throw new LedgerTamperedError(seq, "not an entry");
    }
    if (entry.seq !== seq) throw new LedgerTamperedError(seq, `sequence ${entry.seq} out of order`);
    if (entry.prev !== this.#head) {
      throw new LedgerTamperedError(seq, "hash link to the previous entry is broken");
    }
    if (!(entry.signer instanceof Uint8Array) || !(entry.sig instanceof Uint8Array)) {
      throw new LedgerTamperedError(seq, "missing signer or signature");
    }
    if (!verifySignature(entry.signer, entrySigningBytes(entry), entry.sig)) {
      throw new LedgerTamperedError(seq, "signature does not verify");
    }
    if (seq === 0) {
      if (entry.kind !== "genesis") throw new LedgerTamperedError(seq, "first entry not genesis");
      if (toHex(entry.signer) !== toHex(this.#identity.publicKey)) {
        throw new LedgerOwnerMismatchError();
      }
    } else if (toHex(entry.signer) !== toHex(this.#identity.publicKey)) {
      throw new LedgerTamperedError(seq, "signed by a key other than the ledger owner");
    }
    return entry;
  }

  /** Apply a verified entry to the derived state. */
  #accept(entry: LedgerEntry): void {
    this.#apply(entry);
    this.#entries.push(entry);
    this.#head = entryHash(entry);
    this.#seq = entry.seq + 1;
  }

  #account(key: string): Account {
    let a = this.#accounts.get(key);
    if (!a) {
      a = { balance: 0, stake: 0, locked: 0 };
      this.#accounts.set(key, a);
    }
    return a;
  }

  #apply(entry: LedgerEntry): void {
    const b = entry.body as Record<string, never>;
    switch (entry.kind) {
      case "genesis":
        return;
      case "stake":
        this.#account(b.key).stake += b.amount as number;
        this.#staked.add(b.key);
        return;
      case "receipt": {
        const rec: ReceiptRecord = {
          receiptId: b.receiptId,
          worker: b.worker,
          status: "pending",
          credit: b.credit,
          locked: b.locked,
          pendingUntil: b.pendingUntil,
        };
        if (b.requester) rec.requester = b.requester;
        this.#receipts.set(rec.receiptId, rec);
        this.#receiptOfJob.set(b.jobId, rec.receiptId);
        if (typeof b.outputHash === "string") {
          this.#claims.set(b.jobId, { outputHash: b.outputHash, tokens: b.tokens });
        }
        this.#account(rec.worker).locked += rec.locked;
        return;
      }
      case "final": {
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        rec.status = "final";
        const acc = this.#account(rec.worker);
        acc.locked -= rec.locked;
        acc.balance += rec.credit;
        return;
      }
      case "fraud": {
        this.#accusations.add(`${b.validator}:${b.receiptId}`);
        this.#settledProofs.add(b.fraudProof);
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        rec.status = "fraud";
        const worker = this.#account(rec.worker);
        worker.locked -= rec.locked;
        worker.stake -= b.slashed as number;
        this.#account(b.validator).balance += b.reward as number;
        return;
      }
      case "false_accusation":
        this.#accusations.add(`${b.validator}:${b.receiptId}`);
        this.#settledProofs.add(b.fraudProof);
        this.#account(b.validator).stake -= b.penalty as number;
        return;
      case "equivocation": {
        this.#equivocated.add(b.jobId);
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        const worker = this.#account(rec.worker);
        if (rec.status === "pending" || rec.status === "challenged") worker.locked -= rec.locked;
        rec.status = "fraud";
        worker.stake -= b.slashed as number;
        return;
      }
      case "assigned": {
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        rec.requester = b.requester;
        rec.credit = b.credit;
        return;
      }
      case "challenge":
      case "cleared": {
        const rec = this.#receipts.get(b.receiptId);
        if (rec) rec.status = entry.kind === "challenge" ? "challenged" : "pending";
        return;
      }
      case "fault": {
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        rec.status = "fraud";
        const worker = this.#account(rec.worker);
        worker.locked -= rec.locked;
        worker.stake -= b.slashed as number;
        return;
      }
      case "unresolved": {
        const rec = this.#receipts.get(b.receiptId);
        if (!rec) return;
        rec.status = "unpaid";
        this.#account(rec.worker).locked -= rec.locked;
        return;
      }
      case "verdict": {
        const v = b.verdict as unknown as Verdict;
        this.#verdicts.set(verdictId(v), v);
        return;
      }
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
    const run = this.#queue.then(async () => {
      if (this.#closed) throw new LedgerError("ledger_closed", "ledger is closed");
      if (this.#poisoned) {
        throw new LedgerError("ledger_poisoned", "a write failed: reopen the ledger", {
          cause: this.#poisoned,
        });
      }
      const body = decide();
      if (body === null) return null;
      const unsigned = {
        seq: this.#seq,
        prev: this.#head,
        at: this.#now(),
        kind,
        body,
        signer: this.#identity.publicKey,
      };
      const entry: LedgerEntry = {
        ...unsigned,
        sig: this.#identity.sign(entrySigningBytes(unsigned)),
      };
      const payload = encodeCanonical(entry);
      const frame = new Uint8Array(LENGTH_BYTES + payload.length);
      new DataView(frame.buffer).setUint32(0, payload.length);
      frame.set(payload, LENGTH_BYTES);
      try {
        let written = 0;
        while (written < frame.length) written += await this.#file.write(frame.subarray(written));
        // Durable before acknowledged: an entry the caller saw succeed survives a crash.
        await this.#file.syncData();
      } catch (error) {
        this.#poisoned = error as Error;
        throw error;
      }
      this.#accept(entry);
      return entry;
    });
    this.#queue = run.catch(() => {});
    return run;
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

  /** All entries, oldest first (copies of the array, not of the entries). */
  entries(): readonly LedgerEntry[] {
    return this.#entries.slice();
  }

  /** Balances of a key (zeros when unknown). */
  account(key: Uint8Array): Account {
    return { ...(this.#accounts.get(toHex(key)) ?? { balance: 0, stake: 0, locked: 0 }) };
  }

  /** Whether `validator` has already had an accusation against `receiptId` settled here. */
  hasAccused(validator: Uint8Array, receiptId: string): boolean {
    return this.#accusations.has(`${toHex(validator)}:${receiptId}`);
  }

  /** Whether `key` has ever had stake recorded here (deposit or pledge). */
  hasStaked(key: Uint8Array): boolean {
    return this.#staked.has(toHex(key));
  }

  /** The ledger's record of a receipt, if any. */
  receipt(receiptId: string): ReceiptRecord | undefined {
    const r = this.#receipts.get(receiptId);
    return r && { ...r };
  }

  /** The id of the receipt recorded for job `jobId`, if any (a job is paid once). */
  receiptOfJob(jobId: string): string | undefined {
    return this.#receiptOfJob.get(jobId);
  }

  /** Verdicts recorded, by id. */
  verdicts(): Verdict[] {
    return [...this.#verdicts.values()];
  }

  /** Credit `amount` of stake to `key` (a deposit; there is no token, this is bookkeeping). */
  async deposit(key: Uint8Array, amount: number): Promise<void> {
    if (!(amount > 0) || !Number.isFinite(amount)) throw new RangeError("amount must be > 0");
    await this.#append("stake", { key: toHex(key), amount });
  }

  /**
   * Record another key's signed stake pledge, once per key: a key that already has stake here
   * (pledged, deposited, or slashed down to nothing) cannot add more by pledging again.
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
      this.#staked.has(key) ? null : {
        key,
        amount: pledge.amount,
        pledge: { issuedAt: pledge.issuedAt, sig: pledge.sig },
      });
    return entry !== null;
  }

  /**
   * Record a signed receipt as pending. Its reward is `tokenCount × price(model)`, credited when
   * it is final only if `options.assignment` is its job's assignment to its worker, signed by
   * another key ({@link verifyAssignment}); unrequested work is recorded (and can be slashed)
   * but earns 0. The slash `slashMultiplier × reward` is locked from the worker's free stake
   * until it is final. A receipt recorded without an assignment gets one attached by a later
   * call that brings it (the requester's announcement may arrive after the worker's).
   *
   * @throws {LedgerRejectedError} for a receipt that does not verify, is already recorded, or is
   *   for a job another receipt was recorded for (one payment per job).
   * @throws {InsufficientStakeError} when the worker cannot back the slash.
   */
  async recordReceipt(
    receipt: Receipt,
    options: { assignment?: unknown } = {},
  ): Promise<ReceiptRecord> {
    const check = verifyReceipt(receipt);
    if (!check.ok) throw new LedgerRejectedError("receipt_rejected", check.message);
    const worker = toHex(receipt.worker);
    // Useful work: tokens × the model's price; a one-shot (tensor) job counts as one unit.
    const units = receipt.kind === "tensor" ? 1 : receipt.tokenCount;
    const reward = units * this.#tokenPrice(receipt.model);
    const locked = reward * this.#economics.slashMultiplier;
    const assignment = options.assignment;
    const assigned = verifyAssignment(assignment, { jobId: receipt.jobId, worker: receipt.worker });
    const requester = assigned ? toHex(assignment.requester) : null;
    const credit = assigned ? reward : 0;
    // Another receipt of this worker for a job it already has one recorded for, claiming other
    // work (another output or token count): two signed answers to one job. Its own signatures
    // convict it; the first receipt is slashed (or, if already paid, its stake is cut as much).
    const equivocation = await this.#transition("equivocation", () => {
      const firstId = this.#receiptOfJob.get(receipt.jobId);
      const first = firstId === undefined ? undefined : this.#receipts.get(firstId);
      const claim = this.#claims.get(receipt.jobId);
      if (first === undefined || first.receiptId === check.receiptId) return null;
      if (first.worker !== worker || claim === undefined || first.status === "fraud") return null;
      if (this.#equivocated.has(receipt.jobId)) return null;
      if (claim.outputHash === receipt.outputHash && claim.tokens === receipt.tokenCount) {
        return null; // the same claim signed twice (fingerprints' last bits): not paid twice
      }
      return {
        jobId: receipt.jobId,
        receiptId: first.receiptId,
        second: receipt as unknown as Record<string, unknown>,
        slashed: first.locked,
      };
    });
    if (equivocation !== null) {
      throw new LedgerRejectedError(
        "equivocation",
        "the worker signed two different receipts for one job: its stake is slashed",
      );
    }
    const existing = this.#receipts.get(check.receiptId);
    if (existing !== undefined && requester !== null && existing.requester === undefined) {
      const attached = await this.#transition("assigned", () => {
        const rec = this.#receipts.get(check.receiptId)!;
        const open = rec.status === "pending" || rec.status === "challenged";
        return open && rec.requester === undefined
          ? { receiptId: check.receiptId, requester, credit }
          : null;
      });
      if (attached !== null) return this.receipt(check.receiptId)!;
    }
    await this.#transition("receipt", () => {
      if (this.#receipts.has(check.receiptId)) {
        throw new LedgerRejectedError("duplicate_receipt", "receipt already recorded");
      }
      if (this.#receiptOfJob.has(receipt.jobId)) {
        // One payment per job: the same work re-signed with other timings, signed again under
        // another key, or answered again from a cache is not paid twice.
        throw new LedgerRejectedError(
          "job_already_recorded",
          "another receipt for this job is already recorded",
        );
      }
      const acc = this.#account(worker);
      const free = acc.stake - acc.locked;
      if (locked > free) throw new InsufficientStakeError(locked, free);
      return {
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
      };
    });
    return this.receipt(check.receiptId)!;
  }

  /**
   * Make every pending receipt whose window has closed final, crediting it (a `challenged` one
   * waits for its challenge to end). Returns their ids.
   */
  async finalizeDue(): Promise<string[]> {
    const now = this.#now();
    const due = [...this.#receipts.values()].filter(
      (r) => r.status === "pending" && r.pendingUntil <= now,
    );
    const finalized: string[] = [];
    for (const r of due) {
      // Checked again in the writer's turn: a settlement may have come first.
      const entry = await this.#transition("final", () => {
        const rec = this.#receipts.get(r.receiptId);
        return rec?.status === "pending" && rec.pendingUntil <= now
          ? { receiptId: r.receiptId }
          : null;
      });
      if (entry !== null) finalized.push(r.receiptId);
    }
    return finalized;
  }

  /**
   * Settle a fraud proof that has been independently checked. Confirmed: the worker loses the
   * locked slash and is not paid, the validator earns `validatorRewardShare` of it. Refuted: the
   * validator loses `falseAccusationPenalty` of stake and the receipt stays pending.
   *
   * @throws {LedgerRejectedError} when the receipt is unknown or no longer pending, the window has
   *   closed, this proof was settled before, or its validator already accused this receipt.
   */
  async settleFraud(settlement: FraudSettlement): Promise<LedgerEntry> {
    const validator = toHex(settlement.validator);
    const kind = settlement.confirmed ? "fraud" : "false_accusation";
    const entry = await this.#transition(kind, () => {
      const rec = this.#receipts.get(settlement.receiptId);
      if (!rec) throw new LedgerRejectedError("unknown_receipt", "no such receipt in the ledger");
      if (rec.status !== "pending" && rec.status !== "challenged") {
        throw new LedgerRejectedError("not_pending", `receipt is ${rec.status}, not pending`);
      }
      // A receipt held by this ledger's own open challenge settles even after its window.
      if (this.#now() > rec.pendingUntil && rec.status === "pending") {
        throw new LedgerRejectedError(
          "challenge_window_closed",
          "the challenge window has closed",
        );
      }
      if (this.#settledProofs.has(settlement.fraudProofHash)) {
        throw new LedgerRejectedError("already_settled", "this fraud proof was settled before");
      }
      if (this.#accusations.has(`${validator}:${rec.receiptId}`)) {
        // One accusation per accuser and receipt: a refuted accuser cannot re-roll with a
        // fresh timestamp, making every ledger re-check (and re-book) the same claim.
        throw new LedgerRejectedError(
          "repeated_accusation",
          "this validator has already accused this receipt",
        );
      }
      return settlement.confirmed
        ? {
          receiptId: rec.receiptId,
          fraudProof: settlement.fraudProofHash,
          validator,
          slashed: rec.locked,
          reward: rec.locked * this.#economics.validatorRewardShare,
          reason: settlement.reason,
        }
        : {
          receiptId: rec.receiptId,
          fraudProof: settlement.fraudProofHash,
          validator,
          penalty: this.#economics.falseAccusationPenalty,
          reason: settlement.reason,
        };
    });
    return entry!;
  }

  /**
   * This ledger's owner challenges a pending receipt: it is `challenged`, and is not paid until
   * the challenge ends (see the module doc for the four ways it can).
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
   * (for example proof data never served by the deadline): the job is not paid and the locked
   * slash is burned (no one is rewarded, so no one gains by claiming it).
   *
   * @param validator The challenger (this ledger's owner), kept for the record.
   * @param reason Stable reason code (`proof_unavailable`, ...).
   */
  async settleFault(receiptId: string, validator: Uint8Array, reason: string): Promise<void> {
    await this.#transition("fault", () => {
      const rec = this.#pendingRecord(receiptId, ["challenged"]);
      return { receiptId, validator: toHex(validator), reason, slashed: rec.locked };
    });
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
    return [...this.#receipts.values()].filter((r) => r.status === "challenged").map((r) =>
      r.receiptId
    );
  }

  #pendingRecord(receiptId: string, allowed: ReceiptStatus[]): ReceiptRecord {
    const rec = this.#receipts.get(receiptId);
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
        this.#verdicts.has(id) ? null : { verdict: verdict as unknown as Record<string, unknown> },
    );
    return id;
  }

  /** Wait for pending appends and close the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue;
    this.#closed = true;
    this.#file.close();
  }
}

/** The bytes an entry's signature covers. */
export function entrySigningBytes(entry: Omit<LedgerEntry, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = entry as LedgerEntry;
  return encodeCanonical({ domain: ENTRY_DOMAIN, entry: unsigned });
}

/** Hex hash of a whole entry (signature included): what the next entry's `prev` names. */
export function entryHash(entry: LedgerEntry): string {
  return sha256Hex(encodeCanonical(entry));
}
