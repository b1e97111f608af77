/**
 * Damage under a signed checkpoint that vouches past it, and damage after the checkpoint too
 * (review s75 F2): the node refuses the ledger and told the operator that repair keeps the
 * entries before the later damage, but repair and repair --force both refused
 * (`ledger_damage_vouched`). Repair now cuts at the later damage, keeping the checkpoint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";
import {
  checkpointedLedger,
  flipSignatureBit,
  VOUCHED_DEPOSITS,
  VOUCHED_STAKE,
} from "../proof/_vouched_damage.ts";

/** Deposits of {@link LATE_AMOUNT} after the checkpoint: entries 13, 14, 15. */
const LATE_DEPOSITS = 3;
const LATE_AMOUNT = 100;
/** The damaged entry under the checkpoint, and the one after it. */
const EARLY_DAMAGE = 5;
const LATE_DAMAGE = VOUCHED_DEPOSITS + 2;

Deno.test("damage under a vouching checkpoint and after it: ledger repair cuts at the later damage, keeping the checkpoint and every entry before it; signed entries after it only with --force", async () => {
  const owner = Identity.generate();
  const staker = Identity.generate();
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  const dir = join(dataDir, "ledger");
  try {
    await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
    await checkpointedLedger(dir, owner, staker);
    const late = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    for (let i = 0; i < LATE_DEPOSITS; i++) await late.deposit(staker.publicKey, LATE_AMOUNT);
    await late.close();
    await flipSignatureBit(dir, EARLY_DAMAGE);
    await flipSignatureBit(dir, LATE_DAMAGE);
    const log = await Deno.readFile(join(dir, LOG_FILE));
    const cutAt = frameOffsets(log)[LATE_DAMAGE];

    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /to keep the 14 entries before entry 14 \(the checkpoint/);
    assert.match(verified.out, new RegExp(`set the bytes from byte ${cutAt} aside`));

    // Entry 15 after the later damage is whole and signed: refused without --force.
    const keptStake = VOUCHED_STAKE + LATE_AMOUNT;
    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.err, /error \[ledger_repair_cuts_signed\]: .*with the 14 entries/);
    assert.match(
      refused.err,
      new RegExp(
        `cut: account ${toHex(staker.publicKey)}: stake ${keptStake + LATE_AMOUNT} → ` +
          `${keptStake} \\(-${LATE_AMOUNT}\\)`,
      ),
    );
    assert.deepEqual(await Deno.readFile(join(dir, LOG_FILE)), log, "nothing was changed");

    const forced = await ledger("repair", "--force", "--data", dataDir);
    assert.equal(forced.code, 0, forced.err);
    // The damage under the checkpoint stays (review s75 G3): not "all verified", and verify
    // goes on reporting it, as the repair says.
    assert.doesNotMatch(forced.out, /all verified/);
    assert.match(
      forced.out,
      new RegExp(
        `repaired: ${LATE_DAMAGE} entries kept; .*entry ${EARLY_DAMAGE} stays damaged under the ` +
          `signed checkpoint, now at entry ${LATE_DAMAGE}, which vouches for it: ledger ` +
          `verify will keep reporting it \\("matches past damage", exit 1\\)`,
      ),
    );
    const after = await ledger("verify", "--data", dataDir);
    assert.equal(after.code, 1);
    assert.match(after.out, /matches past damage/);
    assert.deepEqual(await Deno.readFile(join(dir, LOG_FILE)), log.subarray(0, cutAt));
    const moved = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(CHECKPOINT_FILE));
    assert.deepEqual(moved.map((e) => e.name), [CHECKPOINT_FILE], "the checkpoint was kept");
    const reopened = await Ledger.open(dir, owner);
    try {
      assert.equal(reopened.length, LATE_DAMAGE);
      assert.equal(reopened.account(staker.publicKey).stake, keptStake);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
