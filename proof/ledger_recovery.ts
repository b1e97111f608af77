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
 * The bytes after the last entry that verifies are a torn tail — what a crash mid-append left,
 * never acknowledged — only when they cannot hide an acknowledged entry ({@link judgeTail}): a
 * frame cut short by the end of the file, space allocated but never written (zeros), a frame
 * whose first bytes are still zeros, a frame that does not decode (or decodes as another
 * signer's: zeros over its last field) followed only by zeros, or a last frame that ends where the
 * file ends, is not the owner's entry as signed, and holds a page of zeros on a page boundary (a
 * page between its first and last never written back: review s81),
 * and no whole entry signed by the owner anywhere in them. A torn tail is cut, and copied first to `ledger.log.torn-<time>` next to the log; any
 * other tail is damage ({@link LedgerTamperedError}), for `ledger repair` to set aside.
 *
 * What is kept is `fsync`'d before the open returns: an append whose process was killed before
 * its `fsync` returned reads back whole from the page cache, and a checkpoint may cover it next.
 *
 * If the history index fails (a damaged `index.sqlite`), `Ledger.open` deletes it and runs this
 * again, building it anew from the log.
 *
 * Damage before the checkpoint that the checkpoint vouches past (`ledger verify`'s `vouched`:
 * the entries after it verify and link to it) does not stop an open that must bring the index up
 * to the checkpoint: the index is built from the entries that verify, the damaged ones left out,
 * and the open's log says so. Repair refuses such a ledger, so a catch-up that stopped there left
 * the node unable to open (review s72 follow-up).
 *
 * A read longer than an ordinary open's — the index rebuilt up to the checkpoint (an upgrade
 * emptied it, or it was lost), or the whole log replayed for want of a checkpoint — is said in
 * the log with its progress, and a signal stops it between entries (`_ledger_rebuild_log.ts`):
 * the index commits what it took every few thousand entries, so the next open goes on from there.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import {
  ChainVerifier,
  decodeEntry,
  entryHash,
  findSignedEntry,
  FRAME_HEADER_BYTES,
  GENESIS_PREV,
  type LedgerEntry,
  MAX_ENTRY_BYTES,
  signedEntry,
} from "./ledger_entry.ts";
import {
  LedgerOwnerMismatchError,
  LedgerTamperedError,
  type RepairRefusal,
} from "./ledger_errors.ts";
import { type LedgerLog, LOG_FILE } from "./ledger_log.ts";
import { writeFileDurably } from "./_durable_file.ts";
import { LedgerState } from "./ledger_state.ts";
import { type IndexPosition, type LedgerIndex, positionAfter } from "./ledger_index.ts";
import { CHECKPOINT_FILE, readCheckpoint, verifyCheckpoint } from "./ledger_checkpoint.ts";
import { unusedPath } from "./_unused_path.ts";
import { RebuildLog, type RebuildScope } from "./_ledger_rebuild_log.ts";

/** The most bytes one append writes: a frame's length prefix and the largest entry. */
const ONE_APPEND_BYTES = FRAME_HEADER_BYTES + MAX_ENTRY_BYTES;

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
 * is copied aside and cut from the log.
 *
 * @param now Clock (unix ms) naming the file a torn tail is copied to.
 * @throws {LedgerTamperedError} naming the first entry that fails, or the last one a signed
 *   checkpoint covers when it is missing from the log.
 */
export async function recoverLedger(
  dir: string,
  log: LedgerLog,
  index: LedgerIndex,
  owner: Uint8Array,
  now: () => number = Date.now,
  watch: RecoveryWatch = {},
): Promise<RecoveredLedger> {
  const ownerHex = toHex(owner);
  // Another node's ledger is named as such before its checkpoint is compared with the log: the
  // checkpoint check called it tampering and advised a repair, which refuses it (review s75).
  await checkGenesisOwner(log, owner, dir);
  const { start, state } = await startingPoint(dir, log, owner, watch.log);
  const { at, why } = await validIndexPosition(log, index, ownerHex);
  const position = at ?? GENESIS;
  // A read longer than the at most checkpoint-interval entries of an ordinary open: said, with
  // progress, and stopped by the watch's signal (see `_ledger_rebuild_log.ts`).
  const scope = rebuildScope(start, position, why, log.size);
  const progress = scope && RebuildLog.start({ ...watch, now }, scope);
  try {
    const recovered = await replay(
      { dir, log, index, owner, now, say: watch.log },
      start,
      state,
      position,
      progress,
    );
    progress?.done();
    return recovered;
  } catch (error) {
    if (progress !== undefined && watch.signal?.aborted) progress.stopped("interrupted");
    throw error;
  }
}

