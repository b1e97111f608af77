/**
 * A `--data` directory that cannot be created is said as the operator's problem, naming `--data`
 * and the fix (review stop 60, `ux2`): `--data /proc/x` ended with a bare
 * `No such file or directory (os error 2): mkdir '/proc/x'`, and `--data FILE/sub` was said to
 * name a file when it runs through one.
 */
import assert from "node:assert/strict";
import { DataDirLock, DataDirNotDirectoryError } from "../../node/data_dir_lock.ts";
import { VeriflowError } from "../../protocols/errors.ts";

async function refusal(dir: string): Promise<Error> {
  return await DataDirLock.acquire(dir, "node").then(
    async (lock) => {
      await lock.release();
      return assert.fail(`${dir} was locked`);
    },
    (error) => error,
  );
}

Deno.test({
  name: "a data directory whose parent cannot hold directories (/proc) names --data and the fix",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dir = `/proc/veriflow-review-s60-${Deno.pid}`;
    const refused = await refusal(dir);
    assert.ok(refused instanceof VeriflowError, String(refused));
    assert.equal(refused.code, "data_dir_uncreatable");
    assert.match(refused.message, new RegExp(`^--data ${dir} cannot be created`));
    assert.match(refused.message, /another --data directory/);
    assert.doesNotMatch(refused.message, /os error/);
  },
});

Deno.test("a data directory under a file is said to run through that file, not to name one", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const file = `${parent}/f.txt`;
    await Deno.writeTextFile(file, "hi\n");
    const refused = await refusal(`${file}/sub`);
    assert.ok(refused instanceof DataDirNotDirectoryError, String(refused));
    assert.equal(refused.code, "data_dir_not_directory");
    assert.match(refused.message, new RegExp(`^--data ${file}/sub runs through a file, ${file};`));
    assert.doesNotMatch(refused.message, /os error/);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
