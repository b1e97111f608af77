/**
 * The ledger keeps every signed pledge it recorded, whole, so a node can pass them on to peers
 * that join later; they survive a restart from a checkpoint, from genesis, and from a checkpoint
 * written before pledges were kept in it.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge, verifyStakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger } from "../../proof/ledger.ts";
import {
  type LedgerCheckpoint,
  readCheckpoint,
  signCheckpoint,
  writeCheckpoint,
} from "../../proof/ledger_checkpoint.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { copyDir, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const pledgers = [Identity.generate(), Identity.generate(), Identity.generate()];
const pledges = pledgers.map((p, i) => signStakePledge(p, 1_000 * (i + 1), 10 + i));

Deno.test("a ledger lists every signed pledge it recorded, once per key, and not deposits", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    try {
      await ledger.deposit(Identity.generate().publicKey, 500);
      for (const pledge of pledges) assert.equal(await ledger.recordPledge(pledge), true);
      // The same pledge again is not recorded, so not listed twice either (a second, different
      // pledge convicts its key: `ledger_pledge_equivocation_test.ts`).
      assert.equal(await ledger.recordPledge(pledges[0]), false);
      const listed = ledger.pledges();
      assert.deepEqual(listed, pledges);
      assert.ok(listed.every(verifyStakePledge), "each one still verifies under its own key");
    } finally {
      await ledger.close();
    }
  }));

Deno.test("a ledger's pledges survive a restart: from its checkpoint and the entries after it, or from genesis", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 2 });
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    // A kill -9 now: the last pledge is after the last checkpoint.
    const asIs = await copyDir(dir);
    const noCheckpoint = await copyDir(dir);
    await Deno.remove(`${noCheckpoint}/checkpoint.cbor`);
    await ledger.close();
    try {
      for (const image of [asIs, noCheckpoint]) {
        const reopened = await Ledger.open(image, owner, { checkpointEvery: 2 });
        try {
          assert.deepEqual(reopened.pledges(), pledges);
        } finally {
          await reopened.close();
        }
      }
    } finally {
      await Deno.remove(asIs, { recursive: true });
      await Deno.remove(noCheckpoint, { recursive: true });
    }
  }));

Deno.test("a checkpoint written before pledges were kept in it: the ledger replays from genesis and keeps them", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    await ledger.close(); // writes a checkpoint covering every pledge
    // The same checkpoint as an older node signed it: a state without pledges.
    const current = await readCheckpoint(dir) as LedgerCheckpoint;
    const { pledges: _kept, ...olderState } = current.state;
    assert.ok(_kept !== undefined && _kept.length === pledges.length);
    const { v: _v, signer: _signer, sig: _sig, ...unsigned } = current;
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: olderState }, owner));

    const reopened = await Ledger.open(dir, owner);
    try {
      assert.deepEqual(reopened.pledges(), pledges);
      assert.equal(reopened.account(pledgers[2].publicKey).stake, 3_000);
    } finally {
      await reopened.close();
    }
    const rewritten = await readCheckpoint(dir) as LedgerCheckpoint;
    assert.equal(rewritten.state.pledges?.length, pledges.length, "the next checkpoint has them");
  }));

Deno.test("ledger verify: a checkpoint written before pledges were kept still matches its log", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    for (const pledge of pledges) await ledger.recordPledge(pledge);
    await ledger.close();
    assert.equal((await verifyLedger(dir)).checkpoint.check, "matches");
    const current = await readCheckpoint(dir) as LedgerCheckpoint;
    const { pledges: _kept, ...olderState } = current.state;
    const { v: _v, signer: _signer, sig: _sig, ...unsigned } = current;
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: olderState }, owner));
    const report = await verifyLedger(dir);
    assert.equal(report.checkpoint.check, "matches");
    assert.equal(report.ok, true);
    // Any other difference is still found.
    const forged = { ...olderState, accounts: [] };
    await writeCheckpoint(dir, signCheckpoint({ ...unsigned, state: forged }, owner));
    assert.equal((await verifyLedger(dir)).checkpoint.check, "does_not_match");
  }));
