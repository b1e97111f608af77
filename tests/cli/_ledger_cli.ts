/**
 * Running `cli.ts ledger` in a test: its exit code and what it printed, and a data directory
 * holding a node's key and ledger. Shared by the tests of `ledger verify` and `ledger repair`.
 *
 * @module
 */
import { join } from "node:path";
import { runLedger } from "../../cli/ledger_command.ts";
import type { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";

/** What one `ledger` command answered. */
export interface LedgerRun {
  /** Its exit code. */
  code: number;
  /** Its result lines, joined. */
  out: string;
  /** Its error lines, joined. */
  err: string;
}

/** Run `ledger ARGS`, capturing what it prints. */
export async function ledger(...args: string[]): Promise<LedgerRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runLedger(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/**
 * A data directory with `owner`'s key and a ledger where `fill` appended what it likes; the
 * ledger writes checkpoints only when `fill` asks (and on close).
 */
export async function nodeDir(
  owner: Identity,
  fill: (ledger: Ledger) => Promise<void>,
): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
  const opened = await Ledger.open(join(dataDir, "ledger"), owner, { checkpointEvery: 0 });
  await fill(opened);
  await opened.close();
  return dataDir;
}
