/**
 * Every command's help starts the same way, `Usage: cli.ts <command> …`, as README runs them
 * (`deno run -A cli.ts put README.md`) — not `usage: veriflow …` (there is no `veriflow`
 * binary) nor a bare `usage: put …` (review stop 60, `ux2`).
 */
import assert from "node:assert/strict";
import { GC_USAGE, GET_USAGE, LS_USAGE, PUT_USAGE } from "../../storage/storage_help.ts";
import { EXPORT_USAGE, IMPORT_USAGE, SHARE_USAGE } from "../../storage/exchange_help.ts";
import { CALIBRATE_USAGE } from "../../node/calibrate_help.ts";
import { START_HELP } from "../../node/start_help.ts";
import { LEDGER_USAGE } from "../../node/ledger_help.ts";

Deno.test("each command's help starts with `Usage: cli.ts <command>`", () => {
  const helps: [string, string][] = [
    ["start", START_HELP],
    ["ledger", LEDGER_USAGE],
    ["calibrate", CALIBRATE_USAGE],
    ["put", PUT_USAGE],
    ["get", GET_USAGE],
    ["ls", LS_USAGE],
    ["gc", GC_USAGE],
    ["export", EXPORT_USAGE],
    ["import", IMPORT_USAGE],
    ["share", SHARE_USAGE],
  ];
  for (const [command, text] of helps) {
    assert.ok(text.startsWith(`Usage: cli.ts ${command} `), `${command}: ${text.split("\n")[0]}`);
  }
});

Deno.test("share's other forms are written as cli.ts runs them too", () => {
  const lines = SHARE_USAGE.split("\n");
  assert.ok(lines[1].trimStart().startsWith("cli.ts share revoke ID"), lines[1]);
  assert.ok(lines[2].trimStart().startsWith("cli.ts share open LINK"), lines[2]);
});
