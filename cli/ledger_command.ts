/**
 * `cli.ts ledger verify|repair`: check a node's ledger from genesis, and recover one that a
 * crash, a bad disk or two writers damaged.
 *
 * `verify` only reads, so it runs beside the node that owns the directory. `repair` rewrites the
 * log, so it takes the data directory's lock first and is refused while a node runs there. A
 * ledger a newer version wrote (an entry of a kind this one does not know) is reported by both
 * and repaired by neither: it is not damage (`ledger_newer_format`). Exit codes: 0 the ledger
 * verifies (or was repaired), 1 it does not (or the directory is in use, or has no ledger, or a
 * newer version wrote it), 2 a usage error.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { flagProblem } from "../node/_unknown_flag.ts";
import { Identity } from "../protocols/identity.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  type LedgerDamage,
  type LedgerVerifyReport,
  verifyLedger,
  type VouchedDamage,
} from "../proof/ledger_verify.ts";
import { LOG_FILE } from "../proof/ledger_log.ts";
import { roundCredits } from "../proof/ledger_state.ts";
import { toHex } from "../protocols/hash.ts";
import {
  CHECKPOINT_LOSS_CHECKS,
  checkpointLossText,
  type LedgerCutAccount,
  type LedgerCutSummary,
  LedgerRepairCutsSignedError,
  repairLedger,
} from "../proof/ledger_repair.ts";
import { LedgerError } from "../proof/ledger_errors.ts";
import { DataDirLock, DataDirNotDirectoryError } from "../node/data_dir_lock.ts";
import { CorruptIdentityError, IDENTITY_FILE } from "../node/node_identity.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import { LEDGER_USAGE } from "./ledger_help.ts";
import { EXIT_USAGE, isConfigRefusal, usageErrorText } from "../node/usage_error_text.ts";

/** Where the command's lines go (the console by default; tests capture them). */
export interface CommandOutput {
  /** A line of results. */
  out(line: string): void;
  /** A line of errors. */
  err(line: string): void;
}

const CONSOLE: CommandOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** Run `ledger verify|repair`; resolves with the process exit code. */
export async function runLedger(args: string[], io: CommandOutput = CONSOLE): Promise<number> {
  let parsed;
  const options = {
    data: { type: "string" },
    json: { type: "boolean" },
    force: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  } as const;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options });
  } catch (error) {
    io.err(usageErrorText(flagProblem(error, Object.keys(options), args), LEDGER_USAGE));
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(LEDGER_USAGE);
    return 0;
  }
  const [action, ...extra] = positionals;
  if ((action !== "verify" && action !== "repair") || extra.length > 0) {
    const why = action === undefined
      ? "missing the ledger action (verify or repair)"
      : action !== "verify" && action !== "repair"
      ? `unknown ledger action ${JSON.stringify(action)} (it takes verify or repair)`
      : `unexpected ${JSON.stringify(extra.join(" "))} after ledger ${action} (flags only)`;
    io.err(usageErrorText(why, LEDGER_USAGE));
    return EXIT_USAGE;
  }
  if (values.force === true && action !== "repair") {
    io.err(usageErrorText("--force is for ledger repair", LEDGER_USAGE));
    return EXIT_USAGE;
  }
  let dataDir: string;
  try {
    dataDir = await commandDataDir(values.data);
  } catch (error) {
    // A refused --data (`~/vf`) is a bad invocation: exit 2, as `start` answers it.
    if (!isConfigRefusal(error)) throw error;
    io.err(`error [${error.code}]: ${error.message}`);
    return EXIT_USAGE;
  }
  try {
    return action === "verify"
      ? await verify(dataDir, values.json === true, io)
      : await repair(dataDir, { force: values.force === true, json: values.json === true }, io);
  } catch (error) {
    if (error instanceof LedgerRepairCutsSignedError) {
      if (values.json === true) {
        const { code, message, kept, cut } = error;
        io.out(JSON.stringify({ ok: false, error: { code, message }, kept, cut }, null, 2));
        return 1;
      }
      const owner = await readIdentity(dataDir).then(
        (id) => id && toHex(id.publicKey),
        () => undefined,
      );
      io.err(`error [${error.code}]: ${error.message}`);
      for (const line of describeCut(error.cut, owner)) io.err(line);
      io.err(
        `to cut them anyway, stop the node and run: deno run -A cli.ts ledger repair --force ` +
          `--data ${dataDir}. ${FORCE_COST}`,
      );
      return 1;
    }
    // With --json every exit-1 outcome is one JSON object on stdout, so a script reads one
    // shape (review s75 G4); usage errors (exit 2) stay text.
    // A file-system error has no code of its own: its text line stays as it was (`error: …`).
    const fail = (code: string, message: string, text = `error [${code}]: ${message}`) => {
      if (values.json === true) io.out(JSON.stringify({ ok: false, error: { code, message } }));
      else io.err(text);
      return 1;
    };
    if (error instanceof VeriflowError) return fail(error.code, error.message);
    if (error instanceof Deno.errors.NotADirectory) {
      // The file in the way may be the data directory's `ledger`, not the data directory.
      const ledgerDir = join(dataDir, "ledger");
      const dataIsDirectory = await Deno.stat(dataDir).then((s) => s.isDirectory, () => false);
      const message = dataIsDirectory
        ? `${ledgerDir} is not a directory: a file is where the node keeps its ledger; ` +
          `move it aside, or check --data (${error.message})`
        : `--data ${dataDir} is not a directory: give the node's data directory ` +
          `(${error.message})`;
      return fail("not_a_directory", message, `error: ${message}`);
    }
    // Deno's file-system errors name the path ("Permission denied (os error 13): open '…'").
    if (Object.values(Deno.errors).some((type) => error instanceof type)) {
      const message = `--data ${dataDir}: ${(error as Error).message}`;
      return fail("io_error", message, `error: ${message}`);
    }
    throw error;
  }
}

