/**
 * Review (stop 44) of when a peer's fraud proof was taken, across a restart: a proof taken
 * inside its receipt's window and not settled at the stop is kept in the held evidence
 * (`actors/_held_evidence.ts`) and taken again at the start. It was taken again with the
 * restart's time: the window closed meanwhile, the confirmed proof was refused and the cheat
 * paid at the next finalize tick. Each test asserts the balances, not only the verdicts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { HELD_EVIDENCE_FILE, HeldEvidenceFile } from "../../actors/_held_evidence.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { pathExists } from "../../storage/path_exists.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { slowModels, STAKE } from "./_held_receipt_fixture.ts";

Deno.test("review s44: a peer's fraud proof taken inside the window, kept at a kill and taken again after the window closed, still slashes the cheat, which no finalize pays meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "taken-across-a-restart");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the cheat is caught by the accuser");
  // The first life's check never ends (a model that does not load): killed while checking.
  const stuck = slowModels();
  const system = new ActorSystem({ name: "review-s44-taken-at" });
  try {
    const ledgerDir = join(dir, "ledger");
    const validator = await spawnValidator(system, {
      name: "first-life",
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: stuck.models,
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    await validator.ask({ type: "deposit", key: accuser.publicKey, amount: STAKE });
    assert.ok((await announceAssigned(validator, proved.receipt, job, requester)).recorded);
    const rec = (await ledgerReads(() => validator, clock).record(id))!;
    clock.t = rec.pendingUntil - 1;
    stuck.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true, "taken inside the window");
    // The tick inside the window pays nothing and keeps the proof being checked.
    assert.deepEqual(await validator.ask({ type: "finalize" }), []);
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the tick");
    // Killed outright now: the directory as it leaves it (copied, never stopped).
    const killed = join(dir, "killed");
    await Deno.mkdir(killed);
    for await (const entry of Deno.readDir(ledgerDir)) {
      if (entry.isFile) await Deno.copyFile(join(ledgerDir, entry.name), join(killed, entry.name));
    }
    // Started again after the window closed; its first finalize tick comes at once.
    clock.t = rec.pendingUntil + 1;
    const restarted = await spawnValidator(system, {
      name: "second-life",
      identity: me,
      ledgerDir: killed,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    const ledger = ledgerReads(() => restarted, clock);
    assert.deepEqual(await restarted.ask({ type: "finalize" }), [], "not paid while checked");
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the kept proof to be checked",
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    await restarted.ask({ type: "finalize" });
    const account = await ledger.account(worker.publicKey);
    assert.equal(account.balance, 0, "the caught cheat is not paid");
    assert.equal(account.stake, STAKE - rec.locked, "and loses its locked stake");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
    assert.equal((await ledger.record(id))?.status, "fraud");
  } finally {
    stuck.release();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s44: a held-evidence file written before proofs kept their taken time is read as before: its proofs are taken now", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { file } = await HeldEvidenceFile.open(dir);
    const proof = { not: "checked here" };
    await file.keep({ receipts: [], proofs: [{ proof, origin: "ab" }], unbacked: [] });
    const { held } = await HeldEvidenceFile.open(dir);
    // No taken time: the actor takes it at its start, as before it was kept.
    assert.deepEqual(held.proofs, [{ proof, origin: "ab" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
