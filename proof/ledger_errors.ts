/**
 * The ledger's typed errors. A damaged ledger names the first entry that fails and says how to
 * recover: `ledger verify` shows the damage, `ledger repair` keeps every entry that verifies.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { VeriflowError } from "../protocols/errors.ts";

/** Base class of ledger errors. */
export class LedgerError extends VeriflowError {}

/**
 * What a repair would cut that it refuses to cut without `--force`, when the open already knows:
 * whole entries signed by the owner after the damage, or what a signed checkpoint beyond the log
 * records.
 */
export type RepairRefusal = "signed_entries" | "checkpoint" | "checkpoint_rewritten";

/** The log on disk fails verification at entry `seq`. */
export class LedgerTamperedError extends LedgerError {
  /** Sequence number (position) of the first bad entry. */
  readonly seq: number;
  /** What failed, without the recovery hint. */
  readonly reason: string;
  /**
   * Create the error.
   * @param seq Position of the bad entry.
   * @param reason What failed.
   * @param dir The ledger directory, to name the recovery commands with it.
   * @param refusal Set when `ledger repair` will refuse without `--force`: the hint says so,
   *   and what `--force` costs (review s75 F6).
   */
  constructor(seq: number, reason: string, dir?: string, refusal?: RepairRefusal) {
    super(
      "ledger_tampered",
      `ledger entry ${seq} fails verification: ${reason}. ${recoveryHint(seq, dir, refusal)}`,
    );
    this.seq = seq;
    this.reason = reason;
  }
}

/**
 * An entry of a kind this version does not know: a newer Veriflow wrote the ledger (rolled back
 * after an upgrade). Not damage: the entry verifies, and skipping it would leave balances wrong
 * (and a checkpoint signed over them), while `ledger repair` would cut the log there; the ledger
 * is left as it is for the version that wrote it.
 */
export class LedgerNewerFormatError extends LedgerError {
  /** Sequence number (position) of the first entry of an unknown kind. */
  readonly seq: number;
  /** That entry's kind. */
  readonly kind: string;
  /**
   * Create the error.
   * @param seq Position of the entry.
   * @param kind Its kind, unknown here.
   * @param dir The ledger directory, named in the message.
   */
  constructor(seq: number, kind: string, dir?: string) {
    super(
      "ledger_newer_format",
      `ledger entry ${seq} has kind ${JSON.stringify(kind)}, which this version does not know: ` +
        `a newer version of Veriflow wrote this ledger${dir === undefined ? "" : ` (${dir})`}; ` +
        `run that version (or a later one). This version leaves the ledger as it is, and ` +
        `\`ledger repair\` refuses it too: the entry is not damage`,
    );
    this.seq = seq;
    this.kind = kind;
  }
}

/**
 * What an operator does about a damaged ledger: the commands, with its data directory. What
 * repair keeps is said with its condition: those of the `seq` entries before the bad one that
 * verify from genesis, which an open does not check again (those before the checkpoint) and a log
 * overwritten may not hold. With `refusal`, that repair will refuse without `--force`, and what
 * `--force` costs.
 */
function recoveryHint(seq: number, dir: string | undefined, refusal?: RepairRefusal): string {
  // The node keeps its ledger in <dataDir>/ledger; elsewhere name the directory itself.
  const data = dir === undefined ? "DIR" : basename(dir) === "ledger" ? dirname(dir) : dir;
  const what = refusal === "signed_entries"
    ? "the whole entries signed by this node after the damage carry"
    : refusal === "checkpoint_rewritten"
    ? `the signed checkpoint records that the kept log's first ${seq + 1} entries do not give`
    : "the signed checkpoint records beyond the entries kept";
  // A log that goes on past the checkpoint's place is kept past it (review s75 G1): "the `seq`
  // entries before it" promised fewer than repair keeps.
  const keeps = refusal === "checkpoint_rewritten"
    ? `every entry that verifies from genesis, past the checkpoint's place too (\`ledger ` +
      `verify\` counts them), and sets aside any bytes after them in a file next to the log`
    : `the ${seq} entries before it, or as many of them as verify from genesis (\`ledger ` +
      `verify\` counts them), and sets the rest aside in a file next to the log`;
  return `To recover, stop the node, run \`deno run -A cli.ts ledger verify --data ${data}\` ` +
    `to see the damage, then \`deno run -A cli.ts ledger repair --data ${data}\`: it keeps ` +
    keeps +
    (refusal === undefined
      ? ""
      : `. Acknowledged entries are lost here: repair lists per account what ${what} and ` +
        `refuses (ledger_repair_cuts_signed) until it is run with --force, after which the ` +
        `ledger no longer counts them (the cut bytes stay in ledger.log.rejected-<time>, ` +
        `which nothing reads back)`);
}

/** The ledger on disk belongs to another identity. */
export class LedgerOwnerMismatchError extends LedgerError {
  /** Create the error. */
  constructor() {
    super(
      "ledger_owner_mismatch",
      "ledger was created by another identity (check --data and the identity.key inside it); " +
        "nothing to repair: it is another node's ledger, not damage",
    );
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

/**
 * An account looked up by bytes that are not a 32-byte ed25519 public key: refused rather than
 * answered with zeros, which could not be told from a key with no money (review s73).
 */
export class InvalidAccountKeyError extends LedgerError {
  /**
   * Create the error.
   * @param got What was given instead (a length or a type).
   */
  constructor(got: string) {
    super("invalid_account_key", `an account key is a 32-byte ed25519 public key, got ${got}`);
  }
}
