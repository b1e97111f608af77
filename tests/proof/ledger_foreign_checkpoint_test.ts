/**
 * A checkpoint another key signed is not trusted at open (the log is checked from genesis), and
 * no longer silently (review s75): the open's log says it was ignored and where it lies, and
 * the file is left as it is.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";

Deno.test("an open that finds a checkpoint signed by another key logs that it was ignored and leaves the file where it is", async () => {
  const owner = Identity.generate();
  const other = Identity.generate();
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ledger-" });
  const otherDir = await Deno.makeTempDir({ prefix: "veriflow-ledger-" });
  try {
    const mine = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    await mine.deposit(owner.publicKey, 10);
    await mine.close();
    const theirs = await Ledger.open(otherDir, other, { checkpointEvery: 0 });
    await theirs.deposit(other.publicKey, 10);
    await theirs.checkpoint();
    await theirs.close();
    const foreign = await Deno.readFile(join(otherDir, CHECKPOINT_FILE));
    await Deno.writeFile(join(dir, CHECKPOINT_FILE), foreign);

    const lines: string[] = [];
    const reopened = await Ledger.open(dir, owner, { log: (line) => lines.push(line) });
    try {
      assert.equal(reopened.account(owner.publicKey).stake, 10);
      assert.deepEqual(await Deno.readFile(join(dir, CHECKPOINT_FILE)), foreign, "left as it is");
    } finally {
      await reopened.close();
    }
    const said = lines.find((line) => line.includes(CHECKPOINT_FILE));
    assert.ok(said, lines.join("\n"));
    assert.match(said, /is not signed by this node's key .*ignored and left where it is/);
    assert.ok(said.includes(join(dir, CHECKPOINT_FILE)), said);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(otherDir, { recursive: true });
  }
});