async function verify(dataDir: string, json: boolean, io: CommandOutput): Promise<number> {
  // A damaged key file leaves the owner unknown: the log still verifies entry by entry.
  const owner = await readIdentity(dataDir).catch((error) => {
    if (error instanceof CorruptIdentityError) return undefined;
    throw error;
  });
  const report = await verifyLedger(join(dataDir, "ledger"), { owner: owner?.publicKey });
  if (json) io.out(JSON.stringify(report, null, 2));
  else for (const line of describe(report, dataDir)) io.out(line);
  return report.ok ? 0 : 1;
}

/** How `repair` was asked to run: `--force`, `--json`. */
interface RepairFlags {
  force: boolean;
  json: boolean;
}

/**
 * What `--force` costs, said wherever it is offered (review s75 F4): the bytes are kept, but only
 * as a copy nothing reads.
 */
const FORCE_COST = "With --force the ledger no longer counts what is listed above (balances, " +
  "stakes and open receipts become what the kept entries give); the cut bytes are copied to " +
  "ledger.log.rejected-<time> and a checkpoint that does not match to " +
  "checkpoint.cbor.rejected-<time>, beside the log, for inspection only: nothing reads them back";

async function repair(dataDir: string, flags: RepairFlags, io: CommandOutput): Promise<number> {
  // The lock creates the directory it locks: a mistyped --data is refused first, as `verify`
  // refuses it, not left behind as a new directory holding only a lock file.
  let isDirectory: boolean;
  try {
    isDirectory = (await Deno.stat(dataDir)).isDirectory;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new LedgerError("ledger_missing", `no data directory ${dataDir}: check --data`);
  }
  // Named here, not by the lock, whose words promise to create the directory.
  if (!isDirectory) throw new DataDirNotDirectoryError(dataDir, { created: false });
  const lock = await DataDirLock.acquire(dataDir, "ledger repair");
  try {
    const identity = await readIdentity(dataDir);
    if (identity === undefined) {
      throw new LedgerError(
        "identity_missing",
        `${join(dataDir, IDENTITY_FILE)} not found: the ledger is signed with the node's ` +
          `key, so repair needs it (is --data the node's data directory?)`,
      );
    }
    const report = await repairLedger(join(dataDir, "ledger"), identity, {
      refuseSignedCut: !flags.force,
    });
    if (flags.json) {
      io.out(JSON.stringify({ ok: true, ...report }, null, 2));
      return 0;
    }
    // Without the advice to run repair: this is that run.
    for (const line of describe(report.before, dataDir, false)) io.out(`before: ${line}`);
    const cut = report.cut;
    if (report.setAsidePath !== undefined || cut.checkpoint !== undefined) {
      if (report.setAsidePath !== undefined) {
        io.out(
          `set aside ${report.setAsideBytes} bytes after entry ${report.kept - 1} in ` +
            report.setAsidePath,
        );
      }
      for (const line of describeCut(cut, toHex(identity.publicKey))) io.out(line);
      if (cut.signedEntries > 0 || cut.checkpoint !== undefined) {
        io.out(
          "cut: the ledger no longer counts what is listed above; the copies beside the log are " +
            "for inspection only (nothing reads them back)",
        );
      }
    }
    if (report.checkpointRemoved) {
      io.out(
        report.checkpointSetAsidePath === undefined
          ? "the checkpoint that did not match the log is gone"
          : `moved the checkpoint that did not match the log to ${report.checkpointSetAsidePath}`,
      );
    }
    const vouched = report.before.vouched;
    if (vouched !== undefined) {
      // Kept by design (the checkpoint vouches for it; cutting it would lose all it covers), so
      // not "all verified": verify goes on reporting it (review s75 G3).
      io.out(
        `repaired: ${report.length} entries kept; head ${report.head.slice(0, 16)}…; ` +
          // The repair's own open signs a fresh checkpoint at the end of what it kept.
          `${vouchedWhich(vouched)} stays damaged under the signed checkpoint, now at entry ` +
          `${report.length}, which vouches for it: ledger verify will keep ` +
          `reporting it ("matches past damage", exit 1); nothing can restore it`,
      );
      return 0;
    }
    io.out(
      `repaired: ${report.length} entries, all verified; head ${report.head.slice(0, 16)}…` +
        (report.kept === 0 ? " (nothing verified: a new genesis was written)" : ""),
    );
    return 0;
  } finally {
    await lock.release();
  }
}

