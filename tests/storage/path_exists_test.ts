import assert from "node:assert/strict";
import { join } from "node:path";
import { pathExists } from "../../storage/path_exists.ts";

Deno.test("pathExists is true for a file or directory and false for a missing path", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "file"), "x");
  assert.equal(await pathExists(dir), true);
  assert.equal(await pathExists(join(dir, "file")), true);
  assert.equal(await pathExists(join(dir, "missing")), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a dangling symlink is absent when followed and present as a link", async () => {
  const dir = await Deno.makeTempDir();
  const link = join(dir, "link");
  await Deno.symlink(join(dir, "nowhere"), link);
  assert.equal(await pathExists(link), false);
  assert.equal(await pathExists(link, { followSymlinks: false }), true);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an error that is not 'not found' is thrown, never read as absent", async () => {
  const dir = await Deno.makeTempDir();
  const loop = join(dir, "loop");
  await Deno.symlink(loop, loop); // following it never ends: ELOOP, whoever runs the test
  await assert.rejects(pathExists(loop), (error) => !(error instanceof Deno.errors.NotFound));
  assert.equal(await pathExists(loop, { followSymlinks: false }), true);
  await Deno.remove(dir, { recursive: true });
});
