/**
 * The command line with wrong input from an operator's side: a path that is not there, a mistyped
 * `--data`, a number written oddly, a damaged key file, a flag value a command does not take. Each
 * is said as the operator's problem, naming the flag or file and what it takes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runGc } from "../../cli/gc_command.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { runImport, runShare } from "../../cli/exchange_commands.ts";
import { runLedger } from "../../cli/ledger_command.ts";
import { runCalibrate } from "../../cli/calibrate_command.ts";
import { runModel } from "../../cli/tool_commands.ts";
import { runBuildModel } from "../../cli/build_model_command.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";
import { configFromArgs, runStart, type StartCommandIo } from "../../cli/start_command.ts";
import { fileURLToPath } from "node:url";
import { lineLogger } from "../../node/log_format.ts";
import { ConfigError } from "../../node/config.ts";

// The command line from an operator's side, with wrong input: a path that is not there, a mistyped
// `--data`, a number written as `""` or `0x10`, a flag value a command does not take, a public file
// given to `share`; and help that promises what the command does.

Deno.test("put and import of a path that is not there exit 1 naming it, and create no store in --data (ls still says check --data)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "typo");
    const missing = join(dir, "no-such-file");
    const put = await capture(() => runPut(["--init", "--data", data, missing]));
    assert.equal(put.code, 1);
    assert.match(put.err, new RegExp(`^error: .*${missing}`));
    const imported = await capture(() => runImport(["--init", "--data", data, missing]));
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
    assert.equal((await capture(() => runPut(["--init", "--data", data, file]))).code, 0);
    // An unset shell variable (`gc --grace-ms "$GRACE"`) must not become a grace period of 0.
    for (const text of ["", "1e3", "0x10"]) {
      const gc = await capture(() => runGc(["--data", data, "--grace-ms", text]));
      assert.equal(gc.code, 2, `gc --grace-ms "${text}": ${gc.out}`);
      assert.match(gc.err, /^error: --grace-ms expects a whole number in decimal digits/);
      const put = await capture(() => runPut(["--init", "--data", data, "--quota", text, file]));
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
      const put = await capture(() => runPut(["--init", "--data", data, join(dir, name)]));
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

// The command line from an operator's side, with wrong input the earlier reviews left: a key file
// too short for `share`, a mistyped `--data` for `share revoke`, and `start`'s hint after an
// invalid configuration.

Deno.test("share --key-file shorter than 32 bytes exits 2 naming the flag, the file, its size and the 32 bytes it needs, as put does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const file = join(dir, "f.txt");
    const key = join(dir, "k32");
    const short = join(dir, "k31");
    await Deno.writeTextFile(file, "private text");
    const secret = crypto.getRandomValues(new Uint8Array(32));
    await Deno.writeFile(key, secret);
    await Deno.writeFile(short, secret.subarray(0, 31));
    const put = await capture(() =>
      runPut(["--init", "--private", "--key-file", key, "--data", data, file])
    );
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim().split("\n").pop()!;
    const shared = await capture(() => runShare([cid, "--key-file", short, "--data", data]));
    assert.equal(shared.code, 2, shared.err);
    assert.match(shared.err, new RegExp(`--key-file ${short} holds 31 bytes`));
    assert.match(shared.err, /at least 32 bytes/);
    assert.equal(shared.out, "", "no link is printed");
    // The same file is refused the same way by put, which never took it.
    const putShort = await capture(() =>
      runPut(["--init", "--private", "--key-file", short, "--data", data, file])
    );
    assert.equal(putShort.code, 2);
    assert.match(putShort.err, new RegExp(`--key-file ${short} holds 31 bytes`));
    // A key of 32 bytes shares.
    const ok = await capture(() => runShare([cid, "--key-file", key, "--data", data]));
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /\/share\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("share revoke --data DIR that is not there exits 1 saying store_missing and check --data, not 'no share', and creates nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "typo");
    for (const id of ["AAAAAAAAAAAAAAAAAAAAAA", "not-a-share-id"]) {
      const revoked = await capture(() => runShare(["revoke", id, "--data", data]));
      assert.equal(revoked.code, 1);
      assert.match(revoked.err, /^error \[store_missing\]: .*check --data/);
      assert.doesNotMatch(revoked.err, /no share/);
    }
    assert.equal(await exists(data), false, "share revoke created the data directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start with an invalid configuration offers --print-config only as the check after the fix, and not to whoever just ran it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "config.json");
    await Deno.writeTextFile(file, JSON.stringify({ roles: { storag: false } }));
    const startErr = async (args: string[]) => {
      const err: string[] = [];
      const io: StartCommandIo = {
        onStopSignal: () => () => {},
        out: () => {},
        err: (line) => void err.push(line),
        now: () => 0,
        env: () => ({}),
      };
      assert.equal(await runStart(args, io), 2);
      return err.join("\n");
    };
    // --print-config resolves the same configuration: it fails the same way, so the hint to
    // run it again would send the operator round in a circle.
    const printing = await startErr(["--config", file, "--print-config"]);
    assert.match(printing, /roles\.storag: unknown key/);
    assert.match(printing, /fix the key named above/);
    assert.doesNotMatch(printing, /--print-config/);
    // Without it, it is offered for after the fix, never as the way to find the bad value.
    const starting = await startErr(["--config", file]);
    assert.match(starting, /fix the key named above; then cli\.ts start --print-config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// What a node operator meets starting, configuring and running a node, pinned down — a damaged key
// file named as damaged, a mistyped `calibrate` flag answered with the one meant, and JSON log
// lines that show a peer's words without reordering the terminal.

/** Run `ledger ARGS`, capturing what it prints. */
async function ledger(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runLedger(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("ledger repair beside a damaged identity.key says the key is damaged, not that it is missing", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dataDir, "ledger"));
    // A key file cut short (a full disk, a bad copy): the operator must not go looking for a
    // file that is right there, nor make a new identity over the old account.
    await Deno.writeFile(join(dataDir, "identity.key"), new Uint8Array(5));
    const r = await ledger("repair", "--data", dataDir);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.err, /not found/);
    assert.match(r.err, /corrupt_identity.*identity\.key holds 5 bytes, expected a 32-byte/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger verify on a data directory whose ledger is a file names that file, not --data", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    // A file where the ledger's directory belongs (a copy gone wrong): the data directory is
    // a directory, and the operator told it is not would look in the wrong place.
    await Deno.writeTextFile(join(dataDir, "ledger"), "not a ledger\n");
    const r = await ledger("verify", "--data", dataDir);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.err, new RegExp(`--data ${dataDir} is not a directory`));
    assert.match(r.err, new RegExp(`^error: ${join(dataDir, "ledger")} is not a directory`));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger --help states its exit codes, as start, keygen and model do: a cron job's check reads them", async () => {
  const r = await ledger("--help");
  assert.equal(r.code, 0);
  assert.match(
    r.out,
    /\nExit codes: 0 [^\n]*verifies[\s\S]*· 1 [\s\S]*does not[\s\S]*· 2 bad flags/,
  );
});

