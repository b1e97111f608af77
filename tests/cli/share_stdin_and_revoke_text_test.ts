/**
 * Review s76: `share open` took the link only as an argument (its keys then show in `ps` and the
 * shell history), and `share` / `share revoke` / `share --help` promised access "until revoked"
 * although revoking leaves the link's keys valid wherever the ciphertext can be had.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { OwnerKey } from "../../storage/private_tier.ts";
import { sharedPrivateFile } from "./_shared_private_file.ts";
import { cli } from "./_cli_child.ts";

Deno.test("s76: cli share open - reads the link from stdin, so its keys are not on the command line", async () => {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const shared = await sharedPrivateFile({
    dir,
    ownerKey,
    contents: new TextEncoder().encode("read through stdin"),
    name: "share-open-stdin-test",
  });
  try {
    const { link } = shared;
    const out = join(dir, "out.txt");
    const run = await cli(
      ["share", "open", "-", "-o", out],
      new TextEncoder().encode(`${link}\n`),
    );
    assert.equal(run.code, 0, run.err);
    assert.equal(await Deno.readTextFile(out), "read through stdin");
    const empty = await cli(["share", "open", "-"], new TextEncoder().encode("\n"));
    assert.equal(empty.code, 2, empty.err);
    assert.match(empty.err, /no link on stdin/);
  } finally {
    await shared.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s76: share, share revoke and share --help say the keys outlive a revoke, with the remedy; share list shows a share until it is revoked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    await Deno.writeTextFile(join(dir, "f.txt"), "a private file");
    const put = await cli(["put", "--init", "--private", "--data", data, join(dir, "f.txt")]);
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();
    const shared = await cli(["share", cid, "--data", data, "--url", "http://127.0.0.1:9"]);
    assert.equal(shared.code, 0, shared.err);
    assert.doesNotMatch(shared.err, /opens \S+ until revoked/);
    assert.match(shared.err, /keys stay valid/);
    assert.match(shared.err, /put the file again and unpin the old copy/);
    const id = shared.out.split("/share/")[1].split("#")[0];
    const listed = await cli(["share", "list", cid, "--data", data]);
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, new RegExp(`^${id}  ${cid}  expires never  created `));
    const revoked = await cli(["share", "revoke", id, "--data", data]);
    assert.equal(revoked.code, 0, revoked.err);
    assert.match(revoked.err, /keys stay valid/);
    assert.equal((await cli(["share", "list", "--data", data])).out, "", "revoked: not listed");
    const help = await cli(["share", "--help"]);
    assert.match(help.out + help.err, /keys in the link stay valid/);
    assert.match(help.out + help.err, /share open - -o notes\.txt < link\.txt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
