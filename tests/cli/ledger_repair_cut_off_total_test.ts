/**
 * Damage under a signed checkpoint that cannot vouch past it (`cut_off_by_damage`, review s75
 * G2): the entries after the damage were reported twice, as signed entries cut and as entries
 * the checkpoint records that "the log no longer holds", so the sections added up to more than
 * the loss. The checkpoint's difference is now the total and the cut entries its parts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { LedgerCutAccount } from "../../proof/ledger_repair.ts";
import { checkpointedLedger, flipSignatureBit, VOUCHED_STAKE } from "../proof/_vouched_damage.ts";

/** Two damaged entries under the checkpoint at 13: the second keeps it from vouching past. */
const FIRST_DAMAGE = 5;
const SECOND_DAMAGE = 9;

/** The stake change of `key` over `accounts` (0 when it is not listed). */
function stakeDelta(accounts: LedgerCutAccount[], key: string): number {
  const account = accounts.find((a) => a.key === key);
  return account === undefined ? 0 : account.after.stake - account.before.stake;
}

Deno.test("damage under a checkpoint it cuts off: ledger repair reports the checkpoint's difference as the total and the cut entries as its parts, adding up to the real loss", async () => {
  const owner = Identity.generate();
  const staker = Identity.generate();
  const key = toHex(staker.publicKey);
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  const dir = join(dataDir, "ledger");
  try {
    await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
    await checkpointedLedger(dir, owner, staker);
    await flipSignatureBit(dir, FIRST_DAMAGE);
    await flipSignatureBit(dir, SECOND_DAMAGE);
    // Deposits 1 … 4 are kept.
    const keptStake = (FIRST_DAMAGE - 1) * FIRST_DAMAGE / 2;

    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    assert.match(
      refused.err,
      /covers 8 entries from the damage on, cut by this repair \(6 of them/,
    );
    assert.doesNotMatch(refused.err, /no longer holds/);
    assert.match(
      refused.err,
      new RegExp(`lost: account ${key}: stake ${VOUCHED_STAKE} → ${keptStake} `),
    );
    assert.match(refused.err, /cut \(part of the loss above\): 6 whole entries signed/);
    assert.match(refused.err, /cut too \(part of the loss above\): 2 entries that do not verify/);

    const json = JSON.parse((await ledger("repair", "--json", "--data", dataDir)).out);
    const cut = json.cut;
    assert.equal(cut.checkpoint.check, "cut_off_by_damage");
    const total = stakeDelta(cut.checkpoint.accounts, key);
    const parts = stakeDelta(cut.accounts, key) + stakeDelta(cut.unverifiedAccounts, key);

    const forced = await ledger("repair", "--force", "--data", dataDir);
    assert.equal(forced.code, 0, forced.err);
    const reopened = await Ledger.open(dir, owner);
    try {
      const realLoss = reopened.account(staker.publicKey).stake - VOUCHED_STAKE;
      assert.equal(reopened.account(staker.publicKey).stake, keptStake);
      assert.equal(total, realLoss, "the checkpoint's difference is the whole loss");
      assert.equal(parts, realLoss, "its parts add up to it, not to more");
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