/**
 * Accounts a cut report lists one by one, the largest changes first (review s75 F4: a cut over
 * 5,000 accounts printed 5,007 lines): a screen's worth; `ledger repair --json` lists them all.
 */
export const CUT_REPORT_ACCOUNTS = 10;

/**
 * What cut entries carried, in lines: the whole entries signed by this node by kind, their totals
 * over all accounts, then this node's account and the {@link CUT_REPORT_ACCOUNTS} largest changes
 * (balances with them, before the repair, and without, after), so the operator knows what is
 * lost; then what a signed checkpoint the kept log does not reach recorded, and the entries that
 * do not verify (the damage), as written, apart. `owner` (hex) tags this node's account.
 */
export function describeCut(cut: LedgerCutSummary, owner?: string): string[] {
  const kinds = (counts: Record<string, number>) =>
    Object.entries(counts).map(([kind, n]) => `${kind} ×${n}`).join(", ");
  const unverified = Object.values(cut.unverifiedKinds).reduce((a, b) => a + b, 0);
  const lines: string[] = [];
  const cp = cut.checkpoint;
  // Cut off by the damage, the checkpoint's difference is the whole loss and the cut entries
  // are what makes it up: labelled so, or a reader adding the sections counts them twice
  // (review s75 G2).
  const part = cp?.check === "cut_off_by_damage" ? " (part of the loss above)" : "";
  if (cp !== undefined) {
    lines.push(
      `lost: ${checkpointLossText(cp, cut.signedEntries)}; ` +
        (part === "" ? "" : "in all, ") +
        `per account, the checkpoint's → the kept log's` +
        (cp.comparedAt < cp.seq ? "" : ` first ${cp.comparedAt} entries`) +
        (cp.accounts.length === 0 ? ": no account differs" : ""),
    );
    lines.push(...accountLines("lost", cp.accounts, owner));
  }
  lines.push(
    cut.signedEntries === 0
      ? "cut: no whole entry signed by this node"
      : `cut${part}: ${cut.signedEntries} whole entries signed by this node ` +
        `(${kinds(cut.kinds)}); per account, with them → without them` +
        (cut.notApplied > 0 ? `, ${cut.notApplied} of them changing nothing shown here` : ""),
  );
  lines.push(...accountLines(`cut${part}`, cut.accounts, owner));
  if (cut.signedEntries > 0 && cut.accounts.length === 0) {
    lines.push("cut: no account's balance, stake or locked changes with them");
  }
  if (cut.copies > 0) {
    lines.push(
      `cut: ${cut.copies} copies of entries the ledger keeps (same position, same hash: bytes ` +
        `written twice); cutting them loses nothing`,
    );
  }
  if (unverified > 0) {
    lines.push(
      `cut too${part}: ${unverified} entries that do not verify (${kinds(cut.unverifiedKinds)}); ` +
        `as written (not to be trusted) they change:` +
        (cut.unverifiedAccounts.length === 0 ? " no account" : ""),
    );
    lines.push(...accountLines(`cut too${part}`, cut.unverifiedAccounts, owner));
  }
  if (cut.otherBytes > 0) lines.push(`cut: ${cut.otherBytes} bytes that are no entry`);
  return lines;
}

