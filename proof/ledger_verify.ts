/**
 * Checking a whole ledger from genesis, read-only: every frame, link and signature, the working
 * state replayed, and the checkpoint compared with the state the log gives at its position. It
 * writes nothing and takes no lock, so it runs beside the node that owns the ledger (an append in
 * progress shows as a torn tail, not as damage). A tail is torn only as opening a ledger judges
 * it (`judgeTail`, `ledger_recovery.ts`): bytes that could hide an acknowledged entry — a length
 * prefix damaged mid-log, with whole entries after it — are damage.
 *
 * Opening a ledger checks only the entries after its checkpoint; this is the check of the rest.
 * It streams the log, so memory stays bounded by the working state however long the log is.
 *
 * Damage before a signed checkpoint is checked against it (review s72): when the entries after the
 * damage verify and link, entry by entry, to the checkpoint's head at its place in the log, the
 * checkpoint vouches for them and its state is intact ({@link LedgerVerifyReport.vouched}); the
 * damaged entries themselves are not vouched for — the checkpoint commits to a hash chain, and
 * their bytes no longer give the hash the next entry names — but nothing after them is lost.
 *
 * @module
 */
import { join } from "node:path";
import { encodeCanonical } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import { ChainVerifier, decodeEntry, GENESIS_PREV } from "./ledger_entry.ts";
import { LedgerError, LedgerNewerFormatError, LedgerTamperedError } from "./ledger_errors.ts";
import { LedgerLog, LOG_FILE } from "./ledger_log.ts";
import { LedgerState } from "./ledger_state.ts";
import { type LedgerCheckpoint, readCheckpoint, verifyCheckpoint } from "./ledger_checkpoint.ts";
import { judgeTail } from "./ledger_recovery.ts";

/** How the checkpoint compares with the log. */
export type CheckpointCheck =
  | "matches"
  | "missing"
  | "unreadable"
  | "bad_signature"
  | "beyond_log"
  // Damage before it, and the entries after the damage verify and link to it: it vouches for
  // them, and its state is intact (see `LedgerVerifyReport.vouched`).
  | "matches_past_damage"
  // Damage before it, and what follows the damage does not lead to it (the log holds its bytes:
  // it is not beyond the log).
  | "cut_off_by_damage"
  | "does_not_match";

/** The first entry that fails, and where. */
export interface LedgerDamage {
  /** Its position: the entries before it (`seq` of them) verify. */
  seq: number;
  /** Byte offset of its frame. */
  offset: number;
  /** What failed. */
  reason: string;
  /**
   * The error's code: `ledger_tampered`, `ledger_owner_mismatch` for another key's genesis, or
   * `ledger_newer_format` for an entry that verifies but is of a kind a newer version wrote (not
   * damage: `ledger repair` refuses it).
   */
  code: string;
  /** For `ledger_newer_format`: the entry's kind, unknown to this version. */
  kind?: string;
}

/** What {@link verifyLedger} found. */
export interface LedgerVerifyReport {
  /** Whether every entry verifies and the checkpoint (if any) matches the log. */
  ok: boolean;
  /** Entries that verify, from genesis. */
  entries: number;
  /** Bytes those entries span (where a repair cuts). */
  validBytes: number;
  /** Bytes in the log. */
  totalBytes: number;
  /** Hex owner key (the genesis entry's signer), if there is a genesis. */
  owner?: string;
  /** Hash of the last entry that verifies. */
  head: string;
  /** The first entry that fails, if one does. */
  damage?: LedgerDamage;
  /** Whole frames after the damage (not checked: they cannot be chained to what verifies). */
  framesAfterDamage: number;
  /**
   * Bytes at the end that are a torn tail (a crash mid-append, or an append running): opening
   * the ledger copies them to `ledger.log.torn-<time>` and cuts them.
   */
  tornBytes: number;
  /** The checkpoint's position (0 if none) and how it compares with the log. */
  checkpoint: { seq: number; check: CheckpointCheck };
  /**
   * Set when the damage lies inside what the signed checkpoint covers and it vouches past it
   * (`matches_past_damage`): the entries after the damage verify and link to the checkpoint, so
   * its state is intact and the node opens from it. `ledger repair` then cuts nothing.
   */
  vouched?: VouchedDamage;
}

/** Damage a signed checkpoint vouches past (see {@link LedgerVerifyReport.vouched}). */
export interface VouchedDamage {
  /** The damaged entries: positions `from` to `to − 1`. */
  from: number;
  /** Position of the first entry after the damage (it verifies, and so do all up to the checkpoint). */
  to: number;
  /** Byte offset of that entry: the damaged bytes run from `damage.offset` to here. */
  resumesAt: number;
  /** The first damage after the checkpoint, if any (a torn tail is none: an open cuts it). */
  laterDamage?: LedgerDamage;
}

