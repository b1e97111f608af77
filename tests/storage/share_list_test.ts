/**
 * `ShareStore.list` (review s76, finding 6): an owner had no way to find the outstanding links to
 * a file short of reading `<store>/shares/` by hand, so could not revoke them all.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { SHARES_DIR, ShareStore } from "../../storage/share_links.ts";
import { shareListLine } from "../../cli/exchange_commands.ts";

Deno.test("s76: ShareStore.list gives every share record oldest first, by file when asked, without temporaries or revoked ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shares = new ShareStore(dir);
    assert.deepEqual(await shares.list(), [], "no shares/ yet: none");
    const a = cidOf(new TextEncoder().encode("file a"));
    const b = cidOf(new TextEncoder().encode("file b"));
    const second = await shares.create(a, { expiresAt: 5_000, now: 2_000 });
    const first = await shares.create(a, { expiresAt: null, now: 1_000 });
    const other = await shares.create(b, { expiresAt: null, now: 3_000 });
    const gone = await shares.create(a, { expiresAt: null, now: 4_000 });
    await shares.revoke(gone.id);
    await Deno.writeTextFile(join(dir, SHARES_DIR, `${first.id}.x.tmp`), "{");
    assert.deepEqual(await shares.list(), [first, second, other]);
    assert.deepEqual(await shares.list(a), [first, second]);
    assert.match(shareListLine(second, 5_000), /expires 1970-01-01T00:00:05\.000Z \(expired\)/);
    assert.match(shareListLine(first, 5_000), new RegExp(`^${first.id}  ${a}  expires never`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
