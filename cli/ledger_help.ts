/**
 * The help of `cli.ts ledger`, apart from the command: this module imports nothing, so `cli.ts`
 * answers `ledger --help` without loading `ledger_command.ts`, whose imports read the
 * environment as they load (cbor-x), and help needs no permission.
 *
 * @module
 */

/** What `cli.ts ledger --help` prints. */
export const LEDGER_USAGE = `Usage: cli.ts ledger verify [--data DIR] [--json]
       cli.ts ledger repair [--data DIR]

  verify   check every entry of DIR/ledger from genesis (links, signatures) and the
           checkpoint against the state the log gives; read-only, works while a node runs
  repair   keep every entry that verifies, move the rest to ledger.log.rejected-<time> next
           to the log, rebuild the checkpoint and index; refused while a node runs on DIR

  --data DIR   the node's data directory (default $VERIFLOW_DATA_DIR, else .veriflow)
  --json       print the report as JSON

Examples:
  deno run -A cli.ts ledger verify --data .veriflow
  deno run -A cli.ts ledger repair --data .veriflow   # with the node stopped

A ledger written by a newer version of Veriflow (an entry of a kind this one does not know) is
refused by both (ledger_newer_format): it is not damage; run the version that wrote it. Damage
under a signed checkpoint that the entries after it still link to is not cut: repair refuses
(ledger_damage_vouched) and the node opens the ledger from the checkpoint.

Exit codes: 0 the ledger verifies (or was repaired) · 1 it does not, or there is no ledger in
DIR, or a newer version wrote it, or (repair) a checkpoint vouches past the damage or a node
runs on DIR, or its identity.key is missing or damaged (the line says which) · 2 bad flags or
action.`;
