/**
 * Bad configuration that `cli.ts start` let through (review s78 dash): a `--peer` given twice
 * (F4: dialled twice, one peer counted as two, its `/metrics` series repeated), a configuration
 * file that writes a key twice (F5: the first copy lost without a word), and an `--api-keys-file`
 * that cannot be read (Minor: `--print-config` said exit 0, the start exit 1). Each is now refused
 * before anything starts, exit 2 as README's exit codes promise for a bad configuration, and
 * `--print-config` refuses it with the same words as the start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runStart } from "../../cli/start_command.ts";
import { quietProcess } from "../node/_quiet_process.ts";

/** `runStart(args)` with a stand-in process: its exit code and what it wrote to stderr. */
async function startExit(args: string[]): Promise<{ code: number; err: string; out: string[] }> {
  const fake = quietProcess();
  const code = await runStart(args, fake.io);
  return { code, err: fake.err.join("\n"), out: fake.out };
}

/** Flags of a node on free ports with no heartbeat, in `dataDir`. */
const onFreePorts = (dataDir: string) => [
  ...["--data", dataDir, "--port", "0", "--p2p-port", "0", "--heartbeat", "0"],
  ...["--model-size", "tiny"],
];

Deno.test("a --peer given twice is refused at start and by --print-config, exit 2, naming the address and both places", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const dataDir = join(parent, "data");
    const peer = "127.0.0.1:18792";
    const args = [
      ...onFreePorts(dataDir),
      ...["--peer", peer, "--peer", "127.0.0.1:18793", "--peer", peer],
    ];
    for (const extra of [["--print-config"], []]) {
      const { code, err } = await startExit([...args, ...extra]);
      assert.equal(code, 2, err);
      assert.match(
        err,
        /network\.peers\.2: 127\.0\.0\.1:18792 is listed twice \(also at index 0\)/,
        err,
      );
    }
    await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a network.peers entry written twice in the configuration file is refused the same way", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "node.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({ network: { peers: ["10.0.0.2:7700", "10.0.0.3:7700", "10.0.0.2:7700"] } }),
    );
    const { code, err } = await startExit(["--config", file, "--print-config"]);
    assert.equal(code, 2, err);
    assert.match(err, /network\.peers\.2: 10\.0\.0\.2:7700 is listed twice \(also at index 0\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a configuration file that writes a section twice is refused, exit 2, naming the key and the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "node.json");
    await Deno.writeTextFile(
      file,
      `{
  "http": { "port": 9001, "apiKeys": ["operator-key-0123456789abcdef"] },
  "network": { "listen": { "hostname": "127.0.0.1", "port": 7801 } },
  "http": { "hostname": "127.0.0.1" },
  "network": { "peers": ["127.0.0.1:7802"] }
}`,
    );
    const { code, err, out } = await startExit(["--config", file, "--print-config"]);
    assert.equal(code, 2, err);
    assert.match(err, new RegExp(`^error: http: written twice in ${file} \\(JSON keeps only`));
    assert.deepEqual(out, [], "nothing printed as if it were the configuration");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an --api-keys-file that cannot be read: --print-config and the start both exit 2 with the same line, before the data directory is made", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const dataDir = join(parent, "data");
    const missing = join(parent, "keys.txt");
    const args = [...onFreePorts(dataDir), "--api-keys-file", missing];
    const printed = await startExit([...args, "--print-config"]);
    const started = await startExit(args);
    assert.equal(printed.code, 2, printed.err);
    assert.equal(started.code, 2, started.err);
    assert.match(
      printed.err,
      new RegExp(`^error \\[invalid_api_keys_file\\]: cannot read the API keys file ${missing}`),
    );
    assert.equal(started.err, printed.err, "the same words");
    await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
