/**
 * `cli.ts ledger repair` on damage after the last checkpoint (review s75 F1): it says, per
 * account, what the entries it cuts carried; it refuses without `--force` when they include whole
 * entries signed by the node (acknowledged, not a torn append); and its own output carries no
 * advice to run itself. Another identity's ledger (F5) is told alike by verify, repair and open.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { flipSignatureBit } from "../proof/_vouched_damage.ts";
import { toHex } from "../../protocols/hash.ts";

/** Deposits after genesis, 100 × n each: entry n deposits 100 n. */
const DEPOSITS = 5;

/** The entry whose signature is damaged: entries after it are whole, signed, and cut. */
const DAMAGED = 3;

/**
 * A data directory with `owner`'s key and a ledger of genesis and {@link DEPOSITS} deposits to
 * `staker` (no checkpoint covers them), then one bit flipped in entry {@link DAMAGED}'s signature.
 */
async function damagedNode(owner: Identity, staker: Identity): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
  const ledgerDir = join(dataDir, "ledger");
  const opened = await Ledger.open(ledgerDir, owner, { checkpointEvery: 0 });
  for (let n = 1; n <= DEPOSITS; n++) await opened.deposit(staker.publicKey, 100 * n);
  await opened.close();
  await flipSignatureBit(ledgerDir, DAMAGED);
  return dataDir;
}

Deno.test("ledger repair that would cut whole entries signed by the node refuses without --force, changing nothing, and says per account what they carry", async () => {
  const owner = Identity.generate();
  const staker = Identity.generate();
  const dataDir = await damagedNode(owner, staker);
  const log = join(dataDir, "ledger", LOG_FILE);
  try {
    const before = await Deno.readFile(log);
    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.err, /error \[ledger_repair_cuts_signed\]: .*2 whole entries signed/);
    const key = toHex(staker.publicKey);
    // Entries 4 and 5 (400 + 500) are signed; entry 3 (300) is the damaged one, shown apart.
    assert.match(refused.err, new RegExp(`cut: account ${key}: stake 1200 → 300 \\(-900\\)`));
    assert.match(refused.err, /cut too: 1 entries that do not verify/);
    assert.match(refused.err, new RegExp(`cut too: account ${key}: stake 1500 → 1200 \\(-300\\)`));
    assert.match(refused.err, /ledger repair --force --data/);
    assert.deepEqual(await Deno.readFile(log), before, "nothing was changed");

    const forced = await ledger("repair", "--force", "--data", dataDir);
    assert.equal(forced.code, 0, forced.err);
    assert.match(forced.out, /set aside \d+ bytes after entry 2/);
    assert.match(forced.out, new RegExp(`cut: account ${key}: stake 1200 → 300 \\(-900\\)`));
    // The run is the repair: its `before:` lines do not advise running it.
    assert.doesNotMatch(forced.out, /run: deno run -A cli.ts ledger repair/);
    const reopened = await Ledger.open(join(dataDir, "ledger"), owner);
    try {
      assert.equal(reopened.account(staker.publicKey).stake, 300);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger verify, repair and the ledger's open all name another identity's ledger as such: nothing to repair, no repair advised", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  const owner = Identity.generate();
  const other = Identity.generate();
  try {
    await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
    const ledgerDir = join(dataDir, "ledger");
    // This node's ledger with a signed checkpoint, then another node's log in its place.
    const own = await Ledger.open(ledgerDir, owner);
    await own.deposit(other.publicKey, 5);
    await own.checkpoint();
    await own.close();
    const otherDir = join(dataDir, "other");
    const theirs = await Ledger.open(otherDir, other, { checkpointEvery: 0 });
    await theirs.deposit(owner.publicKey, 7);
    await theirs.close();
    await Deno.copyFile(join(otherDir, LOG_FILE), join(ledgerDir, LOG_FILE));

    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /\[ledger_owner_mismatch\]/);
    assert.match(verified.out, /nothing to repair/);
    assert.doesNotMatch(verified.out, /ledger repair --data/);

    const repaired = await ledger("repair", "--data", dataDir);
    assert.equal(repaired.code, 1);
    assert.match(repaired.err, /error \[ledger_owner_mismatch\]: .*nothing to repair/);

    // What `start` opens: named as another identity's, not as tampering with a repair advised.
    const opened = await Ledger.open(ledgerDir, owner).then(() => null, (e) => e);
    assert.equal((opened as { code?: string })?.code, "ledger_owner_mismatch", String(opened));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
