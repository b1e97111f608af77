/**
 * The ledger's one writer: every change to a `Ledger` is a state transition decided and
 * appended in the writer's turn, one after another, in call order. It signs each entry, appends
 * it to the log (`fsync`'d before the call returns), applies it to the working state and the
 * history index, writes a signed checkpoint every `checkpointEvery` entries and on close, and is
 * poisoned by a write that fails (every later call fails until the ledger is reopened from disk).
 * An entry whose append succeeded is recorded even when what follows it fails (the history
 * index's commit on a full disk): that call is answered `ledger_index_failed`, which says so.
 * `ledger.ts` builds one in `Ledger.open` from what recovery found and routes every change
 * through it; the decisions themselves (`_ledger_receipts.ts`, `_ledger_training.ts`,
 * `_ledger_accusations.ts`, `_ledger_steering.ts`) run inside its turn. Not part of the public
 * API.
 *
 * @module
 */
import type { Identity } from "../protocols/identity.ts";
import {
  encodeEntryFrame,
  entryHash,
  FRAME_HEADER_BYTES,
  type LedgerEntry,
  type LedgerEntryKind,
  MAX_ENTRY_BYTES,
  signEntry,
} from "./ledger_entry.ts";
import { LedgerError, LedgerRejectedError } from "./ledger_errors.ts";
import type { LedgerLog } from "./ledger_log.ts";
import type { LedgerState } from "./ledger_state.ts";
import { type LedgerIndex, positionAfter } from "./ledger_index.ts";
import type { RecoveredLedger } from "./ledger_recovery.ts";
import { type LedgerCheckpoint, signCheckpoint, writeCheckpoint } from "./ledger_checkpoint.ts";
import { ledgerDiskError, LedgerIndexFailedError } from "./_ledger_disk_faults.ts";

/** What a {@link LedgerWriter} writes to, and with what (all from `Ledger.open`). */
export interface LedgerWriterOptions {
  /** The ledger's directory (its checkpoint is written there). */
  dir: string;
  /** The log entries are appended to. */
  log: LedgerLog;
  /** The history index each entry is applied to. */
  index: LedgerIndex;
  /** The ledger's owner: signs every entry and checkpoint. */
  identity: Identity;
  /** Hex key of the owner. */
  owner: string;
  /** Clock in unix ms. */
  now: () => number;
  /** Write a signed checkpoint every this many entries (and on close); 0 writes none. */
  checkpointEvery: number;
  /** Why no entry may be written now (`LedgerOptions.refuseWrite`); undefined: write. */
  refuseWrite?: () => Error | undefined;
}

/** See the module doc. */
export class LedgerWriter {
  readonly #dir: string;
  readonly #log: LedgerLog;
  readonly #index: LedgerIndex;
  readonly #identity: Identity;
  readonly #owner: string;
  readonly #now: () => number;
  readonly #checkpointEvery: number;
  readonly #refuseWrite: () => Error | undefined;
  /** The working state: what replaying the log derives (balances, pledges, open receipts). */
  readonly state: LedgerState;
  #head: string;
  #seq: number;
  /** Byte offset of the last entry (its end is the log's size). */
  #last: number;
  /** Entries the last checkpoint written covers. */
  #checkpointSeq: number;
  #closed = false;
  /** Set when a write failed: the file may hold a torn entry; see `transition`. */
  #poisoned: Error | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  /** A writer that goes on from what recovery found (`recovered`). */
  constructor(options: LedgerWriterOptions, recovered: RecoveredLedger) {
    this.#dir = options.dir;
    this.#log = options.log;
    this.#index = options.index;
    this.#identity = options.identity;
    this.#owner = options.owner;
    this.#now = options.now;
    this.#checkpointEvery = options.checkpointEvery;
    this.#refuseWrite = options.refuseWrite ?? (() => undefined);
    this.state = recovered.state;
    this.#seq = recovered.seq;
    this.#head = recovered.head;
    this.#last = recovered.last;
    this.#checkpointSeq = recovered.checkpointSeq;
  }

  /** Number of entries (including genesis). */
  get seq(): number {
    return this.#seq;
  }

  /** Hex hash of the last entry. */
  get head(): string {
    return this.#head;
  }

