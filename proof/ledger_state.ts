/**
 * The ledger's working state, the part that lives in memory: balances per key, the signed stake
 * pledge behind each pledged key (served to peers: `network/network_actor.ts` sends them all on
 * connect), and the receipts still open (`pending` or `challenged`) with a queue of when their
 * windows close. Its size depends on how many keys hold stake and how many receipts are inside
 * their window, never on how long the log is: a receipt leaves it the moment it is final or
 * slashed, or, left unpaid by an undecided challenge, when its window ends (a peer's proof can
 * still convict it until then, so its lock stays: review s79), and from then on lives only in the
 * history index (`ledger_index.ts`).
 *
 * {@link LedgerState.apply} is the one place an entry moves balances. It reads nothing but this
 * state and the entry, so a checkpoint's snapshot plus the entries after it rebuild exactly the
 * state a replay from genesis does.
 *
 * Amounts are kept to a millionth of a credit ({@link roundCredits}): every balance a move
 * leaves, and every amount the ledger computes for an entry. Prices need not be whole (`tokens ×
 * 0.1`), and binary floating point left sums an ulp off, differently in each order: a lock of
 * 6.000000000000001 refused to a worker with 6 free, `locked` at −1.8e-15 with nothing open,
 * two ledgers that met the same receipts in other orders with other balances (review s57). Kept
 * to the quantum, each balance is the double nearest its exact decimal value, whatever the order
 * of the moves that made it (up to about a billion credits; past 2^53 millionths, about nine
 * billion, an amount is left as it is). Entries and checkpoints hold plain numbers as before.
 *
 * A key that signed two different pledges, both recorded here (`pledge_equivocation`), is
 * convicted of pledge equivocation, and its account is forfeited from then on: no balance, and no
 * stake but what its open receipts lock, each lock forfeited as it is released or slashed. Two
 * ledgers that heard its pledges in the other order (one backing receipts the other refused, or
 * paid before the conviction) end with the same account once every window has closed, all zeros,
 * and an accuser's share of a slash is what it would be without the conviction.
 *
 * @module
 */
import { fromHex, toHex } from "../protocols/hash.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import type { LedgerEntry } from "./ledger_entry.ts";
import { DueQueue } from "./ledger_due_queue.ts";
import { LedgerNewerFormatError } from "./ledger_errors.ts";

/**
 * The state of one receipt in the ledger: `pending` (in its window), `challenged` (this
 * ledger's owner is checking it), `final` (paid), `fraud` (slashed, unpaid) or `unpaid` (a
 * challenge that could not be decided: not paid, not slashed here unless a peer's fraud proof
 * comes inside its window; its lock is kept until then, open here, and released unpaid by a
 * `final` entry when the window ends — review s79, F1).
 */
export type ReceiptStatus = "pending" | "challenged" | "final" | "fraud" | "unpaid";

/**
 * Whether a fraud proof can still settle a receipt in `status` (its window aside): pending or
 * challenged; `unpaid` — this ledger's own challenge ended undecided, and a proof from elsewhere
 * inside the window settles it as it does in every ledger that did not challenge; `fraud` — only
 * a refuted proof, whose accuser pays as it does in the ledgers that checked it before the
 * confirmed one. Inside the window, a ledger books the same accusations whatever their order.
 */
export function takesFraudProofs(status: ReceiptStatus): boolean {
  return status === "pending" || status === "challenged" || status === "unpaid" ||
    status === "fraud";
}

/**
 * Whether a peer's fraud proof about `record` is worth checking at `now`: its status takes
 * proofs ({@link takesFraudProofs}) and, closed here (`unpaid`, `fraud`), it is inside its window
 * — past it every ledger refuses the settlement, so the accuser would risk nothing for the check.
 * (A pending or challenged receipt past its window is the ledger's to refuse.)
 */
