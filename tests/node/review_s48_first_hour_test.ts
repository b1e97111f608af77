/**
 * Review (s48) of the operator's first hour with the command line: `cli.ts bench --help` sends
 * its reader to `deno task bench --help` for the benchmarks' names, so that must answer with them
 * (exit 0), not refuse `--help` as an unknown benchmark (exit 2). And `cli.ts ledger bogus`
 * answered "unknown: bogus" above the usage: an error line must say what was wrong (README,
 * "Exit codes": "the key and the reason are named").
 *
 * @module
 */

import { assert, assertEquals } from "../server/_assert.ts";
import { runLedger } from "../../node/ledger_command.ts";

const BENCH_MAIN = new URL("../../bench/main.ts", import.meta.url).pathname;

Deno.test("bench/main.ts --help (what `deno task bench --help` runs) lists the benchmarks and exits 0, running none", async () => {
  for (const flag of ["--help", "-h"]) {
    // No permissions: a help that tried to spawn a benchmark would fail on --allow-run.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", BENCH_MAIN, flag],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    for (const name of ["actors", "inference", "ledger", "training"]) {
      assert(out.includes(name), out);
    }
    assert(!out.includes("=== bench:"), out);
  }
});

Deno.test("ledger with an unknown action, or words after its action, says which and exits 2", async () => {
  for (
    const [args, said] of [
      [["bogus"], 'unknown ledger action "bogus" (it takes verify or repair)'],
      [["verify", "extra"], 'unexpected "extra" after ledger verify (flags only)'],
    ] as const
  ) {
    const err: string[] = [];
    const code = await runLedger([...args], { out: () => {}, err: (l) => err.push(l) });
    assertEquals(code, 2);
    const text = err.join("\n");
    assert(text.startsWith(`error: ${said}`), text);
  }
});
