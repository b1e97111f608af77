/**
 * The command line from an operator's side, with wrong input: a path that is not there, a
 * mistyped `--data`, a number written as `""` or `0x10`, a flag value a command does not take,
 * a public file given to `share`; and help that promises what the command does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runGc, runLs, runPut } from "../../storage/storage_commands.ts";
import { runImport, runShare } from "../../storage/exchange_commands.ts";
import { runLedger } from "../../node/ledger_command.ts";
import { runCalibrate } from "../../node/calibrate_command.ts";
import { runModel } from "../../node/tool_commands.ts";
import { runBuildModel } from "../../inference/build_model_command.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

Deno.test("put and import of a path that is not there exit 1 naming it, and create no store in --data (ls still says check --data)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "typo");
    const missing = join(dir, "no-such-file");
    const put = await capture(() => runPut(["--data", data, missing]));
    assert.equal(put.code, 1);
    assert.match(put.err, new RegExp(`^error: .*${missing}`));
    const imported = await capture(() => runImport(["--data", data, missing]));
    assert.equal(imported.code, 1);
    assert.match(imported.err, new RegExp(`^error: .*${missing}`));
    assert.equal(await exists(data), false, "a failed put or import created the data directory");
    // Had a store been left there, ls would list it as empty, as if the files were gone.
    const ls = await capture(() => runLs(["--data", data]));
    assert.equal(ls.code, 1);
    assert.match(ls.err, /store_missing.*check --data/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ledger repair --data DIR that is not there exits 1 saying check --data, and creates neither DIR nor a lock in it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "typo");
    const out: string[] = [];
    const err: string[] = [];
    const code = await runLedger(["repair", "--data", data], {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
    });
    assert.equal(code, 1);
    assert.match(err.join("\n"), /^error \[ledger_missing\]: .*check --data/);
    assert.equal(await exists(data), false, "ledger repair created the data directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('number flags of gc, put, calibrate and build-model are read as start reads them: "", 0x10 and 1e3 exit 2 naming the flag', async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const file = join(dir, "f.txt");
    await Deno.writeTextFile(file, "hello\n");
    assert.equal((await capture(() => runPut(["--data", data, file]))).code, 0);
    // An unset shell variable (`gc --grace-ms "$GRACE"`) must not become a grace period of 0.
    for (const text of ["", "1e3", "0x10"]) {
      const gc = await capture(() => runGc(["--data", data, "--grace-ms", text]));
      assert.equal(gc.code, 2, `gc --grace-ms "${text}": ${gc.out}`);
      assert.match(gc.err, /^error: --grace-ms expects a whole number in decimal digits/);
      const put = await capture(() => runPut(["--data", data, "--quota", text, file]));
      assert.equal(put.code, 2, `put --quota "${text}": ${put.out}`);
      assert.match(put.err, /^error: --quota expects a whole number in decimal digits/);
    }
    // Never measured: a stand-in that says so if the flags were taken.
    const calibrate = () => Promise.reject(new Error("the bad flag was taken"));
    for (const args of [["--seed", ""], ["--jobs", "1e1"], ["--tokens", "0x10"]]) {
      const r = await capture(() =>
        runCalibrate([...args, "--model", join(dir, "model"), "--data", data], { calibrate })
          .catch((error) => (console.error(String(error)), -1))
      );
      assert.equal(r.code, 2, `calibrate ${args.join(" ")}: ${r.err}`);
      assert.match(r.err, new RegExp(`^error: ${args[0]} expects`));
    }
    for (const text of ["", "0x10", "1e3"]) {
      const out = join(dir, "model");
      const r = await capture(() => runBuildModel(["--seed", text, "--out", out]));
      assert.equal(r.code, 2, `build-model --seed "${text}": ${r.out}`);
      assert.match(r.err, /^error: --seed expects/);
      assert.equal(await exists(out), false);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build-model names the flag at fault and what it takes on its first line; its help offers only sizes it builds", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string[], RegExp][] = [
      [["--size", "huge", "--out", dir], /^error: --size expects tiny or small, got "huge"$/],
      [["--size", "constructor", "--out", dir], /^error: --size expects tiny or small/],
      [["--kind", "cnn", "--out", dir], /^error: --kind expects gpt or mlp, got "cnn"$/],
      [["--size", "tiny"], /^error: --out DIR is missing/],
    ];
    for (const [args, first] of cases) {
      const r = await capture(() => runBuildModel(args));
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.err.split("\n")[0], first, args.join(" "));
    }
    const help = await capture(() => runBuildModel(["--help"]));
    const sizes = /^\s*--size\s+(.*)$/m.exec(help.out)![1];
    const brown = await capture(() => runBuildModel(["--size", "brown", "--out", dir]));
    assert.equal(brown.code, 2, "brown is installed, not built");
    assert.doesNotMatch(sizes, /brown/, "help offers a size that build-model refuses");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model build --help promises no progress bar that the build does not draw", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const help = await capture(() => runModel(["--help"]));
    assert.equal(help.code, 0);
    const built = await capture(() => runModel(["build", "--size", "tiny", "--out", dir]));
    assert.equal(built.code, 0, built.err);
    assert.ok(
      built.err !== "" || !/progress bar/.test(help.out),
      `help says "progress bar", the build drew none:\n${help.out}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("share of a public file exits 1 saying it is public (its CID is its link), not that a manifest is not CBOR", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    await loadOrCreateIdentity(data); // the owner key share looks for first
    await Deno.writeTextFile(join(dir, "small.txt"), "hello\n");
    await Deno.writeFile(join(dir, "big.bin"), new Uint8Array(600_000).fill(7));
    for (const name of ["small.txt", "big.bin"]) { // a raw leaf, and a UnixFS DAG
      const put = await capture(() => runPut(["--data", data, join(dir, name)]));
      assert.equal(put.code, 0, put.err);
      const cid = put.out.trim();
      const share = await capture(() => runShare([cid, "--data", data]));
      assert.equal(share.code, 1, share.out);
      assert.match(share.err, new RegExp(`^error \\[not_private\\]: ${cid} is public`), name);
    }
    assert.equal(await exists(join(data, "store", "shares")), false, "a share record was made");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
