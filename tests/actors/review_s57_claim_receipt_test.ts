/**
 * Review s57: a staked peer's "proof withheld" claim (`invalid / proof_unavailable`) is taken over
 * here (this validator asks the worker itself, and slashes it if it withholds here too) only while
 * the receipt and its job are in the memory of recent peers' receipts (`_validator_memory.ts`):
 * bounded (4096 receipts, 64 MiB), one queue for every worker, oldest forgotten first. A worker
 * with a colluding requester floods receipts (they only lock stake) until its withheld receipt is
 * forgotten by every validator, then the claim about it is not taken over anywhere it was
 * forgotten: the worker that withheld was paid in those ledgers, slashed in the claimant's.
 *
 * Now the claim's evidence travels with it, as its author's pledge does: the validator that
 * publishes or passes on a claim hands the network the receipt and job it holds (its own
 * challenge's, or the one it remembers), the network sends them on each connection ahead of the
 * claim (`validation.receipt`), and the intake of a receipt recorded here, still pending, that
 * this validator no longer remembers remembers it again (the very receipt: same id, its worker's
 * signature) instead of dropping it as a copy. The claim right behind it is then taken over.
 *
 * Asserted on the ledger: statuses, balances and stake after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { type Proved, STAKE, startValidator } from "./_peer_verdict_fixture.ts";
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
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";

type Fixture = Awaited<ReturnType<typeof startValidator>>;

/** `worker`'s receipt, recorded here, then forgotten under a flood. */
async function forgotten(t: Fixture, worker: Identity, served: boolean): Promise<Proved> {
  const proved = await t.recordForgotten(worker, served, "s57");
  // Forgotten: a claim that comes alone is not taken over (the s56 behaviour, kept).
  const alone = await t.staked();
  await t.claimWithheld(proved, alone);
  await t.drained();
  assert.equal((await t.stats()).challenged, 0, "the receipt was forgotten: nothing taken over");
  return proved;
}

Deno.test("a withheld claim about a receipt the memory forgot, brought with its receipt, is taken over: the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await forgotten(t, worker, false);
    assert.equal((await t.resend(withheld, claimant)).recorded, true);
    await t.claimWithheld(withheld, claimant);
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
    assert.equal(challenged, 1, "the claim was taken over");
    assert.equal(t.fetches(), 1, "this validator asked the worker itself");
    assert.equal((await t.account(claimant.publicKey)).stake, STAKE, "the claim cost nothing");
  } finally {
    await t.close();
  }
});

Deno.test("an honest worker's forgotten receipt, re-sent twice with a claim: taken over once, served, cleared and paid once", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const honest = await forgotten(t, worker, true);
    const credit = (await t.record(honest.id))!.credit;
    assert.ok(credit > 0);
    await t.resend(honest, claimant);
    await t.resend(honest, claimant);
    await t.claimWithheld(honest, claimant);
    await t.resend(honest, await t.staked());
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "taken over once");
    assert.equal(t.fetches(), 1);
    // Challenged here once: a copy that comes after, with another claimant's claim, does not
    // make this validator ask the worker again.
    const late = await t.staked();
    await t.resend(honest, late);
    await t.claimWithheld(honest, late);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "not asked again");
    assert.equal(t.fetches(), 1);
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    assert.deepEqual(
      await t.account(worker.publicKey),
      { balance: credit, stake: STAKE, locked: 0 },
      "paid once, however often the receipt came",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a forgotten receipt re-sent with another job, or with a signature not its worker's, is not remembered again; the genuine copy behind it is", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const [first, second] = [await t.staked(), await t.staked()];
    const withheld = await forgotten(t, worker, false);
    // Another job: refused at the intake (its id is not the receipt's job id).
    const other = { ...withheld.job, nonce: "another" };
    assert.equal((await t.resend(withheld, first, { job: other })).refusal, "job_mismatch");
    // The same id (it leaves out the signature and timings), signed by nobody: not the worker's.
    const forged = { ...withheld.receipt, sig: new Uint8Array(64) };
    await t.resend(withheld, first, { receipt: forged });
    await t.claimWithheld(withheld, first);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "neither copy was taken as the receipt");
    // The genuine copy, with the next claim.
    await t.resend(withheld, second);
    await t.claimWithheld(withheld, second);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1);
    await t.closeWindow();
    assert.equal((await t.record(withheld.id))!.status, "fraud");
    assert.equal((await t.account(worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt no longer pending, re-sent, is neither remembered again nor paid again", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const paid = await t.prove(worker);
    assert.equal((await t.announce(paid)).recorded, true);
    const credit = (await t.record(paid.id))!.credit;
    await t.closeWindow();
    assert.equal((await t.record(paid.id))!.status, "final");
    for (let i = 0; i < 2; i++) await t.resend(paid, claimant);
    await t.announce(paid);
    await t.claimWithheld(paid, claimant);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0);
    await t.closeWindow();
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

/** The receipt and job the validator handed the network with each withheld claim it published. */
function evidenceOf(told: NetworkMessage[]) {
  return told.flatMap((m) =>
    m.type === "publish_verdict" && m.verdict.reason === "proof_unavailable"
      ? [{ by: toHex(m.verdict.validator), evidence: m.evidence }]
      : []
  );
}

Deno.test("a validator hands the network a withheld claim's receipt and job: with a peer's claim it passes on, and with its own after it took the claim over", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id);
    await t.announce(withheld);
    await t.claimWithheld(withheld, claimant);
    await t.drained();
    const published = evidenceOf(t.told);
    assert.deepEqual(
      published.map(({ by }) => by),
      [toHex(claimant.publicKey), toHex(t.me.publicKey)],
      "the peer's claim passed on, then this validator's own",
    );
    for (const { evidence } of published) {
      assert.deepEqual(evidence, { receipt: withheld.receipt, job: withheld.job });
    }
  } finally {
    await t.close();
  }
});

Deno.test("a receipt taken over and cleared here is not asked about again after a restart, when a copy of it comes ahead of another claim", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const [claimant, late] = [Identity.generate(), Identity.generate()];
    const job = textJob(requester, "s57-restart");
    const { receipt, proof } = await proveOn(job, worker);
    const id = receiptId(receipt);
    let fetches = 0;
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        // An honest worker: it serves its proof data.
        source: { proof: () => (fetches++, Promise.resolve(signServedProof(id, proof, worker))) },
      });
    const claim = (v: ActorRef<ValidatorMessage>, by: Identity) =>
      v.ask({
        type: "verdict",
        verdict: withheldVerdict(id, worker.publicKey, clock.t, by),
        origin: toHex(by.publicKey),
      });
    const before = new ActorSystem({ name: "s57-restart-before" });
    try {
      const v = await start(before);
      for (const key of [worker, claimant, late]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
      await claim(v, claimant);
      await ledgerReads(() => v, clock).drained();
      assert.equal(fetches, 1, "taken over once, served, cleared");
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s57-restart-after" });
    try {
      const v = await start(after);
      const ledger = ledgerReads(() => v, clock);
      const credit = (await ledger.record(id))!.credit;
      await v.ask({ type: "receipt", receipt, job, origin: toHex(late.publicKey) });
      await claim(v, late);
      await ledger.drained();
      assert.equal(fetches, 1, "challenged here once: not asked again");
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "final");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: credit,
        stake: STAKE,
        locked: 0,
      });
    } finally {
      await after.shutdown();
    }
  });
});
