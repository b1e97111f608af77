/**
 * The node's start error and `ledger verify` sent the operator to a `ledger repair` that then
 * refused (review s75 F6): where acknowledged entries are lost — whole signed entries after the
 * damage, or a signed checkpoint beyond the log — both now say that repair refuses without
 * --force, and what --force costs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger, nodeDir } from "./_ledger_cli.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";
import { flipSignatureBit } from "../proof/_vouched_damage.ts";

const owner = Identity.generate();

/** What opening the ledger of `dataDir` (as `start` does) fails with. */
async function openError(dataDir: string): Promise<string> {
  const failed = await Ledger.open(join(dataDir, "ledger"), owner).then(() => null, (e) => e);
  assert.ok(failed instanceof Error, `the open answered ${failed}`);
  return failed.message;
}

Deno.test("whole signed entries after the damage: the open's error and ledger verify say repair refuses them without --force, and what --force costs", async () => {
  const dataDir = await nodeDir(owner, async (l) => {
    for (let i = 0; i < 4; i++) await l.deposit(owner.publicKey, 10);
  });
  try {
    await flipSignatureBit(join(dataDir, "ledger"), 2);
    const error = await openError(dataDir);
    assert.match(error, /ledger_repair_cuts_signed\) until it is run with --force/);
    assert.match(error, /no longer counts them .*nothing reads back/);
    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(
      verified.out,
      /would be lost \(the 2 whole entries after the damage\).*unless --force/,
    );
    assert.match(verified.out, /nothing reads them back/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a log cut short under its signed checkpoint: the open's error and ledger verify say repair refuses without --force", async () => {
  const dataDir = await nodeDir(owner, async (l) => {
    for (let i = 0; i < 4; i++) await l.deposit(owner.publicKey, 10);
    await l.checkpoint();
  });
  try {
    const path = join(dataDir, "ledger", LOG_FILE);
    const log = await Deno.readFile(path);
    await Deno.writeFile(path, log.subarray(0, frameOffsets(log)[3]));
    const error = await openError(dataDir);
    assert.match(error, /what the signed checkpoint records .*until it is run with --force/);
    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /the entries the signed checkpoint at entry 5 covers beyond them/);
    assert.match(verified.out, /unless --force/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an intact ledger gets no refusal line from ledger verify", async () => {
  const dataDir = await nodeDir(owner, (l) => l.deposit(owner.publicKey, 10));
  try {
    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 0, verified.out);
    assert.doesNotMatch(verified.out, /--force/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
