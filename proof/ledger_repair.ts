/**
 * Repairing a damaged ledger: keep every entry that verifies, set the rest aside, rebuild what
 * is derived from them.
 *
 * An entry verifies only as a link of the chain from genesis, so what is kept is the longest
 * prefix that verifies ({@link verifyLedger}); what follows the first bad entry cannot be linked
 * to it (two writers interleaved, a disk that lost a block) and replaying it could count work
 * twice, so it is moved, byte for byte, to `ledger.log.rejected-<time>` next to the log for
 * whoever wants to look at it. A checkpoint that does not match what is kept is removed, the
 * history index is always rebuilt (it is derived data, and a damaged `index.sqlite` verifies
 * like any other: the log is what `ledger verify` checks), and the ledger is opened once (which
 * checks the kept entries again and signs a fresh checkpoint).
 *
 * Damage a signed checkpoint vouches past (`LedgerVerifyReport.vouched`: the entries after it
 * verify and link to the checkpoint, so its state is intact and the node opens from it) is not
 * cut: cutting there would lose every entry the checkpoint covers after the damage (review s72:
 * one flipped bit cost 72 of 82 entries and nine tenths of the locked stake). The damaged entry
 * itself cannot be restored — the checkpoint commits to its original hash, which its bytes no
 * longer give — so repair refuses ({@link LedgerDamageVouchedError}), touching nothing, and
 * says which entry is damaged and that the checkpoint's state is intact.
 *
 * Run it only while no node has the directory: `cli.ts ledger repair` takes the data directory's
 * lock first.
 *
 * @module
 */
import { join } from "node:path";
import type { Identity } from "../protocols/identity.ts";
import { Ledger, type LedgerOptions } from "./ledger.ts";
import { LedgerError, LedgerNewerFormatError, LedgerOwnerMismatchError } from "./ledger_errors.ts";
import { LedgerLog, LOG_FILE } from "./ledger_log.ts";
import { INDEX_FILE } from "./ledger_index.ts";
import { removeCheckpoint } from "./ledger_checkpoint.ts";
import {
  type LedgerDamage,
  type LedgerVerifyReport,
  verifyLedger,
  type VouchedDamage,
} from "./ledger_verify.ts";
import { syncDirectory, writeFileDurably } from "./_durable_file.ts";
import { pathExists } from "../storage/path_exists.ts";
import {
  decodeEntry,
  findSignedEntry,
  FRAME_HEADER_BYTES,
  type LedgerEntry,
} from "./ledger_entry.ts";
import { type Account, LedgerState } from "./ledger_state.ts";

/** One account's balances with the cut entries (`before` the repair) and without (`after`). */
export interface LedgerCutAccount {
  /** The account's key (hex). */
  key: string;
  /** With the cut entries applied: what the log said before the repair. */
  before: Account;
  /** Without them: what the ledger holds after the repair. */
  after: Account;
}

/**
 * What the bytes a repair cuts carried, so the operator knows what was lost. Whole entries
 * signed by the owner are counted and applied; an entry that decodes but does not verify (the
 * damaged one itself) is shown apart, as written, since its amounts cannot be trusted.
 */
export interface LedgerCutSummary {
  /**
   * Whole entries signed by the owner in the cut: entries the node acknowledged (a torn append
   * holds none), so cutting them loses signed history.
   */
  signedEntries: number;
  /** Those entries counted by kind (`stake: 3`). */
  kinds: Record<string, number>;
  /** Signed entries that could not be applied to the kept state (their amounts are not shown). */
  notApplied: number;
  /** The accounts the signed entries changed: balances with them (`before`), without (`after`). */
  accounts: LedgerCutAccount[];
  /** Entries in the cut that decode but do not verify (the damage): by kind. */
  unverifiedKinds: Record<string, number>;
  /** What those entries, as written, would change on top of the signed ones. */
  unverifiedAccounts: LedgerCutAccount[];
  /** Cut bytes that are no entry at all (neither kind above). */
  otherBytes: number;
}

