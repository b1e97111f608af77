import assert from "node:assert/strict";
import { ConfigError, loadNodeConfig, parseNodeConfig } from "../../node/config.ts";
import { configFromArgs } from "../../node/start_command.ts";
import { EDGE_DEFAULTS } from "../../server/edge_config.ts";

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