const FIELDS = ["balance", "stake", "locked"] as const;

/**
 * `accounts` in lines led by `label`: totals when there are several, this node's account, then
 * the largest changes up to {@link CUT_REPORT_ACCOUNTS}, and how many more `--json` lists.
 */
function accountLines(label: string, accounts: LedgerCutAccount[], owner?: string): string[] {
  if (accounts.length === 0) return [];
  const lines: string[] = [];
  if (accounts.length > 1) {
    const totals = FIELDS.map((field) => {
      // Kept to a millionth as the ledger keeps amounts: raw sums of doubles printed
      // -2.800000000046566 (review s75 G5).
      const delta = roundCredits(
        accounts.reduce((sum, a) => sum + a.after[field] - a.before[field], 0),
      );
      return delta === 0 ? undefined : `${field} ${signed(delta)}`;
    }).filter((t) => t !== undefined);
    lines.push(
      `${label}: in all, ${accounts.length} accounts: ${totals.join(", ") || "no net change"}`,
    );
  }
  const size = (a: LedgerCutAccount) =>
    FIELDS.reduce((sum, field) => sum + Math.abs(a.after[field] - a.before[field]), 0);
  const own = accounts.find((a) => a.key === owner);
  if (own === undefined && owner !== undefined && accounts.length > 1) {
    lines.push(`${label}: this node's account ${owner}: no change`);
  }
  const others = accounts.filter((a) => a !== own).sort((a, b) => size(b) - size(a));
  const shown = [...(own === undefined ? [] : [own]), ...others].slice(0, CUT_REPORT_ACCOUNTS);
  for (const account of shown) lines.push(`${label}: ${accountChange(account, owner)}`);
  if (accounts.length > shown.length) {
    lines.push(
      `${label}: and ${accounts.length - shown.length} more accounts, none with a larger ` +
        `change (ledger repair --json lists them all)`,
    );
  }
  return lines;
}

/** `+5`, `-3`: a change with its sign. */
function signed(delta: number): string {
  return `${delta > 0 ? "+" : ""}${delta}`;
}

/**
 * `account <64 hex> (this node): stake 2100 → 300 (-1800)`: the fields that change, before →
 * after. The whole key (review s75 F5: 16 hex digits hid a damaged key one digit from this
 * node's), tagged when it is this node's or one the kept ledger does not have.
 */
function accountChange({ key, before, after, inKept }: LedgerCutAccount, owner?: string): string {
  const changes = FIELDS
    .filter((field) => before[field] !== after[field])
    .map((field) =>
      `${field} ${before[field]} → ${after[field]} ` +
      `(${signed(roundCredits(after[field] - before[field]))})`
    );
  const tags = [
    ...(key === owner ? ["this node"] : []),
    ...(inKept ? [] : ["not in the kept ledger"]),
  ];
  return `account ${key}${tags.length === 0 ? "" : ` (${tags.join(", ")})`}: ${changes.join(", ")}`;
}