/** Run calibrate with `args`, console.error captured; its exit code and what it wrote. */
async function calibrate(args: string[]): Promise<{ code: number; err: string }> {
  const lines: string[] = [];
  const { error } = console;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    const code = await runCalibrate(args, {
      calibrate: () => Promise.reject(new Error("must not calibrate")),
    });
    return { code, err: lines.join("\n") };
  } finally {
    console.error = error;
  }
}

Deno.test("calibrate answers a mistyped flag with the nearest it takes, as start, ledger and keygen do", async () => {
  const r = await calibrate(["--job", "3"]);
  assert.equal(r.code, 2);
  assert.match(r.err.split("\n")[0], /^error: unknown flag --job \(did you mean --jobs\?\)$/);
  const far = await calibrate(["--frobnicate"]);
  assert.equal(far.code, 2);
  assert.match(far.err.split("\n")[0], /^error: unknown flag --frobnicate$/);
});

Deno.test("json log lines carry a peer's bidirectional overrides, line separators and C1 controls escaped, as text lines do", () => {
  const lines: string[] = [];
  const log = lineLogger("json", (l) => lines.push(l), undefined, () => new Date(0));
  // A peer's refusal reason, quoted in a log line: U+202E reverses what follows on the
  // operator's terminal (`tail -f | jq` too), U+2028 ends a line for some log readers, and
  // U+009B is a CSI to a terminal that reads C1 controls.
  const words = "bad\u202Edilav\u2028fake\u009b2J\u2066x\u2069\u007f";
  log(`network: peer refused: ${words}`);
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0], /[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
  // Still JSON, and the message reads back exactly.
  assert.equal(JSON.parse(lines[0]).msg, `network: peer refused: ${words}`);
});

