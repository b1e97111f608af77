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
import {
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
import { EXIT_USAGE, usageErrorText } from "../node/usage_error_text.ts";

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
    if (!(error instanceof VeriflowError) || error.code !== "invalid_config") throw error;
    io.err(`error [${error.code}]: ${error.message}`);
    return EXIT_USAGE;
  }
  try {
    return action === "verify"
      ? await verify(dataDir, values.json === true, io)
      : await repair(dataDir, values.force === true, io);
  } catch (error) {
    if (error instanceof LedgerRepairCutsSignedError) {
      io.err(`error [${error.code}]: ${error.message}`);
      for (const line of describeCut(error.cut)) io.err(line);
      io.err(
        `to cut them anyway (their bytes are kept in ledger.log.rejected-<time> beside the ` +
          `log), stop the node and run: deno run -A cli.ts ledger repair --force --data ${dataDir}`,
      );
      return 1;
    }
    if (error instanceof VeriflowError) {
      io.err(`error [${error.code}]: ${error.message}`);
      return 1;
    }
    if (error instanceof Deno.errors.NotADirectory) {
      // The file in the way may be the data directory's `ledger`, not the data directory.
      const ledgerDir = join(dataDir, "ledger");
      const dataIsDirectory = await Deno.stat(dataDir).then((s) => s.isDirectory, () => false);
      io.err(
        dataIsDirectory
          ? `error: ${ledgerDir} is not a directory: a file is where the node keeps its ledger; ` +
            `move it aside, or check --data (${error.message})`
          : `error: --data ${dataDir} is not a directory: give the node's data directory ` +
            `(${error.message})`,
      );
      return 1;
    }
    // Deno's file-system errors name the path ("Permission denied (os error 13): open '…'").
    if (Object.values(Deno.errors).some((type) => error instanceof type)) {
      io.err(`error: --data ${dataDir}: ${(error as Error).message}`);
      return 1;
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

async function repair(dataDir: string, force: boolean, io: CommandOutput): Promise<number> {
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
      io.err(
        `error: ${join(dataDir, IDENTITY_FILE)} not found: the ledger is signed with the node's ` +
          `key, so repair needs it (is --data the node's data directory?)`,
      );
      return 1;
    }
    const report = await repairLedger(join(dataDir, "ledger"), identity, {
      refuseSignedCut: !force,
    });
    // Without the advice to run repair: this is that run.
    for (const line of describe(report.before, dataDir, false)) io.out(`before: ${line}`);
    if (report.setAsidePath !== undefined) {
      io.out(
        `set aside ${report.setAsideBytes} bytes after entry ${report.kept - 1} in ` +
          report.setAsidePath,
      );
      for (const line of describeCut(report.cut)) io.out(line);
    }
    if (report.checkpointRemoved) io.out("removed the checkpoint that did not match the log");
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
 * What cut entries carried, in lines: the whole entries signed by this node by kind, then per
 * account its balances with them (before the repair) and without (after), so the operator knows
 * what was lost; then the entries that do not verify (the damage), as written, apart.
 */
export function describeCut(cut: LedgerCutSummary): string[] {
  const kinds = (counts: Record<string, number>) =>
    Object.entries(counts).map(([kind, n]) => `${kind} ×${n}`).join(", ");
  const unverified = Object.values(cut.unverifiedKinds).reduce((a, b) => a + b, 0);
  const lines = [
    cut.signedEntries === 0
      ? "cut: no whole entry signed by this node"
      : `cut: ${cut.signedEntries} whole entries signed by this node (${kinds(cut.kinds)}); ` +
        `per account, with them → without them` +
        (cut.notApplied > 0 ? `, ${cut.notApplied} of them changing nothing shown here` : ""),
  ];
  for (const account of cut.accounts) lines.push(`cut: ${accountChange(account)}`);
  if (cut.signedEntries > 0 && cut.accounts.length === 0) {
    lines.push("cut: no account's balance, stake or locked changes with them");
  }
  if (unverified > 0) {
    lines.push(
      `cut too: ${unverified} entries that do not verify (${kinds(cut.unverifiedKinds)}); ` +
        `as written (not to be trusted) they change:` +
        (cut.unverifiedAccounts.length === 0 ? " no account" : ""),
    );
    for (const account of cut.unverifiedAccounts) lines.push(`cut too: ${accountChange(account)}`);
  }
  if (cut.otherBytes > 0) lines.push(`cut: ${cut.otherBytes} bytes that are no entry`);
  return lines;
}

/** `account 1a2b…: stake 2100 → 300 (-1800)`: the fields that change, before → after. */
function accountChange({ key, before, after }: LedgerCutAccount): string {
  const changes = (["balance", "stake", "locked"] as const)
    .filter((field) => before[field] !== after[field])
    .map((field) => {
      const delta = after[field] - before[field];
      return `${field} ${before[field]} → ${after[field]} (${delta > 0 ? "+" : ""}${delta})`;
    });
  return `account ${key.slice(0, 16)}…: ${changes.join(", ")}`;
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
      ? "checkpoint: none (the next open replays the log from genesis and writes one)"
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
    lines.push(
      `to keep the ${report.entries} entries that verify and set the rest aside, stop the node ` +
        `and run: deno run -A cli.ts ledger repair --data ${dataDir}`,
    );
  } else if (report.ok) lines.push("ok: the ledger verifies");
  return lines;
}

/**
 * Damage a signed checkpoint at entry `checkpointSeq` vouches past, in lines: what is damaged,
 * that the checkpoint's state is intact and the node opens from it, and what the operator can do
 * (nothing to repair; a later damage after the checkpoint is what stops the node).
 */
function describeVouched(
  damage: LedgerDamage,
  vouched: VouchedDamage,
  checkpointSeq: number,
): string[] {
  const which = vouched.to - vouched.from === 1
    ? `entry ${vouched.from}`
    : `entries ${vouched.from} to ${vouched.to - 1}`;
  const lines = [
    `damaged: ${which} (bytes ${damage.offset} to ${vouched.resumesAt}): ${damage.reason}`,
    `vouched: the signed checkpoint at entry ${checkpointSeq} covers the ` +
    `${checkpointSeq - vouched.to} entries after the damage (they verify and link to it), so its ` +
    `state (balances, stakes, open receipts) is intact` +
    (vouched.laterDamage === undefined ? " and the node opens this ledger from it" : ""),
  ];
  const later = vouched.laterDamage;
  if (later !== undefined) {
    lines.push(
      `damaged too: entry ${later.seq} after the checkpoint (byte ${later.offset}): ` +
        `${later.reason}; the node refuses this ledger until a person sets those bytes aside ` +
        `(ledger repair does not here: it would cut what the checkpoint vouches for)`,
    );
  }
  lines.push(
    `not ok, nothing to repair: the damaged bytes cannot be restored (the checkpoint commits to ` +
      `their original hash, which they no longer give); keep a copy of ${LOG_FILE} and check ` +
      `the disk that holds it (ledger repair refuses here: ledger_damage_vouched)`,
  );
  return lines;
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
