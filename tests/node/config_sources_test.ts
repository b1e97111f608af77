/**
 * One configuration from four sources, flag > env > file > default; `--print-config` says where
 * each value came from; unknown keys and bad values are refused naming the key path and why.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, configLeaves, envLayer } from "../../node/config.ts";
import { resolveStartConfig, runStart, type StartCommandIo } from "../../node/start_command.ts";

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
