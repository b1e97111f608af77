/**
 * A validator whose own challenge of a cheat ended undecided (it restarted mid-challenge: the
 * receipt is `unpaid` here, its lock released) still settles a peer's confirmed fraud proof of
 * that receipt inside its window, as every ledger that did not challenge does. It used to skip
 * the proof (`not_pending`): the cheat went unpaid here but kept the stake it lost everywhere
 * else, and could back more work with it in this ledger.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { Ledger } from "../../proof/ledger.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 10_000;

Deno.test("a receipt left unresolved by this validator's restart is slashed by a peer's confirmed fraud proof inside its window", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "unresolved-then-proven");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the cheat is caught by the accuser");

  // The validator had recorded the receipt and opened its challenge when it stopped.
  const ledgerDir = `${dir}/ledger`;
  const before = await Ledger.open(ledgerDir, me, { now: () => clock.t });
  await before.deposit(worker.publicKey, WORKER_STAKE);
  await before.deposit(accuser.publicKey, 10_000);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  const lock = (await before.recordReceipt(proved.receipt, { assignment })).locked;
  await before.openChallenge(id);
  await before.close();

  const system = new ActorSystem({ name: "unresolved-proof" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    const ledger = ledgerReads(() => validator, clock);
    assert.equal((await ledger.record(id))?.status, "unpaid", "ended undecided at the start");
    assert.equal((await ledger.account(worker.publicKey)).locked, 0, "its lock released");

    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(handled.skipped, undefined, "taken, not skipped");
    await handled.result;
    assert.equal((await ledger.record(id))?.status, "fraud");
    assert.equal((await ledger.account(worker.publicKey)).stake, WORKER_STAKE - lock);
    await ledger.closeWindow();
    assert.equal((await ledger.account(worker.publicKey)).balance, 0, "and never paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
