/**
 * The node's configuration (`node/config.ts`): one configuration from flags, environment, file and
 * defaults; unknown keys and bad values refused naming the key path and why; `--print-config`
 * saying where each value came from and what an unset one means.
 */
import assert from "node:assert/strict";
import {
  ConfigError,
  configLeaves,
  envLayer,
  loadNodeConfig,
  parseNodeConfig,
  readConfigFile,
  resolveNodeConfig,
} from "../../node/config.ts";
import {
  configFromArgs,
  resolveStartConfig,
  runStart,
  type StartCommandIo,
} from "../../cli/start_command.ts";
import { EDGE_DEFAULTS } from "../../server/edge_config.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { MIN_PROOF_RETENTION_MS } from "../../proof/challenge_timing.ts";

Deno.test("an empty configuration is a complete node with loopback defaults", () => {
  const config = parseNodeConfig({});
  assert.equal(config.dataDir, ".veriflow");
  assert.deepEqual(config.http, { hostname: "127.0.0.1", port: 8080, ...EDGE_DEFAULTS });
  assert.deepEqual(config.roles, { storage: true, inference: true, prover: true, validator: true });
  assert.equal(config.model.size, "brown");
  assert.equal(config.model.executionProvider, "cpu");
});

Deno.test("a bad configuration names every wrong field", () => {
  assert.throws(
    // @ts-expect-error a wrong value is a type error too (NodeConfigInput); this is the run time's
    () => parseNodeConfig({ http: { port: 70000 }, roles: { storage: "yes" }, extra: 1 }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, "invalid_config");
      assert.match(error.message, /http\.port/);
      assert.match(error.message, /roles\.storage/);
      return true;
    },
  );
});

Deno.test("an empty --host or --p2p-host is refused naming the key and what it takes, before anything binds", async () => {
  for (
    const [flag, key] of [["--host", "http.hostname"], ["--p2p-host", "network.listen.hostname"]]
  ) {
    await assert.rejects(configFromArgs([flag, ""]), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, new RegExp(`${key.replaceAll(".", "\\.")}: expected an address`));
      assert.match(error.message, new RegExp(`\\[from ${flag}\\]`));
      return true;
    }, flag);
  }
  assert.throws(() => parseNodeConfig({ network: { listen: { hostname: "" } } }), ConfigError);
});

