/**
 * Review s54 (operator): what a node operator meets starting, configuring and running a node,
 * pinned down — a damaged key file named as damaged, a mistyped `calibrate` flag answered with
 * the one meant, and JSON log lines that show a peer's words without reordering the terminal.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runLedger } from "../../node/ledger_command.ts";
import { runCalibrate } from "../../node/calibrate_command.ts";
import { lineLogger } from "../../node/log_format.ts";
import { configFromArgs } from "../../node/start_command.ts";
import { ConfigError } from "../../node/config.ts";

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
        'const { runBench } = await import("./node/tool_commands.ts"); Deno.exit(await runBench([]));',
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
