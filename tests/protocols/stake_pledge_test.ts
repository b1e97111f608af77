import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge, verifyStakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger } from "../../proof/ledger.ts";

Deno.test("a stake pledge verifies under its own key and not after any change", () => {
  const worker = Identity.generate();
  const pledge = signStakePledge(worker, 5000, 1_700_000_000_000);
  assert.equal(verifyStakePledge(pledge), true);
  assert.equal(verifyStakePledge({ ...pledge, amount: 50_000 }), false);
  assert.equal(verifyStakePledge({ ...pledge, key: Identity.generate().publicKey }), false);
  assert.equal(verifyStakePledge({ ...pledge, amount: -1 }), false);
});

Deno.test("a ledger records a key's pledge once: a second, different pledge cannot refill a stake, it convicts the key and forfeits it", async () => {
  const dir = await Deno.makeTempDir();
  const owner = Identity.generate();
  const worker = Identity.generate();
  const ledger = await Ledger.open(dir, owner);
  try {
    assert.equal(ledger.hasStaked(worker.publicKey), false);
    assert.equal(await ledger.recordPledge(signStakePledge(worker, 5000, 1)), true);
    assert.equal(ledger.account(worker.publicKey).stake, 5000);
    // The same pledge again changes nothing.
    assert.equal(await ledger.recordPledge(signStakePledge(worker, 5000, 1)), false);
    assert.equal(ledger.account(worker.publicKey).stake, 5000);
    // Another is a proof of pledge equivocation: recorded, and the key's stake forfeited.
    assert.equal(await ledger.recordPledge(signStakePledge(worker, 9000, 2)), true);
    assert.equal(ledger.account(worker.publicKey).stake, 0);
    const forged = { ...signStakePledge(worker, 1, 3), amount: 7 };
    await assert.rejects(() => ledger.recordPledge(forged), { code: "pledge_rejected" });
  } finally {
    await ledger.close();
  }
  // The conviction survives a reopen: a third pledge adds nothing.
  const reopened = await Ledger.open(dir, owner);
  try {
    assert.equal(reopened.hasStaked(worker.publicKey), true);
    assert.equal(await reopened.recordPledge(signStakePledge(worker, 9000, 4)), false);
    assert.equal(reopened.account(worker.publicKey).stake, 0);
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});