/** Options of {@link verifyLedger}. */
export interface VerifyLedgerOptions {
  /** The owner's key, when known (else whoever signed genesis). */
  owner?: Uint8Array;
}

/**
 * Check the ledger in `dir` from genesis (see the module doc).
 *
 * @example
 * ```ts
 * import { Ledger } from "./ledger.ts";
 * import { verifyLedger } from "./ledger_verify.ts";
 * import { Identity } from "../protocols/identity.ts";
 * const dir = await Deno.makeTempDir();
 * await (await Ledger.open(dir, Identity.generate())).close();
 * console.log((await verifyLedger(dir)).ok); // true
 * ```
 * @throws {LedgerError} (`ledger_missing`) when `dir` holds no ledger.
 */
export async function verifyLedger(
  dir: string,
  options: VerifyLedgerOptions = {},
): Promise<LedgerVerifyReport> {
  // The checkpoint before the log's size: a node running beside this writes its entries before
  // the checkpoint that covers them, so this order never sees a checkpoint beyond the log.
  const stored = await readCheckpoint(dir);
  let log: LedgerLog;
  try {
    log = await LedgerLog.open(join(dir, LOG_FILE));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new LedgerError("ledger_missing", `no ledger in ${dir} (no ${LOG_FILE}): check --data`);
  }
  try {
    const checkpoint = typeof stored === "object" ? stored : undefined;
    const chain = new ChainVerifier({ owner: options.owner, dir });
    const state = new LedgerState();
    let validBytes = 0;
    // Set inside the read callback, which the compiler's narrowing does not follow.
    let checkpointCheck = (stored === undefined
      ? "missing"
      : stored === "unreadable"
      ? "unreadable"
      : "beyond_log") as CheckpointCheck;
    let damage: LedgerDamage | undefined;
    // A checkpoint written before pledges were kept has no `pledges`: compare the rest. The
    // checkpoint is compared as the ledger opens it (`LedgerState.restore`), its balances kept
    // to a millionth of a credit as a replay now keeps them: one written before (review s57)
    // may hold a balance an ulp off, which is not damage.
    const comparable = (replayed: LedgerState) => {
      const snapshot = replayed.snapshot();
      if (checkpoint?.state.pledges === undefined) {
        delete snapshot.pledges;
      }
      return snapshot;
    };
    let read;
    try {
      read = await log.readFrames(0, async (frame) => {
        const entry = await chain.next(frame.payload);
        state.apply(entry);
        validBytes = frame.end;
        if (checkpoint !== undefined && chain.seq === checkpoint.seq) {
          checkpointCheck = !verifyCheckpoint(checkpoint, chain.owner!)
            ? "bad_signature"
            : checkpoint.head !== chain.head || checkpoint.end !== frame.end ||
                checkpoint.last !== frame.offset ||
                !sameBytes(
                  encodeCanonical(comparable(LedgerState.restore(checkpoint.state))),
                  encodeCanonical(comparable(state)),
                )
            ? "does_not_match"
            : "matches";
        }
      });
      if (read.badLength !== undefined) {
        damage = {
          seq: chain.seq,
          offset: read.end,
          reason: `impossible frame length ${read.badLength}`,
          code: "ledger_tampered",
        };
      } else if (read.tornBytes > 0) {
        damage = {
          seq: chain.seq,
          offset: read.end,
          reason: `its frame runs past the end of the log (byte ${log.size})`,
          code: "ledger_tampered",
        };
      }
    } catch (error) {
      if (!(error instanceof LedgerError)) {
        throw error;
      }
      const reason = error instanceof LedgerTamperedError ? error.reason : error.message;
      damage = { seq: chain.seq, offset: validBytes, reason, code: error.code };
      if (error instanceof LedgerNewerFormatError) {
        damage.kind = error.kind;
      }
      read = undefined;
    }
    let framesAfterDamage = 0;
    let tornBytes = 0;
    let resumesAt: number | undefined;
    if (damage?.code === "ledger_tampered") {
      // A crash mid-append, or bytes that may hide acknowledged entries: judged as open does.
      const tail = await judgeTail(log, damage.offset, chain.owner);
      if (tail.torn) {
        tornBytes = log.size - damage.offset;
        damage = undefined;
      } else {
        if (tail.reason !== undefined) {
          damage.reason += `; ${tail.reason}`;
        }
        resumesAt = tail.resumesAt;
      }
    }
    if (damage !== undefined) {
      // Count what follows, for the operator: it is set aside by a repair, not checked.
      const rest = await log.readFrames(resumesAt ?? damage.offset, () => {
        framesAfterDamage++;
      });
      if (read === undefined && resumesAt === undefined) {
        framesAfterDamage--; // the damaged frame itself was whole
      }
      tornBytes = rest.badLength === undefined ? rest.tornBytes : 0;
    }
    let vouched: VouchedDamage | undefined;
    if (checkpoint !== undefined && checkpointCheck === "beyond_log" && stored !== "unreadable") {
      // The checkpoint was never reached: cut off by damage, or not the owner's to begin with.
      if (chain.owner !== undefined && !verifyCheckpoint(checkpoint, chain.owner)) {
        checkpointCheck = "bad_signature";
      } else if (damage !== undefined && chain.owner !== undefined) {
        // Never reached because of the damage, not because the log ends before it (review s72:
        // "beyond log" was said of a checkpoint at the log's very end).
        vouched = resumesAt === undefined
          ? undefined
          : await vouchedPast(log, damage, resumesAt, checkpoint, chain.owner, dir);
        if (vouched !== undefined) {
          checkpointCheck = "matches_past_damage";
          damage.reason += `; the signed checkpoint at entry ${checkpoint.seq} vouches past it: ` +
            `the ${checkpoint.seq - vouched.to} entries from byte ${resumesAt} verify and link ` +
            `to it, so its state is intact and the node opens from it (the damaged bytes no ` +
            `longer give the hash its chain commits to); \`ledger repair\` cuts nothing it covers`;
        } else if (log.size >= checkpoint.end) {
          checkpointCheck = "cut_off_by_damage";
        }
      }
    }
    const ok = damage === undefined &&
      (checkpointCheck === "matches" || checkpointCheck === "missing");
    return {
      ok,
      entries: chain.seq,
      validBytes,
      totalBytes: log.size,
      owner: chain.owner && toHex(chain.owner),
      head: chain.seq === 0 ? GENESIS_PREV : chain.head,
      damage,
      framesAfterDamage: Math.max(0, framesAfterDamage),
      tornBytes,
      checkpoint: { seq: checkpoint?.seq ?? 0, check: checkpointCheck },
      ...(vouched === undefined ? {} : { vouched }),
    };
  } finally {
    log.close();
  }
}