Deno.test("flags override the configuration file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/veriflow.json`;
  await Deno.writeTextFile(file, JSON.stringify({ http: { port: 9000 }, dataDir: "/from/file" }));
  const config = await configFromArgs([
    "--config",
    file,
    "--port",
    "0",
    "--no-validator",
    "--workers",
    "2",
  ]);
  assert.equal(config.model.workers, 2);
  assert.equal(config.http.port, 0);
  assert.equal(config.dataDir, "/from/file");
  assert.equal(config.roles.validator, false);
  assert.equal(config.roles.inference, true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a configuration file that is not JSON is a ConfigError, not a crash", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.json`, "{ port: ");
  await assert.rejects(() => loadNodeConfig(`${dir}/bad.json`), ConfigError);
  await assert.rejects(() => loadNodeConfig(`${dir}/missing.json`), ConfigError);
  await assert.rejects(() => configFromArgs(["--port", "eighty"]), ConfigError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unknown section in the file is named with a near section and the file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/c.json`;
  await Deno.writeTextFile(file, JSON.stringify({ htttp: { port: 1 }, model: { restrt: {} } }));
  try {
    await assert.rejects(() => loadNodeConfig(file), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const from = `\\[from ${file.replaceAll(".", "\\.")}\\]`;
      assert.match(
        error.message,
        new RegExp(`htttp: unknown key \\(did you mean http\\?\\) ${from}`),
      );
      assert.match(
        error.message,
        new RegExp(`model\\.restrt: unknown key \\(did you mean model\\.restart\\?\\) ${from}`),
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the API flags: --api-key and --allow-origin repeat, --api-keys-file names a file; a bad origin is refused", async () => {
  const config = await configFromArgs([
    "--api-key",
    "key-one-0123456789abcdef",
    "--api-key",
    "key-two-0123456789abcdef",
    "--api-keys-file",
    "/etc/veriflow/keys",
    "--allow-origin",
    "https://app.example",
  ]);
  assert.deepEqual(config.http.apiKeys, ["key-one-0123456789abcdef", "key-two-0123456789abcdef"]);
  assert.equal(config.http.apiKeysFile, "/etc/veriflow/keys");
  assert.deepEqual(config.http.allowedOrigins, ["https://app.example"]);
  await assert.rejects(configFromArgs(["--allow-origin", "app.example/x"]), ConfigError);
  await assert.rejects(configFromArgs(["--api-key", "short"]), /16 characters/);
});

Deno.test("the validation lane and the model workers' restart limit have defaults, a flag and config fields", async () => {
  const defaults = parseNodeConfig({});
  assert.equal(defaults.model.validationWorkers, 1);
  assert.deepEqual(defaults.model.restart, { maxRestarts: 5, withinMs: 60_000, stallMs: 120_000 });
  const set = await configFromArgs(["--validation-workers", "0"]);
  assert.equal(set.model.validationWorkers, 0);
  const configured = parseNodeConfig({ model: { restart: { maxRestarts: 2, stallMs: 0 } } });
  assert.deepEqual(configured.model.restart, { maxRestarts: 2, withinMs: 60_000, stallMs: 0 });
  assert.throws(() => parseNodeConfig({ model: { validationWorkers: -1 } }), ConfigError);
});

Deno.test("ledger checkpoints and proof retention are configuration; retention shorter than a challenge can come is refused", () => {
  const defaults = parseNodeConfig({});
  assert.equal(defaults.ledger.checkpointEvery, 1_024);
  assert.equal(
    defaults.proofs.retentionMs,
    undefined,
    "the prover's default (window + deadline + margin)",
  );
  const set = parseNodeConfig({
    ledger: { checkpointEvery: 64 },
    proofs: { retentionMs: 3_600_000 },
  });
  assert.equal(set.ledger.checkpointEvery, 64);
  assert.equal(set.proofs.retentionMs, 3_600_000);
  assert.throws(
    () => parseNodeConfig({ proofs: { retentionMs: 60_000 } }),
    (error: unknown) => error instanceof ConfigError && /proofs\.retentionMs/.test(error.message),
  );
});

Deno.test("--device picks the execution provider (cpu, cuda, webgpu); --cuda is --device cuda; another is refused naming the key", async () => {
  assert.equal((await configFromArgs([])).model.executionProvider, "cpu");
  assert.equal((await configFromArgs(["--device", "webgpu"])).model.executionProvider, "webgpu");
  assert.equal((await configFromArgs(["--cuda"])).model.executionProvider, "cuda");
  await assert.rejects(configFromArgs(["--device", "tpu"]), /model\.executionProvider/);
});

Deno.test("a training architecture no round could carry is refused when the node is configured, naming the key", () => {
  assert.throws(
    () => parseNodeConfig({ training: { arch: { hiddenSize: 8192 } } }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /training\.arch/);
      assert.match(error.message, /parameters/);
      return true;
    },
  );
  assert.equal(parseNodeConfig({}).training.arch.hiddenSize, 64, "the default fits");
});

// One configuration from four sources, flag > env > file > default; `--print-config` says where
// each value came from; unknown keys and bad values are refused naming the key path and why.

async function tempFile(value: unknown): Promise<string> {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "veriflow.json");
  await Deno.writeTextFile(path, JSON.stringify(value));
  return path;
}

Deno.test("precedence is flag > env > file > default, and each value knows its source", async () => {
  const file = await tempFile({ http: { port: 9001, hostname: "127.0.0.2" }, heartbeatMs: 5000 });
  const { config, origins } = await resolveStartConfig(["--config", file, "--port", "9003"], {
    VERIFLOW_HTTP_PORT: "9002",
    VERIFLOW_HEARTBEAT_MS: "7000",
    VERIFLOW_NETWORK_PEERS: "127.0.0.1:7701, 127.0.0.1:7702",
    VERIFLOW_ROLES_VALIDATOR: "false",
  });
  assert.equal(config.http.port, 9003, "the flag beats env and file");
  assert.equal(config.heartbeatMs, 7000, "env beats the file");
  assert.equal(config.http.hostname, "127.0.0.2", "the file beats the default");
  assert.equal(config.model.size, "brown", "the default");
  assert.deepEqual(config.network.peers, ["127.0.0.1:7701", "127.0.0.1:7702"]);
  assert.equal(config.roles.validator, false);
  assert.deepEqual(origins.get("http.port"), { source: "flag", by: "--port" });
  assert.deepEqual(origins.get("heartbeatMs"), { source: "env", by: "VERIFLOW_HEARTBEAT_MS" });
  assert.deepEqual(origins.get("http.hostname"), { source: "file", by: file });
  assert.deepEqual(origins.get("model.size"), { source: "default" });
});

Deno.test("VERIFLOW_CONFIG names the file when --config does not", async () => {
  const file = await tempFile({ dataDir: "/from/env/file" });
  const { config, origins } = await resolveStartConfig([], { VERIFLOW_CONFIG: file });
  assert.equal(config.dataDir, "/from/env/file");
  assert.equal(origins.get("dataDir")?.source, "file");
});

Deno.test("an unknown key in the file is refused naming its path, a near key and the file", async () => {
  const file = await tempFile({ http: { prot: 80 } });
  await assert.rejects(resolveStartConfig(["--config", file]), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /http\.prot: unknown key \(did you mean http\.port\?\)/);
    assert.match(error.message, new RegExp(`from ${file.replaceAll(".", "\\.")}`));
    return true;
  });
});

Deno.test("a bad value is refused naming the key path, the reason and the variable that set it", async () => {
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_PORT: "70000" }),
    /http\.port: .*65535.*\[from VERIFLOW_HTTP_PORT\]/s,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_PORT: "eighty" }),
    /VERIFLOW_HTTP_PORT expects a whole number in decimal digits, got "eighty"/,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_SELF_STAKE: "lots" }),
    /VERIFLOW_SELF_STAKE expects a decimal number such as 0.05, got "lots"/,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_PROT: "1" }),
    /VERIFLOW_HTTP_PROT: unknown variable \(did you mean VERIFLOW_HTTP_PORT\?\)/,
  );
  await assert.rejects(resolveStartConfig(["--model-size", "huge"]), /model\.size: .*--model-size/);
});

Deno.test("a decimal variable takes plain decimal notation, as its flag does: hex, exponents and signs are refused naming the variable", async () => {
  for (const text of ["0x1", "1e-1", "+0.5", "Infinity", " ", "0.5.1"]) {
    const fromEnv = await resolveStartConfig([], {
      VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY: text,
    }).then(() => "accepted", (e: Error) => e.message);
    const fromFlag = await resolveStartConfig([`--challenge-probability=${text}`]).then(
      () => "accepted",
      (e: Error) => e.message,
    );
    assert.match(
      fromEnv,
      /VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY expects a decimal number/,
      text,
    );
    assert.ok(
      fromEnv.includes(
        fromFlag.replace("--challenge-probability", "VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY"),
      ),
      fromEnv,
    );
  }
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_SELF_STAKE: "1e6" }),
    /VERIFLOW_SELF_STAKE expects a decimal number such as 0.05, got "1e6"/,
  );
  const { config } = await resolveStartConfig([], {
    VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY: " .25 ",
    VERIFLOW_SELF_STAKE: "5000.5",
  });
  assert.equal(config.validator.challengeProbability, 0.25);
  assert.equal(config.selfStake, 5000.5);
});

Deno.test("a whole-number variable takes decimal digits only, as its flag does: hex, exponents, fractions and signs are refused naming the variable", async () => {
  for (const text of ["0x50", "8e3", "80.0", "+80", "0b1010", "Infinity", " "]) {
    const fromEnv = await resolveStartConfig([], { VERIFLOW_HTTP_PORT: text }).then(
      () => "accepted",
      (e: Error) => e.message,
    );
    const fromFlag = await resolveStartConfig([`--port=${text}`]).then(
      () => "accepted",
      (e: Error) => e.message,
    );
    assert.match(fromEnv, /VERIFLOW_HTTP_PORT expects a whole number in decimal digits/, text);
    // The same wording as the flag's, with the variable's name for the flag's.
    assert.ok(fromEnv.includes(fromFlag.replace("--port", "VERIFLOW_HTTP_PORT")), fromEnv);
  }
  // Every whole-number setting, not only the port; each variable named.
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_MODEL_WORKERS: "0x2", VERIFLOW_HEARTBEAT_MS: "1e4" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /VERIFLOW_MODEL_WORKERS expects a whole number .*"0x2"/);
      assert.match(error.message, /VERIFLOW_HEARTBEAT_MS expects a whole number .*"1e4"/);
      return true;
    },
  );
  const { config } = await resolveStartConfig([], {
    VERIFLOW_HTTP_PORT: " 8081 ",
    VERIFLOW_HTTP_DRAIN_TIMEOUT_MS: "0",
  });
  assert.equal(config.http.port, 8081, "blanks around the digits are fine");
  assert.equal(config.http.drainTimeoutMs, 0);
  // A fraction stays a fraction.
  const probability = await resolveStartConfig([], {
    VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY: "0.25",
  });
  assert.equal(probability.config.validator.challengeProbability, 0.25);
});

Deno.test("http.drainTimeoutMs: 30 s by default, set by the file or VERIFLOW_HTTP_DRAIN_TIMEOUT_MS, refused below 0", async () => {
  const defaults = await resolveStartConfig([]);
  assert.equal(defaults.config.http.drainTimeoutMs, 30_000);
  assert.deepEqual(defaults.origins.get("http.drainTimeoutMs"), { source: "default" });
  const file = await tempFile({ http: { drainTimeoutMs: 5_000 } });
  const { config, origins } = await resolveStartConfig(["--config", file], {
    VERIFLOW_HTTP_DRAIN_TIMEOUT_MS: "12000",
  });
  assert.equal(config.http.drainTimeoutMs, 12_000, "env beats the file");
  assert.deepEqual(origins.get("http.drainTimeoutMs"), {
    source: "env",
    by: "VERIFLOW_HTTP_DRAIN_TIMEOUT_MS",
  });
  const negative = await tempFile({ http: { drainTimeoutMs: -1 } });
  await assert.rejects(resolveStartConfig(["--config", negative]), /http\.drainTimeoutMs: /);
});

Deno.test("a bad list item is refused naming the flag, variable or file that set its list", async () => {
  await assert.rejects(
    resolveStartConfig(["--peer", "nohostport"]),
    /network\.peers\.0: expected HOST:PORT with a port 1–65535, got "nohostport" \[from --peer\]/,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_NETWORK_PEERS: "127.0.0.1:7701,bad" }),
    /network\.peers\.1: expected HOST:PORT with a port 1–65535, got "bad" \[from VERIFLOW_NETWORK_PEERS\]/,
  );
  const file = await tempFile({ http: { apiKeys: ["short"] } });
  await assert.rejects(
    resolveStartConfig(["--config", file]),
    new RegExp(`http\\.apiKeys\\.0: .*\\[from ${file.replaceAll(".", "\\.")}\\]`),
  );
});

Deno.test("http.trustedProxies: empty by default; set by --trust-proxy (repeatable), VERIFLOW_HTTP_TRUSTED_PROXIES (comma-separated) or the file; a malformed entry is refused naming the key, the entry and its source", async () => {
  assert.deepEqual(parseNodeConfig({}).http.trustedProxies, []);
  const flags = await resolveStartConfig(["--trust-proxy", "127.0.0.1", "--trust-proxy", "::1"]);
  assert.deepEqual(flags.config.http.trustedProxies, ["127.0.0.1", "::1"]);
  const env = await resolveStartConfig([], {
    VERIFLOW_HTTP_TRUSTED_PROXIES: "10.0.0.0/8, 2001:db8::/32",
  });
  assert.deepEqual(env.config.http.trustedProxies, ["10.0.0.0/8", "2001:db8::/32"]);
  const file = await tempFile({ http: { trustedProxies: ["192.0.2.0/24"] } });
  const fromFile = await resolveStartConfig(["--config", file]);
  assert.deepEqual(fromFile.config.http.trustedProxies, ["192.0.2.0/24"]);
  // The flag replaces the file's list, as every list flag does.
  const both = await resolveStartConfig(["--config", file, "--trust-proxy", "127.0.0.1"]);
  assert.deepEqual(both.config.http.trustedProxies, ["127.0.0.1"]);
  const expected = "expected an IP address or a CIDR range";
  await assert.rejects(
    resolveStartConfig(["--trust-proxy", "127.0.0.1", "--trust-proxy", "proxy.example"]),
    new RegExp(
      `http\\.trustedProxies\\.1: ${expected} .*got "proxy\\.example" \\[from --trust-proxy\\]`,
    ),
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_TRUSTED_PROXIES: "10.0.0.0/33" }),
    new RegExp(
      `http\\.trustedProxies\\.0: ${expected} .*got "10\\.0\\.0\\.0/33" \\[from VERIFLOW_HTTP_TRUSTED_PROXIES\\]`,
    ),
  );
  const bad = await tempFile({ http: { trustedProxies: ["[::1]:80"] } });
  const refused = await resolveStartConfig(["--config", bad]).then(() => undefined, (e) => e);
  assert.ok(refused instanceof ConfigError, String(refused));
  assert.match(refused.message, /http\.trustedProxies\.0: .*got "\[::1\]:80"/);
  assert.equal(
    refused.message.split("\n").filter((line) => line.includes("trustedProxies")).length,
    1,
  );
  // Set but empty is refused, as for the other list variables.
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_TRUSTED_PROXIES: "" }),
    /VERIFLOW_HTTP_TRUSTED_PROXIES is set but empty/,
  );
});

Deno.test("http.trustedProxyHeader: x-forwarded-for by default; forwarded from VERIFLOW_HTTP_TRUSTED_PROXY_HEADER or the file; any other header refused naming the key (review s74 verify1, F1)", async () => {
  assert.equal(parseNodeConfig({}).http.trustedProxyHeader, "x-forwarded-for");
  const env = await resolveStartConfig([], { VERIFLOW_HTTP_TRUSTED_PROXY_HEADER: "forwarded" });
  assert.equal(env.config.http.trustedProxyHeader, "forwarded");
  const file = await tempFile({ http: { trustedProxyHeader: "forwarded" } });
  assert.equal(
    (await resolveStartConfig(["--config", file])).config.http.trustedProxyHeader,
    "forwarded",
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_TRUSTED_PROXY_HEADER: "x-real-ip" }),
    /http\.trustedProxyHeader.*VERIFLOW_HTTP_TRUSTED_PROXY_HEADER/s,
  );
});

Deno.test("every configuration leaf has one environment variable", () => {
  const leaves = configLeaves();
  const names = leaves.map((l) => l.env);
  assert.equal(new Set(names).size, names.length, "no two leaves share a variable");
  assert.ok(names.includes("VERIFLOW_MODEL_RESTART_MAX_RESTARTS"));
  assert.ok(names.includes("VERIFLOW_LOG_FORMAT"));
  // Every one round-trips: a leaf set by its variable is read back from that variable.
  const layer = envLayer({ VERIFLOW_STORAGE_QUOTA_BYTES: "1000" });
  assert.deepEqual(layer.values, { storage: { quotaBytes: 1000 } });
  assert.equal(layer.setBy.get("storage.quotaBytes"), "VERIFLOW_STORAGE_QUOTA_BYTES");
});

Deno.test("start --print-config prints every value with its source, secrets counted only, and starts nothing", async () => {
  const out: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: (line) => void out.push(line),
    err: (line) => void out.push(`ERR ${line}`),
    now: () => 0,
    env: () => ({
      VERIFLOW_DATA_DIR: "/nonexistent/never-created",
      VERIFLOW_HTTP_API_KEYS: "sk-first-secret-key-0001,sk-second-secret-key-002",
    }),
  };
  const code = await runStart(["--print-config", "--port", "0"], io);
  assert.equal(code, 0);
  const text = out.join("\n");
  assert.match(text, /^http\.port\s+0\s+flag --port$/m);
  assert.match(text, /^dataDir\s+"\/nonexistent\/never-created"\s+env VERIFLOW_DATA_DIR$/m);
  assert.match(text, /^model\.size\s+"brown"\s+default$/m);
  assert.match(text, /^model\.dir\s+\(unset\)\s+default$/m);
  // API keys are secrets: counted, never printed (the output goes into bug reports).
  assert.match(text, /^http\.apiKeys\s+\(2 values, not shown\)\s+env VERIFLOW_HTTP_API_KEYS$/m);
  assert.doesNotMatch(text, /secret-key/);
  assert.equal(text.split("\n").length, configLeaves().length);
  await assert.rejects(Deno.stat("/nonexistent/never-created"));
});

Deno.test("start with a bad configuration exits 2 naming the key and what to do", async () => {
  const file = await tempFile({ roles: { storag: false } });
  const err: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: () => {},
    err: (line) => void err.push(line),
    now: () => 0,
  };
  assert.equal(await runStart(["--config", file], io), 2);
  assert.match(err.join("\n"), /roles\.storag: unknown key \(did you mean roles\.storage\?\)/);
  assert.match(err.join("\n"), /--print-config/);
});

Deno.test("start hints at the key named above only when a key is named", async () => {
  const startErr = async (args: string[], env: Record<string, string> = {}) => {
    const err: string[] = [];
    const io: StartCommandIo = {
      onStopSignal: () => () => {},
      out: () => {},
      err: (line) => void err.push(line),
      now: () => 0,
      env: () => env,
    };
    assert.equal(await runStart([...args, "--print-config"], io), 2, args.join(" "));
    return err.join("\n");
  };
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "broken.json"), "{ not json");
  await Deno.writeTextFile(join(dir, "list.json"), "[]");
  const keyHint = /fix the key named above/;
  for (
    const [args, says] of [
      [["--config", join(dir, "broken.json")], /is not valid JSON/],
      [["--config", join(dir, "missing.json")], /cannot read configuration file/],
      [["--config", join(dir, "list.json")], /expected a JSON object at the top level/],
    ] as const
  ) {
    const err = await startErr([...args]);
    assert.match(err, says);
    assert.doesNotMatch(err, keyHint, err);
  }
  const port = await startErr(["--port", "abc"]);
  assert.match(port, /--port expects a whole number in decimal digits, got "abc"/);
  assert.doesNotMatch(port, keyHint);
  assert.match(port, /see cli\.ts start --help/);
  // Where a key or variable is named, the hint stays.
  assert.match(await startErr(["--model-size", "huge"]), keyHint);
  assert.match(await startErr([], { VERIFLOW_HTTP_PROT: "1" }), keyHint);
  // Two keys at fault: the hint counts them, so the operator looks for both.
  await Deno.writeTextFile(
    join(dir, "two.json"),
    JSON.stringify({ roles: { storag: true }, http: { prot: 1 } }),
  );
  const two = await startErr(["--config", join(dir, "two.json")]);
  assert.match(two, /roles\.storag: unknown key/);
  assert.match(two, /http\.prot: unknown key/);
  assert.match(two, /fix the 2 keys named above/);
  assert.match(
    await startErr([], { VERIFLOW_HTTP_PORT: "abc", VERIFLOW_MODEL_SEED: "x" }),
    /fix the 2 keys named above/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("whole-number flags take decimal digits only: --port 0x50 or 1e3 is a usage error, exit 2", async () => {
  for (const text of ["0x50", "1e3", "80.0", "0b1", " ", "8_0"]) {
    await assert.rejects(
      resolveStartConfig([`--port=${text}`]),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, /--port expects a whole number in decimal digits/);
        return true;
      },
      text,
    );
  }
  await assert.rejects(resolveStartConfig(["--workers", "0x2"]), /--workers expects a whole/);
  await assert.rejects(resolveStartConfig(["--heartbeat", "1e3"]), /--heartbeat expects a whole/);
  assert.equal((await resolveStartConfig(["--port", "080"])).config.http.port, 80);
  // A probability is a fraction, in plain decimal notation too.
  const { config } = await resolveStartConfig(["--challenge-probability", ".25"]);
  assert.equal(config.validator.challengeProbability, 0.25);
  await assert.rejects(
    resolveStartConfig(["--challenge-probability", "5e-2"]),
    /--challenge-probability expects a decimal number/,
  );
  const err: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: () => {},
    err: (line) => void err.push(line),
    now: () => 0,
  };
  assert.equal(await runStart(["--port", "0x50", "--print-config"], io), 2);
  assert.match(err.join("\n"), /--port expects a whole number in decimal digits, got "0x50"/);
});

Deno.test("a mistyped flag is refused with the nearest flag, as a mistyped key is", async () => {
  await assert.rejects(
    resolveStartConfig(["--prot", "80"]),
    /unknown flag --prot \(did you mean --port\?\)/,
  );
  await assert.rejects(
    resolveStartConfig(["--no-storag"]),
    /unknown flag --no-storag \(did you mean --no-storage\?\)/,
  );
  await assert.rejects(resolveStartConfig(["--prot=80"]), /did you mean --port\?/);
  // Nothing near: the flag is named, and no guess is made.
  await assert.rejects(resolveStartConfig(["--zzzzzzzzzz"]), (error: unknown) => {
    assert.match(String(error), /unknown flag --zzzzzzzzzz/);
    assert.doesNotMatch(String(error), /did you mean/);
    return true;
  });
  const err: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: () => {},
    err: (line) => void err.push(line),
    now: () => 0,
  };
  assert.equal(await runStart(["--prot", "80"], io), 2);
  assert.match(err.join("\n"), /did you mean --port\?\)\nsee cli\.ts start --help/);
});

Deno.test("a negative number, by variable or flag, is refused as negative, not as a malformed number", async () => {
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_SELF_STAKE: "-5" }),
    /VERIFLOW_SELF_STAKE must not be negative \(0 or more\), got "-5"/,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY: " -0.5" }),
    /VERIFLOW_VALIDATOR_CHALLENGE_PROBABILITY must not be negative/,
  );
  await assert.rejects(
    resolveStartConfig(["--challenge-probability=-0.5"]),
    /--challenge-probability must not be negative/,
  );
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_HTTP_PORT: "-1" }),
    /VERIFLOW_HTTP_PORT must not be negative/,
  );
  await assert.rejects(resolveStartConfig(["--port=-1"]), /--port must not be negative/);
  // A sign before something that is no number at all is still a malformed number.
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_SELF_STAKE: "-lots" }),
    /VERIFLOW_SELF_STAKE expects a decimal number such as 0.05, got "-lots"/,
  );
});

Deno.test("an empty VERIFLOW_CONFIG or --config is refused saying so, not read as a file named ''", async () => {
  await assert.rejects(
    resolveStartConfig([], { VERIFLOW_CONFIG: "" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^VERIFLOW_CONFIG is set but empty: unset it, or set it to/);
      return true;
    },
  );
  await assert.rejects(resolveStartConfig(["--config", " "]), /--config is empty: give it/);
});

// A path led by `~` is refused wherever an operator configures one, with the same words: only a
// shell expands `~`, and not after `=`, in a JSON file or in a service's environment. `dataDir` and
// `model.dir` were refused; the API keys file and `VERIFLOW_DATA_DIR` as the other
// commands read it (`keygen`, `put`, `ledger`) were taken as they were: a key file that "did not
// exist", and a fresh identity written under a folder named `~` in the working directory; so was
// `--data=~/…` given to those commands (their `--data` now wins over the variable, which they read
// only without it, as `start` does).

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

Deno.test("http.apiKeysFile led by ~ is refused at validation, naming the key and the fix", () => {
  assert.throws(
    () => parseNodeConfig({ http: { apiKeysFile: "~/veriflow/keys" } }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /http\.apiKeysFile: starts with ~.*full path/.test(error.message),
  );
  // An absolute path, or one merely holding a ~, is a path like any other.
  assert.equal(
    parseNodeConfig({ http: { apiKeysFile: "/etc/veriflow/keys~" } }).http.apiKeysFile,
    "/etc/veriflow/keys~",
  );
});

Deno.test("VERIFLOW_HTTP_API_KEYS_FILE led by ~ is refused, naming the variable", () => {
  assert.throws(
    () => resolveNodeConfig([envLayer({ VERIFLOW_HTTP_API_KEYS_FILE: "~/keys" })]),
    (error: unknown) =>
      error instanceof ConfigError &&
      /http\.apiKeysFile: starts with ~.*\[from VERIFLOW_HTTP_API_KEYS_FILE\]/.test(error.message),
  );
});

Deno.test("keygen with VERIFLOW_DATA_DIR led by ~ exits 2 (a usage error, as start) naming the variable, writing nothing", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "veriflow-s55-home-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "keygen"],
      cwd,
      env: { VERIFLOW_DATA_DIR: "~/vf", NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, err);
    assert.equal(err.trimEnd().split("\n").length, 1, err);
    assert.match(err, /VERIFLOW_DATA_DIR.*starts with ~.*full path/);
    await assert.rejects(Deno.stat(join(cwd, "~")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("keygen --data=~/vf exits 2 naming the flag, writing nothing; a full --data wins over a VERIFLOW_DATA_DIR led by ~", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "veriflow-s55-home-" });
  const keygen = (args: string[], env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "keygen", ...args],
      cwd,
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    const refused = await keygen(["--data=~/vf"], {});
    const err = new TextDecoder().decode(refused.stderr);
    assert.equal(refused.code, 2, err);
    assert.match(err, /--data ~\/vf starts with ~.*full path/);
    await assert.rejects(Deno.stat(join(cwd, "~")), Deno.errors.NotFound);
    const full = join(cwd, "vf");
    const made = await keygen([`--data=${full}`], { VERIFLOW_DATA_DIR: "~/other" });
    assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    assert.ok((await Deno.stat(join(full, "identity.key"))).isFile);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a configuration file path led by ~ (--config, VERIFLOW_CONFIG) is refused as such, not as missing", async () => {
  await assert.rejects(
    readConfigFile("~/veriflow.json"),
    (error: unknown) =>
      error instanceof ConfigError &&
      /~\/veriflow\.json starts with ~.*full path.*--config or VERIFLOW_CONFIG/.test(error.message),
  );
});

// With several `--peer` flags, a typo in one (`127.0.0.1:77x1`) was refused as `network.peers.1:
// expected HOST:PORT with a port 1–65535 [from --peer]`: the operator had to count flags from 0 to
// find which one, where `--port abc` says `got "abc"`. The refusal now quotes the address it
// refused.

Deno.test("a malformed --peer is refused quoting the address, among several", async () => {
  await assert.rejects(
    resolveStartConfig([
      "--peer",
      "127.0.0.1:7741",
      "--peer",
      "127.0.0.1:77x1",
      "--peer",
      "127.0.0.1:7743",
    ]),
    /network\.peers\.1: expected HOST:PORT with a port 1–65535, got "127\.0\.0\.1:77x1" \[from --peer\]/,
  );
});

Deno.test("a DHT bootstrap without a port is refused quoting it", async () => {
  await assert.rejects(
    resolveStartConfig(["--swarm-bootstrap", "1.2.3.4"]),
    /network\.swarm\.bootstrap\.0: expected HOST:PORT with a port 1–65535, got "1\.2\.3\.4"/,
  );
});

// `--print-config` shows what a setting left unset means where the node puts a value of its own in
// its place: an operator asking "how often does my validator challenge?" or "how long is proof data
// kept?" was told `(unset)`, though the node runs with 0.1 and 21 minutes.
// Settings whose absence is simply nothing (`model.dir`, `http.apiKeysFile`)
// still say `(unset)`.

async function printConfig(args: string[] = []): Promise<string> {
  const out: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: (line) => void out.push(line),
    err: (line) => void out.push(`ERR ${line}`),
    now: () => 0,
    env: () => ({ VERIFLOW_DATA_DIR: "/nonexistent/never-created" }),
  };
  assert.equal(await runStart(["--print-config", ...args], io), 0, out.join("\n"));
  return out.join("\n");
}

Deno.test("--print-config says what an unset setting with a node-chosen value comes to", async () => {
  const text = await printConfig();
  const p = DEFAULT_ECONOMICS.challengeProbability;
  assert.match(
    text,
    new RegExp(`^validator\\.challengeProbability\\s+\\(unset: ${p}\\)\\s+default$`, "m"),
  );
  assert.match(
    text,
    new RegExp(`^training\\.challengeProbability\\s+\\(unset: ${p}\\)\\s+default$`, "m"),
  );
  assert.match(
    text,
    new RegExp(`^proofs\\.retentionMs\\s+\\(unset: ${MIN_PROOF_RETENTION_MS}\\)\\s+default$`, "m"),
  );
  assert.match(text, /^storage\.quotaBytes\s+\(unset: no quota\)\s+default$/m);
  assert.match(
    text,
    /^storage\.replicaQuotaBytes\s+\(unset: half of storage\.quotaBytes, else 17179869184 without one\)\s+default$/m,
  );
  // Nothing in its place: still plainly unset.
  assert.match(text, /^model\.dir\s+\(unset\)\s+default$/m);
  assert.match(text, /^http\.apiKeysFile\s+\(unset\)\s+default$/m);
});

Deno.test("--print-config shows a set value as itself, not what unset would mean", async () => {
  const text = await printConfig(["--challenge-probability", "0.5"]);
  assert.match(text, /^validator\.challengeProbability\s+0\.5\s+flag --challenge-probability$/m);
});

// ---- paths in a configuration file, empty list variables, one refusal per key (review s73 ops) ----

Deno.test("a relative dataDir, model.dir and http.apiKeysFile in a file are read against the file's directory; flags keep the working directory", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "etc", "veriflow.json");
  await Deno.mkdir(join(dir, "etc"));
  await Deno.writeTextFile(
    file,
    JSON.stringify({ dataDir: "vfdata", model: { dir: "m" }, http: { apiKeysFile: "keys" } }),
  );
  const { config } = await resolveStartConfig(["--config", file]);
  assert.equal(config.dataDir, join(dir, "etc", "vfdata"));
  assert.equal(config.model.dir, join(dir, "etc", "m"));
  assert.equal(config.http.apiKeysFile, join(dir, "etc", "keys"));
  const flagged = await resolveStartConfig(["--config", file, "--data", "here"]);
  assert.equal(flagged.config.dataDir, "here", "a flag is the shell user's, relative to the cwd");
  const absolute = await tempFile({ dataDir: "/srv/vf" });
  assert.equal((await resolveStartConfig(["--config", absolute])).config.dataDir, "/srv/vf");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a relative dataDir whose node key is only under the working directory is refused naming both paths, not started with a new key", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "etc"));
  await Deno.mkdir(join(dir, "home", "vfdata"), { recursive: true });
  await Deno.writeTextFile(join(dir, "home", "vfdata", "identity.key"), "k");
  const file = join(dir, "etc", "veriflow.json");
  await Deno.writeTextFile(file, JSON.stringify({ dataDir: "vfdata" }));
  const cwd = Deno.cwd();
  Deno.chdir(join(dir, "home"));
  try {
    const refused = await resolveStartConfig(["--config", file]).then(() => undefined, (e) => e);
    assert.ok(refused instanceof ConfigError, String(refused));
    assert.equal(refused.code, "invalid_config");
    assert.ok(!refused.message.includes("\n"), "one line");
    assert.ok(refused.message.includes(join(dir, "etc", "vfdata")), refused.message);
    assert.ok(refused.message.includes(join(dir, "home", "vfdata")), refused.message);
    assert.match(refused.message, /move .* or write the absolute path/);
    // Once the directory has moved beside the file, the same start resolves there.
    await Deno.rename(join(dir, "home", "vfdata"), join(dir, "etc", "vfdata"));
    const { config } = await resolveStartConfig(["--config", file]);
    assert.equal(config.dataDir, join(dir, "etc", "vfdata"));
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an empty list variable is refused naming it, as an empty number is, rather than emptying the file's list", async () => {
  const file = await tempFile({
    network: { peers: ["127.0.0.1:7701"] },
    http: { apiKeys: ["k1234567890123456"] },
  });
  for (const name of ["VERIFLOW_NETWORK_PEERS", "VERIFLOW_HTTP_API_KEYS"]) {
    for (const empty of ["", " "]) {
      const refused = await resolveStartConfig(["--config", file], { [name]: empty })
        .then(() => undefined, (e) => e);
      assert.ok(refused instanceof ConfigError, `${name}=${JSON.stringify(empty)}: ${refused}`);
      assert.match(refused.message, new RegExp(`${name} is set but empty: unset it`));
      assert.equal(refused.keysNamed, 1);
    }
  }
  const set = await resolveStartConfig(["--config", file], {
    VERIFLOW_NETWORK_PEERS: "127.0.0.1:7702",
  });
  assert.deepEqual(set.config.network.peers, ["127.0.0.1:7702"]);
});

Deno.test("a number past 2^53 for a key with a lower bound is refused once, with the key's own bound", () => {
  const refused = (() => {
    try {
      parseNodeConfig({ heartbeatMs: 1e300 });
    } catch (error) {
      return error as ConfigError;
    }
  })();
  assert.ok(refused instanceof ConfigError);
  assert.equal(refused.keysNamed, 1, refused.message);
  assert.equal(refused.message.split("\n").filter((l) => l.includes("heartbeatMs")).length, 1);
  assert.match(refused.message, /<=2147483647/);
});

Deno.test("start --port -1 or --workers -1 is one line naming the flag, as --port=-1 is, exit 2", async () => {
  for (const args of [["--port", "-1"], ["--workers", "-1"], ["--port=-1"]]) {
    const err: string[] = [];
    const io: StartCommandIo = {
      onStopSignal: () => () => {},
      out: () => {},
      err: (line) => void err.push(line),
      now: () => 0,
    };
    assert.equal(await runStart([...args, "--print-config"], io), 2);
    const flag = args[0].replace(/=.*/, "");
    assert.equal(
      err.join("\n").split("\n")[0],
      `error: ${flag} must not be negative (0 or more), got "-1"`,
    );
    assert.ok(!err.join("\n").includes("ambiguous"), err.join("\n"));
  }
});

// ---- a flag or variable over a moved relative path (review s73 verify, F4) ----

Deno.test("a flag or variable that sets dataDir, model.dir or http.apiKeysFile is used; the file's moved relative path under it is not refused", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "etc"));
  // An upgraded layout: each relative path of the file names what is in use under the working
  // directory only (the old reading), so the file alone is refused for each key.
  await Deno.mkdir(join(dir, "home", "vfdata"), { recursive: true });
  await Deno.writeTextFile(join(dir, "home", "vfdata", "identity.key"), "k");
  await Deno.mkdir(join(dir, "home", "m"));
  await Deno.writeTextFile(join(dir, "home", "keys"), "k1234567890123456\n");
  const cases: [key: string, written: Record<string, unknown>, flag: string, variable: string][] = [
    ["dataDir", { dataDir: "vfdata" }, "--data", "VERIFLOW_DATA_DIR"],
    ["model.dir", { model: { dir: "m" } }, "--model", "VERIFLOW_MODEL_DIR"],
    [
      "http.apiKeysFile",
      { http: { apiKeysFile: "keys" } },
      "--api-keys-file",
      "VERIFLOW_HTTP_API_KEYS_FILE",
    ],
  ];
  const cwd = Deno.cwd();
  Deno.chdir(join(dir, "home"));
  try {
    for (const [key, written, flag, variable] of cases) {
      const file = join(dir, "etc", `${key}.json`);
      await Deno.writeTextFile(file, JSON.stringify(written));
      const alone = await resolveStartConfig(["--config", file]).then(() => undefined, (e) => e);
      assert.ok(alone instanceof ConfigError, `${key} alone: ${alone}`);
      assert.match(alone.message, new RegExp(`^${key.replace(".", "\\.")} "`));
      const chosen = join(dir, "chosen");
      const byFlag = await resolveStartConfig(["--config", file, flag, chosen]);
      const byEnv = await resolveStartConfig(["--config", file], { [variable]: chosen });
      for (const [by, resolved] of [[flag, byFlag], [variable, byEnv]] as const) {
        const value = key.split(".").reduce<unknown>(
          (at, part) => (at as Record<string, unknown>)[part],
          resolved.config,
        );
        assert.equal(value, chosen, `${key} set by ${by}`);
        assert.equal(resolved.origins.get(key)?.by, by);
      }
    }
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start prints the moved-path refusal with its code, as put and ls print it, exit 2", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "etc"));
  await Deno.mkdir(join(dir, "home", "vfdata"), { recursive: true });
  await Deno.writeTextFile(join(dir, "home", "vfdata", "identity.key"), "k");
  const file = join(dir, "etc", "veriflow.json");
  await Deno.writeTextFile(file, JSON.stringify({ dataDir: "vfdata" }));
  const err: string[] = [];
  const io: StartCommandIo = {
    onStopSignal: () => () => {},
    out: () => {},
    err: (line) => void err.push(line),
    now: () => 0,
  };
  const cwd = Deno.cwd();
  Deno.chdir(join(dir, "home"));
  try {
    assert.equal(await runStart(["--config", file, "--print-config"], io), 2);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(err.length, 1, err.join("\n"));
  assert.match(
    err[0],
    /^error \[invalid_config\]: dataDir "vfdata" in .* is relative to that file's directory/,
  );
  assert.ok(!err[0].includes("\n"), err[0]);
});
