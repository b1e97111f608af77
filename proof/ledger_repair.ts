/**
 * Repairing a damaged ledger: keep every entry that verifies, set the rest aside, rebuild what
 * is derived from them.
 *
 * An entry verifies only as a link of the chain from genesis, so what is kept is the longest
 * prefix that verifies ({@link verifyLedger}); what follows the first bad entry cannot be linked
 * to it (two writers interleaved, a disk that lost a block) and replaying it could count work
 * twice, so it is moved, byte for byte, to `ledger.log.rejected-<time>` next to the log for
 * whoever wants to look at it (nothing reads it back). A checkpoint that does not match what is
 * kept is moved aside, the history index is always rebuilt (it is derived data, and a damaged
 * `index.sqlite` verifies like any other: the log is what `ledger verify` checks), and the
 * ledger is opened once (which checks the kept entries again and signs a fresh checkpoint).
 *
 * Damage a signed checkpoint vouches past (`LedgerVerifyReport.vouched`: the entries after it
 * verify and link to the checkpoint, so its state is intact and the node opens from it) is not
 * cut: cutting there would lose every entry the checkpoint covers after the damage (review s72:
 * one flipped bit cost 72 of 82 entries and nine tenths of the locked stake). The damaged entry
 * itself cannot be restored — the checkpoint commits to its original hash, which its bytes no
 * longer give — so repair refuses ({@link LedgerDamageVouchedError}), touching nothing, and
 * says which entry is damaged and that the checkpoint's state is intact. When damage after the
 * checkpoint stops the node as well, repair cuts there, keeping the checkpoint and every byte
 * up to that damage (review s75 F2).
 *
 * What a cut loses is said ({@link LedgerCutSummary}), and `refuseSignedCut` refuses it when it
 * is acknowledged: whole entries signed by the owner in the cut (copies of kept entries aside),
 * or a checkpoint signed by the owner that records more than the kept log gives (a log rolled
 * back under it, review s75 F1). A checkpoint that does not match what is kept is moved to
 * `checkpoint.cbor.rejected-<time>`, never deleted: it may be the only record of that loss.
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
import {
  type LedgerCheckpoint,
  readCheckpoint,
  setCheckpointAside,
  verifyCheckpoint,
} from "./ledger_checkpoint.ts";
import {
  type CheckpointCheck,
  type LedgerDamage,
  type LedgerVerifyReport,
  verifyLedger,
  type VouchedDamage,
} from "./ledger_verify.ts";
import { syncDirectory, writeFileDurably } from "./_durable_file.ts";
import { unusedPath } from "./_unused_path.ts";
import {
  decodeEntry,
  entryHash,
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
  /** Whether the kept ledger has the account at all (a damaged key names one it does not). */
  inKept: boolean;
}

/**
 * What a signed checkpoint the kept log does not reach recorded (review s75 F1): a log rolled
 * back or overwritten under a checkpoint lost acknowledged entries, and the checkpoint's state is
 * the only record of what they held.
 */
export interface LedgerCheckpointLoss {
  /** Entries the checkpoint covers. */
  seq: number;
  /**
   * How it compares with the log (`ledger verify`'s check): `beyond_log` (the log ends before
   * it), `cut_off_by_damage` (damage before it, and this repair cuts the entries after the
   * damage: then {@link accounts} is the whole loss, and the cut summary's accounts are what
   * makes it up, not more of it: review s75 G2), or `does_not_match` (the log reaches it, but
   * with other entries: rewritten under it).
   */
  check: CheckpointCheck;
  /** Of those, how many the kept log lacks (0 when it holds as many, but other ones). */
  missingEntries: number;
  /**
   * Entries of the kept log its state is compared at: the checkpoint's `seq` when the kept log
   * goes that far (a log that went on past a checkpoint is compared where the checkpoint stands,
   * not at its end: review s75 G1), else all the kept ones.
   */
  comparedAt: number;
  /** Per account: the checkpoint's state (`before`) and the kept log's at `comparedAt` (`after`). */
  accounts: LedgerCutAccount[];
}

/**
 * What the bytes a repair cuts carried, so the operator knows what was lost. Whole entries
 * signed by the owner are counted and applied; an entry that decodes but does not verify (the
 * damaged one itself) is shown apart, as written, since its amounts cannot be trusted.
 */