export function worthFraudCheck(
  record: Pick<ReceiptRecord, "status" | "pendingUntil">,
  now: number,
): boolean {
  const closed = record.status === "unpaid" || record.status === "fraud";
  return takesFraudProofs(record.status) && !(closed && now > record.pendingUntil);
}

/**
 * What work a receipt is for: `inference` (a signed `protocols/receipt.ts` receipt, paid
 * tokens × price) or `training` (a signed `training/training_receipt.ts` receipt, paid per local
 * step). Both settle the same way; only how they are recorded, and which fraud proof applies,
 * differ.
 */
export type ReceiptKind = "inference" | "training";

/** What the ledger knows about one receipt. */
export interface ReceiptRecord {
  /** Receipt id. */
  receiptId: string;
  /** See {@link ReceiptKind}. */
  kind: ReceiptKind;
  /** Hex worker key (the trainer's, for a training receipt). */
  worker: string;
  /** See {@link ReceiptStatus}. */
  status: ReceiptStatus;
  /**
   * Credit due when final: tokens × price when a requester other than the worker signed the
   * job's assignment to it (`requester`), else 0 — unrequested work earns nothing. For a
   * training receipt, `trainingReward` (steps × `trainingCreditPerStep`, scaled by the work of a
   * step).
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

/**
 * The working state as a checkpoint stores it: plain arrays, in a fixed order (accounts as
 * first seen, open receipts as recorded), so equal states encode to equal bytes.
 */
export interface LedgerStateSnapshot {
  /** `[key, balance, stake, locked, staked]` per account. */
  accounts: [string, number, number, number, boolean][];
  /**
   * `[receiptId, worker, status, credit, requester | null, locked, pendingUntil, kind?, freed?]`:
   * `kind` only for a training receipt (absent: inference; `null` before a `freed`), so a state
   * without training receipts encodes as it did before training receipts existed, and older
   * checkpoints restore. `freed` only for a steering conviction's pending evidence marked by an
   * entry that frees locks (`LedgerState.freed`): absent, nothing of its lock was freed.
   */
  open: [
    string,
    string,
    ReceiptStatus,
    number,
    string | null,
    number,
    number,
    ("training" | null)?,
    number?,
  ][];
  /**
   * `[key, amount, issuedAt, sig, v]` per signed pledge, as recorded. Absent in checkpoints
   * written before pledges were kept here: such a checkpoint cannot restore them, so recovery
   * replays from genesis instead (`ledger_recovery.ts`).
   */
  pledges?: [string, number, number, Uint8Array, number][];
  /**
   * The second pledge of each key convicted of pledge equivocation, as `pledges` holds its first.
   * Absent when there is none (so a state without one encodes as it did before the rule).
   */
  equivocated?: [string, number, number, Uint8Array, number][];
}

/**
 * The signed pledge a `stake` entry recorded, if it recorded one (a deposit records none).
 * Entries written before the pledge's version was kept are version 1, the only one there was.
 */
function pledgeOf(body: Record<string, unknown>): StakePledge | undefined {
  const signed = body.pledge as { v?: number; issuedAt: number; sig: Uint8Array } | undefined;
  if (signed === undefined) return undefined;
  return {
    v: signed.v ?? 1,
    key: fromHex(body.key as string),
    amount: body.amount as number,
    issuedAt: signed.issuedAt,
    sig: signed.sig,
  };
}

const NO_ACCOUNT: Readonly<Account> = { balance: 0, stake: 0, locked: 0 };

/** Millionths of a credit per credit: the ledger's quantum of amounts (see the module doc). */
const PER_CREDIT = 1e6;

/**
 * `amount` to the nearest millionth of a credit: the double nearest that decimal value (never
 * −0), so the same sum made in any order gives the same number. An amount of 2^53 millionths or
 * more (about nine billion credits), or not finite, is returned as it is: a double holds no finer
 * fraction there, and `Math.round` of it would change nothing but its last bits.
 *
 * @example
 * ```ts
 * import { roundCredits } from "./ledger_state.ts";
 * roundCredits(3 * 0.1 * 20); // 6, not 6.000000000000001
 * roundCredits(0.1 + 0.2); // 0.3
 * ```
 */
export function roundCredits(amount: number): number {
  const scaled = amount * PER_CREDIT;
  if (!(Math.abs(scaled) < Number.MAX_SAFE_INTEGER)) return amount;
  return Math.round(scaled) / PER_CREDIT || 0;
}

/** A pledge as a snapshot row: `[key, amount, issuedAt, sig, v]`. */
function pledgeRow(key: string, p: StakePledge): [string, number, number, Uint8Array, number] {
  return [key, p.amount, p.issuedAt, p.sig, p.v];
}

/** Balances and open receipts; see the module doc. */
export class LedgerState {
  readonly #accounts = new Map<string, Account>();
  /** Keys that have any stake entry: a pledge is recorded once per key. */
  readonly #staked = new Set<string>();
  /** The signed pledge of each pledged key, as recorded (in the order recorded). */
  readonly #pledges = new Map<string, StakePledge>();
  /** The second pledge of each key convicted of pledge equivocation (`pledge_equivocation`). */
  readonly #equivocated = new Map<string, StakePledge>();
  /** The accounts of those keys: forfeited ({@link LedgerState.pledgeEquivocated}). */
  readonly #forfeited = new WeakSet<Account>();
  /** Receipts in their window or under challenge, in the order they were recorded. */
  readonly #open = new Map<string, ReceiptRecord>();
  /**
   * Open receipts a steering conviction holds as pending evidence (entries that free locks:
   * `freed` in their body), each with what of its lock the conviction's cut took and so released
   * from its worker's `locked` already ({@link LedgerState.freed}).
   */
  readonly #freed = new Map<string, number>();
  /** Arrival order of each open receipt (ties in the due queue). */
  readonly #orderOf = new Map<string, number>();
  readonly #due = new DueQueue();
  #order = 0;

