/**
 * Review s58: a staked peer's "proof withheld" claim (`invalid / proof_unavailable`) is taken over
 * here only while this validator remembers the receipt and its job (`_validator_memory.ts`), so a
 * claim travels after its evidence (`ClaimEvidence`, review s57), and a copy of a receipt recorded
 * here, pending and forgotten, is remembered again. But a claim can reach a ledger first without
 * its evidence: passed on by a node where the receipt is settled or forgotten (it has nothing to
 * send ahead of it), or a fault a peer's start applied, sent in its catch-up (`_catch_up.ts`).
 * Recorded here without a takeover, a later copy of it with the evidence (or the evidence alone)
 * was the same verdict: not taken over again. The worker that withheld from everyone was paid in
 * that ledger, slashed in the claimant's.
 *
 * Now a claim recorded here while its receipt is forgotten (pending here, inside its window, never
 * challenged here) is held for its evidence with the other held claims (bounded, kept across a
 * stop), and taken over when a copy of the receipt is remembered again: within the same budget
 * and caps, once per receipt.
 *
 * Asserted on the ledger: statuses, balances and stake after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { floodReceipts, STAKE, startValidator } from "./_peer_verdict_fixture.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { Verdict } from "../../protocols/verdict.ts";

type Fixture = Awaited<ReturnType<typeof startValidator>>;

/** `claim` arrives from `via` (a node that passed it on), with nothing ahead of it. */
function relayed(t: Fixture, claim: Verdict, via: string = "cd".repeat(32)) {
  return t.validator.ask<string | undefined>({ type: "verdict", verdict: claim, origin: via });
}

Deno.test("a withheld claim that came first without its receipt (forgotten here), then the receipt: taken over, and the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await t.recordForgotten(worker, false, "s58");
    const claim = t.verdict(withheld, claimant, "invalid", "proof_unavailable");
    // First without its evidence (passed on by a node that had settled or forgotten it).
    assert.notEqual(await relayed(t, claim), undefined, "recorded");
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "forgotten here: nothing to take it over on");
    // More stake for the claimant meanwhile: the claims held for their author's stake are taken
    // again, not this one (recorded already: the verdict intake would drop it as known).
    await t.validator.ask({ type: "deposit", key: claimant.publicKey, amount: 1 });
    // Then the receipt and its job, and the same claim behind them (from its author).
    assert.equal((await t.resend(withheld, claimant)).recorded, true);
    await t.tell(claim);
    await t.drained();
    const { challenged } = await t.stats();
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    // The ledger first: who is paid.
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
    assert.equal(challenged, 1, "the claim was taken over once its receipt came");
    assert.equal(t.fetches(), 1, "this validator asked the worker itself, once");
    assert.equal((await t.account(claimant.publicKey)).stake, STAKE + 1, "the claim cost nothing");
  } finally {
    await t.close();
  }
});

Deno.test("an honest worker's forgotten receipt, claimed by two before it came back twice: taken over once, served, cleared and paid once", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const [first, second] = [await t.staked(), await t.staked()];
    const honest = await t.recordForgotten(worker, true, "s58");
    const credit = (await t.record(honest.id))!.credit;
    assert.ok(credit > 0);
    const claims = [first, second].map((by) =>
      t.verdict(honest, by, "invalid", "proof_unavailable")
    );
    for (const claim of claims) await relayed(t, claim);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0);
    await t.resend(honest, first);
    await t.resend(honest, second);
    for (const claim of claims) await t.tell(claim);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "taken over once");
    assert.equal(t.fetches(), 1);
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    assert.deepEqual(
      await t.account(worker.publicKey),
      { balance: credit, stake: STAKE, locked: 0 },
      "paid once, however many claims came first",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a claim recorded before its receipt was no longer pending is not taken over when a copy comes", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const honest = await t.recordForgotten(worker, false, "s58");
    const credit = (await t.record(honest.id))!.credit;
    await relayed(t, t.verdict(honest, claimant, "invalid", "proof_unavailable"));
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    await t.resend(honest, claimant);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "past its window: nothing to take over");
    assert.equal(t.fetches(), 0);
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a claim recorded without its evidence is kept across a restart: the receipt that comes after it is taken over, and the worker that withholds is slashed", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const [worker, requester, claimant, flooder] = [
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ];
    const job = textJob(requester, "s58-restart");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    let fetches = 0;
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        // The worker withholds its proof data.
        source: { proof: () => (fetches++, Promise.resolve(undefined)) },
      });
    const claim = withheldVerdict(id, worker.publicKey, clock.t, claimant);
    const before = new ActorSystem({ name: "s58-restart-before" });
    try {
      const v = await start(before);
      for (const key of [me, worker, claimant, flooder]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
      await floodReceipts(
        v,
        flooder,
        (await proveOn(textJob(flooder, "s58-shape"), flooder)).receipt,
        "s58",
      );
      await v.ask({ type: "verdict", verdict: claim, origin: "cd".repeat(32) });
      await ledgerReads(() => v, clock).drained();
      assert.equal(fetches, 0, "forgotten here: not taken over");
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s58-restart-after" });
    try {
      const v = await start(after);
      const ledger = ledgerReads(() => v, clock);
      const record = (await ledger.record(id))!;
      assert.equal(record.status, "pending");
      await v.ask({ type: "receipt", receipt, job, origin: toHex(claimant.publicKey) });
      await v.ask({ type: "verdict", verdict: claim, origin: toHex(claimant.publicKey) });
      await ledger.drained();
      assert.equal(fetches, 1, "taken over after the restart, once");
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "fraud", "slashed, not paid");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: 0,
        stake: STAKE - record.locked,
        locked: 0,
      });
    } finally {
      await after.shutdown();
    }
  });
});