export interface LedgerCutSummary {
  /**
   * Whole entries signed by the owner in the cut: entries the node acknowledged (a torn append
   * holds none), so cutting them loses signed history. Copies of kept entries are not counted.
   */
  signedEntries: number;
  /** Those entries counted by kind (`stake: 3`). */
  kinds: Record<string, number>;
  /** Signed entries that could not be applied to the kept state (their amounts are not shown). */
  notApplied: number;
  /** The accounts the signed entries changed: balances with them (`before`), without (`after`). */
  accounts: LedgerCutAccount[];
  /**
   * Whole signed entries in the cut that are copies of kept ones (same `seq`, same hash: a block
   * written twice): cutting them loses nothing, so they are neither applied nor refused.
   */
  copies: number;
  /** Entries in the cut that decode but do not verify (the damage): by kind. */
  unverifiedKinds: Record<string, number>;
  /** What those entries, as written, would change on top of the signed ones. */
  unverifiedAccounts: LedgerCutAccount[];
  /** Cut bytes that are no entry at all (neither kind above). */
  otherBytes: number;
  /** Set when a checkpoint signed by the owner is beyond, or disagrees with, the kept log. */
  checkpoint?: LedgerCheckpointLoss;
}

/** Options of {@link repairLedger}: the ledger's, and whether it may cut signed entries. */
export interface LedgerRepairOptions extends LedgerOptions {
  /**
   * Refuse (touching nothing, {@link LedgerRepairCutsSignedError}) when the bytes to cut hold
   * whole entries signed by the owner, or a checkpoint signed by the owner records entries the
   * kept log lacks. Default false: the library cuts; `cli.ts ledger repair` refuses unless
   * `--force`, because those entries were acknowledged and carry value.
   */
  refuseSignedCut?: boolean;
}

/** What {@link repairLedger} did. */
export interface LedgerRepairReport {
  /** What the check before the repair found. */
  before: LedgerVerifyReport;
  /** Entries kept (all of them verify, or a signed checkpoint vouches past their damage). */
  kept: number;
  /** Where the bytes after them went, if any were set aside. */
  setAsidePath?: string;
  /** How many bytes were set aside. */
  setAsideBytes: number;
  /** Whether the checkpoint was taken away (it did not match what is kept). */
  checkpointRemoved: boolean;
  /** Where that checkpoint went (`checkpoint.cbor.rejected-<time>`), if there was a file. */
  checkpointSetAsidePath?: string;
  /** Hash of the last kept entry (after the repair's own open: a new genesis if none was kept). */
  head: string;
  /** Entries in the ledger after the repair. */
  length: number;
  /** What the cut bytes carried (all zero when nothing was cut). */
  cut: LedgerCutSummary;
}

/**
 * How a checkpoint compares with the log when it records entries the kept log does not give:
 * past its end, past damage its entries do not link over, or another state at its place. Signed
 * by the owner (as `verifyLedger` checks it for these), it proves acknowledged entries are gone.
 */
export const CHECKPOINT_LOSS_CHECKS: ReadonlySet<CheckpointCheck> = new Set([
  "beyond_log",
  "cut_off_by_damage",
  "does_not_match",
]);

/** Checkpoints a repair keeps: they match what is kept (none is nothing to move). */
const KEPT_CHECKS: ReadonlySet<CheckpointCheck> = new Set([
  "matches",
  "missing",
  "matches_past_damage",
]);

