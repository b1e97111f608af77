/**
 * Opening a ledger from its files: the working state from the last checkpoint that verifies
 * and matches the log, plus the entries after it (each one checked: link, owner, signature); the
 * history index from wherever it stands. What it reads is bounded by the checkpoint interval,
 * not by the length of the log — unless the checkpoint or the index is lost, when the log is
 * read from genesis once and both are written anew.
 *
 * A signed checkpoint whose entries are no longer in the log (a log cut short, overwritten, or
 * swapped) means acknowledged entries are missing: that is reported as damage, with the commands
 * that recover, never silently replayed past.
 *
 * If the history index fails (a damaged `index.sqlite`), `Ledger.open` deletes it and runs this
 * again, building it anew from the log.
 *
 * @module
 */
import { decodeCbor } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import { ChainVerifier, entryHash, GENESIS_PREV, type LedgerEntry } from "./ledger_entry.ts";
import { LedgerTamperedError } from "./ledger_errors.ts";
import type { LedgerLog } from "./ledger_log.ts";
import { LedgerState } from "./ledger_state.ts";
import { type IndexPosition, type LedgerIndex, positionAfter } from "./ledger_index.ts";
import { readCheckpoint, verifyCheckpoint } from "./ledger_checkpoint.ts";

/** Entries applied to the history index per transaction when it catches up with the log. */
const INDEX_CATCH_UP_BATCH = 4096;

/** Where a chain stands: entries so far, the last one's hash and place in the log. */
interface ChainPoint {
  seq: number;
  head: string;
  last: number;
  end: number;
}

const GENESIS: ChainPoint = { seq: 0, head: GENESIS_PREV, last: 0, end: 0 };

/** The derived state of a ledger, rebuilt from its files. */
export interface RecoveredLedger {
  /** The working state after the last entry. */
  state: LedgerState;
  /** Entries in the log. */
  seq: number;
  /** Hash of the last entry. */
  head: string;
  /** Byte offset of the last entry. */
  last: number;
  /** Entries the checkpoint it started from covers (0: it replayed from genesis). */
  checkpointSeq: number;
}

/**
 * Rebuild the working state and bring the index up to date (see the module doc); a torn tail
 * is cut from the log.
 *
 * @throws {LedgerTamperedError} naming the first entry that fails, or the last one a signed
 *   checkpoint covers when it is missing from the log.
 */
export async function recoverLedger(
  dir: string,
  log: LedgerLog,
  index: LedgerIndex,
  owner: Uint8Array,
): Promise<RecoveredLedger> {
  const ownerHex = toHex(owner);
  const { start, state } = await startingPoint(dir, log, owner);
  let position = await validIndexPosition(log, index, ownerHex) ?? GENESIS;
  const indexing = new IndexWriter(index, ownerHex);
  if (position.seq < start.seq) {
    // The index is behind the checkpoint (lost commits, a deleted file): the entries between
    // are vouched for by the signed checkpoint, so their links are checked, not signatures.
    const chain = new ChainVerifier({ owner, from: position, signatures: false, dir });
    try {
      const read = await log.readFrames(position.end, async (frame) => {
        indexing.apply(await chain.next(frame.payload), frame.offset, frame.end);
      }, start.end);
      if (read.badLength !== undefined || read.tornBytes > 0) {
        throw new LedgerTamperedError(chain.seq, "a frame before the checkpoint is cut", dir);
      }
    } finally {
      indexing.flush();
    }
    if (chain.seq !== start.seq || chain.head !== start.head) {
      throw new LedgerTamperedError(start.seq - 1, "does not match the signed checkpoint", dir);
    }
    position = start;
  }
  const chain = new ChainVerifier({ owner, from: start, dir });
  const at = { ...start };
  const read = await log.readFrames(start.end, async (frame) => {
    const entry = await chain.next(frame.payload);
    state.apply(entry);
    if (entry.seq >= position.seq) indexing.apply(entry, frame.offset, frame.end);
    at.seq = chain.seq;
    at.head = chain.head;
    at.last = frame.offset;
  }).finally(() => indexing.flush());
  if (read.badLength !== undefined) {
    throw new LedgerTamperedError(at.seq, `impossible frame length ${read.badLength}`, dir);
  }
  if (read.tornBytes > 0) {
    // A torn tail: the append that wrote it never returned, so nobody relied on it.
    await log.truncate(read.end);
  }
  return { state, seq: at.seq, head: at.head, last: at.last, checkpointSeq: start.seq };
}

