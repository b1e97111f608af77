/**
 * The node's identity key is created once and never replaced: two creators at once (a node's
 * first start beside a `cli.ts put`, which takes no lock) are handed the same key, the one on
 * disk, and a dangling link where the key should be is an error, not a missing key made anew.
 * A rename used to publish it, replacing whatever was there: one creator ran on a key no longer
 * on disk, and the link was replaced by a new key (found by a review at stop 33).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../node/node_identity.ts";
import { toHex } from "../../protocols/hash.ts";

Deno.test("creators of a node's identity at once are all handed the key on disk, and no temporary file is left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keys = await Promise.all(
      Array.from({ length: 8 }, async () => toHex((await loadOrCreateIdentity(dir)).publicKey)),
    );
    const disk = toHex((await loadOrCreateIdentity(dir)).publicKey);
    assert.deepEqual(new Set(keys), new Set([disk]));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [IDENTITY_FILE]);
    assert.equal((Deno.statSync(join(dir, IDENTITY_FILE)).mode ?? 0) & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an identity key that is a link to nothing (a volume not mounted yet) is an error, and the link stays", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, IDENTITY_FILE);
    Deno.symlinkSync(join(dir, "secrets", "identity.key"), path);
    await assert.rejects(() => loadOrCreateIdentity(dir), { code: "identity_unreadable" });
    assert.ok(Deno.lstatSync(path).isSymlink, "not replaced by a new key");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