/**
 * Whether the log's first entry is a genesis signed by another key than `owner`: then
 * {@link LedgerOwnerMismatchError}. Any other fault of that entry is left to the replay, which
 * names it.
 */
async function checkGenesisOwner(log: LedgerLog, owner: Uint8Array, dir: string): Promise<void> {
  if (log.size === 0) return;
  let mismatch: LedgerOwnerMismatchError | undefined;
  /** Stops the read after the first frame: only genesis is judged here. */
  const first = new Error("first frame read");
  await log.readFrames(0, async (frame) => {
    try {
      await new ChainVerifier({ owner, dir }).next(frame.payload);
    } catch (error) {
      if (error instanceof LedgerOwnerMismatchError) mismatch = error;
    }
    throw first;
  }).catch((error) => {
    if (error !== first) throw error;
  });
  if (mismatch !== undefined) throw mismatch;
}

/** What else an open's recovery takes: where it says a long read, and what stops one. */
export interface RecoveryWatch {
  /** Where the lines of a long read go (a rebuild of the index, a replay from genesis). */
  log?: (line: string) => void;
  /** Aborting it stops a long read before its next entry; the open rejects with its reason. */
  signal?: AbortSignal;
}

/**
 * What makes this open read more than the entries after a checkpoint, if anything does: the
 * index behind the checkpoint (`why` it was emptied, when it was), or no checkpoint to start
 * from in a log that holds entries.
 */
function rebuildScope(
  start: ChainPoint,
  position: ChainPoint,
  why: string | undefined,
  size: number,
): RebuildScope | undefined {
  if (position.seq < start.seq) {
    return {
      why: why ?? "the history index stands behind the checkpoint",
      entries: start.seq - position.seq,
      from: position.end,
      size,
    };
  }
  if (start.seq === 0 && size > 0) {
    const replay = "no checkpoint to start from: every entry is checked from genesis";
    return { why: why === undefined ? replay : `${replay}; ${why}`, from: 0, size };
  }
  return undefined;
}

/** What {@link replay} reads and writes. */
interface LedgerFiles {
  dir: string;
  log: LedgerLog;
  index: LedgerIndex;
  owner: Uint8Array;
  now: () => number;
  /** Where a line for the operator goes (the open's log). */
  say?: (line: string) => void;
}

