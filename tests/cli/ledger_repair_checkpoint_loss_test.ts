/**
 * `cli.ts ledger repair` on a log rolled back under its signed checkpoint (review s75 F1): the
 * last entries are gone at a frame boundary, so no byte is cut, but the checkpoint proves they
 * were acknowledged. Repair used to drop them silently (exit 0, 50 stake gone) and delete the
 * checkpoint, the only record of the loss.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger, nodeDir } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";

/** Deposits of 10 to the node's own account after genesis: entries 1 to this. */
const DEPOSITS = 6;

/** Entries the rolled-back log keeps: genesis and the first deposits. */
const KEPT = 5;

Deno.test("ledger repair on a log cut short under its signed checkpoint says per account what the checkpoint records, refuses without --force, and with it moves the checkpoint aside instead of deleting it", async () => {
  const owner = Identity.generate();
  const own = toHex(owner.publicKey);
  const dataDir = await nodeDir(owner, async (l) => {
    for (let i = 0; i < DEPOSITS; i++) await l.deposit(owner.publicKey, 10);
    await l.checkpoint();
  });
  const dir = join(dataDir, "ledger");
  try {
    const whole = await Deno.readFile(join(dir, LOG_FILE));
    // Rolled back (an older copy restored) to the frame boundary before the last two entries.
    const rolledBack = whole.subarray(0, frameOffsets(whole)[KEPT]);
    await Deno.writeFile(join(dir, LOG_FILE), rolledBack);
    const checkpoint = await Deno.readFile(join(dir, CHECKPOINT_FILE));

    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    assert.match(
      refused.err,
      /error \[ledger_repair_cuts_signed\]: .*checkpoint signed by this node at entry 7 records 2 entries the log no longer holds/,
    );
    assert.match(
      refused.err,
      new RegExp(`lost: account ${own} \\(this node\\): stake 60 → 40 \\(-20\\)`),
    );
    assert.match(refused.err, /nothing reads them back/);
    assert.deepEqual(await Deno.readFile(join(dir, LOG_FILE)), rolledBack, "log changed");
    assert.deepEqual(await Deno.readFile(join(dir, CHECKPOINT_FILE)), checkpoint);

    const forced = await ledger("repair", "--force", "--data", dataDir);
    assert.equal(forced.code, 0, forced.err);
    const moved = /moved the checkpoint that did not match the log to (\S+)/.exec(forced.out);
    assert.ok(moved, forced.out);
    assert.match(moved[1], /checkpoint\.cbor\.rejected-/);
    assert.deepEqual(await Deno.readFile(moved[1]), checkpoint, "the old checkpoint, as it was");
    const reopened = await Ledger.open(dir, owner);
    try {
      assert.equal(reopened.length, KEPT);
      assert.equal(reopened.account(owner.publicKey).stake, 40);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
