/**
 * What `ledger repair` prints about a cut over many accounts (review s75 F4, F5, F7): totals, this
 * node's account and the {@link CUT_REPORT_ACCOUNTS} largest changes (a cut over 5,000 accounts
 * printed 5,007 lines and no total), whole keys tagged "(this node)" or "(not in the kept ledger)"
 * (16 hex digits made a damaged key look like this node's), what --force costs, and the full
 * list with --json (accepted and ignored before).
 */
import assert from "node:assert/strict";
import { ledger, nodeDir } from "./_ledger_cli.ts";
import { join } from "node:path";
import { CUT_REPORT_ACCOUNTS } from "../../cli/ledger_command.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { flipSignatureBit } from "../proof/_vouched_damage.ts";

/** Accounts deposited to after the node's own first deposit: entry 2 + i deposits 10 (i + 1). */
const ACCOUNTS = 15;
/** The entry whose signature is damaged: the first of those deposits. */
const DAMAGED = 2;
/** What the cut's last entries deposit: this node's account, then a key one bit from it. */
const OWN_LATE = 7;
const TWIN = 1000;

Deno.test("ledger repair over many accounts prints totals, this node's account and the largest changes with whole keys, what --force costs, and the whole list with --json", async () => {
  const owner = Identity.generate();
  const accounts = Array.from({ length: ACCOUNTS }, () => Identity.generate());
  // A damaged key: this node's with one bit flipped in its last byte.
  const twin = owner.publicKey.slice();
  twin[31] ^= 0x01;
  const dataDir = await nodeDir(owner, async (l) => {
    await l.deposit(owner.publicKey, 1);
    for (const [i, a] of accounts.entries()) await l.deposit(a.publicKey, 10 * (i + 1));
    await l.deposit(owner.publicKey, OWN_LATE);
    await l.deposit(twin, TWIN);
  });
  await flipSignatureBit(join(dataDir, "ledger"), DAMAGED);
  try {
    const refused = await ledger("repair", "--data", dataDir);
    assert.equal(refused.code, 1, refused.out);
    const lines = refused.err.split("\n");
    // Accounts 1 to 14 (10·2 + … + 10·15 = 1190), this node's 7 and the twin's 1000.
    const total = 1190 + OWN_LATE + TWIN;
    assert.ok(
      lines.includes(`cut: in all, ${ACCOUNTS + 1} accounts: stake -${total}`),
      refused.err,
    );
    const listed = lines.filter((l) => l.startsWith("cut: account "));
    assert.equal(listed.length, CUT_REPORT_ACCOUNTS, refused.err);
    const own = toHex(owner.publicKey);
    assert.equal(listed[0], `cut: account ${own} (this node): stake 8 → 1 (-${OWN_LATE})`);
    assert.equal(
      listed[1],
      `cut: account ${toHex(twin)} (not in the kept ledger): stake ${TWIN} → 0 (-${TWIN})`,
    );
    const largest = toHex(accounts[ACCOUNTS - 1].publicKey);
    assert.equal(
      listed[2],
      `cut: account ${largest} (not in the kept ledger): stake 150 → 0 (-150)`,
    );
    assert.ok(
      lines.includes(
        `cut: and ${ACCOUNTS + 1 - CUT_REPORT_ACCOUNTS} more accounts, none with a larger ` +
          `change (ledger repair --json lists them all)`,
      ),
      refused.err,
    );
    assert.match(refused.err, /With --force the ledger no longer counts what is listed above/);
    assert.match(refused.err, /for inspection only: nothing reads them back/);

    const json = await ledger("repair", "--json", "--data", dataDir);
    assert.equal(json.code, 1, json.err);
    const report = JSON.parse(json.out);
    assert.equal(report.error.code, "ledger_repair_cuts_signed");
    assert.equal(report.kept, DAMAGED);
    assert.equal(report.cut.signedEntries, ACCOUNTS + 1);
    assert.equal(report.cut.accounts.length, ACCOUNTS + 1);
    assert.ok(report.cut.accounts.every((a: { key: string }) => /^[0-9a-f]{64}$/.test(a.key)));

    const forced = await ledger("repair", "--json", "--force", "--data", dataDir);
    assert.equal(forced.code, 0, forced.err);
    const done = JSON.parse(forced.out);
    assert.equal(done.ok, true);
    assert.equal(done.kept, DAMAGED);
    assert.equal(done.length, DAMAGED);
    assert.match(done.setAsidePath, /ledger\.log\.rejected-/);
    assert.equal(done.cut.accounts.length, ACCOUNTS + 1);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger repair --json answers any refusal in JSON on stdout (ok false, the error's code)", async () => {
  const empty = await Deno.makeTempDir({ prefix: "veriflow-repair-" });
  try {
    const owner = Identity.generate();
    await Deno.writeFile(join(empty, "identity.key"), owner.exportSecretKey());
    const refused = await ledger("repair", "--json", "--data", empty);
    assert.equal(refused.code, 1, refused.err);
    assert.equal(refused.err, "");
    const answer = JSON.parse(refused.out);
    assert.equal(answer.ok, false);
    assert.equal(answer.error.code, "ledger_missing");
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