/**
 * Repair the ledger in `dir` owned by `identity` (see the module doc). A ledger that verifies is
 * left as it is (and only reopened).
 *
 * @throws {LedgerOwnerMismatchError} when its genesis is another identity's (nothing is touched).
 * @throws {LedgerNewerFormatError} when an entry is of a kind a newer version wrote (nothing is
 *   touched: run that version).
 * @throws {LedgerDamageVouchedError} when a signed checkpoint vouches past the damage and no
 *   damage follows it (nothing is touched: the node opens from the checkpoint).
 * @throws {LedgerRepairCutsSignedError} with `options.refuseSignedCut`, when the cut holds whole
 *   entries signed by the owner, or a signed checkpoint records entries the kept log lacks
 *   (nothing is touched).
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
  // Damage after a checkpoint that vouches past earlier damage is cut there, keeping the
  // checkpoint and all it covers (review s75 F2): what the node's start error promises.
  const later = before.vouched?.laterDamage;
  if (before.damage !== undefined && before.vouched !== undefined && later === undefined) {
    throw new LedgerDamageVouchedError(dir, before.damage, before.vouched, before.checkpoint.seq);
  }
  const stored = await readCheckpoint(dir);
  const signedCheckpoint =
    typeof stored === "object" && verifyCheckpoint(stored, identity.publicKey) ? stored : undefined;
  const keptBytes = later?.offset ?? before.validBytes;
  const kept = later?.seq ?? before.entries;
  const path = join(dir, LOG_FILE);
  const setAsideBytes = before.totalBytes - keptBytes;
  const lostCheckpoint =
    signedCheckpoint !== undefined && CHECKPOINT_LOSS_CHECKS.has(before.checkpoint.check)
      ? signedCheckpoint
      : undefined;
  let cut = emptyCut(0);
  let rest: Uint8Array = new Uint8Array(0);
  if (setAsideBytes > 0 || lostCheckpoint !== undefined) {
    rest = await readBytes(path, keptBytes, setAsideBytes);
    // Under a vouched-for checkpoint the kept state is the checkpoint's: the damaged entries
    // before it cannot be replayed.
    const keptState = await replayKept(path, keptBytes, later && signedCheckpoint);
    cut = await summarizeCut(path, { keptBytes, kept, keptState }, rest, identity.publicKey);
    if (lostCheckpoint !== undefined) {
      const recorded = LedgerState.restore(lostCheckpoint.state);
      const comparedAt = Math.min(kept, lostCheckpoint.seq);
      // The kept log may go on past the checkpoint (rewritten under it, then appended to): the
      // entries after the checkpoint's place are not what it lost.
      const atCheckpoint = comparedAt === kept
        ? keptState
        : await replayKept(path, keptBytes, undefined, comparedAt);
      cut.checkpoint = {
        seq: lostCheckpoint.seq,
        check: before.checkpoint.check,
        missingEntries: Math.max(0, lostCheckpoint.seq - kept),
        comparedAt,
        accounts: changedAccounts(recorded, atCheckpoint, keptState),
      };
    }
    if (
      options.refuseSignedCut === true &&
      (cut.signedEntries > 0 || cut.checkpoint !== undefined)
    ) {
      throw new LedgerRepairCutsSignedError(dir, kept, cut);
    }
  }
  const stamp = new Date((options.now ?? Date.now)()).toISOString().replaceAll(":", "-");
  let setAsidePath: string | undefined;
  if (setAsideBytes > 0) {
    // Copied aside before the log is cut: a crash between the two leaves both, never neither.
    // Never over an earlier repair's file (`unusedPath`).
    setAsidePath = await unusedPath(`${path}.rejected-${stamp}`);
    await writeFileDurably(setAsidePath, rest);
    const log = await LedgerLog.open(path, { write: true });
    try {
      await log.truncate(keptBytes);
    } finally {
      log.close();
    }
  }
  const checkpointRemoved = !KEPT_CHECKS.has(before.checkpoint.check);
  // Moved aside, never deleted: a signed one is the only record of what the lost entries held.
  const checkpointSetAsidePath = checkpointRemoved
    ? await setCheckpointAside(dir, stamp)
    : undefined;
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
    kept,
    setAsidePath,
    setAsideBytes,
    checkpointRemoved,
    ...(checkpointSetAsidePath === undefined ? {} : { checkpointSetAsidePath }),
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
    copies: 0,
    unverifiedKinds: {},
    unverifiedAccounts: [],
    otherBytes: bytes,
  };
}

/** The `length` bytes of the file at `path` from byte `from`. */
async function readBytes(path: string, from: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(from, Deno.SeekMode.Start);
    for (let read = 0; read < bytes.length;) {
      const n = await file.read(bytes.subarray(read));
      if (n === null) break;
      read += n;
    }
  } finally {
    file.close();
  }
  return bytes;
}

