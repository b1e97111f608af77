/**
 * The unbacked checks a receipt has spent (`actors/_unbacked_checks.ts`: proofs from pledged
 * accusers whose stake does not cover the penalty, at most 3 per receipt) are kept across a
 * restart with the held evidence (`actors/_held_evidence.ts`). Before, the count was memory only:
 * each restart granted every receipt 3 more forward passes on its accusers' unbacked word, so
 * keys with spent stake and a validator made to restart bought checks without bound.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT, UnbackedChecks } from "../../actors/_unbacked_checks.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  falseProof,
  HONEST_MODELS,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const PEER = "ab".repeat(32);
/** Pledged, but below the false-accusation penalty: each proof of theirs is checked unbacked. */
const SHORT_STAKE = DEFAULT_ECONOMICS.falseAccusationPenalty / 10;

Deno.test("a receipt's unbacked checks spent before a restart stay spent after it: a 4th unbacked proof is not checked", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const accusers = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
  const system = new ActorSystem({ name: "unbacked-restart" });
  try {
    const spawn = () =>
      spawnValidator(system, {
        identity: me,
        ledgerDir: join(dir, "ledger"),
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    let validator: ActorRef<ValidatorMessage> = await spawn();
    const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 100_000 });
    for (const key of accusers) {
      const pledge = signStakePledge(key, SHORT_STAKE, 1);
      assert.equal(await validator.ask({ type: "pledge", pledge, origin: PEER }), true);
    }
    const job = textJob(requester, "unbacked-restart");
    const { receipt } = await proveOn(job, worker);
    assert.equal((await announceAssigned(validator, receipt, job, requester)).recorded, true);
    const accuse = (by: Identity) =>
      validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: falseProof(receipt, by),
        origin: PEER,
      });

    // Each accuser's false proof is checked unbacked, up to the receipt's budget.
    for (const [n, key] of accusers.slice(0, -1).entries()) {
      const handled = await accuse(key);
      assert.equal(handled.queued, true, `unbacked proof ${n + 1} was not checked`);
      await eventually(async () => (await stats()).fraudProofsChecked === n + 1, "the check");
    }

    await system.stop("node/validator");
    validator = await spawn();
    const handled = await accuse(accusers.at(-1)!);
    assert.equal(handled.queued, false, "a restart granted the receipt more unbacked checks");
    assert.equal(handled.skipped, "unstaked_accuser");
    assert.equal((await stats()).fraudProofsChecked, 0);
    // The receipt itself is judged as it would be without the proofs: pending, paid at the end.
    const record = await validator.ask<{ status: string }>({
      type: "receipt_status",
      receiptId: receiptId(receipt),
    });
    assert.equal(record.status, "pending");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spent unbacked checks are kept only while their receipt's window is open, and what is read back never lowers a count nor raises it past the budget", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("closed", "k", "h2", 500);
  assert.deepEqual(checks.spent(1_000), [{ receiptId: "open", checks: 1, until: 2_000 }]);
  const restarted = new UnbackedChecks();
  restarted.take("open", "j", "h3", 2_000);
  restarted.take("open", "i", "h4", 2_000);
  restarted.restore([
    { receiptId: "open", checks: 1, until: 2_000 }, // fewer than spent here: not lowered
    { receiptId: "flood", checks: 99, until: 2_000 }, // past the budget: the budget
    { receiptId: "bad", checks: "3", until: 2_000 },
    null,
    "garbage",
  ]);
  assert.deepEqual(restarted.spent(1_000), [
    { receiptId: "open", checks: 2, until: 2_000 },
    { receiptId: "flood", checks: MAX_UNBACKED_CHECKS_PER_RECEIPT, until: 2_000 },
  ]);
  assert.equal(restarted.available("flood", "fresh"), false);
});

Deno.test("an unbacked check still in flight is not kept as spent beside its proof: the proof spends it again when taken up after the stop", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("open", "j", "h2", 2_000);
  checks.done("h1");
  const kept = new Set(["h2"]);
  assert.deepEqual(checks.spentSettled(1_000, kept), [{
    receiptId: "open",
    checks: 1,
    until: 2_000,
  }]);
  assert.deepEqual(checks.spent(1_000), [{ receiptId: "open", checks: 2, until: 2_000 }]);
  checks.done("h2");
  assert.deepEqual(checks.spentSettled(1_000, kept), [{
    receiptId: "open",
    checks: 2,
    until: 2_000,
  }]);
});

Deno.test("an unbacked check in flight whose proof is not kept beside the counts stays spent: the restart does not grant its receipt the check again", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("open", "j", "h2", 2_000);
  assert.deepEqual(checks.spentSettled(1_000, new Set(["h1"])), [
    { receiptId: "open", checks: 1, until: 2_000 },
  ]);
  assert.deepEqual(checks.spentSettled(1_000, new Set()), [
    { receiptId: "open", checks: 2, until: 2_000 },
  ]);
});
