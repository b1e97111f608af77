/**
 * The storage side of review s75: `ls` writes a stored name's control characters out (F4);
 * `ls --data FILE` promises no directory it never makes; `share --url` is checked before a share
 * is recorded (F2); `calibrate` installs nothing into a directory no node uses (F3).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { runShare } from "../../cli/exchange_commands.ts";
import { runCalibrate } from "../../cli/calibrate_command.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

Deno.test("ls writes out the control characters of a stored name (escape sequences, newlines), so a name cannot drive the terminal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-" });
  try {
    await Deno.writeTextFile(join(dir, "f"), "hi");
    // What any client of the node's API may name a file: title, clear screen, cursor up.
    const name = "\x1b]0;OWNED\x07\x1b[2J\nreport.pdf\x1b[A\u202e";
    const put = await capture(() =>
      runPut(["--init", "--data", join(dir, "node"), "--name", name, join(dir, "f")])
    );
    assert.equal(put.code, 0, put.err);
    const ls = await capture(() => runLs(["--data", join(dir, "node")]));
    assert.equal(ls.code, 0, ls.err);
    const lines = ls.out.split("\n");
    assert.equal(lines.length, 2, "one row and the summary: the name's newline is written out");
    // deno-lint-ignore no-control-regex -- the control characters are what is looked for
    assert.doesNotMatch(lines[0], /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202e]/u, "no control raw");
    assert.match(lines[0], /\\x1b\]0;OWNED\\x07\\x1b\[2J\\nreport\.pdf\\x1b\[A\\u202e/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ls --data FILE says to give the node's data directory, not that one is created", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-" });
  try {
    const file = join(dir, "f");
    await Deno.writeTextFile(file, "");
    const ls = await capture(() => runLs(["--data", file]));
    assert.equal(ls.code, 1);
    assert.match(ls.err, /data_dir_not_directory.*give the path of the node's data directory/);
    assert.doesNotMatch(ls.err, /created if missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("share --url that is not an http(s) origin exits 2 before any share is recorded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-share-" });
  const data = join(dir, "node");
  try {
    await Deno.writeTextFile(join(dir, "s.txt"), "secret");
    const put = await capture(() =>
      runPut(["--init", "--private", "--data", data, join(dir, "s.txt")])
    );
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();
    for (
      const url of [
        "notaurl",
        "ftp://example/x",
        "http://node.example/v1",
        "http://h:1/?a=b",
        "http://u:p@h:1",
      ]
    ) {
      const shared = await capture(() => runShare([cid, "--data", data, "--url", url]));
      assert.equal(shared.code, 2, `${url}: ${shared.err}`);
      assert.match(shared.err, /^error: --url .*; no share was made/, url);
      assert.equal(shared.out, "", `${url}: no link printed`);
    }
    assert.equal(
      await exists(join(data, "store", "shares"))
        ? [...Deno.readDirSync(join(data, "store", "shares"))].length
        : 0,
      0,
    );
    // An origin with a trailing slash is taken, and the link is built on the origin.
    const ok = await capture(() =>
      runShare([cid, "--data", data, "--url", "https://node.example:8443/"])
    );
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^https:\/\/node\.example:8443\/share\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("calibrate --data naming no node's data directory exits 1 and creates nothing; --init calibrates into it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  const typo = join(dir, "typo_dir");
  try {
    const measured = () => Promise.reject(new Error("measured although refused"));
    const refused = await capture(() =>
      runCalibrate(["--data", typo, "--model-size", "tiny", "--jobs", "1"], { calibrate: measured })
    );
    assert.equal(refused.code, 1, refused.err);
    assert.match(refused.err, /^error: no node's data directory at .*typo_dir .*--init/);
    assert.equal(await exists(typo), false, "nothing created");
    // A node's directory (its key there) is taken as it was.
    await Deno.mkdir(typo);
    const empty = await capture(() => runCalibrate(["--data", typo, "--model", join(dir, "none")]));
    assert.equal(empty.code, 1);
    assert.match(empty.err, /no node's data directory/);
    const init = await capture(() =>
      runCalibrate(["--data", typo, "--init", "--model", join(dir, "none")])
    );
    assert.equal(init.code, 1);
    assert.match(init.err, /cannot read model\.onnx/, "--init goes on to the model");
    await Deno.writeFile(join(typo, "identity.key"), new Uint8Array(32));
    const node = await capture(() => runCalibrate(["--data", typo, "--model", join(dir, "none")]));
    assert.match(node.err, /cannot read model\.onnx/, "a node's directory goes on to the model");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stop signal while calibrate installs the built-in model lets the install end whole, leaves no .staging- directory, and exits 130 before measuring", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  try {
    // The signal comes as soon as the command listens: during the install.
    const onStopSignal = (listener: () => void) => {
      listener();
      return () => {};
    };
    const measured = () => Promise.reject(new Error("measured although stopped"));
    const run = await capture(() =>
      runCalibrate(["--data", dir, "--init", "--model-size", "tiny"], {
        calibrate: measured,
        onStopSignal,
      })
    );
    assert.equal(run.code, 130, run.err);
    assert.match(run.err, /^interrupted: stopped once the built-in model was installed/);
    const left = [...Deno.readDirSync(join(dir, "models"))].map((e) => e.name);
    assert.ok(!left.some((name) => name.startsWith(".staging-")), left.join(", "));
    assert.ok(left.some((name) => name.endsWith(".cid")), "the model is kept for the next run");
    assert.equal(await exists(join(dir, "calibration")), false, "nothing saved");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