/**
 * The report in lines an operator reads; `advise` adds the command that repairs it (not when
 * printed by that command itself).
 */
function describe(report: LedgerVerifyReport, dataDir: string, advise = true): string[] {
  const lines = [
    `${report.entries} entries verify (${report.validBytes} of ${report.totalBytes} bytes), ` +
    `head ${report.head.slice(0, 16)}…, owner ${report.owner?.slice(0, 16) ?? "unknown"}…`,
  ];
  const cp = report.checkpoint;
  lines.push(
    cp.check === "missing"
      ? "checkpoint: none (each open replays the log from genesis until one is written: by a " +
        "clean stop, or by an open once ledger.checkpointEvery entries, default 1024, gathered)"
      : `checkpoint at entry ${cp.seq}: ${cp.check.replaceAll("_", " ")}`,
  );
  if (report.tornBytes > 0 && report.damage === undefined) {
    lines.push(
      `${report.tornBytes} bytes at the end are not a whole entry: an append in progress, or ` +
        `one a crash cut (never acknowledged; the next open cuts it)`,
    );
  }
  if (report.damage?.code === "ledger_newer_format") {
    // Not damage: a repair would cut a newer version's entries, so none is suggested.
    lines.push(
      `newer format [ledger_newer_format]: ${report.damage.reason}`,
      `${report.framesAfterDamage} whole entries follow it, not checked by this version`,
      `not ok: this version cannot check the rest; run the newer version that wrote the ledger`,
    );
    return lines;
  }
  if (report.damage !== undefined && report.vouched !== undefined) {
    // Repair refuses here (`ledger_damage_vouched`): advising it, and counting the entries after
    // the damage as unlinkable, told the operator to cut what the checkpoint vouches for.
    lines.push(...describeVouched(report.damage, report.vouched, cp.seq));
    const later = report.vouched.laterDamage;
    if (later !== undefined && advise) {
      lines.push(
        `to keep the ${later.seq} entries before entry ${later.seq} (the checkpoint and all it ` +
          `covers) and set the bytes from byte ${later.offset} aside, stop the node and run: ` +
          `deno run -A cli.ts ledger repair --data ${dataDir}; where whole entries signed by ` +
          `this node follow the damage, it lists them and cuts them only with --force. ` +
          FORCE_COST,
      );
    }
    return lines;
  }
  if (report.damage?.code === "ledger_owner_mismatch") {
    // Not damage: repair refuses (it would cut the whole ledger), so none is suggested.
    lines.push(
      `another identity's ledger [ledger_owner_mismatch]: ${report.damage.reason}`,
      `not ok, nothing to repair: this ledger's genesis is signed by another key than ` +
        `${join(dataDir, IDENTITY_FILE)}; check --data and the identity.key inside it`,
    );
    return lines;
  }
  if (report.damage !== undefined) {
    lines.push(
      `damaged: entry ${report.damage.seq} (byte ${report.damage.offset}): ${report.damage.reason}`,
      `${report.framesAfterDamage} whole entries follow it; they cannot be linked to the ones ` +
        `that verify`,
    );
  }
  if (!report.ok && advise) {
    // Only the checkpoint is wrong (another key's, or a log rewritten under it and gone on past
    // it): no byte is set aside, and saying "the rest" promised a cut (review s75 G1).
    const keep = report.validBytes === report.totalBytes
      ? `to keep all ${report.entries} entries (they verify; nothing is set aside) and move the ` +
        `checkpoint aside`
      : `to keep the ${report.entries} entries that verify and set the rest aside`;
    lines.push(
      `${keep}, stop the node and run: deno run -A cli.ts ledger repair --data ${dataDir}`,
    );
    const refusal = repairRefusal(report);
    if (refusal !== undefined) lines.push(refusal);
  } else if (report.ok) lines.push("ok: the ledger verifies");
  return lines;
}

/**
 * When `ledger repair` will refuse without `--force` (review s75 F6: the advice led to a refusal
 * the operator met only on the third command), the line that says so and what `--force` costs.
 */