  /** The state a snapshot describes. */
  static restore(snapshot: LedgerStateSnapshot): LedgerState {
    const state = new LedgerState();
    for (const [key, balance, stake, locked, staked] of snapshot.accounts) {
      // Kept to the quantum: a checkpoint written before amounts were held a balance an ulp off
      // (review s57), which a replay from genesis now gives rounded.
      state.#accounts.set(key, {
        balance: roundCredits(balance),
        stake: roundCredits(stake),
        locked: roundCredits(locked),
      });
      if (staked) state.#staked.add(key);
    }
    for (const [key, amount, issuedAt, sig, v] of snapshot.pledges ?? []) {
      state.#pledges.set(key, { v, key: fromHex(key), amount, issuedAt, sig });
    }
    for (const [key, amount, issuedAt, sig, v] of snapshot.equivocated ?? []) {
      state.#forfeit(key, { v, key: fromHex(key), amount, issuedAt, sig });
    }
    for (
      const [receiptId, worker, status, credit, requester, locked, pendingUntil, kind, freed]
        of snapshot.open
    ) {
      const rec: ReceiptRecord = {
        receiptId,
        kind: kind ?? "inference",
        worker,
        status,
        credit,
        locked,
        pendingUntil,
      };
      if (requester !== null) rec.requester = requester;
      state.#admit(rec);
      if (typeof freed === "number") state.#freed.set(receiptId, roundCredits(freed));
    }
    return state;
  }

  /** This state as a checkpoint stores it. */
  snapshot(): LedgerStateSnapshot {
    const snapshot: LedgerStateSnapshot = {
      accounts: [...this.#accounts].map(([key, a]) => [
        key,
        a.balance,
        a.stake,
        a.locked,
        this.#staked.has(key),
      ]),
      open: [...this.#open.values()].map((r) => {
        const row: LedgerStateSnapshot["open"][number] = [
          r.receiptId,
          r.worker,
          r.status,
          r.credit,
          r.requester ?? null,
          r.locked,
          r.pendingUntil,
        ];
        const freed = this.#freed.get(r.receiptId);
        if (r.kind === "training" || freed !== undefined) {
          row.push(r.kind === "training" ? "training" : null);
        }
        if (freed !== undefined) row.push(freed);
        return row;
      }),
      pledges: [...this.#pledges].map(([key, p]) => pledgeRow(key, p)),
    };
    if (this.#equivocated.size > 0) {
      snapshot.equivocated = [...this.#equivocated].map(([key, p]) => pledgeRow(key, p));
    }
    return snapshot;
  }

  /** Keys with an account here. */
  get accountCount(): number {
    return this.#accounts.size;
  }

  /** Receipts open here (pending, challenged, or left unpaid inside their window). */
  get openCount(): number {
    return this.#open.size;
  }

  /** Balances of `key` (hex); zeros when unknown. Read-only: creates nothing. */
  account(key: string): Readonly<Account> {
    return this.#accounts.get(key) ?? NO_ACCOUNT;
  }

  /** Whether `key` (hex) has ever had stake recorded. */
  hasStaked(key: string): boolean {
    return this.#staked.has(key);
  }

  /** The signed pledges recorded, in the order recorded (the live objects: do not change them). */
  pledges(): IterableIterator<StakePledge> {
    return this.#pledges.values();
  }

  /** The first pledge recorded of hex `key`, if any (the live object: do not change it). */
  pledgeOf(key: string): StakePledge | undefined {
    return this.#pledges.get(key);
  }

  /**
   * The second pledge of hex `key` when `key` is convicted of pledge equivocation (it signed two
   * different pledges, and this ledger holds both): its stake and balance are forfeited.
   */
  pledgeEquivocated(key: string): StakePledge | undefined {
    return this.#equivocated.get(key);
  }

  /** The open receipt `receiptId`, if it is open (the live record: do not hand it out). */
  open(receiptId: string): ReceiptRecord | undefined {
    return this.#open.get(receiptId);
  }

  /**
   * What of open `receiptId`'s lock a steering conviction's cut took, released from its worker's
   * `locked` at the conviction (that stake is gone, so it backs no lock: counted locked as well
   * until the window closed, the worker's free stake was short by it, stop 80); 0 when none.
   */
  freed(receiptId: string): number {
    return this.#freed.get(receiptId) ?? 0;
  }

  /** Every open receipt, in the order recorded. */
  openReceipts(): IterableIterator<ReceiptRecord> {
    return this.#open.values();
  }

  /**
   * Ids of pending receipts whose window has closed at `now`, earliest first, and of receipts left
   * `unpaid` whose lock is released then. Taken out of the due queue: the caller finalizes them
   * (a receipt challenged now is queued again when it is cleared or left unpaid).
   */
  takeDue(now: number): string[] {
    const ids = new Set<string>();
    for (const item of this.#due.takeDue(now)) {
      const rec = this.#open.get(item.receiptId);
      // Lazy deletion: settled or challenged since it was queued → skip (queued twice → once).
      const due = rec?.status === "pending" || rec?.status === "unpaid";
      if (due && rec.pendingUntil === item.pendingUntil) {
        ids.add(rec.receiptId);
      }
    }
    return [...ids];
  }

  /** Queue the open receipt `receiptId` again as due: taken out, it was held back unpaid. */
  deferDue(receiptId: string): void {
    const rec = this.#open.get(receiptId);
    if (rec !== undefined) this.#queue(rec);
  }

  /** Queue the open `rec` as due when its window closes (a stale item is skipped: `takeDue`). */
  #queue(rec: ReceiptRecord): void {
    const order = this.#orderOf.get(rec.receiptId);
    if (order === undefined) return;
    this.#due.push({ pendingUntil: rec.pendingUntil, order, receiptId: rec.receiptId });
  }

  #account(key: string): Account {
    let a = this.#accounts.get(key);
    if (!a) {
      a = { balance: 0, stake: 0, locked: 0 };
      this.#accounts.set(key, a);
    }
    return a;
  }

  /**
   * `account[field] += delta`, kept to the quantum ({@link roundCredits}); a forfeited account
   * is then held to its rule ({@link LedgerState.#hold}).
   */
  #move(account: Account, field: keyof Account, delta: number): void {
    account[field] = roundCredits(account[field] + delta);
    this.#hold(account);
  }

  /**
   * `account`'s stake cut by `amount`, never below zero (only a steering or stream conviction cuts
   * stake that open receipts lock, and a slash after it takes what is left).
   */
  #cut(account: Account, amount: number): void {
    account.stake = Math.max(0, roundCredits(account.stake - amount));
    this.#hold(account);
  }

  /**
   * A forfeited account (its key convicted of pledge equivocation) earns nothing and keeps no
   * stake but what its open receipts lock: a balance is forfeited, and so is each lock as it is
   * released (paid, left unpaid) or slashed. Whatever order the evidence came in, such an account
   * ends at zero once every window has closed; and an accuser's share of a slash is what it would
   * be without the conviction (the lock is still there to slash), before it or after.
   */
  #hold(account: Account): void {
    if (!this.#forfeited.has(account)) return;
    account.balance = 0;
    account.stake = account.locked;
  }

  /** Hex `key` convicted of pledge equivocation by its `second` pledge: its account forfeited. */
  #forfeit(key: string, second: StakePledge): void {
    this.#equivocated.set(key, second);
    const account = this.#account(key);
    this.#forfeited.add(account);
    this.#hold(account);
  }

  /** Up to `amount` of the locks of hex `worker`'s marked steering evidence released. */
  #free(worker: string, amount: number): void {
    let left = amount;
    let released = 0;
    // In the order recorded (a checkpoint restores that order; the marks' own order may differ).
    for (const rec of this.#open.values()) {
      if (left <= 0) break;
      const freed = this.#freed.get(rec.receiptId);
      if (freed === undefined || rec.worker !== worker) continue;
      const take = roundCredits(Math.min(rec.locked - freed, left));
      if (take <= 0) continue;
      this.#freed.set(rec.receiptId, roundCredits(freed + take));
      left = roundCredits(left - take);
      released = roundCredits(released + take);
    }
    this.#move(this.#account(worker), "locked", -released);
  }

  #admit(rec: ReceiptRecord): void {
    const order = this.#order++;
    this.#open.set(rec.receiptId, rec);
    this.#orderOf.set(rec.receiptId, order);
    this.#due.push({ pendingUntil: rec.pendingUntil, order, receiptId: rec.receiptId });
  }

  /** A receipt leaves the working state: it is final, slashed or unpaid for good. */
  /** An open receipt slashed: closed unpaid, its lock released, `amount` cut from the stake. */
  #slash(rec: ReceiptRecord, amount: number): void {
    const worker = this.#account(rec.worker);
    this.#release(rec);
    this.#cut(worker, amount);
  }

  /** An open receipt closed and its lock released: what a steering cut did not free already. */
  #release(rec: ReceiptRecord): void {
    const freed = this.freed(rec.receiptId);
    this.#close(rec);
    this.#move(this.#account(rec.worker), "locked", -roundCredits(rec.locked - freed));
  }

  #close(rec: ReceiptRecord): void {
    this.#open.delete(rec.receiptId);
    this.#orderOf.delete(rec.receiptId);
    this.#freed.delete(rec.receiptId);
  }

  /** Apply a verified entry: the one place balances move. */
  apply(entry: LedgerEntry): void {
    const b = entry.body as Record<string, never>;
    switch (entry.kind) {
      case "genesis":
      case "verdict":
      case "unrecorded_claim":
        return; // they move no balance; the history index keeps them
      case "false_accusation":
        this.#move(this.#account(b.validator), "stake", -b.penalty);
        return;
      case "stake": {
        this.#move(this.#account(b.key), "stake", b.amount);
        this.#staked.add(b.key);
        const pledge = pledgeOf(b);
        if (pledge !== undefined) this.#pledges.set(b.key, pledge);
        return;
      }
      case "pledge_equivocation":
        // The key's second, different pledge (its first is recorded): convicted.
        this.#forfeit(b.key, pledgeOf(b)!);
        return;
      case "receipt":
      case "training_receipt": {
        const rec: ReceiptRecord = {
          receiptId: b.receiptId,
          kind: entry.kind === "receipt" ? "inference" : "training",
          worker: b.worker,
          status: "pending",
          credit: b.credit,
          locked: b.locked,
          pendingUntil: b.pendingUntil,
        };
        if (b.requester) rec.requester = b.requester;
        this.#admit(rec);
        this.#move(this.#account(rec.worker), "locked", rec.locked);
        return;
      }
      case "final": {
        const rec = this.#open.get(b.receiptId);
        if (!rec) return;
        const acc = this.#account(rec.worker);
        this.#release(rec);
        // Left unpaid by an undecided challenge: its window is over, its lock released, unpaid.
        if (rec.status !== "unpaid") this.#move(acc, "balance", rec.credit);
        return;
      }
      case "fraud": {
        const rec = this.#open.get(b.receiptId);
        if (rec) {
          this.#slash(rec, b.slashed as number);
        } else if (typeof b.worker === "string") {
          // A receipt closed unpaid (left unpaid before its lock was kept, or never recorded
          // here), or already slashed (a proof of its worker's other claim): its stake is cut.
          this.#cut(this.#account(b.worker), b.slashed);
        } else {
          return;
        }
        this.#move(this.#account(b.validator), "balance", b.reward);
        return;
      }
      case "equivocation": {
        const rec = this.#open.get(b.receiptId);
        if (rec) {
          this.#slash(rec, b.slashed as number);
        } else {
          // The first receipt was already closed (paid or unpaid): its stake is cut as much.
          // The second receipt is the same worker's (the ledger checked that before writing).
          const second = b.second as unknown as { worker: Uint8Array };
          this.#move(this.#account(toHex(second.worker)), "stake", -b.slashed);
        }
        // The second receipt came assigned while another worker's assigned receipt held the
        // job: that one is not paid either (as a `double_assignment`).
        const twice = b.doubleAssignment as { receiptId: string } | undefined;
        const holder = twice === undefined ? undefined : this.#open.get(twice.receiptId);
        if (holder) holder.credit = 0;
        return;
      }
      case "training_equivocation": {
        // As `equivocation`: the first receipt slashed, or its stake cut as much if it closed.
        const rec = this.#open.get(b.receiptId);
        if (rec) return void this.#slash(rec, b.slashed as number);
        const worker = this.#account(b.worker);
        this.#move(worker, "stake", -b.slashed);
        // Closed paid (at its window's end or by a late credit): that pay taken back, so the
        // trainer ends as where the conviction came first (`reclaimedCredit`,
        // `_ledger_training.ts`; review s79 vlate, F2). Absent from entries written before:
        // their pay stays, as it did when they were written.
        if (typeof b.reclaimed === "number") this.#move(worker, "balance", -b.reclaimed);
        return;
      }
      case "double_assignment": {
        // The requester assigned the job twice: the receipt recorded first is not paid.
        const rec = this.#open.get(b.receiptId);
        if (rec) rec.credit = 0;
        return;
      }
      case "assigned": {
        const rec = this.#open.get(b.receiptId);
        if (!rec) return;
        rec.requester = b.requester;
        rec.credit = b.credit;
        return;
      }
      case "cancelled_pair": {
        // The other half of the record's cancelled pair: the job is paid the k tokens once.
        // Open, the record's credit is that (and its requester the one the half came assigned
        // by); closed paid more (the cancelled receipt after the finished one's window), the
        // difference is taken back.
        const rec = this.#open.get(b.receiptId);
        if (rec) {
          if (typeof b.requester === "string") rec.requester = b.requester;
          if (typeof b.credit === "number") rec.credit = b.credit;
        } else if (typeof b.reclaimed === "number") {
          this.#move(this.#account(b.worker), "balance", -b.reclaimed);
        }
        // Convicted of equivocation before the pair was whole: what its larger claim adds.
        if (typeof b.slashed === "number") this.#cut(this.#account(b.worker), b.slashed);
        return;
      }
      case "training_late_credit": {
        // A training receipt closed unpaid, never convicted, credited by its round after its
        // window: paid now (`_ledger_training.ts`). Written only for a closed one: open, it is
        // credited by `assigned` and paid when final.
        if (this.#open.has(b.receiptId)) return;
        this.#move(this.#account(b.worker), "balance", b.credit);
        return;
      }
      case "challenge":
      case "cleared": {
        const rec = this.#open.get(b.receiptId);
        if (!rec) return;
        rec.status = entry.kind === "challenge" ? "challenged" : "pending";
        if (entry.kind === "cleared") this.#queue(rec);
        return;
      }
      case "fault": {
        const rec = this.#open.get(b.receiptId);
        if (rec) this.#slash(rec, b.slashed as number);
        return;
      }
      case "unresolved": {
        const rec = this.#open.get(b.receiptId);
        if (!rec) return;
        if (b.held === true) {
          // Inside its window a peer's proof can still convict it, out of its lock: the lock is
          // kept, so no other receipt is recorded against that stake (review s79, F1), and
          // released unpaid when the window ends (a `final` entry). Open until then.
          rec.status = "unpaid";
          this.#queue(rec);
          return;
        }
        // Written before the lock was kept (no `held`), or past the window: released now.
        this.#release(rec);
        return;
      }
      case "steering": {
        // A steering conviction: the evidence's pending receipts are not paid, and the stake is
        // cut (the paid ones' credit stays with the worker; the cut covers it).
        // An entry that frees locks (`freed`, stop 80) marks them as its pending evidence.
        const frees = typeof b.freed === "number";
        for (const id of (b.uncredited as string[] | undefined) ?? []) {
          const rec = this.#open.get(id);
          if (rec) rec.credit = 0;
          if (rec && frees && !this.#freed.has(id)) this.#freed.set(id, 0);
        }
        this.#move(this.#account(b.worker), "stake", -b.slashed);
        // The cut took `freed` of those receipts' locks: released now, not when their windows
        // close, each taking its lock in the order recorded. Entries written before (no
        // `freed`) keep the locks until then, and replay so.
        if (frees && typeof b.settlement === "string") this.#free(b.worker, b.freed);
        return;
      }
      case "stream_fraud":
        // A stream conviction: no receipt backs it, so the cut is from the stake (locks
        // included), and the owner that checked the claim earns its share. Nothing moves for a
        // key with nothing to cut: no account is made for it.
        if (b.slashed > 0) this.#cut(this.#account(b.worker), b.slashed);
        if (b.reward > 0) this.#move(this.#account(b.validator), "balance", b.reward);
        // Its open receipt for the job is not paid (`_ledger_stream_fraud.ts`).
        for (const id of (b.uncredited as string[] | undefined) ?? []) {
          const rec = this.#open.get(id);
          if (rec) rec.credit = 0;
        }
        return;
      default: {
        // A kind added without its case here does not compile; one a newer version wrote (the
        // chain refuses it first) is refused, never skipped: skipping it leaves balances wrong.
        const unknown: never = entry.kind;
        throw new LedgerNewerFormatError(entry.seq, String(unknown));
      }
    }
  }
}
