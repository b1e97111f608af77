/**
 * A signed checkpoint that the kept log goes past but does not match (review s75 G1): the log
 * was rolled back under it, then went on with other entries, past the checkpoint's place. What
 * the checkpoint records is compared with the kept log at the checkpoint's place, not at its
 * end (the entries after the checkpoint were reported as a loss, a gain even), and the hints do
 * not promise a cut nor "the entries before it" when repair keeps them all.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger, nodeDir } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { LedgerTamperedError } from "../../proof/ledger_errors.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";

/** Deposits of {@link OLD_AMOUNT} to the node's own account: entries 1 to 6, checkpoint at 7. */
const DEPOSITS = 6;
const OLD_AMOUNT = 10;
/** Entries the rollback keeps: genesis and 4 deposits. */
const KEPT = 5;
/** Deposits of {@link NEW_AMOUNT} appended after the rollback: entries 5 to 8, past entry 7. */
const NEW_DEPOSITS = 4;
const NEW_AMOUNT = 25;

Deno.test("a signed checkpoint the kept log goes past but does not match is compared with the kept log at the checkpoint's place, and the hints keep every entry", async () => {
  const owner = Identity.generate();
  const own = toHex(owner.publicKey);
  const dataDir = await nodeDir(owner, async (l) => {
    for (let i = 0; i < DEPOSITS; i++) await l.deposit(owner.publicKey, OLD_AMOUNT);
    await l.checkpoint();
  });
  const dir = join(dataDir, "ledger");
  try {
    const checkpoint = await Deno.readFile(join(dir, CHECKPOINT_FILE));
    const whole = await Deno.readFile(join(dir, LOG_FILE));
    await Deno.writeFile(join(dir, LOG_FILE), whole.subarray(0, frameOffsets(whole)[KEPT]));
    await Deno.remove(join(dir, CHECKPOINT_FILE));
    const again = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    for (let i = 0; i < NEW_DEPOSITS; i++) await again.deposit(owner.publicKey, NEW_AMOUNT);
    await again.close();
    // The old checkpoint placed back: it covers 7 entries; the log holds 9.
    await Deno.writeFile(join(dir, CHECKPOINT_FILE), checkpoint);
    const entries = KEPT + NEW_DEPOSITS;

    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /checkpoint at entry 7: does not match/);
    assert.match(
      verified.out,
      new RegExp(`to keep all ${entries} entries \\(they verify; nothing`),
    );
    assert.doesNotMatch(verified.out, /set the rest aside|beyond them/);
    assert.match(verified.out, /differs from the kept log's first 7 entries/);

    await assert.rejects(Ledger.open(dir, owner), (error) => {
      assert.ok(error instanceof LedgerTamperedError);
      assert.match(error.message, /the log goes on past the checkpoint's place/);
      assert.match(error.message, /past the checkpoint's place too/);
      assert.doesNotMatch(error.message, /keeps the 6 entries before it/);
      return true;
    });

    // At entry 7 the checkpoint says 6 × 10; the kept log 4 × 10 + 2 × 25 (its end: 4 × 25 more).
    const atCheckpoint = (KEPT - 1) * OLD_AMOUNT + (DEPOSITS + 1 - KEPT) * NEW_AMOUNT;
    const recorded = DEPOSITS * OLD_AMOUNT;
    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.err, /error \[ledger_repair_cuts_signed\]/);
    assert.match(refused.err, /the kept log's first 7 entries/);
    assert.match(
      refused.err,
      new RegExp(
        `lost: account ${own} \\(this node\\): stake ${recorded} → ${atCheckpoint} ` +
          `\\(\\+${atCheckpoint - recorded}\\)`,
      ),
    );
    assert.doesNotMatch(refused.err, /no longer holds/);

    const json = await ledger("repair", "--json", "--data", dataDir);
    const answer = JSON.parse(json.out);
    assert.equal(answer.cut.checkpoint.check, "does_not_match");
    assert.equal(answer.cut.checkpoint.comparedAt, 7);
    assert.equal(answer.cut.checkpoint.accounts[0].after.stake, atCheckpoint);
    assert.equal(answer.kept, entries);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
