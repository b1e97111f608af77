/**
 * A path led by `~` is refused wherever an operator configures one, with the same words: only a
 * shell expands `~`, and not after `=`, in a JSON file or in a service's environment. `dataDir`
 * and `model.dir` were refused (review s44); the API keys file and `VERIFLOW_DATA_DIR` as the
 * other commands read it (`keygen`, `put`, `ledger`) were taken as they were: a key file that
 * "did not exist", and a fresh identity written under a folder named `~` in the working directory;
 * so was `--data=~/…` given to those commands (their `--data` now wins over the variable, which
 * they read only without it, as `start` does).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  envLayer,
  parseNodeConfig,
  readConfigFile,
  resolveNodeConfig,
} from "../../node/config.ts";

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

Deno.test("keygen with VERIFLOW_DATA_DIR led by ~ exits 1 naming the variable, writing nothing", async () => {
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
    assert.equal(out.code, 1, err);
    assert.equal(err.trimEnd().split("\n").length, 1, err);
    assert.match(err, /VERIFLOW_DATA_DIR.*starts with ~.*full path/);
    await assert.rejects(Deno.stat(join(cwd, "~")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("keygen --data=~/vf exits 1 naming the flag, writing nothing; a full --data wins over a VERIFLOW_DATA_DIR led by ~", async () => {
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
    assert.equal(refused.code, 1, err);
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
