import assert from "node:assert/strict";
import { ConfigError, loadNodeConfig, parseNodeConfig } from "../../node/config.ts";
import { configFromArgs } from "../../node/start_command.ts";

Deno.test("an empty configuration is a complete node with loopback defaults", () => {
  const config = parseNodeConfig({});
  assert.equal(config.dataDir, ".veriflow");
  assert.deepEqual(config.http, { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(config.roles, { storage: true, inference: true, prover: true, validator: true });
  assert.equal(config.model.size, "tiny");
  assert.equal(config.model.executionProvider, "cpu");
});

Deno.test("a bad configuration names every wrong field", () => {
  assert.throws(
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