function repairRefusal(report: LedgerVerifyReport): string | undefined {
  const { check, seq } = report.checkpoint;
  const after = report.damage !== undefined && report.framesAfterDamage > 0
    ? `the ${report.framesAfterDamage} whole entries after the damage`
    : undefined;
  // Worded by where the log stands against the checkpoint (review s75 G1, G2): past it with
  // other entries under it, cut off from it by the damage (the same entries, said once), or
  // ending before it.
  const checkpoint = !CHECKPOINT_LOSS_CHECKS.has(check)
    ? undefined
    : check === "does_not_match"
    ? `where the signed checkpoint at entry ${seq} differs from the kept log's first ${seq} ` +
      `entries (the log was rewritten under it; the entries past it are kept)`
    : check === "cut_off_by_damage"
    ? `the entries from the damage on that the signed checkpoint at entry ${seq} covers, ` +
      `counted once: the checkpoint's state against the kept one, the entries cut as its parts`
    : `the entries the signed checkpoint at entry ${seq} covers beyond them`;
  const lost = [
    ...(after === undefined || check === "cut_off_by_damage" ? [] : [after]),
    ...(checkpoint === undefined ? [] : [checkpoint]),
  ];
  if (lost.length === 0) return undefined;
  return `ledger repair lists per account what would be lost (${lost.join(", and ")}); where ` +
    `that is signed by this node (acknowledged; copies of kept entries aside) it refuses ` +
    `(ledger_repair_cuts_signed) unless --force. ${FORCE_COST}`;
}

/**
 * Damage a signed checkpoint at entry `checkpointSeq` vouches past, in lines: what is damaged,
 * that the checkpoint's state is intact and the node opens from it, and what the operator can do
 * (nothing to repair; a later damage after the checkpoint stops the node, and repair cuts there).
 */
function describeVouched(
  damage: LedgerDamage,
  vouched: VouchedDamage,
  checkpointSeq: number,
): string[] {
  const which = vouchedWhich(vouched);
  const lines = [
    `damaged: ${which} (bytes ${damage.offset} to ${vouched.resumesAt}): ${damage.reason}`,
    `vouched: the signed checkpoint at entry ${checkpointSeq} covers the ` +
    `${checkpointSeq - vouched.to} entries after the damage (they verify and link to it), so its ` +
    `state (balances, stakes, open receipts) is intact` +
    (vouched.laterDamage === undefined ? " and the node opens this ledger from it" : ""),
  ];
  const later = vouched.laterDamage;
  if (later !== undefined) {
    // Repair cuts there (review s75 F2), keeping the checkpoint and all it covers.
    lines.push(
      `damaged too: entry ${later.seq} after the checkpoint (byte ${later.offset}): ` +
        `${later.reason}; the node refuses this ledger until it is cut there (ledger repair)`,
      `not ok: the damage under the checkpoint cannot be restored (the checkpoint commits to ` +
        `its original hash, which its bytes no longer give) and needs no repair; the damage ` +
        `after it does: keep a copy of ${LOG_FILE} and check the disk that holds it`,
    );
    return lines;
  }
  lines.push(
    `not ok, nothing to repair: the damaged bytes cannot be restored (the checkpoint commits to ` +
      `their original hash, which they no longer give); keep a copy of ${LOG_FILE} and check ` +
      `the disk that holds it (ledger repair refuses here: ledger_damage_vouched)`,
  );
  return lines;
}

/** `entry 5`, `entries 5 to 7`: the damaged entries a checkpoint vouches past. */
function vouchedWhich(vouched: VouchedDamage): string {
  return vouched.to - vouched.from === 1
    ? `entry ${vouched.from}`
    : `entries ${vouched.from} to ${vouched.to - 1}`;
}

/**
 * The node's identity, if the data directory has one (never created here).
 *
 * @throws {CorruptIdentityError} when the key file is there but not a 32-byte seed: taken for
 * absent, `repair` said the file was "not found" while it sat in the directory.
 */
async function readIdentity(dataDir: string): Promise<Identity | undefined> {
  const path = join(dataDir, IDENTITY_FILE);
  try {
    const seed = await Deno.readFile(path);
    if (seed.length !== 32) throw new CorruptIdentityError(path, seed.length);
    return Identity.fromSecretKey(seed);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