/** Options of {@link repairLedger}: the ledger's, and whether it may cut signed entries. */
export interface LedgerRepairOptions extends LedgerOptions {
  /**
   * Refuse (touching nothing, {@link LedgerRepairCutsSignedError}) when the bytes to cut hold
   * whole entries signed by the owner. Default false: the library cuts; `cli.ts ledger repair`
   * refuses unless `--force`, because those entries were acknowledged and carry value.
   */
  refuseSignedCut?: boolean;
}

/** What {@link repairLedger} did. */
export interface LedgerRepairReport {
  /** What the check before the repair found. */
  before: LedgerVerifyReport;
  /** Entries kept (all of them verify). */
  kept: number;
  /** Where the bytes after them went, if any were set aside. */
  setAsidePath?: string;
  /** How many bytes were set aside. */
  setAsideBytes: number;
  /** Whether the checkpoint was removed (it did not match what is kept). */
  checkpointRemoved: boolean;
  /** Hash of the last kept entry (after the repair's own open: a new genesis if none was kept). */
  head: string;
  /** Entries in the ledger after the repair. */
  length: number;
  /** What the cut bytes carried (all zero when nothing was cut). */
  cut: LedgerCutSummary;
}

/**
 * Repair the ledger in `dir` owned by `identity` (see the module doc). A ledger that verifies is
 * left as it is (and only reopened).
 *
 * @throws {LedgerOwnerMismatchError} when its genesis is another identity's (nothing is touched).
 * @throws {LedgerNewerFormatError} when an entry is of a kind a newer version wrote (nothing is
 *   touched: run that version).
 * @throws {LedgerDamageVouchedError} when a signed checkpoint vouches past the damage (nothing is
 *   touched: the node opens from the checkpoint).
 * @throws {LedgerRepairCutsSignedError} with `options.refuseSignedCut`, when the cut holds whole
 *   entries signed by the owner (nothing is touched).
 */
