/**
 * Peers' "proof withheld" claims cost their authors nothing (stake is self-pledged), and each
 * one taken over costs this ledger a proof fetch and a full validation, and the worker a proof
 * served. So takeovers run within a budget of their own (`actors/_takeover_budget.ts`), never at
 * the worker's expense, and a claimant found false here loses its claims' weight for a window.
 * Asserted on the ledger: statuses, balances and stake after the window.
 *
 * It used to take over every claim: one key claiming every receipt turned a ledger's challenge
 * rate from 0.1 into 1.0, and once the takeovers filled the worker's 16 open challenges, the
 * honest worker's next receipts were refused (`validator_busy`), so never paid there.
 *
 * The validator's own coin never fires here (p = 0): only peers' claims make it ask, and the
 * budget is its burst alone.
 */
import assert from "node:assert/strict";
import type { Identity } from "../../protocols/identity.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { MAX_OPEN_TAKEOVERS_PER_CLAIMANT, TAKEOVER_BURST } from "../../actors/_takeover_budget.ts";
import { type Proved, STAKE, startValidator } from "./_peer_verdict_fixture.ts";

type Validator = Awaited<ReturnType<typeof startValidator>>;

/** `worker`'s receipts, announced; their proof data held back until the returned `serve()`. */
async function heldBack(t: Validator, worker: Identity, count: number) {
  const gate = Promise.withResolvers<void>();
  const receipts: Proved[] = [];
  for (let i = 0; i < count; i++) {
    const proved = await t.prove(worker);
    const served = t.served.get(proved.id) as ServedProof;
    t.served.set(proved.id, gate.promise.then(() => served));
    receipts.push(proved);
  }
  return { receipts, serve: () => gate.resolve() };
}

/** Every receipt final, and the worker paid for each with its stake whole. */
async function allPaid(t: Validator, worker: Identity, receipts: Proved[]): Promise<void> {
  let credit = 0;
  for (const { id } of receipts) {
    const record = (await t.record(id))!;
    assert.equal(record.status, "final", `receipt ${id.slice(0, 8)} is paid`);
    credit += record.credit;
  }
  assert.ok(credit > 0);
  assert.deepEqual(await t.account(worker.publicKey), { balance: credit, stake: STAKE, locked: 0 });
}

Deno.test("N claimants' false withheld claims on every receipt of an honest worker: validations stay within the takeover budget, none of its receipts is refused, all are paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimants = await Promise.all(Array.from({ length: 6 }, () => t.staked()));
    // More receipts than the worker's 16 open challenges: the proofs come slowly (the worker is
    // loaded), so every takeover is still open when the next receipt arrives.
    const { receipts, serve } = await heldBack(t, worker, 24);
    for (const proved of receipts) {
      const handled = await t.announce(proved);
      assert.equal(handled.refusal, undefined);
      assert.equal(handled.recorded, true, "the honest worker's receipt is recorded");
      for (const claimant of claimants) await t.claimWithheld(proved, claimant);
    }
    const during = await t.stats();
    assert.equal(
      during.challenged,
      TAKEOVER_BURST,
      "takeovers within the budget (p = 0: the burst)",
    );
    assert.equal(during.refused, 0);
    serve();
    await t.drained();
    assert.equal(t.fetches(), TAKEOVER_BURST, "the worker served its proof that many times");
    assert.equal((await t.stats()).verdicts.valid, TAKEOVER_BURST);
    await t.closeWindow();
    await allPaid(t, worker, receipts);
    // The claims cost their authors nothing here (none can be proven false to a third party).
    for (const claimant of claimants) {
      assert.equal((await t.account(claimant.publicKey)).stake, STAKE);
    }
  } finally {
    await t.close();
  }
});

Deno.test("one key claiming every receipt holds a share of the budget: an honest claim about a worker that withholds is still taken over and slashed, and the false claimant is benched", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const withholder = await t.staked();
    const sybil = await t.staked();
    const honest = await t.staked();
    const { receipts, serve } = await heldBack(t, worker, 20);
    for (const proved of receipts) {
      assert.equal((await t.announce(proved)).recorded, true);
      await t.claimWithheld(proved, sybil);
    }
    assert.equal((await t.stats()).challenged, MAX_OPEN_TAKEOVERS_PER_CLAIMANT);
    // A worker that really withholds its proof data, from the honest claimant and from here.
    const withheld = await t.prove(withholder);
    t.served.delete(withheld.id);
    await t.announce(withheld);
    await t.claimWithheld(withheld, honest);
    serve();
    await t.drained();
    assert.equal((await t.record(withheld.id))!.status, "fraud", "taken over and slashed");
    // The false claimant was found false here (the worker served): its next claims open
    // nothing, though budget is left; another claimant's still does.
    const later = await t.prove(worker);
    await t.announce(later);
    const before = (await t.stats()).challenged;
    await t.claimWithheld(later, sybil);
    assert.equal((await t.stats()).challenged, before, "the false claimant is benched");
    await t.claimWithheld(later, honest);
    assert.equal((await t.stats()).challenged, before + 1);
    await t.drained();
    // A window later its claims count again (on receipts recorded since).
    await t.closeWindow();
    const next = await t.prove(worker);
    await t.announce(next);
    await t.claimWithheld(next, sybil);
    assert.equal((await t.stats()).challenged, before + 2, "the bench lasts one window");
    await t.drained();
    await t.closeWindow();
    await allPaid(t, worker, [...receipts, later, next]);
    const slashed = await t.account(withholder.publicKey);
    assert.equal(slashed.balance, 0);
    assert.ok(slashed.stake < STAKE, "the withholder is slashed");
  } finally {
    await t.close();
  }
});

Deno.test("a takeover undecided here (this validator's own failure) leaves the work paid: a claim never costs an honest worker its pay", async () => {
  const t = await startValidator({ p: 0, model: "throws" });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const proved = await t.prove(worker);
    await t.announce(proved);
    await t.claimWithheld(proved, claimant);
    await t.drained();
    const stats = await t.stats();
    assert.equal(stats.challenged, 1);
    assert.equal(stats.verdicts.inconclusive, 1, "signed inconclusive / validator_error");
    assert.equal(
      (await t.record(proved.id))!.status,
      "pending",
      "cleared: the claim proves nothing",
    );
    await t.closeWindow();
    await allPaid(t, worker, [proved]);
  } finally {
    await t.close();
  }
});
