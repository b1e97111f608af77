/**
 * Peers' verdicts about one receipt from keys with no settled work in this ledger are bounded
 * (`actors/_peer_verdicts.ts`, `MAX_UNPROVEN_VERDICTS_PER_RECEIPT`).
 *
 * Review s71 (finding 2): a key with stake costs a self-pledge, a pledge costs a fresh key, and
 * every staked key's first verdict about a receipt was recorded for good: one host put 1,024
 * padded "proof withheld" claims about one honest receipt in a ledger's append-only log (8.4 MB
 * in 7 s). Here: past the bound, such claims are refused (not recorded, not passed on, no second
 * takeover), a claimant with settled work here is still heard, and the honest worker's outcome is
 * the same with the flood as with one claim.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_UNPROVEN_VERDICTS_PER_RECEIPT } from "../../actors/_peer_verdicts.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { startValidator } from "./_peer_verdict_fixture.ts";

/** Claimants beyond the bound in the flood. */
const FLOOD = 40;
/** Padding of each flooding claim's details: what a claim costs the log (within the schema). */
const PAD = "x".repeat(900);

interface Outcome {
  record: ReceiptRecord | undefined;
  account: Account;
  peerVerdicts: number;
  refusedVerdicts: number;
  published: number;
  fetches: number;
  logGrowth: number;
  /** Whether the claim of a claimant with settled work here, sent last, was recorded. */
  provenHeard: boolean;
}

/**
 * A validator (p = 0, with the model) records an honest worker's receipt, which it serves; then
 * `claims` freshly staked keys each claim it withheld its proof, then a key with settled work here
 * does; the window closes. What the ledger booked and what the claims cost it.
 */
async function run(claims: number): Promise<Outcome> {
  const t = await startValidator({ p: 0, model: true });
  try {
    // A key with settled work here: a worker whose receipt went final (a balance).
    const proven = await t.staked();
    const earlier = await t.prove(proven);
    assert.equal((await t.announce(earlier)).recorded, true);
    await t.closeWindow();
    assert.ok((await t.account(proven.publicKey)).balance > 0);

    const worker = await t.staked();
    const proved = await t.prove(worker);
    assert.equal((await t.announce(proved)).recorded, true);
    const before = await t.logBytes();
    for (let i = 0; i < claims; i++) {
      const sybil = await t.staked(); // stake, no settled work
      await t.tell(t.verdict(proved, sybil, "invalid", "proof_unavailable", { pad: PAD }));
    }
    const provenClaim = t.verdict(proved, proven, "invalid", "proof_unavailable");
    const provenHeard = (await t.tell(provenClaim)) !== undefined;
    await t.drained();
    const logGrowth = (await t.logBytes()) - before;
    const stats = await t.stats();
    await t.closeWindow();
    return {
      record: await t.record(proved.id),
      account: await t.account(worker.publicKey),
      peerVerdicts: stats.peerVerdicts,
      refusedVerdicts: stats.refusedVerdicts,
      // Peers' verdicts passed on (not this validator's own, from its takeover).
      published: t.published().filter((v) => !bytesEqual(v.validator, t.me.publicKey)).length,
      fetches: t.fetches(),
      logGrowth,
      provenHeard,
    };
  } finally {
    await t.close();
  }
}

Deno.test("red team s71: a flood of 'proof withheld' claims from freshly staked keys about one honest receipt is recorded only up to the bound; a claimant with settled work is still heard; the worker's outcome is the same as with one claim", async () => {
  const flood = await run(MAX_UNPROVEN_VERDICTS_PER_RECEIPT + FLOOD);
  const one = await run(1);

  // The flood: the bound's worth recorded and passed on, the rest refused; and the claim of a key
  // with settled work here, after all of them, recorded too.
  assert.equal(flood.provenHeard, true, "a claimant with settled work here is heard");
  assert.equal(flood.peerVerdicts, MAX_UNPROVEN_VERDICTS_PER_RECEIPT + 1);
  assert.equal(flood.refusedVerdicts, FLOOD);
  assert.equal(flood.published, MAX_UNPROVEN_VERDICTS_PER_RECEIPT + 1);
  assert.ok(
    flood.logGrowth < (MAX_UNPROVEN_VERDICTS_PER_RECEIPT + 1) * 2 * 1024 + 16 * 1024,
    `the log grew ${flood.logGrowth} bytes`,
  );
  // One takeover either way: the worker asked once, served, cleared.
  assert.equal(flood.fetches, 1);
  assert.equal(one.fetches, 1);

  // The honest worker's outcome: the same with the flood as with one claim.
  assert.equal(flood.record?.status, "final");
  assert.equal(flood.record?.status, one.record?.status);
  assert.deepEqual(flood.account, one.account);
  assert.ok(flood.account.balance > 0, "paid");
});