/**
 * The state of the entries in the first `keptBytes` of the log at `path`: replayed from genesis
 * (they verify: `verifyLedger` said so), or from `from`, a checkpoint that vouches past damage
 * before it, and the entries after it; with `entries`, only the first that many.
 */
async function replayKept(
  path: string,
  keptBytes: number,
  from?: LedgerCheckpoint,
  entries = Infinity,
): Promise<LedgerState> {
  const state = from === undefined ? new LedgerState() : LedgerState.restore(from.state);
  const log = await LedgerLog.open(path);
  try {
    await log.readFrames(from?.end ?? 0, (frame) => {
      const entry = decodeEntry(frame.payload);
      if (entry !== undefined && entry.seq < entries) state.apply(entry);
    }, keptBytes);
  } finally {
    log.close();
  }
  return state;
}

/** What is kept, for {@link summarizeCut}: its bytes, its entries and their state. */
interface KeptPart {
  keptBytes: number;
  kept: number;
  keptState: LedgerState;
}

/**
 * What `rest` (the bytes after the kept ones of the log at `path`) carried: every whole entry in
 * `rest` signed by `owner` is applied to a copy of the kept state, and the accounts that differ
 * are listed; the frames between those that decode but do not verify are applied on top, apart.
 * A signed entry with a `seq` the kept entries hold and the same hash as the kept one is a copy
 * (review s75 F3): counted apart, not applied. The cut entries cannot be linked to the kept ones,
 * so this is what they say, not what a valid chain would have made of them.
 */
async function summarizeCut(
  path: string,
  { keptBytes, kept, keptState }: KeptPart,
  rest: Uint8Array,
  owner: Uint8Array,
): Promise<LedgerCutSummary> {
  const summary = emptyCut(rest.length);
  const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
  const frameEnd = (at: number) => at + FRAME_HEADER_BYTES + view.getUint32(at);
  // In order: `signed` says whether the owner's signature verifies.
  const found: { entry: LedgerEntry; signed: boolean }[] = [];
  for (let at = 0; at < rest.length;) {
    const next = findSignedEntry(rest, at, owner);
    const gapEnd = next?.offset ?? rest.length;
    // Between signed entries: frames that still decode (the damaged entry), read in order.
    while (at + FRAME_HEADER_BYTES <= gapEnd && frameEnd(at) <= gapEnd) {
      const end = frameEnd(at);
      const entry = decodeEntry(rest.subarray(at + FRAME_HEADER_BYTES, end));
      if (entry === undefined) break;
      found.push({ entry, signed: false });
      summary.otherBytes -= end - at;
      at = end;
    }
    if (next === undefined) break;
    at = frameEnd(next.offset);
    summary.otherBytes -= at - next.offset;
    found.push({ entry: next.entry, signed: true });
  }
  const copies = await keptHashes(
    path,
    keptBytes,
    new Set(found.filter((f) => f.signed && f.entry.seq < kept).map((f) => f.entry.seq)),
  );
  const signed = LedgerState.restore(keptState.snapshot());
  const all = LedgerState.restore(keptState.snapshot());
  const count = (kinds: Record<string, number>, kind: unknown) => {
    kinds[String(kind)] = (kinds[String(kind)] ?? 0) + 1;
  };
  for (const { entry, signed: isSigned } of found) {
    if (!isSigned) {
      count(summary.unverifiedKinds, entry.kind);
      tryApply(all, entry);
    } else if (copies.get(entry.seq) === entryHash(entry)) {
      summary.copies++;
    } else {
      summary.signedEntries++;
      count(summary.kinds, entry.kind);
      if (!tryApply(signed, entry)) summary.notApplied++;
      tryApply(all, entry);
    }
  }
  summary.accounts = changedAccounts(signed, keptState, keptState);
  summary.unverifiedAccounts = changedAccounts(all, signed, keptState);
  return summary;
}

/**
 * The hashes of the kept entries (in the first `keptBytes` of the log at `path`) whose `seq` is
 * in `seqs`, by `seq`: read only when the cut holds signed entries with such a `seq`.
 */
