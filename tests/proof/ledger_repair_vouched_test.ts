/**
 * Damage inside what a signed checkpoint covers (review s72, finding 1): one flipped byte in entry
 * k cost every entry after it at `ledger repair` (82 entries cut to 10, locked stake 12800 to
 * 1280) though the checkpoint, signed by the owner and matching the log, covered them, and
 * `ledger verify` called that checkpoint "beyond log" while it sat at the log's very end. Now
 * verify says the checkpoint vouches past the damage and repair cuts nothing; damage the entries
 * after it do not link past is still cut as before, and named for what it is; damage after the
 * checkpoint as well is cut there, and only there (review s75 F2).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { LedgerError } from "../../proof/ledger_errors.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import {
  checkpointedLedger as checkpointedLedgerOf,
  flipSignatureBit,
  VOUCHED_DEPOSITS,
  VOUCHED_STAKE,
} from "./_vouched_damage.ts";

const owner = Identity.generate();
const staker = Identity.generate();
const DEPOSITS = VOUCHED_DEPOSITS;
const STAKED = VOUCHED_STAKE;
const checkpointedLedger = (dir: string) => checkpointedLedgerOf(dir, owner, staker);

/** The bytes of every file of the ledger in `dir`, by name. */
async function files(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const name of [LOG_FILE, CHECKPOINT_FILE, INDEX_FILE]) {
    out[name] = await Deno.readFile(join(dir, name));
  }
  return out;
}

Deno.test("a flipped bit in an entry a signed checkpoint vouches past: verify says the checkpoint matches past the damage (not beyond the log) and names the entry; repair refuses ledger_damage_vouched and changes no file; the ledger opens with every entry and all its stake", () =>
  withLedgerDir(async (dir) => {
    await checkpointedLedger(dir);
    await flipSignatureBit(dir, 5);

    const found = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(found.ok, false);
    assert.equal(found.damage?.seq, 5);
    assert.deepEqual(found.checkpoint, { seq: DEPOSITS + 1, check: "matches_past_damage" });
    assert.equal(found.vouched?.from, 5);
    assert.equal(found.vouched?.to, 6);
    assert.equal(found.vouched?.laterDamage, undefined);
    assert.match(found.damage!.reason, /checkpoint at entry 13 vouches past it/);

    const before = await files(dir);
    const refused = await repairLedger(dir, owner).then(() => null, (e) => e);
    assert.ok(refused instanceof LedgerError, `repair answered ${refused}`);
    assert.equal(refused.code, "ledger_damage_vouched");
    assert.equal((refused as LedgerError & { seq: number }).seq, 5);
    assert.match(refused.message, /entry 5 \(bytes \d+ to \d+ of ledger\.log\) is damaged/);
    assert.match(refused.message, /state \(balances, stakes, open receipts\) is intact/);
    assert.deepEqual(await files(dir), before, "repair changed a file");
    const rest = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.includes(".rejected")
    );
    assert.deepEqual(rest, [], "repair set bytes aside");

    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    assert.equal(ledger.length, DEPOSITS + 1);
    assert.equal(ledger.account(staker.publicKey).stake, STAKED);
    await ledger.close();
  }));

Deno.test("damage before a checkpoint that the entries after it do not link to: verify says the checkpoint is cut off by the damage (its bytes are in the log, not beyond it), and repair cuts at the damage as before", () =>
  withLedgerDir(async (dir) => {
    await checkpointedLedger(dir);
    await flipSignatureBit(dir, 5);
    await flipSignatureBit(dir, 9); // the entries after the first damage no longer reach it

    const found = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(found.damage?.seq, 5);
    assert.deepEqual(found.checkpoint, { seq: DEPOSITS + 1, check: "cut_off_by_damage" });
    assert.equal(found.vouched, undefined);

    const repaired = await repairLedger(dir, owner);
    assert.equal(repaired.kept, 5);
    assert.equal(repaired.checkpointRemoved, true);
    assert.equal((await verifyLedger(dir)).ok, true);
  }));

Deno.test("damage past the checkpoint as well as inside it: repair cuts at the later damage only, keeping the checkpoint and every entry before it (review s75 F2)", () =>
  withLedgerDir(async (dir) => {
    await checkpointedLedger(dir);
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    for (let i = 0; i < 3; i++) await ledger.deposit(staker.publicKey, 1);
    await ledger.close();
    await flipSignatureBit(dir, 5);
    await flipSignatureBit(dir, DEPOSITS + 2);

    const found = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(found.checkpoint.check, "matches_past_damage");
    assert.equal(found.vouched?.laterDamage?.seq, DEPOSITS + 2);

    const before = await files(dir);
    const repaired = await repairLedger(dir, owner);
    assert.equal(repaired.kept, DEPOSITS + 2);
    assert.equal(repaired.checkpointRemoved, false);
    assert.equal(
      repaired.setAsideBytes,
      before[LOG_FILE].length - found.vouched!.laterDamage!.offset,
    );
    assert.deepEqual(
      await Deno.readFile(join(dir, LOG_FILE)),
      before[LOG_FILE].subarray(0, found.vouched!.laterDamage!.offset),
    );
    const reopened = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    assert.equal(reopened.length, DEPOSITS + 2);
    assert.equal(reopened.account(staker.publicKey).stake, STAKED + 1);
    await reopened.close();
  }));