/** The verified checkpoint to start from and its state, or genesis when none verifies. */
async function startingPoint(
  dir: string,
  log: LedgerLog,
  owner: Uint8Array,
): Promise<{ start: ChainPoint; state: LedgerState }> {
  const checkpoint = await readCheckpoint(dir);
  if (typeof checkpoint !== "object" || !verifyCheckpoint(checkpoint, owner)) {
    // None, unreadable or not the owner's: replay (and check) from genesis.
    return { start: GENESIS, state: new LedgerState() };
  }
  if (checkpoint.state.pledges === undefined) {
    // Written before the state kept signed pledges: it cannot restore the ones recorded before
    // it, so the log is replayed from genesis once (the next checkpoint carries them).
    return { start: GENESIS, state: new LedgerState() };
  }
  // Signed by the owner, so the entries it covers were acknowledged: they must still be there.
  const missing = (reason: string) => new LedgerTamperedError(checkpoint.seq - 1, reason, dir);
  if (log.size < checkpoint.end) {
    throw missing(
      `the log ends (byte ${log.size}) before the signed checkpoint's last entry ` +
        `(byte ${checkpoint.end}): acknowledged entries are missing`,
    );
  }
  const found = await entryAt(log, checkpoint.last);
  if (
    found?.end !== checkpoint.end || found.entry.seq !== checkpoint.seq - 1 ||
    found.hash !== checkpoint.head
  ) {
    throw missing("does not match the signed checkpoint");
  }
  return { start: checkpoint, state: LedgerState.restore(checkpoint.state) };
}

/** Where the index stands, if that matches the log; else it is emptied (rebuilt from genesis). */
async function validIndexPosition(
  log: LedgerLog,
  index: LedgerIndex,
  ownerHex: string,
): Promise<IndexPosition | undefined> {
  const at = index.position();
  if (at === undefined) return undefined;
  if (at.owner === ownerHex && at.seq > 0) {
    const found = await entryAt(log, at.last);
    if (found?.end === at.end && found.entry.seq === at.seq - 1 && found.hash === at.head) {
      return at;
    }
  }
  index.reset(); // another log's, or ahead of this one (a repair cut it)
  return undefined;
}

/** The entry whose frame starts at `offset`, with its hash and end, if one does. */
async function entryAt(
  log: LedgerLog,
  offset: number,
): Promise<{ entry: LedgerEntry; hash: string; end: number } | undefined> {
  const frame = await log.frameAt(offset);
  if (frame === undefined) return undefined;
  try {
    const entry = decodeCbor(frame.payload) as LedgerEntry;
    return { entry, hash: entryHash(entry), end: frame.end };
  } catch {
    return undefined;
  }
}

/** Applies entries to the index in transactions of {@link INDEX_CATCH_UP_BATCH}. */
class IndexWriter {
  readonly #index: LedgerIndex;
  readonly #owner: string;
  #pending = 0;

  constructor(index: LedgerIndex, owner: string) {
    this.#index = index;
    this.#owner = owner;
  }

  apply(entry: LedgerEntry, last: number, end: number): void {
    if (this.#pending === 0) this.#index.begin();
    try {
      this.#index.apply(entry, positionAfter(entry, last, end, this.#owner));
    } catch (error) {
      this.#pending = 0;
      this.#index.rollback(); // the entries of this batch are applied again at the next open
      throw error;
    }
    if (++this.#pending === INDEX_CATCH_UP_BATCH) this.flush();
  }

  flush(): void {
    if (this.#pending === 0) return;
    this.#pending = 0;
    this.#index.commit();
  }
}