async function keptHashes(
  path: string,
  keptBytes: number,
  seqs: Set<number>,
): Promise<Map<number, string>> {
  const hashes = new Map<number, string>();
  if (seqs.size === 0) return hashes;
  const log = await LedgerLog.open(path);
  try {
    await log.readFrames(0, (frame) => {
      const entry = decodeEntry(frame.payload);
      if (entry !== undefined && seqs.has(entry.seq)) hashes.set(entry.seq, entryHash(entry));
    }, keptBytes);
  } finally {
    log.close();
  }
  return hashes;
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

/**
 * The accounts whose balance, stake or locked differ between `before` and `after` (either side's
 * accounts), each marked with whether `kept` (the kept ledger's state) has it.
 */
function changedAccounts(
  before: LedgerState,
  after: LedgerState,
  kept: LedgerState,
): LedgerCutAccount[] {
  const keys = new Set<string>();
  for (const [key] of before.snapshot().accounts) keys.add(key);
  for (const [key] of after.snapshot().accounts) keys.add(key);
  const inKept = new Set(kept.snapshot().accounts.map(([key]) => key));
  const changed: LedgerCutAccount[] = [];
  for (const key of keys) {
    const was = { ...before.account(key) };
    const is = { ...after.account(key) };
    if (was.balance !== is.balance || was.stake !== is.stake || was.locked !== is.locked) {
      changed.push({ key, before: was, after: is, inKept: inKept.has(key) });
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
    const lost: string[] = [];
    // Cut off by the damage, the signed entries are part of what the checkpoint records: said
    // once, as its breakdown, not added to it (review s75 G2).
    if (cut.signedEntries > 0 && cut.checkpoint?.check !== "cut_off_by_damage") {
      lost.push(
        `${cut.signedEntries} whole entries signed by this node would be cut (acknowledged ` +
          `entries, not a torn append)`,
      );
    }
    const cp = cut.checkpoint;
    if (cp !== undefined) {
      lost.push(
        `${checkpointLossText(cp, cut.signedEntries)}, ${cp.accounts.length} accounts differing`,
      );
    }
    super(
      "ledger_repair_cuts_signed",
      `repair leaves the ledger in ${dir} as it is: with the ${kept} entries it would keep, ` +
        `${lost.join(", and ")}; nothing was changed`,
    );
    this.cut = cut;
    this.kept = kept;
  }
}

/**
 * What a signed checkpoint the kept log does not give records, in words, by how it compares with
 * the log (review s75 G1, G2): entries the log no longer holds, entries after the damage that
 * this repair cuts (with the signed ones among them), or other entries under it.
 */
export function checkpointLossText(cp: LedgerCheckpointLoss, signedEntries = 0): string {
  const at = `the checkpoint signed by this node at entry ${cp.seq}`;
  if (cp.check === "cut_off_by_damage") {
    return `${at} covers ${cp.missingEntries} entries from the damage on, cut by this repair` +
      (signedEntries > 0 ? ` (${signedEntries} of them whole entries signed by this node)` : "");
  }
  if (cp.missingEntries > 0) {
    return `${at} records ${cp.missingEntries} entries the log no longer holds (acknowledged ` +
      `entries are gone: a log rolled back, overwritten or cut short)`;
  }
  return `${at} records a state the kept log's first ${cp.comparedAt} entries do not give: the ` +
    `log reaches the checkpoint's place but holds other entries there (rewritten under it); ` +
    `entries it holds past that place are not part of the difference`;
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
    super(
      "ledger_damage_vouched",
      `repair leaves the ledger in ${dir} as it is: ${which} (bytes ${damage.offset} to ` +
        `${vouched.resumesAt} of ${LOG_FILE}) is damaged, but the signed checkpoint at entry ` +
        `${checkpointSeq} vouches past it: the ${checkpointSeq - vouched.to} entries after the ` +
        `damage verify and link to it, so its state (balances, stakes, open receipts) is intact ` +
        `and the node opens from it. Cutting at the damage would lose ` +
        `${checkpointSeq - vouched.from} entries the checkpoint covers. The damaged bytes cannot ` +
        `be restored (the checkpoint commits to their original hash, which they no longer give); ` +
        `keep a copy of ${LOG_FILE}; nothing was changed`,
    );
    this.seq = vouched.from;
  }
}
