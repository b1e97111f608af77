/**
 * What `put DIR` stores, `get` reads back (review s79 F4): `get DIRCID/path/to/file` follows the
 * names through the UnixFS directories as the gateway does (`storage/unixfs_path.ts`), and `get
 * DIRCID` says it is a directory, lists its entries and names the commands that read them
 * (it failed `not_a_file` pointing at a running node's gateway, and `DIRCID/name` failed
 * `invalid_cid`). A symlink in a put directory is refused by that name, with its path.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./_cli_child.ts";

/** `root/a.txt` and `root/sub/deep/b.txt`, put with the CLI into `data`; the directory's CID. */
async function putTree(dir: string, data: string): Promise<string> {
  const root = join(dir, "tree");
  await Deno.mkdir(join(root, "sub", "deep"), { recursive: true });
  await Deno.writeTextFile(join(root, "a.txt"), "alpha\n");
  await Deno.writeTextFile(join(root, "sub", "deep", "b.txt"), "bravo\n");
  const put = await cli(["put", "--init", "--data", data, root]);
  assert.equal(put.code, 0, put.err);
  return put.out.trim();
}

Deno.test("get DIRCID/path/to/file reads the file the path names in a directory put stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-get-dir-path-" });
  try {
    const data = join(dir, "d");
    const cid = await putTree(dir, data);
    const deep = await cli(["get", `${cid}/sub/deep/b.txt`, "--data", data, "-o", join(dir, "b")]);
    assert.equal(deep.code, 0, deep.err);
    assert.equal(await Deno.readTextFile(join(dir, "b")), "bravo\n");
    // To stdout, with a range, and through `.` and doubled slashes, as a path is read anywhere.
    const top = await cli(["get", `${cid}/./a.txt`, "--data", data, "--range", "1-4"]);
    assert.equal(top.code, 0, top.err);
    assert.equal(top.out, "lph");
    const twice = await cli(["get", `${cid}//sub//deep/b.txt/`, "--data", data]);
    assert.equal(twice.code, 0, twice.err);
    assert.equal(twice.out, "bravo\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("get of a path that names nothing, or climbs out with .., fails naming the path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-get-dir-path-" });
  try {
    const data = join(dir, "d");
    const cid = await putTree(dir, data);
    const missing = await cli(["get", `${cid}/sub/nope.txt`, "--data", data]);
    assert.equal(missing.code, 1, missing.err);
    assert.match(missing.err, /error \[path_not_found\]: no entry "nope\.txt" in the directory/);
    const inFile = await cli(["get", `${cid}/a.txt/x`, "--data", data]);
    assert.equal(inFile.code, 1, inFile.err);
    assert.match(inFile.err, /error \[path_not_found\]: .*a\.txt is a file: it has no entry "x"/);
    const up = await cli(["get", `${cid}/sub/../../a.txt`, "--data", data]);
    assert.equal(up.code, 2, up.err);
    assert.match(up.err, /\.\./);
    assert.equal(up.out, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("get DIRCID says it is a directory, lists its entries and names get DIRCID/NAME and export", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-get-dir-path-" });
  try {
    const data = join(dir, "d");
    const cid = await putTree(dir, data);
    for (const [operand, entries] of [[cid, "a.txt, sub"], [`${cid}/sub`, "deep"]]) {
      const got = await cli(["get", operand, "--data", data, "-o", join(dir, "out")]);
      assert.equal(got.code, 1, got.err);
      assert.match(got.err, /error \[not_a_file\]: /);
      assert.ok(got.err.includes(`${operand} is a directory`), got.err);
      assert.ok(got.err.includes(`(${entries})`), got.err);
      assert.ok(got.err.includes(`cli.ts get ${operand}/NAME`), got.err);
      assert.match(got.err, /cli\.ts export bafybei\w+/);
      assert.doesNotMatch(got.err, /gateway/);
      assert.equal(await Deno.stat(join(dir, "out")).catch(() => undefined), undefined);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("put DIR holding a symlink refuses it by that name and path, dangling or not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-get-dir-path-" });
  try {
    const root = join(dir, "tree");
    await Deno.mkdir(root);
    await Deno.writeTextFile(join(root, "a.txt"), "alpha\n");
    await Deno.writeTextFile(join(dir, "target.txt"), "target\n");
    for (const target of [join(dir, "target.txt"), join(dir, "gone.txt")]) {
      await Deno.symlink(target, join(root, "link"));
      const put = await cli(["put", "--init", "--data", join(dir, "d"), root]);
      assert.equal(put.code, 2, put.err);
      assert.ok(put.err.includes(`${join(root, "link")}: a symlink`), put.err);
      assert.equal(put.out, "");
      await Deno.remove(join(root, "link"));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
