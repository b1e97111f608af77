/**
 * Review s50 (README: "Exit codes", "Storage from the command line"): `cli.ts get CID --range A-B`
 * reads bytes A to B-1, and a range whose end comes before its start is a bad flag, so the
 * command exits 2 naming `--range`, as every command answers a bad flag. It exited 1 with
 * `range_not_satisfiable: range [5, 2) is outside a N-byte file`, which is not what was wrong.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runGet, runPut } from "../../storage/storage_commands.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";

Deno.test("cli get --range with END before START exits 2 naming --range, not 1 as out of the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/in.txt`, new TextEncoder().encode("0123456789"));
    const put = await capture(() => runPut(["--data", `${dir}/node`, `${dir}/in.txt`]));
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();

    const inverted = await capture(() =>
      runGet([cid, "--range", "5-2", "-o", `${dir}/out.txt`, "--data", `${dir}/node`])
    );
    assert.equal(inverted.code, 2, inverted.err);
    assert.match(inverted.err, /--range/);
    assert.doesNotMatch(inverted.err, /outside/);

    // A range inside the file still reads bytes A to B-1, and one past its end is still refused
    // as the work failing (exit 1): the file decides that, not the flag.
    const inside = await capture(() =>
      runGet([cid, "--range", "2-5", "-o", `${dir}/part.txt`, "--data", `${dir}/node`])
    );
    assert.equal(inside.code, 0, inside.err);
    assert.equal(await Deno.readTextFile(`${dir}/part.txt`), "234");
    const past = await capture(() =>
      runGet([cid, "--range", "2-50", "-o", `${dir}/past.txt`, "--data", `${dir}/node`])
    );
    assert.equal(past.code, 1, past.err);
    assert.match(past.err, /range_not_satisfiable/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
