/** `cli.ts keygen`: what it says when the key cannot be made, or is damaged. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runKeygen } from "../../cli/tool_commands.ts";

/** Run `keygen` with stdout and stderr captured. */
async function keygen(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    return { code: await runKeygen(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("keygen into a directory it cannot create says no key was written, not to move a key aside", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "file"), "not a directory");
    const data = join(dir, "file", "k"); // under a regular file: cannot be created, even by root
    const { code, err } = await keygen(["--data", data]);
    assert.equal(code, 1);
    assert.equal(err.length, 1, err.join("\n"));
    assert.match(err[0], new RegExp(`no key was written: check that ${data} can be created`));
    assert.doesNotMatch(err[0], /aside/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keygen with --data naming a file says so in one line, as start does, and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "file");
    await Deno.writeTextFile(data, "not a directory");
    const { code, out, err } = await keygen(["--data", data]);
    assert.equal(code, 1);
    assert.deepEqual(out, []);
    assert.equal(err.length, 1, err.join("\n"));
    assert.match(err[0], new RegExp(`--data names a file, not a directory: ${data}`));
    assert.equal(await Deno.readTextFile(data), "not a directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keygen with a damaged key says to move it aside, and keeps it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(join(dir, "identity.key"), new Uint8Array(5));
    const { code, err } = await keygen(["--data", dir]);
    assert.equal(code, 1);
    assert.match(err[0], /move .*identity\.key aside to make a new identity/);
    assert.equal((await Deno.stat(join(dir, "identity.key"))).size, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keygen with a mistyped flag names it with the flag it is near, as start and ledger do, exit 2", async () => {
  const { code, err } = await keygen(["--dat", "x"]);
  assert.equal(code, 2);
  assert.match(err.join("\n"), /unknown flag --dat \(did you mean --data\?\)/);
});
