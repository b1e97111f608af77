/**
 * The storage commands answer a mistyped flag with the flag it is near, as `start`, `infer` and
 * `status` do, not with parseArgs' advice about positionals; and `ls` counts "1 file" (review
 * stop 60, `ux2`).
 */
import assert from "node:assert/strict";
import { runGet, runLs, runPut } from "../../storage/storage_commands.ts";
import { runExport } from "../../storage/exchange_commands.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";

Deno.test("put, get, ls and export name a mistyped flag with the one it is near", async () => {
  const cases: [string, () => Promise<number>, string][] = [
    ["put", () => runPut(["--privat", "x"]), "unknown flag --privat (did you mean --private?)"],
    ["get", () => runGet(["CID", "--rang", "0-1"]), "unknown flag --rang (did you mean --range?)"],
    ["ls", () => runLs(["--jsn"]), "unknown flag --jsn (did you mean --json?)"],
    ["export", () => runExport(["CID", "--dat", "x"]), "unknown flag --dat (did you mean --data?)"],
  ];
  for (const [name, run, expected] of cases) {
    const { code, err } = await capture(run);
    assert.equal(code, 2, name);
    // Stop 65: after `error: `, as every command's usage errors are.
    assert.ok(err.startsWith(`error: ${expected}\n`), `${name}: ${err}`);
    assert.doesNotMatch(err, /positional argument/, name);
  }
});

Deno.test("ls counts one stored file as 1 file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.txt`, "hello\n");
    const put = await capture(() => runPut(["--data", `${dir}/node`, `${dir}/in.txt`]));
    assert.equal(put.code, 0, put.err);
    const ls = await capture(() => runLs(["--data", `${dir}/node`]));
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /^1 file, \d+ objects?,/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
