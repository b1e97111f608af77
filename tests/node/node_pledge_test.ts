/** The node's one stake pledge, kept in its data directory (`node/node_pledge.ts`). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOrCreatePledge, PLEDGE_FILE } from "../../node/node_pledge.ts";
import { Identity } from "../../protocols/identity.ts";
import { verifyStakePledge } from "../../protocols/stake_pledge.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";

Deno.test("a node pledges once: the same pledge on every run, even when selfStake changes (and it says so)", async () => {
  const dir = await Deno.makeTempDir();
  const identity = Identity.generate();
  const lines: string[] = [];
  try {
    const first = await loadOrCreatePledge(dir, identity, 5_000, (l) => lines.push(l), () => 42);
    assert.ok(verifyStakePledge(first));
    assert.equal(first.amount, 5_000);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /pledged 5000 for key .* keep this file with the key/);
    const again = await loadOrCreatePledge(dir, identity, 5_000, (l) => lines.push(l), () => 99);
    assert.deepEqual(again, first, "read back, not re-signed");
    assert.equal(lines.length, 1, "read back: nothing said");
    const changed = await loadOrCreatePledge(dir, identity, 9_000, (l) => lines.push(l));
    assert.deepEqual(changed, first);
    assert.match(lines[1], /pledged 5000 .* selfStake 9000 is not pledged again/);
    // A pledge by another key (a copied data directory) is replaced by this key's own.
    const other = signStakePledge(Identity.generate(), 1, 1);
    await Deno.writeFile(join(dir, PLEDGE_FILE), encodeCanonical(other));
    const own = await loadOrCreatePledge(dir, identity, 7_000, (l) => lines.push(l));
    assert.deepEqual(own.key, identity.publicKey);
    assert.equal(own.amount, 7_000);
    assert.match(lines[2], /not a pledge by this node's key/);
    assert.match(lines.at(-1)!, /pledged 7000 for key /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a pledge write a crash cut short leaves no temporary file behind the next start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // What writeFileDurably leaves when the process dies between creating and renaming it,
    // beside a file of the same shape that is not the pledge's (not the pledge's to remove).
    const crashed = `${PLEDGE_FILE}.${crypto.randomUUID()}.tmp`;
    const foreign = `other.cbor.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(join(dir, crashed), new Uint8Array([1, 2]));
    await Deno.writeFile(join(dir, foreign), new Uint8Array([3]));
    const pledge = await loadOrCreatePledge(dir, Identity.generate(), 5_000);
    assert.ok(verifyStakePledge(pledge));
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names.sort(), [PLEDGE_FILE, foreign].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