export async function repairLedger(
  dir: string,
  identity: Identity,
  options: LedgerRepairOptions = {},
): Promise<LedgerRepairReport> {
  const before = await verifyLedger(dir, { owner: identity.publicKey });
  if (before.damage?.code === "ledger_owner_mismatch") throw new LedgerOwnerMismatchError();
  // Not damage: a newer version's entry, which cutting would lose (nothing is touched).
  if (before.damage?.kind !== undefined) {
    throw new LedgerNewerFormatError(before.damage.seq, before.damage.kind, dir);
  }
  if (before.damage !== undefined && before.vouched !== undefined) {
    throw new LedgerDamageVouchedError(dir, before.damage, before.vouched, before.checkpoint.seq);
  }
  let setAsidePath: string | undefined;
  const setAsideBytes = before.totalBytes - before.validBytes;
  let cut = emptyCut(0);
  if (setAsideBytes > 0) {
    const path = join(dir, LOG_FILE);
    const rest = new Uint8Array(setAsideBytes);
    const file = await Deno.open(path, { read: true });
    try {
      await file.seek(before.validBytes, Deno.SeekMode.Start);
      for (let read = 0; read < rest.length;) {
        const n = await file.read(rest.subarray(read));
        if (n === null) break;
        read += n;
      }
    } finally {
      file.close();
    }
    cut = await summarizeCut(path, before.validBytes, rest, identity.publicKey);
    if (options.refuseSignedCut === true && cut.signedEntries > 0) {
      throw new LedgerRepairCutsSignedError(dir, before.entries, cut);
    }
    // Copied aside before the log is cut: a crash between the two leaves both, never neither.
    // Never over an earlier repair's file: a clock that repeats (stepped back, a machine without
    // a real-time clock) would name both alike, and the first one's bytes would be lost.
    const stamp = new Date((options.now ?? Date.now)()).toISOString().replaceAll(":", "-");
    setAsidePath = `${path}.rejected-${stamp}`;
    for (let n = 1; await pathExists(setAsidePath, { followSymlinks: false }); n++) {
      setAsidePath = `${path}.rejected-${stamp}-${n}`;
    }
    await writeFileDurably(setAsidePath, rest);
    const log = await LedgerLog.open(path, { write: true });
    try {
      await log.truncate(before.validBytes);
    } finally {
      log.close();
    }
  }
  const checkpointRemoved = before.checkpoint.check !== "matches" &&
    before.checkpoint.check !== "missing";
  if (checkpointRemoved) await removeCheckpoint(dir);
  // Derived from the log (perhaps from entries now gone, perhaps damaged itself): rebuilt from
  // what is kept.
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(join(dir, `${INDEX_FILE}${suffix}`)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  await syncDirectory(dir);
  const ledger = await Ledger.open(dir, identity, options);
  const report: LedgerRepairReport = {
    before,
    kept: before.entries,
    setAsidePath,
    setAsideBytes,
    checkpointRemoved,
    head: ledger.head,
    length: ledger.length,
    cut,
  };
  await ledger.checkpoint();
  await ledger.close();
  return report;
}

/** A cut of `bytes` that holds no entry. */
function emptyCut(bytes: number): LedgerCutSummary {
  return {
    signedEntries: 0,
    kinds: {},
    notApplied: 0,
    accounts: [],
    unverifiedKinds: {},
    unverifiedAccounts: [],
    otherBytes: bytes,
  };
}

/**
 * What `rest` (the bytes after the first `keptBytes` of the log at `path`) carried: the state of
 * the kept entries is replayed (they verify, `verifyLedger` said so), then every whole entry in
 * `rest` signed by `owner` is applied to a copy of it, and the accounts that differ are listed;
 * the frames between those that decode but do not verify are applied on top, apart. The cut
 * entries cannot be linked to the kept ones, so this is what they say, not what a valid chain
 * would have made of them.
 */
async function summarizeCut(
  path: string,
  keptBytes: number,
  rest: Uint8Array,
  owner: Uint8Array,
): Promise<LedgerCutSummary> {
  const kept = new LedgerState();
  const log = await LedgerLog.open(path);
  try {
    await log.readFrames(0, (frame) => {
      const entry = decodeEntry(frame.payload);
      if (entry !== undefined) kept.apply(entry);
    }, keptBytes);
  } finally {
    log.close();
  }
  const signed = LedgerState.restore(kept.snapshot());
  const all = LedgerState.restore(kept.snapshot());
  const summary = emptyCut(rest.length);
  const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const frameEnd = (at: number) => at + FRAME_HEADER_BYTES + view.getUint32(at);
  const count = (kinds: Record<string, number>, kind: unknown) => {
    kinds[String(kind)] = (kinds[String(kind)] ?? 0) + 1;
  };
  for (let at = 0; at < rest.length;) {
    const found = findSignedEntry(rest, at, owner);
    const gapEnd = found?.offset ?? rest.length;
    // Between signed entries: frames that still decode (the damaged entry), read in order.
    while (at + FRAME_HEADER_BYTES <= gapEnd && frameEnd(at) <= gapEnd) {
      const end = frameEnd(at);
      const entry = decodeEntry(rest.subarray(at + FRAME_HEADER_BYTES, end));
      if (entry === undefined) break;
      count(summary.unverifiedKinds, entry.kind);
      summary.otherBytes -= end - at;
      tryApply(all, entry);
      at = end;
    }
    if (found === undefined) break;
    at = frameEnd(found.offset);
    summary.signedEntries++;
    summary.otherBytes -= at - found.offset;
    count(summary.kinds, found.entry.kind);
    if (!tryApply(signed, found.entry)) summary.notApplied++;
    tryApply(all, found.entry);
  }
  summary.accounts = changedAccounts(signed, kept);
  summary.unverifiedAccounts = changedAccounts(all, signed);
  return summary;
}

/** Apply `entry` to `state`; false when it does not apply (it needs an entry that is not there). */
function tryApply(state: LedgerState, entry: LedgerEntry): boolean {
  try {
    state.apply(entry);
    return true;
  } catch {
    return false;
  }
}

/** The accounts whose balance, stake or locked differ between `before` and `after`. */
function changedAccounts(before: LedgerState, after: LedgerState): LedgerCutAccount[] {
  const changed: LedgerCutAccount[] = [];
  for (const [key] of before.snapshot().accounts) {
    const was = { ...before.account(key) };
    const is = { ...after.account(key) };
    if (was.balance !== is.balance || was.stake !== is.stake || was.locked !== is.locked) {
      changed.push({ key, before: was, after: is });
    }
  }
  return changed;
}

/**
 * `ledger repair` was told to refuse a cut that loses whole entries signed by the owner
 * (`refuseSignedCut`; `cli.ts ledger repair` without `--force`): such entries were acknowledged,
 * so cutting them is not the cleanup of a torn append. Nothing was changed; {@link cut} says
 * what they carry.
 */
export class LedgerRepairCutsSignedError extends LedgerError {
  /** What the cut would lose. */
  readonly cut: LedgerCutSummary;
  /** Entries a repair would keep. */
  readonly kept: number;

  /**
   * Build the error.
   * @param dir The ledger directory.
   * @param kept Entries that verify from genesis (what a repair keeps).
   * @param cut What the bytes after them carry.
   */
  constructor(dir: string, kept: number, cut: LedgerCutSummary) {
    super(
      "ledger_repair_cuts_signed",
      `repair leaves the ledger in ${dir} as it is: after the ${kept} entries that verify, ` +
        `${cut.signedEntries} whole entries signed by this node would be cut (acknowledged ` +
        `entries, not a torn append); nothing was changed`,
    );
    this.cut = cut;
    this.kept = kept;
  }
}

/**
 * `ledger repair` leaves a ledger as it is because a signed checkpoint vouches past its damage
 * (see the module doc): the entries after the damage verify and link to the checkpoint, whose
 * state is intact. Nothing was changed.
 */
export class LedgerDamageVouchedError extends LedgerError {
  /** Position of the first damaged entry. */
  readonly seq: number;

  /**
   * Build the error.
   * @param dir The ledger directory.
   * @param damage The first damage, as `verifyLedger` found it.
   * @param vouched How the checkpoint vouches past it.
   * @param checkpointSeq Entries the checkpoint covers.
   */
  constructor(dir: string, damage: LedgerDamage, vouched: VouchedDamage, checkpointSeq: number) {
    const which = vouched.to - vouched.from === 1
      ? `entry ${vouched.from}`
      : `entries ${vouched.from} to ${vouched.to - 1}`;
    const later = vouched.laterDamage;
    super(
      "ledger_damage_vouched",
      `repair leaves the ledger in ${dir} as it is: ${which} (bytes ${damage.offset} to ` +
        `${vouched.resumesAt} of ${LOG_FILE}) is damaged, but the signed checkpoint at entry ` +
        `${checkpointSeq} vouches past it: the ${checkpointSeq - vouched.to} entries after the ` +
        `damage verify and link to it, so its state (balances, stakes, open receipts) is intact ` +
        `and the node opens from it. Cutting at the damage would lose ` +
        `${checkpointSeq - vouched.from} entries the checkpoint covers. The damaged bytes cannot ` +
        `be restored (the checkpoint commits to their original hash, which they no longer give); ` +
        `keep a copy of ${LOG_FILE}` +
        (later === undefined
          ? "; nothing was changed"
          : `. Entry ${later.seq} after the checkpoint (byte ${later.offset}) is damaged too ` +
            `(${later.reason}): the node refuses this ledger until a person sets those bytes ` +
            `aside; nothing was changed`),
    );
    this.seq = vouched.from;
  }
}