  /**
   * The failure that poisoned the writer (see {@link LedgerWriter.transition}), or null while it
   * writes: its owner reopens the ledger from disk (`Ledger.reopen`).
   */
  get poisoned(): Error | null {
    return this.#poisoned;
  }

  /** Serialize appends: one writer, entries in call order. */
  append(kind: LedgerEntryKind, body: Record<string, unknown>): Promise<LedgerEntry> {
    return this.transition(kind, () => body) as Promise<LedgerEntry>;
  }

  /**
   * One state transition, atomic: `decide` runs in the writer's turn, after every earlier
   * append has been applied, and returns the entry's body (or null: nothing to do); its checks
   * and the append are one step, so two settlements of one receipt, or a settlement racing
   * `finalizeDue`, cannot both pass their checks. A write that fails leaves the file in an
   * unknown state: the ledger is poisoned (every later call fails) and its owner reopens it
   * from disk, where a torn tail is cut.
   */
  transition(
    kind: LedgerEntryKind,
    decide: () => Record<string, unknown> | null,
  ): Promise<LedgerEntry | null> {
    return this.transitionOf(() => {
      const body = decide();
      return body === null ? null : { kind, body };
    });
  }

  /**
   * {@link LedgerWriter.transition} where `decide` also chooses the entry's kind: one call whose
   * outcome depends on what is recorded (a receipt that is equivocation, a late assignment, or
   * new) decides it in one turn, so two such calls racing cannot both decide on stale state.
   */
  transitionOf(
    decide: () => { kind: LedgerEntryKind; body: Record<string, unknown> } | null,
  ): Promise<LedgerEntry | null> {
    const run = this.#queue.then(async () => {
      if (this.#closed) throw new LedgerError("ledger_closed", "ledger is closed");
      this.#throwIfPoisoned();
      // Refused before anything is decided or written (a read-only node on a full disk): the
      // log is left byte for byte as it was, and nothing is poisoned. Not a new ledger's first
      // entry, its genesis (`Ledger.open`, a few hundred bytes): the reserve freed at the node's
      // start is for the ledger's open (`node/disk_room.ts`); refused, a node's first start on a
      // full disk failed (its validator crashed at every start until its supervisor gave up).
      const refused = this.#seq === 0 ? undefined : this.#refuseWrite();
      if (refused !== undefined) throw refused;
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
      } catch (error) {
        this.#poisoned = error as Error;
        throw error;
      }
      try {
        this.state.apply(entry);
        this.#index.apply(entry, positionAfter(entry, offset, offset + frame.length, this.#owner));
      } catch (error) {
        // The entry is in the log, synced: it counts, now and after the reopen, which brings
        // the index up to the log. Told as a plain failure, a caller that made the call again
        // would count it twice; the review that found it saw a "rejected" deposit counted after
        // the reopen (review s72). Poisoned all the same: later decisions read the index.
        this.#poisoned = ledgerDiskError(error, this.#dir, false) as Error;
        throw new LedgerIndexFailedError(entry.seq, kind, this.#poisoned);
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
      state: this.state.snapshot(),
    }, this.#identity);
    await writeCheckpoint(this.#dir, checkpoint);
    this.#checkpointSeq = checkpoint.seq;
  }

  /**
   * At open, before any append: a checkpoint now when `checkpointEvery` entries or more came
   * after the last one (a long unverified tail is not left for the next open). Its failure is
   * the open's.
   */
  async checkpointIfDue(): Promise<void> {
    if (
      this.#checkpointEvery > 0 &&
      this.#seq - this.#checkpointSeq >= this.#checkpointEvery &&
      // A read-only node (a full disk) opens without one: the next open verifies more.
      this.#refuseWrite() === undefined
    ) {
      await this.#checkpoint(); // a long unverified tail is not left for the next open
    }
  }

  /** `Ledger.checkpoint`: a checkpoint after the appends already queued. */
  async checkpoint(): Promise<void> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new LedgerError("ledger_closed", "ledger is closed");
      this.#throwIfPoisoned();
      return this.#checkpoint();
    });
    this.#queue = run.catch(() => {});
    await run;
  }

  /** `Ledger.close`: wait for pending appends, checkpoint if entries came, close the files. */
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