/**
 * Whether `checkpoint` vouches past `damage`: from `resumesAt` (the first whole entry signed by
 * `owner` after it) every entry verifies and links to the next, and the last one before the
 * checkpoint is the one it names (`seq`, `head`, `last`, `end`). Then the entries after the
 * checkpoint are checked from it, as an open checks them.
 */
async function vouchedPast(
  log: LedgerLog,
  damage: LedgerDamage,
  resumesAt: number,
  checkpoint: LedgerCheckpoint,
  owner: Uint8Array,
  dir: string,
): Promise<VouchedDamage | undefined> {
  const frame = await log.frameAt(resumesAt);
  const first = frame && decodeEntry(frame.payload);
  if (first === undefined || first.seq <= damage.seq || first.seq >= checkpoint.seq) {
    return undefined;
  }
  const chain = new ChainVerifier({ owner, from: { seq: first.seq, head: first.prev }, dir });
  let last = -1;
  let end = -1;
  try {
    await log.readFrames(resumesAt, async (f) => {
      await chain.next(f.payload);
      last = f.offset;
      end = f.end;
    }, checkpoint.end);
  } catch (error) {
    if (error instanceof LedgerError) return undefined;
    throw error;
  }
  const linked = chain.seq === checkpoint.seq && chain.head === checkpoint.head &&
    last === checkpoint.last && end === checkpoint.end;
  if (!linked) return undefined;
  const laterDamage = await damageAfter(log, checkpoint, owner, dir);
  return { from: damage.seq, to: first.seq, resumesAt, ...(laterDamage && { laterDamage }) };
}

/** The first damage after `checkpoint` (a torn tail is none), checked as an open checks it. */
async function damageAfter(
  log: LedgerLog,
  checkpoint: LedgerCheckpoint,
  owner: Uint8Array,
  dir: string,
): Promise<LedgerDamage | undefined> {
  const chain = new ChainVerifier({ owner, from: checkpoint, dir });
  let at = checkpoint.end;
  let failed: LedgerError | undefined;
  let read;
  try {
    read = await log.readFrames(checkpoint.end, async (frame) => {
      await chain.next(frame.payload);
      at = frame.end;
    });
  } catch (error) {
    if (!(error instanceof LedgerError)) throw error;
    failed = error;
  }
  if (failed === undefined && read?.badLength === undefined && read?.tornBytes === 0) {
    return undefined;
  }
  if ((await judgeTail(log, at, owner)).torn) return undefined;
  const reason = failed instanceof LedgerTamperedError
    ? failed.reason
    : failed?.message ?? `the frame at byte ${at} is cut or has an impossible length`;
  return { seq: chain.seq, offset: at, reason, code: failed?.code ?? "ledger_tampered" };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
