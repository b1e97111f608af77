/**
 * The data directory a command takes without `--data`: `VERIFLOW_DATA_DIR` when set (what
 * `start` reads), else `.veriflow` — so `cli.ts put` beside a node started with that variable
 * writes into the node's store.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function put(cwd: string, env: Record<string, string>, permissions: string[]) {
  const file = join(cwd, "hello.txt");
  await Deno.writeTextFile(file, "hello, data directory");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, "put", file],
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

Deno.test("put without --data writes into $VERIFLOW_DATA_DIR when it is set, else ./.veriflow", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "veriflow-data-default-" });
  try {
    const nodeDir = join(cwd, "node-data");
    const set = await put(cwd, { VERIFLOW_DATA_DIR: nodeDir }, ["-A"]);
    assert.equal(set.code, 0, set.err);
    assert.ok((await Deno.stat(join(nodeDir, "store"))).isDirectory, "the node's store");
    await assert.rejects(Deno.stat(join(cwd, ".veriflow")), Deno.errors.NotFound);
    const unset = await put(cwd, {}, ["-A"]);
    assert.equal(unset.code, 0, unset.err);
    assert.ok((await Deno.stat(join(cwd, ".veriflow", "store"))).isDirectory);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
