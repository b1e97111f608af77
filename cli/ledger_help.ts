/**
 * The help of `cli.ts ledger`, apart from the command: this module imports nothing, so `cli.ts`
 * answers `ledger --help` without loading `ledger_command.ts`, whose imports read the
 * environment as they load (cbor-x), and help needs no permission.
 *
 * @module
 */

/** What `cli.ts ledger --help` prints. */
export const LEDGER_USAGE = `Usage: cli.ts ledger verify [--data DIR] [--json]
       cli.ts ledger repair [--data DIR] [--force] [--json]

  verify   check every entry of DIR/ledger from genesis (links, signatures) and the
           checkpoint against the state the log gives; read-only, works while a node runs
  repair   keep every entry that verifies, move the rest to ledger.log.rejected-<time> next
           to the log, rebuild the checkpoint and index; refused while a node runs on DIR.
           It prints what the cut entries carried: totals, this node's account and the 10
           largest changes (balance, stake, locked: before → after; whole keys). When they
           include whole entries signed by this node (acknowledged entries, not a torn append;
           copies of kept entries do not count), or a checkpoint signed by this node records
           entries the kept log lacks, it refuses (ledger_repair_cuts_signed), printing what
           would be lost, unless --force

  --data DIR   the node's data directory (default $VERIFLOW_DATA_DIR, else .veriflow)
  --json       print the report as JSON (repair: ok, kept, setAsidePath, setAsideBytes,
               checkpointSetAsidePath, length, head, before, and cut with every account; a
               refusal: ok false, error {code, message}, and kept and cut where it cuts). Every
               exit-1 error of either command is {"ok": false, "error": {code, message}} on
               stdout; usage errors (exit 2) stay text on stderr. With cut.checkpoint.check
               cut_off_by_damage, cut.checkpoint.accounts is the whole loss and cut.accounts and
               cut.unverifiedAccounts are its parts, not more of it
  --force      (repair) cut even acknowledged entries: the ledger no longer counts them; their
               bytes stay in ledger.log.rejected-<time> (the checkpoint in
               checkpoint.cbor.rejected-<time>), a copy for inspection nothing reads back

Examples:
  deno run -A cli.ts ledger verify --data .veriflow
  deno run -A cli.ts ledger repair --data .veriflow   # with the node stopped

A ledger written by a newer version of Veriflow (an entry of a kind this one does not know) is
refused by both (ledger_newer_format): it is not damage; run the version that wrote it. Damage
under a signed checkpoint that the entries after it still link to is not cut: repair refuses
(ledger_damage_vouched) and the node opens the ledger from the checkpoint; damage after the
checkpoint as well is cut there, keeping the checkpoint, and the entry under it stays damaged:
verify goes on reporting it (matches past damage, exit 1) after the repair. A ledger another
identity created (ledger_owner_mismatch) is not damage either: check --data and its
identity.key; nothing to repair.

Exit codes: 0 the ledger verifies, or repair made its cut (also where damage a checkpoint
vouches past stays) · 1 it does not verify (verify: damage a checkpoint vouches past too, even
after a repair: that entry no longer verifies and nothing restores it), or there is no ledger in
DIR, or a newer version wrote it, or another identity created it, or (repair) a checkpoint
vouches past the damage, or signed entries would be cut without --force, or a node runs on DIR,
or its identity.key is missing or damaged (the line says which) · 2 bad flags or action, or a
refused --data (led by ~).`;
