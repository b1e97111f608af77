/**
 * Review (stop 44) of how the ValidatorActor drives the ledger's money: each test asserts the
 * balances the order of events leaves, not only what the calls return.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorModelSource } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  announceAssigned,
  f,
  falseProof,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 10_000;

/** The honest model, its loads held from `hold()` until `release()`: a check that takes its time. */
function slowModels() {
  const gate = Promise.withResolvers<void>();
  let held = false;
  const models: ValidatorModelSource = {
    has: (cid) => cid === f.honest.info.cid,
    get: async (cid) => {
      if (held) await gate.promise;
      return cid === f.honest.info.cid ? f.honest : undefined;
    },
  };
  return { models, hold: () => void (held = true), release: () => gate.resolve() };
}

Deno.test("review s44: a peer's fraud proof taken inside the window slashes the cheat even when its check ends after the window closed; the cheat is never paid meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "checked-across-the-window");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the cheat is caught by the accuser");
  // The check's forward pass is slow (a queue of checks, a model to load): held until released.
  const slow = slowModels();
  const system = new ActorSystem({ name: "review-s44-window" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: slow.models,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    assert.ok(handled.recorded);
    const ledger = ledgerReads(() => validator, clock);
    const rec = (await ledger.record(id))!;
    // The proof arrives a moment before the window closes, and is taken.
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true, "taken inside the window");
    // The window closes while it is being checked: the finalize tick comes.
    clock.t = rec.pendingUntil + 1;
    await validator.ask({ type: "finalize" });
    slow.release();
    await taken.result;
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    await validator.ask({ type: "finalize" });
    const account = await ledger.account(worker.publicKey);
    assert.equal(account.balance, 0, "the caught cheat is not paid");
    assert.equal(account.stake, STAKE - rec.locked, "and loses its locked stake");
    assert.equal((await ledger.record(id))?.status, "fraud");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s44: an honest receipt held back while a false proof taken inside its window is checked is paid at the next tick, and the accuser pays", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "held-then-paid");
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const slow = slowModels();
  const system = new ActorSystem({ name: "review-s44-held" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: slow.models,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.ok((await announceAssigned(validator, proved.receipt, job, requester)).recorded);
    const ledger = ledgerReads(() => validator, clock);
    const rec = (await ledger.record(id))!;
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "not paid while checked");
    slow.release();
    await taken.result;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once refuted");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    assert.equal(
      (await ledger.account(accuser.publicKey)).stake,
      STAKE - DEFAULT_ECONOMICS.falseAccusationPenalty,
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s44: a receipt held for a peer's proof whose check never reports is paid once the hold lapses", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "held-never-checked");
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const slow = slowModels();
  const system = new ActorSystem({ name: "review-s44-lapse" });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 0,
      models: slow.models,
    });
    for (const key of [worker, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.ok((await announceAssigned(validator, proved.receipt, job, requester)).recorded);
    const ledger = ledgerReads(() => validator, clock);
    const rec = (await ledger.record(id))!;
    clock.t = rec.pendingUntil - 1;
    slow.hold(); // and never released: the check never reports
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "held while checked");
    clock.t = rec.pendingUntil + 3 * DEFAULT_ECONOMICS.challengeWindowMs;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once the hold lapsed");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    slow.release();
    await taken.result?.catch(() => {});
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