Deno.test("one port for the HTTP API and the peer listener is refused at configuration, naming both keys, not blamed on another node at start", async () => {
  // The HTTP API binds first: the peer listener then failed on the node's own port with
  // "another node on this port?", after the data directory and the model were taken.
  await assert.rejects(
    () => configFromArgs(["--port", "18940", "--p2p-port", "18940"]),
    (e) =>
      e instanceof ConfigError &&
      /network\.listen\.port: .*http\.port.*\[from --p2p-port\]/.test(e.message),
  );
  // An address on every interface holds the port on each of them.
  await assert.rejects(
    () =>
      configFromArgs(["--p2p-port", "8080", "--p2p-host", "0.0.0.0"], {
        VERIFLOW_HTTP_HOSTNAME: "127.0.0.1",
      }),
    (e) => e instanceof ConfigError && /network\.listen\.port: .*http\.port/.test(e.message),
  );
  // One port on two addresses of their own, port 0 twice (two free ports), or no peer
  // listener at all: no clash.
  const fine = [
    ["--port", "9000", "--p2p-port", "9000", "--host", "127.0.0.1", "--p2p-host", "127.0.0.2"],
    ["--port", "0", "--p2p-port", "0"],
    ["--port", "7700", "--no-listen"],
  ];
  for (const args of fine) await configFromArgs(args);
});

Deno.test("cli.ts bench runs its program from a checkout whose path has a space in it", async () => {
  // A checkout in "~/My Projects/veriflow": the program's path was the URL's, percent-encoded,
  // and the child Deno was sent to "My%20Projects", where nothing is.
  const repo = fileURLToPath(new URL("../..", import.meta.url));
  const root = await Deno.makeTempDir({ prefix: "veriflow s54 " });
  try {
    // The checkout as seen from the spaced path: its folders linked, a bench program of our own.
    for await (const entry of Deno.readDir(repo)) {
      if (entry.name === "bench" || entry.name === ".git") continue;
      await Deno.symlink(join(repo, entry.name), join(root, entry.name));
    }
    await Deno.mkdir(join(root, "bench"));
    await Deno.writeTextFile(join(root, "bench", "main.ts"), "Deno.exit(7);\n");
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        'const { runBench } = await import("./cli/tool_commands.ts"); Deno.exit(await runBench([]));',
      ],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(run.stderr);
    assert.doesNotMatch(err, /Module not found/);
    assert.equal(run.code, 7, err);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a data directory or model path led by ~ (which only a shell expands) is refused naming the key, not made as a folder named ~", async () => {
  // `--data=~/vf` (no shell expands a tilde after `=`), a systemd Environment= line, a JSON
  // file: the node made `./~/vf` — under systemd `/~/vf` — and kept its key and ledger there.
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--data=~/vf"], {}, /dataDir: .*~.*\[from --data\]/],
    [[], { VERIFLOW_DATA_DIR: "~/vf" }, /dataDir: .*~.*\[from VERIFLOW_DATA_DIR\]/],
    [["--model=~/models/gpt"], {}, /model\.dir: .*~.*\[from --model\]/],
  ];
  for (const [args, env, message] of cases) {
    await assert.rejects(
      () => configFromArgs(args, env),
      (e) => e instanceof ConfigError && message.test(e.message) && /full path/.test(e.message),
      JSON.stringify([args, env]),
    );
  }
  // A path with a tilde inside it is a path like any other.
  assert.equal((await configFromArgs(["--data", "/srv/vf~old"])).dataDir, "/srv/vf~old");
});

Deno.test("a heartbeat under a second (--heartbeat 10, meant as seconds) is refused naming the key and its unit; 0 and whole seconds pass", async () => {
  // Taken as given it logged a line, and asked three actors, every 10 ms: 100 lines a second
  // into the operator's journal.
  for (
    const [args, env] of [[["--heartbeat", "10"], {}], [[], {
      VERIFLOW_HEARTBEAT_MS: "999",
    }]] as const
  ) {
    await assert.rejects(
      () => configFromArgs([...args], env),
      (e) =>
        e instanceof ConfigError && /heartbeatMs: .*milliseconds/.test(e.message) &&
        /0 for none/.test(e.message),
      JSON.stringify([args, env]),
    );
  }
  assert.equal((await configFromArgs(["--heartbeat", "0"])).heartbeatMs, 0);
  assert.equal((await configFromArgs(["--heartbeat", "1000"])).heartbeatMs, 1000);
});