/** The reads of {@link recoverLedger}: the index caught up to the checkpoint, then the rest. */
async function replay(
  { dir, log, index, owner, now, say }: LedgerFiles,
  start: ChainPoint,
  state: LedgerState,
  from: ChainPoint,
  progress: RebuildLog | undefined,
): Promise<RecoveredLedger> {
  let position = from;
  const indexing = new IndexWriter(index, toHex(owner));
  if (position.seq < start.seq) {
    // The index is behind the checkpoint (lost commits, a deleted file): the entries between
    // are vouched for by the signed checkpoint, so their links are checked, not signatures.
    const chain = new ChainVerifier({ owner, from: position, signatures: false, dir });
    // Each entry counted once in the progress, though a damaged log is read again from genesis.
    let counted = position.end;
    const entryRead = (end: number) => {
      if (end <= counted) return;
      counted = end;
      progress?.entry(end);
    };
    try {
      try {
        const read = await log.readFrames(position.end, async (frame) => {
          entryRead(frame.end);
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
    } catch (error) {
      // Damage the checkpoint vouches past (`ledger_verify.ts`, `vouched`): the open resumes
      // at the checkpoint and repair refuses to cut, so a catch-up that stopped at it left the
      // node unable to open at all (review s72 follow-up). Built again from what verifies.
      if (!(error instanceof LedgerTamperedError)) throw error;
      const skipped = await indexPastDamage({ dir, log, index, owner, now }, start, entryRead);
      if (skipped === undefined) throw error;
      say?.(skipped);
    }
    position = start;
  }
  const chain = new ChainVerifier({ owner, from: start, dir });
  const at = { ...start };
  let failed: LedgerTamperedError | undefined;
  const read = await log.readFrames(start.end, async (frame) => {
    progress?.entry(frame.end);
    let entry: LedgerEntry;
    try {
      entry = await chain.next(frame.payload);
    } catch (error) {
      if (error instanceof LedgerTamperedError) failed = error;
      throw error;
    }
    state.apply(entry);
    if (entry.seq >= position.seq) indexing.apply(entry, frame.offset, frame.end);
    at.seq = chain.seq;
    at.head = chain.head;
    at.last = frame.offset;
    at.end = frame.end;
  }).catch((error) => {
    if (error !== failed) throw error;
    return undefined; // judged below, with the bytes after it
  }).finally(() => indexing.flush());
  if (read === undefined || read.badLength !== undefined || read.tornBytes > 0) {
    const tail = await judgeTail(log, at.end, owner);
    if (!tail.torn) {
      const reason = [
        failed?.reason ??
          (read?.badLength !== undefined
            ? `impossible frame length ${read.badLength}`
            : `its frame runs past the end of the log (byte ${log.size})`),
        tail.reason,
      ].filter((r) => r !== undefined).join("; ");
      // A whole entry signed by the owner after the damage: repair refuses to cut it unprompted.
      const refusal = tail.resumesAt === undefined ? undefined : "signed_entries";
      throw new LedgerTamperedError(at.seq, reason, dir, refusal);
    }
    // A torn tail: the append that wrote it never returned, so nobody relied on it. Its bytes
    // are kept beside the log all the same, for whoever wants to look.
    const torn = log.size - at.end;
    const path = await setAsideTornTail(log, at.end, now());
    // Said, so an operator who finds the file knows where it came from (review s75).
    say?.(
      `ledger: cut a torn tail of ${torn} bytes ` +
        (at.seq === 0 ? "at the start of the log" : `after entry ${at.seq - 1}`) +
        ` (an append a crash cut short, never acknowledged); its bytes are kept in ${path}`,
    );
  } else {
    // What was read may be only in the page cache: the last append of a process killed before
    // its fsync returned reads back whole. It is kept, so it is made durable before anything
    // (a checkpoint covering it, a payment it allows) relies on it; else a power cut would leave
    // a signed checkpoint past the end of the log, and the ledger refused (review s45).
    await log.sync();
  }
  return { state, seq: at.seq, head: at.head, last: at.last, checkpointSeq: start.seq };
}

/**
 * The history index built anew up to the checkpoint `start` on a log whose entries before it are
 * damaged, when the checkpoint vouches past the damage as `ledger verify` judges it
 * (`vouchedPast`): the entries before the damage verify from genesis, and from the first whole
 * entry signed by the owner after it (`judgeTail`'s `resumesAt`) every entry verifies and links,
 * entry by entry, to the checkpoint's. The index is emptied (the catch-up that failed checked
 * links only, so it may have taken the damaged entry) and built from those, signatures checked;
 * the damaged entries are left out, as their bytes no longer verify. Returns the line that says
 * so, or undefined (nothing changed in the log) when the checkpoint does not vouch past it.
 */
async function indexPastDamage(
  { dir, log, index, owner }: LedgerFiles,
  start: ChainPoint,
  entryRead: (end: number) => void,
): Promise<string | undefined> {
  // Where the damage is: the end of what verifies from genesis, signatures and all.
  const before = new ChainVerifier({ owner, dir });
  let damagedAt = 0;
  const read = await log.readFrames(0, async (frame) => {
    await before.next(frame.payload);
    damagedAt = frame.end;
  }, start.end).catch((error) => {
    if (!(error instanceof LedgerTamperedError)) throw error;
    return undefined;
  });
  if (read !== undefined && read.badLength === undefined && read.tornBytes === 0) return undefined;
  const tail = await judgeTail(log, damagedAt, owner);
  const resumesAt = tail.torn ? undefined : tail.resumesAt;
  if (resumesAt === undefined || resumesAt >= start.end) return undefined;
  const frame = await log.frameAt(resumesAt);
  const first = frame && decodeEntry(frame.payload);
  if (first === undefined || first.seq <= before.seq || first.seq >= start.seq) return undefined;
  // The entries after the damage must lead to the checkpoint before the index takes any of them.
  const after = () => new ChainVerifier({ owner, from: { seq: first.seq, head: first.prev }, dir });
  const check = after();
  let end = -1;
  try {
    await log.readFrames(resumesAt, async (f) => {
      await check.next(f.payload);
      end = f.end;
    }, start.end);
  } catch (error) {
    if (error instanceof LedgerTamperedError) return undefined;
    throw error;
  }
  if (check.seq !== start.seq || check.head !== start.head || end !== start.end) return undefined;

  index.reset();
  const indexing = new IndexWriter(index, toHex(owner));
  try {
    const intact = new ChainVerifier({ owner, dir });
    await log.readFrames(0, async (f) => {
      entryRead(f.end);
      indexing.apply(await intact.next(f.payload), f.offset, f.end);
    }, damagedAt);
    const resumed = after();
    await log.readFrames(resumesAt, async (f) => {
      entryRead(f.end);
      indexing.apply(await resumed.next(f.payload), f.offset, f.end);
    }, start.end);
  } finally {
    indexing.flush();
  }
  const which = first.seq - before.seq === 1
    ? `entry ${before.seq}`
    : `entries ${before.seq} to ${first.seq - 1}`;
  return `ledger: ${which} (bytes ${damagedAt} to ${resumesAt} of ${LOG_FILE}) is damaged, but ` +
    `the signed checkpoint at entry ${start.seq} vouches past it: the entries after it verify ` +
    `and link to it, so the ledger opens from the checkpoint's state, which counts ${which}. ` +
    `The history index was built from the entries that verify and holds no record of ` +
    `${which} (a receipt, verdict or settlement it held is not in the history); ` +
    `\`ledger verify\` names the damage`;
}

/** What the bytes after the last entry that verifies are (see {@link judgeTail}). */
export type TailJudgement =
  | { torn: true }
  | {
    torn: false;
    /** Why they cannot be a torn append (absent: the frame's own failure says it). */
    reason?: string;
    /** Where a whole entry signed by the owner starts after the damage, if one does. */
    resumesAt?: number;
  };

/**
 * Whether the bytes of `log` from `from` (just past the last entry that verifies) on are a torn
 * tail — what one append cut short by a crash leaves — or damage that may hide acknowledged
 * entries. Torn only when no whole entry signed by `owner` (absent: by its own signer) lies in
 * them, and the bytes that are not zero fit in one frame, and they are one of: a frame whose
 * length runs past the end of the file (and whose bytes are not themselves a whole entry: that
 * is a damaged length prefix), zeros only (space the file system allocated, never written),
 * zeros where the length should be followed by part of a frame (its first page never written;
 * again not a whole entry), a frame that does not decode, or decodes as another signer's
 * (zeros over the signer, its last field), followed only by zeros (its own last byte included),
 * or a frame that ends at the end of the file, is not an entry signed by `owner`, and holds a
 * whole page of zeros on a page boundary (`PAGE_BYTES`: a page between its first and last
 * that never reached the disk).
 *
 * That last rule lets no one who can write the file do more than the zero tail already lets
 * them: it cuts only the last frame, one no signed checkpoint covers (the replay starts past the
 * checkpoint's entries), and no whole entry of the owner's may follow it — the frame's bytes could
 * as well be cut short or zeroed to the end, both torn already. The cut frame is kept beside the
 * log, as every torn tail is.
 */
export async function judgeTail(
  log: LedgerLog,
  from: number,
  owner?: Uint8Array,
): Promise<TailJudgement> {
  const size = log.size;
  const nonZeroEnd = await log.nonZeroEnd(from);
  if (nonZeroEnd === from) return { torn: true }; // nothing, or zeros only
  if (nonZeroEnd - from > FRAME_HEADER_BYTES + MAX_ENTRY_BYTES) {
    // Where the owner's entries go on: after one damaged entry the next starts within a frame's
    // length and is whole within another. Unsearched, a log with more than a megabyte after the
    // damage (some 550 jobs) never had it found, and a checkpoint never vouched past it.
    const window = await log.read(from, Math.min(nonZeroEnd, from + 2 * ONE_APPEND_BYTES));
    const next = findSignedEntry(window, 1, owner);
    return {
      torn: false,
      reason: `the ${nonZeroEnd - from} bytes after byte ${from} are more than one append ` +
        `writes, so not a torn append` +
        (next === undefined
          ? ""
          : `; a whole entry signed by the owner (seq ${next.entry.seq}) follows at byte ` +
            `${from + next.offset}`),
      ...(next === undefined ? {} : { resumesAt: from + next.offset }),
    };
  }
  // Every frame that starts where the bytes are not zero, whole.
  const bytes = await log.read(from, nonZeroEnd + FRAME_HEADER_BYTES + MAX_ENTRY_BYTES);
  const later = findSignedEntry(bytes, 1, owner);
  if (later !== undefined) {
    return {
      torn: false,
      reason: `a whole entry signed by the owner (seq ${later.entry.seq}) follows at byte ` +
        `${from + later.offset}: acknowledged entries follow the damage, it is not a torn append`,
      resumesAt: from + later.offset,
    };
  }
  if (bytes.length < FRAME_HEADER_BYTES) return { torn: true }; // a length prefix cut short
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
  if (length === 0) {
    // Zeros where the length should be, then the rest of at most one frame (checked above): an
    // append whose first bytes never reached the disk (a file system may persist the file's
    // size and a later page before the first). Unless the entry right after the zeroed length
    // is whole and signed by the owner: an acknowledged entry whose length prefix is damaged.
    const held = signedEntry(bytes.subarray(FRAME_HEADER_BYTES), owner);
    if (held === undefined) return { torn: true };
    return {
      torn: false,
      reason: `the frame at byte ${from} declares 0 bytes, yet holds a whole entry signed by ` +
        `the owner (seq ${held.seq}): its length prefix is damaged`,
    };
  }
  if (length > MAX_ENTRY_BYTES) return { torn: false }; // the caller says so
  const frameEnd = from + FRAME_HEADER_BYTES + length;
  if (frameEnd > size) {
    const held = signedEntry(bytes.subarray(FRAME_HEADER_BYTES), owner);
    if (held !== undefined) {
      return {
        torn: false,
        reason: `the frame at byte ${from} declares ${length} bytes, more than the log ` +
          `holds, yet holds a whole entry signed by the owner (seq ${held.seq}): its length ` +
          `prefix is damaged`,
      };
    }
    return { torn: true }; // an append cut short
  }
  const payload = bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
  if (nonZeroEnd <= frameEnd && nonZeroEnd < size && !namesOwner(payload, owner)) {
    return { torn: true }; // written in part, the rest allocated as zeros
  }
  if (
    frameEnd === size && signedEntry(payload, owner) === undefined &&
    holdsZeroPage(bytes, from, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length)
  ) {
    // The last frame, whole in length and ending where the file ends, with a page inside it that
    // reads as zeros: an append whose first and last pages reached the disk while one between
    // them did not (pages are written back in no set order). Not the owner's entry as signed,
    // and no whole entry of the owner's after it (checked above), so it hides nothing
    // acknowledged: what a crash cut short, as a zero tail is (review s81 F1).
    return { torn: true };
  }
  return { torn: false };
}

/**
 * The least a file system writes back at once: a page of the page cache (4 KiB on x86-64; the
 * larger pages of some arm64 kernels are whole multiples of it). A write cut short by a power cut
 * loses whole pages, so what it left unwritten inside a file reads as zeros over at least one
 * page on a boundary of this size.
 */
const PAGE_BYTES = 4096;

/**
 * Whether `bytes[start, end)`, where `bytes[0]` is byte `offset` of the file, holds a whole page
 * of zeros on a page boundary of the file: what an unwritten page of an append leaves.
 */
function holdsZeroPage(bytes: Uint8Array, offset: number, start: number, end: number): boolean {
  const first = Math.ceil((offset + start) / PAGE_BYTES) * PAGE_BYTES - offset;
  for (let page = first; page + PAGE_BYTES <= end; page += PAGE_BYTES) {
    if (bytes.subarray(page, page + PAGE_BYTES).every((b) => b === 0)) return true;
  }
  return false;
}

/**
 * Whether `payload` decodes as an entry that names `owner` as its signer (absent: decodes at
 * all). A frame whose last page never reached the disk ends in zeros; when they cover only the
 * signer (an entry's last field) the rest still decodes, but as another signer's, so it cannot
 * be the owner's acknowledged entry with a damaged byte.
 */
function namesOwner(payload: Uint8Array, owner?: Uint8Array): boolean {
  const entry = decodeEntry(payload);
  if (entry === undefined) return false;
  return owner === undefined || toHex(entry.signer) === toHex(owner);
}

/**
 * Copy the bytes of `log` from `from` on to `ledger.log.torn-<time>` next to it, durably, then
 * cut them from the log: a crash between the two leaves both, never neither.
 */
async function setAsideTornTail(log: LedgerLog, from: number, at: number): Promise<string> {
  const stamp = new Date(at).toISOString().replaceAll(":", "-");
  const path = await unusedPath(`${log.path}.torn-${stamp}`);
  await writeFileDurably(path, log.chunks(from));
  await log.truncate(from);
  return path;
}

/** The verified checkpoint to start from and its state, or genesis when none verifies. */
async function startingPoint(
  dir: string,
  log: LedgerLog,
  owner: Uint8Array,
  say?: (line: string) => void,
): Promise<{ start: ChainPoint; state: LedgerState }> {
  const checkpoint = await readCheckpoint(dir);
  // None or unreadable: replay (and check) from genesis.
  if (typeof checkpoint !== "object") return { start: GENESIS, state: new LedgerState() };
  if (!verifyCheckpoint(checkpoint, owner)) {
    // Not the owner's: replayed from genesis too. Not trusted, but not silently: the log said
    // "no checkpoint" while one sat there (review s75). Left in place, not deleted: `ledger
    // repair` moves it aside.
    say?.(
      `ledger: ${join(dir, CHECKPOINT_FILE)} is not signed by this node's key (another ` +
        `identity's, or altered): ignored and left where it is; the log is checked from ` +
        `genesis (ledger verify reports it as a bad signature; ledger repair moves it to ` +
        `${CHECKPOINT_FILE}.rejected-<time>)`,
    );
    return { start: GENESIS, state: new LedgerState() };
  }
  if (checkpoint.state.pledges === undefined) {
    // Written before the state kept signed pledges: it cannot restore the ones recorded before
    // it, so the log is replayed from genesis once (the next checkpoint carries them).
    return { start: GENESIS, state: new LedgerState() };
  }
  // Signed by the owner, so the entries it covers were acknowledged: they must still be there.
  const missing = (reason: string, refusal: RepairRefusal = "checkpoint") =>
    new LedgerTamperedError(checkpoint.seq - 1, reason, dir, refusal);
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
    // A log that goes on past the checkpoint's place holds other entries under it: said so,
    // not as entries missing (review s75 G1).
    throw log.size > checkpoint.end
      ? missing(
        `does not match the signed checkpoint: the log goes on past the checkpoint's place ` +
          `(byte ${checkpoint.end} of ${log.size}), but the entry there is not the one it ` +
          `signed (the log was rewritten under it)`,
        "checkpoint_rewritten",
      )
      : missing("does not match the signed checkpoint");
  }
  return { start: checkpoint, state: LedgerState.restore(checkpoint.state) };
}

/**
 * Where the index stands, if that matches the log; else it is emptied (rebuilt from genesis),
 * and `why` says what was wrong with it.
 */
async function validIndexPosition(
  log: LedgerLog,
  index: LedgerIndex,
  ownerHex: string,
): Promise<{ at?: IndexPosition; why?: string }> {
  const at = index.position();
  if (at === undefined) {
    // No position, but rows (an index left so by an earlier version's reset cut short): they
    // are nobody's, so they go before the rebuild from genesis.
    if (index.hasRows()) index.reset();
    const upgraded = index.upgradedFrom;
    return {
      why: upgraded === undefined
        ? "the history index is missing or empty"
        : `the history index was another version's (format ${upgraded.from} → ${upgraded.to})`,
    };
  }
  if (at.owner === ownerHex && at.seq > 0) {
    const found = await entryAt(log, at.last);
    if (found?.end === at.end && found.entry.seq === at.seq - 1 && found.hash === at.head) {
      return { at };
    }
  }
  index.reset(); // another log's, or ahead of this one (a repair cut it)
  return { why: "the history index does not match the log" };
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
