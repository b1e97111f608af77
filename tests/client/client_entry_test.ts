/**
 * The package's `./client` entry point (`client/mod.ts`) loads with `--allow-net` alone: a
 * program that only consumes a node's stream needs no env, FFI or read permission, which the
 * main entry point (`mod.ts`, with onnxruntime and cbor-x) asks for at import.
 */
import assert from "node:assert/strict";

/** Import `entry` in a process allowed only the network; its exit code and output. */
async function importWithNetOnly(entry: URL) {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/import.ts`;
    await Deno.writeTextFile(
      script,
      `const m = await import(${JSON.stringify(entry.href)}); console.log(typeof m.StreamClient);`,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-net",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the ./client entry point imports with --allow-net alone; the main one does not", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  assert.equal(config.exports["./client"], "./client/mod.ts");
  const client = await importWithNetOnly(new URL("../../client/mod.ts", import.meta.url));
  assert.deepEqual([client.code, client.stdout], [0, "function"], client.stderr);
  const main = await importWithNetOnly(new URL("../../mod.ts", import.meta.url));
  assert.notEqual(main.code, 0, "mod.ts asks for more than the network at import");
  assert.match(main.stderr, /NotCapable/);
});
