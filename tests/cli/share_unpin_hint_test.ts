/**
 * Review s78 F5: `share` and `share revoke` told the user to "unpin the old copy", and there is no
 * unpin command. They now name what does it: the pin's file under the data directory, then
 * `cli.ts gc`. Followed as printed, that advice removes the old copy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./_cli_child.ts";

Deno.test("s78 F5: share and share revoke name the pin's file and cli.ts gc, and following them removes the old copy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    await Deno.writeTextFile(join(dir, "f.txt"), "a private file to take back");
    const put = await cli(["put", "--init", "--private", "--data", data, join(dir, "f.txt")]);
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();
    const pin = join(data, "store", "pins", cid);
    await Deno.stat(pin); // the path the advice names is where the pin is

    const shared = await cli(["share", cid, "--data", data, "--url", "http://127.0.0.1:9"]);
    assert.equal(shared.code, 0, shared.err);
    assert.ok(shared.err.includes(`delete ${pin}`), shared.err);
    assert.ok(shared.err.includes(`cli.ts gc --data ${data}`), shared.err);
    const id = shared.out.split("/share/")[1].split("#")[0];
    const revoked = await cli(["share", "revoke", id, "--data", data]);
    assert.equal(revoked.code, 0, revoked.err);
    assert.ok(revoked.err.includes(`delete ${join(data, "store", "pins", "<cid>")}`), revoked.err);
    assert.ok(revoked.err.includes("cli.ts gc"), revoked.err);
    const unknown = await cli(["unpin", cid, "--data", data]);
    assert.notEqual(unknown.code, 0, "no unpin command: the advice must not name one");

    const before = await cli(["get", cid, "--data", data]);
    assert.equal(before.code, 0, before.err);
    await Deno.remove(pin);
    const gc = await cli(["gc", "--grace-ms", "0", "--data", data]);
    assert.equal(gc.code, 0, gc.err);
    const get = await cli(["get", cid, "--data", data]);
    assert.notEqual(get.code, 0, "the old copy is gone");
    assert.match(get.err, /not_found|not found/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
