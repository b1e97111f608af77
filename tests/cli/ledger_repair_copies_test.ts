/**
 * Bytes of kept entries written again after them (a block written twice, a `cat` of a copy onto
 * the log: review s75 F3) are copies, not lost value: repair used to count them as signed
 * entries, say the cut cost their stake, and refuse without --force.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger, nodeDir } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";

/** Deposits of 10 to the node's own account after genesis: entries 1 to this. */
const DEPOSITS = 5;
/** The last entries whose bytes are written again at the end. */
const COPIED = 2;

Deno.test("ledger repair counts copies of kept entries after them as copies: nothing lost, no refusal without --force", async () => {
  const owner = Identity.generate();
  const dataDir = await nodeDir(owner, async (l) => {
    for (let i = 0; i < DEPOSITS; i++) await l.deposit(owner.publicKey, 10);
  });
  const path = join(dataDir, "ledger", LOG_FILE);
  try {
    const log = await Deno.readFile(path);
    const copy = log.subarray(frameOffsets(log)[DEPOSITS + 1 - COPIED]);
    await Deno.writeFile(path, copy, { append: true });

    const repaired = await ledger("repair", "--data", dataDir);
    assert.equal(repaired.code, 0, repaired.err);
    assert.match(repaired.out, /cut: no whole entry signed by this node/);
    assert.match(repaired.out, /cut: 2 copies of entries the ledger keeps .*loses nothing/);
    assert.doesNotMatch(repaired.out, /cut: account/);
    assert.deepEqual(await Deno.readFile(path), log);
    const reopened = await Ledger.open(join(dataDir, "ledger"), owner);
    try {
      assert.equal(reopened.length, DEPOSITS + 1);
      assert.equal(reopened.account(owner.publicKey).stake, 10 * DEPOSITS);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
